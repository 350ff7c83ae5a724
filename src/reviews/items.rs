//! What a campaign's items are when it starts: the grants its scope selects, who reviews each
//! (rules, fallback, and never the user under review), and what a reviewer should know and
//! look at first (context and suggestions).

use std::collections::{HashMap, HashSet};

use provost_connector::model::{Account, Entitlement, EntitlementKind};
use provost_connector::times::Timestamp;
use serde_json::{json, Value};

use super::model::{Definition, NewItem, Rule, StageReviewer};
use super::ReviewError;
use crate::store::reports::HeldEntitlement;

/// The system permissions whose grant a reviewer must justify keeping (with a comment), and
/// that put an item first in a queue.
pub const PRIVILEGED: [&str; 11] = [
    "PermissionsModifyAllData",
    "PermissionsViewAllData",
    "PermissionsManageUsers",
    "PermissionsManageInternalUsers",
    "PermissionsCustomizeApplication",
    "PermissionsAuthorApex",
    "PermissionsManageProfilesPermissionsets",
    "PermissionsAssignPermissionSets",
    "PermissionsResetPasswords",
    "PermissionsManageRemoteAccess",
    "PermissionsManageRoles",
];

/// An entitlement held by fewer than this share of the users with the same profile is unusual
/// for them (when the profile has at least [`PEERS_MIN`] users).
const RARE_SHARE: f64 = 0.10;
const PEERS_MIN: i64 = 10;

/// The scope resolved against the org's catalog: sets of ids to match.
pub(super) struct Selector {
    kinds: HashSet<EntitlementKind>,
    entitlements: HashSet<String>,
    carrying: Option<HashSet<String>>,
    user_types: HashSet<String>,
    profiles: HashSet<String>,
    roles: HashSet<String>,
    users: HashSet<String>,
    active_only: bool,
    changed_since: Option<Timestamp>,
}

/// Every id of `kind` (or any kind) that `key` names by id or API name.
fn ids_named(
    catalog: &HashMap<String, Entitlement>,
    key: &str,
    kind: Option<EntitlementKind>,
    what: &str,
) -> Result<Vec<String>, ReviewError> {
    let found: Vec<String> = catalog
        .values()
        .filter(|e| kind.is_none_or(|k| e.kind == k))
        .filter(|e| e.id == key || e.api_name == key)
        .map(|e| e.id.clone())
        .collect();
    if found.is_empty() {
        return Err(ReviewError::BadDefinition(format!(
            "scope names {what} `{key}`, which the org does not have (as of its last sync): give an id or an API name"
        )));
    }
    Ok(found)
}

impl Selector {
    pub(super) fn new(
        definition: &Definition,
        catalog: &HashMap<String, Entitlement>,
    ) -> Result<Selector, ReviewError> {
        let scope = &definition.scope;
        let mut kinds = HashSet::new();
        for name in &scope.entitlement_types {
            let kind = EntitlementKind::ALL
                .into_iter()
                .find(|k| k.as_str() == name)
                .ok_or_else(|| {
                    ReviewError::BadDefinition(format!(
                        "`{name}` is not an entitlement type: use {}",
                        EntitlementKind::ALL.map(|k| k.as_str()).join(", ")
                    ))
                })?;
            kinds.insert(kind);
        }
        let mut entitlements = HashSet::new();
        for key in &scope.entitlements {
            entitlements.extend(ids_named(catalog, key, None, "the entitlement")?);
        }
        let carrying = if scope.permissions.is_empty() {
            None
        } else {
            let mut fields = Vec::new();
            for text in &scope.permissions {
                fields.push(
                    crate::reports::resolve_permission(text)
                        .map_err(|e| ReviewError::BadDefinition(e.to_string()))?,
                );
            }
            let sets = crate::reports::carrying_sets(catalog);
            Some(
                catalog
                    .values()
                    .filter(|e| {
                        brought(e, &sets)
                            .iter()
                            .any(|held| fields.contains(&held.as_str()))
                    })
                    .map(|e| e.id.clone())
                    .collect(),
            )
        };
        let mut profiles = HashSet::new();
        for key in &scope.profiles {
            profiles.extend(ids_named(
                catalog,
                key,
                Some(EntitlementKind::Profile),
                "the profile",
            )?);
        }
        let mut roles = HashSet::new();
        for key in &scope.roles {
            roles.extend(ids_named(
                catalog,
                key,
                Some(EntitlementKind::Role),
                "the role",
            )?);
        }
        Ok(Selector {
            kinds,
            entitlements,
            carrying,
            user_types: scope.user_types.iter().cloned().collect(),
            profiles,
            roles,
            users: scope.users.iter().map(|u| u.to_lowercase()).collect(),
            active_only: scope.active_only,
            changed_since: scope.changed_since,
        })
    }

    /// Whether the campaign reviews this grant. Grants a user holds through a permission set
    /// group are reviewed as the group (the component cannot be revoked on its own).
    pub(super) fn admits(&self, held: &HeldEntitlement, entitlement: &Entitlement) -> bool {
        let account = &held.account;
        let attribute = |key: &str| account.attributes.get(key).and_then(Value::as_str);
        !held.source.starts_with("group:")
            && (self.kinds.is_empty() || self.kinds.contains(&entitlement.kind))
            && (self.entitlements.is_empty() || self.entitlements.contains(&entitlement.id))
            && self
                .carrying
                .as_ref()
                .is_none_or(|ids| ids.contains(&entitlement.id))
            && (self.user_types.is_empty()
                || account
                    .user_type
                    .as_ref()
                    .is_some_and(|t| self.user_types.contains(t)))
            && (self.profiles.is_empty()
                || attribute("ProfileId").is_some_and(|p| self.profiles.contains(p)))
            && (self.roles.is_empty()
                || attribute("UserRoleId").is_some_and(|r| self.roles.contains(r)))
            && (self.users.is_empty()
                || self.users.contains(&account.id.to_lowercase())
                || self.users.contains(&account.username.to_lowercase()))
            && (!self.active_only || account.active)
            && self
                .changed_since
                .is_none_or(|since| held.since.is_some_and(|at| at >= since))
    }
}

/// The system permissions (fields) that holding `entitlement` brings: a permission set's own,
/// a profile's through the set it owns, a group's through its aggregate set.
pub(super) fn brought(
    entitlement: &Entitlement,
    sets: &HashMap<&str, &Entitlement>,
) -> Vec<String> {
    let set = match entitlement.kind {
        EntitlementKind::PermissionSet => Some(entitlement),
        EntitlementKind::Profile | EntitlementKind::PermissionSetGroup => {
            sets.get(entitlement.id.as_str()).copied()
        }
        _ => None,
    };
    set.and_then(|s| s.attributes.get("system_permissions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|p| crate::reports::PERMISSIONS.iter().any(|(f, _)| f == p))
        .map(str::to_owned)
        .collect()
}

/// A reviewer named in a definition or the configuration, as found among the org's users.
#[derive(Debug, Clone)]
pub(super) struct Person {
    pub reviewer: String,
    pub account_id: Option<String>,
    pub active: bool,
}

/// The org's users by id (and its first 15 characters), lower-case username and email, for
/// reviewers and managers: the same resolution as [`super::reviewer_of`] at decision time.
#[derive(Default)]
pub(super) struct People {
    by_id: HashMap<String, (String, bool)>,
    by_short_id: HashMap<String, String>,
    by_lower_id: HashMap<String, String>,
    by_name: HashMap<String, String>,
    by_email: HashMap<String, Vec<String>>,
}

impl People {
    pub(super) fn add(&mut self, account: &Account) {
        if self.by_id.contains_key(&account.id) {
            return;
        }
        let name = account.username.to_lowercase();
        self.by_name.insert(name.clone(), account.id.clone());
        if account.id.len() == 18 {
            self.by_short_id
                .insert(account.id[..15].to_owned(), account.id.clone());
            self.by_lower_id
                .insert(account.id.to_lowercase(), account.id.clone());
        }
        if let Some(email) = &account.email {
            self.by_email
                .entry(email.to_lowercase())
                .or_default()
                .push(account.id.clone());
        }
        self.by_id
            .insert(account.id.clone(), (name, account.active));
    }

    fn person(&self, id: &str) -> Person {
        let (name, active) = self.by_id[id].clone();
        Person {
            reviewer: name,
            account_id: Some(id.to_owned()),
            active,
        }
    }

    /// The user with this id.
    pub(super) fn by_id(&self, id: &str) -> Option<Person> {
        self.by_id.contains_key(id).then(|| self.person(id))
    }

    /// Who `key` (a user id of 18 or 15 characters, a username, an email, or another name)
    /// is; an email several users share is refused.
    pub(super) fn find(&self, key: &str) -> Result<Person, ReviewError> {
        let key = key.trim();
        let lower = key.to_lowercase();
        let id = self
            .by_id
            .get_key_value(key)
            .map(|(id, _)| id.clone())
            .or_else(|| self.by_short_id.get(key).cloned())
            .or_else(|| self.by_name.get(&lower).cloned());
        if let Some(id) = id {
            return Ok(self.person(&id));
        }
        if let Some(id) = (key.len() == 18)
            .then(|| self.by_lower_id.get(&lower))
            .flatten()
        {
            return Ok(self.person(&id.clone()));
        }
        match self.by_email.get(&lower).map(Vec::as_slice) {
            Some([one]) => Ok(self.person(one)),
            Some(several) if several.len() > 1 => Err(ReviewError::BadDefinition(format!(
                "`{key}` is the email of {} users; name the reviewer by username or id",
                several.len()
            ))),
            _ => {
                super::plain_team_name(key)
                    .map_err(|e| ReviewError::BadDefinition(e.to_string()))?;
                Ok(Person {
                    reviewer: lower,
                    account_id: None,
                    active: true,
                })
            }
        }
    }
}

/// Decides each item's reviewers, stage by stage.
pub(super) struct Assigner<'a> {
    pub definition: &'a Definition,
    /// Entitlement id to its owner.
    pub owners: HashMap<String, Person>,
    /// The `reviewers` list and the fallbacks, resolved once.
    pub listed: Vec<Person>,
    pub fallback: Vec<Person>,
    pub people: &'a People,
}

impl<'a> Assigner<'a> {
    pub(super) fn new(
        definition: &'a Definition,
        configured: &std::collections::BTreeMap<String, String>,
        catalog: &HashMap<String, Entitlement>,
        people: &'a People,
    ) -> Result<Assigner<'a>, ReviewError> {
        let mut owners = HashMap::new();
        for (key, owner) in configured.iter().chain(&definition.reviewers.owners) {
            let owner = people.find(owner)?;
            for id in ids_named(catalog, key, None, "an owned entitlement")
                .map_err(|e| ReviewError::BadDefinition(format!("{e} (in owners)")))?
            {
                owners.insert(id, owner.clone());
            }
        }
        let resolve = |names: &[String]| -> Result<Vec<Person>, ReviewError> {
            names.iter().map(|n| people.find(n)).collect()
        };
        Ok(Assigner {
            definition,
            owners,
            listed: resolve(&definition.reviewers.reviewers)?,
            fallback: resolve(&definition.reviewers.fallback)?,
            people,
        })
    }

    fn is_subject(person: &Person, account: &Account) -> bool {
        person.account_id.as_deref() == Some(account.id.as_str())
            || person.reviewer == account.username.to_lowercase()
    }

    /// The first active fallback that is not the user under review nor `besides`.
    fn fallback_for(&self, account: &Account, besides: Option<&str>) -> Option<&Person> {
        self.fallback.iter().find(|p| {
            p.active && !Self::is_subject(p, account) && besides != Some(p.reviewer.as_str())
        })
    }

    /// The reviewers of each stage of `account`'s item of `entitlement`.
    pub(super) fn reviewers(
        &self,
        account: &Account,
        entitlement: &str,
    ) -> Result<Vec<StageReviewer>, ReviewError> {
        let rules = &self.definition.reviewers;
        let mut stages: Vec<StageReviewer> = Vec::with_capacity(rules.stages.len());
        for rule in &rules.stages {
            let candidate = match rule {
                Rule::Manager => account
                    .attributes
                    .get("ManagerId")
                    .and_then(Value::as_str)
                    .and_then(|id| self.people.by_id(id)),
                Rule::Owner => self.owners.get(entitlement).cloned(),
                Rule::Reviewers => {
                    // The same reviewer for all of a user's items, spread evenly over the list.
                    let eligible: Vec<&Person> = self
                        .listed
                        .iter()
                        .filter(|p| p.active && !Self::is_subject(p, account))
                        .collect();
                    (!eligible.is_empty()).then(|| {
                        let at = stable_hash(&account.id) as usize % eligible.len();
                        eligible[at].clone()
                    })
                }
            };
            let earlier = stages.first().map(|s| s.reviewer.as_str());
            let why = match &candidate {
                None => Some(format!("no {} for this item", rule.as_str())),
                Some(p) if !p.active => {
                    Some(format!("the {} {} is inactive", rule.as_str(), p.reviewer))
                }
                Some(p) if Self::is_subject(p, account) => {
                    Some(format!("the {} is the user under review", rule.as_str()))
                }
                Some(p) if earlier == Some(p.reviewer.as_str()) => Some(format!(
                    "the {} already reviews the first stage",
                    rule.as_str()
                )),
                Some(_) => None,
            };
            match (candidate, why) {
                (Some(person), None) => stages.push(StageReviewer {
                    reviewer: person.reviewer,
                    account_id: person.account_id,
                    rule: rule.as_str().to_owned(),
                }),
                (_, Some(why)) => match self.fallback_for(account, earlier) {
                    Some(fallback) => stages.push(StageReviewer {
                        reviewer: fallback.reviewer.clone(),
                        account_id: fallback.account_id.clone(),
                        rule: format!("fallback: {why}"),
                    }),
                    // A second stage without another person is one review, not two by one.
                    None if earlier.is_some() => {}
                    None => {
                        return Err(ReviewError::BadDefinition(format!(
                            "no fallback reviewer can review {} ({}): each is that user or inactive; add another fallback",
                            account.username, account.id
                        )))
                    }
                },
                (None, None) => unreachable!("no candidate always has a reason"),
            }
        }
        Ok(stages)
    }
}

/// FNV-1a: a stable spread (the standard library's hasher is seeded per process).
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// How many users of each profile there are, and how many of them hold each entitlement.
#[derive(Default)]
pub(super) struct Peers {
    profile_users: HashMap<String, i64>,
    /// Profile to entitlement to holders.
    holders: HashMap<String, HashMap<String, i64>>,
}

impl Peers {
    /// Counts one user's grants (all of one user's at once).
    pub(super) fn count(&mut self, grants: &[HeldEntitlement]) {
        let Some(first) = grants.first() else { return };
        let Some(profile) = first
            .account
            .attributes
            .get("ProfileId")
            .and_then(Value::as_str)
        else {
            return;
        };
        *self.profile_users.entry(profile.to_owned()).or_default() += 1;
        let held = self.holders.entry(profile.to_owned()).or_default();
        let mut seen = HashSet::new();
        for grant in grants {
            if seen.insert(grant.entitlement_id.as_str()) {
                *held.entry(grant.entitlement_id.clone()).or_default() += 1;
            }
        }
    }

    fn of(&self, profile: Option<&str>, entitlement: &str) -> Option<(i64, i64)> {
        let profile = profile?;
        let users = *self.profile_users.get(profile)?;
        let holders = self
            .holders
            .get(profile)
            .and_then(|held| held.get(entitlement))
            .copied()
            .unwrap_or(0);
        Some((holders, users))
    }
}

/// What holding an entitlement brings: the Setup names of its sensitive system permissions,
/// and whether any is privileged. Worked out once per entitlement.
pub(super) struct Brings {
    pub labels: Vec<&'static str>,
    pub privileged: bool,
}

impl Brings {
    pub(super) fn of_catalog(catalog: &HashMap<String, Entitlement>) -> HashMap<String, Brings> {
        let sets = crate::reports::carrying_sets(catalog);
        catalog
            .values()
            .map(|e| {
                let fields = brought(e, &sets);
                let labels = fields
                    .iter()
                    .filter_map(|p| crate::reports::PERMISSIONS.iter().find(|(f, _)| f == p))
                    .map(|(_, label)| *label)
                    .collect();
                let privileged = fields.iter().any(|p| PRIVILEGED.contains(&p.as_str()));
                (e.id.clone(), Brings { labels, privileged })
            })
            .collect()
    }
}

/// What is known when an item is made.
pub(super) struct Facts<'a> {
    pub catalog: &'a HashMap<String, Entitlement>,
    pub brings: &'a HashMap<String, Brings>,
    pub peers: &'a Peers,
    pub dormant_days: u32,
    pub now: Timestamp,
}

/// The item for `held` (one of `user_grants`, the user's grants), with its context and
/// suggestion.
pub(super) fn item(
    facts: &Facts<'_>,
    held: &HeldEntitlement,
    user_grants: &[HeldEntitlement],
    entitlement: &Entitlement,
    reviewers: Vec<StageReviewer>,
) -> NewItem {
    let account = &held.account;
    let attribute = |key: &str| account.attributes.get(key).and_then(Value::as_str);
    let (labels, privileged) = facts
        .brings
        .get(&entitlement.id)
        .map_or((&[][..], false), |b| (b.labels.as_slice(), b.privileged));
    let mut reasons = Vec::new();
    if !account.active {
        reasons.push("the user is inactive".to_owned());
    }
    if account.attributes.get("IsFrozen") == Some(&Value::Bool(true)) {
        reasons.push("the user is frozen: they cannot sign in".to_owned());
    }
    let last_login = attribute("LastLoginDate").and_then(provost_connector::times::parse_rfc3339);
    let idle_days = last_login.map(|at| (facts.now - at).num_days());
    let dormant = account.active
        && match idle_days {
            None => true,
            Some(days) => days >= i64::from(facts.dormant_days),
        };
    if dormant {
        reasons.push(match idle_days {
            None => "the user has never signed in".to_owned(),
            Some(days) => format!("the user has not signed in for {days} days"),
        });
    }
    let profile = attribute("ProfileId");
    let peers = facts.peers.of(profile, &entitlement.id);
    let profile_name = profile
        .and_then(|p| facts.catalog.get(p))
        .map(|p| p.api_name.clone());
    if entitlement.kind != EntitlementKind::Profile
        && entitlement.kind != EntitlementKind::UserLicense
    {
        if let (Some((holders, users)), Some(name)) = (peers, &profile_name) {
            if users >= PEERS_MIN && (holders as f64) < RARE_SHARE * users as f64 {
                reasons.push(format!(
                    "unusual for the profile: only {holders} of the {users} users with profile `{name}` hold it"
                ));
            }
        }
    }
    // A group's components, as the user holds them through it.
    let through = format!("group:{}", entitlement.id);
    let components: Vec<&str> = user_grants
        .iter()
        .filter(|g| g.source == through)
        .filter_map(|g| facts.catalog.get(&g.entitlement_id))
        .map(|e| e.api_name.as_str())
        .collect();
    let suggestion = (!reasons.is_empty()).then(|| "revoke".to_owned());
    let priority = i64::from(privileged) + i64::from(suggestion.is_some());
    let context = json!({
        "user_active": account.active,
        "user_frozen": account.attributes.get("IsFrozen").cloned().unwrap_or(Value::Bool(false)),
        "user_type": account.user_type,
        "profile": profile_name,
        "last_login": last_login.map(crate::util::times::rfc3339),
        "dormant": dormant,
        "entitlement_label": entitlement.label,
        "held": held.source,
        "components": components,
        "granted_since": held.since.map(crate::util::times::rfc3339),
        "granted_by_request": held.request_id,
        "expires_at": held.expires_at.map(crate::util::times::rfc3339),
        "system_permissions": labels,
        "peers_holding": peers.map(|(h, _)| h),
        "peers": peers.map(|(_, u)| u),
        "reasons": reasons,
    });
    NewItem {
        account_id: account.id.clone(),
        username: account.username.clone(),
        display_name: account.display_name.clone(),
        entitlement_id: entitlement.id.clone(),
        kind: entitlement.kind.as_str().to_owned(),
        api_name: entitlement.api_name.clone(),
        grant_id: held.grant_id.clone(),
        context,
        privileged,
        suggestion,
        priority,
        reviewers,
    }
}
