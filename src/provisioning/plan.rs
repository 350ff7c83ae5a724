//! From a request to the exact Salesforce write, checked against the synced model first.
//!
//! [`plan`] resolves the user and the entitlement, checks everything that can be known before
//! calling Salesforce (the user exists and is active, the entitlement is grantable, licenses
//! match, the grant is or is not there, the connected user's preflight allows the action) and
//! either refuses with a [`Refusal`] that names the reason, or returns the [`Plan`]: the record
//! to create, update or delete, with every field value, and the checks it passed.

use provost_connector::model::{Account, Entitlement, EntitlementKind, Grant, GrantSource};
use provost_connector::provisioner::{AccountField, Change, NewAccount, Write, Writes};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::Action;
use crate::store::provisioning::AccountMatch;
use crate::store::{OrgId, Store, StoreError};

/// The body of `POST /api/v1/orgs/{org}/access-requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestInput {
    pub action: Action,
    /// The Salesforce user: its id, username or email.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub entitlement: Option<EntitlementRef>,
    #[serde(default)]
    pub justification: Option<String>,
    /// Who asked, when not the caller itself (an approval flow acting for a person).
    #[serde(default)]
    pub requester: Option<String>,
    /// An external ticket reference (ServiceNow, Jira...).
    #[serde(default)]
    pub ticket: Option<String>,
    /// When a time-bound grant ends (RFC 3339).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// The new user's fields (`create_user`).
    #[serde(default)]
    pub new_user: Option<NewUser>,
    /// The fields to change (`update_user`); absent fields stay as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<UserChanges>,
}

/// What `update_user` changes. A field given as an empty string is cleared (not the
/// username, email or last name, which Salesforce requires).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation_id: Option<String>,
}

/// An entitlement by id, or by type and API name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EntitlementRef {
    Id(String),
    Named {
        #[serde(rename = "type")]
        kind: EntitlementKind,
        name: String,
    },
}

/// A new user's fields, as a request gives them (`new_user`).
pub type NewUser = NewAccount;

/// A check the plan passed, shown so a reviewer sees what was verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checked {
    pub check: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Named {
    pub id: String,
    pub name: String,
}

/// What a request will do, as shown before approval and kept with the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub summary: String,
    /// The write that makes the change, as the connector will make it.
    pub write: Write,
    pub checks: Vec<Checked>,
    #[serde(default)]
    pub user: Option<Named>,
    #[serde(default)]
    pub entitlement: Option<PlannedEntitlement>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedEntitlement {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EntitlementKind,
    pub api_name: String,
    pub label: String,
}

/// A planned request: the plan, and what it is about.
#[derive(Debug, Clone)]
pub struct Planned {
    pub plan: Plan,
    pub account_id: Option<String>,
    pub entitlement_id: Option<String>,
    pub expires_at: Option<OffsetDateTime>,
}

/// Why a request cannot work, found without calling Salesforce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> PlanError {
    PlanError::Refused(Refusal {
        code,
        message: message.into(),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Refused(Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Plans `input` for the org, as of `now`; `writes` is how the org's connector writes.
pub async fn plan(
    store: &dyn Store,
    org: OrgId,
    input: &RequestInput,
    writes: &dyn Writes,
    now: OffsetDateTime,
) -> Result<Planned, PlanError> {
    let mut checks = Vec::new();
    let expires_at = expiry(input, now)?;
    if input.action == Action::CreateUser {
        return plan_create_user(store, org, input, writes, checks).await;
    }
    if input.changes.is_some() && input.action != Action::UpdateUser {
        return Err(refuse(
            "unexpected_field",
            format!(
                "`changes` applies to update_user only, not {}",
                input.action
            ),
        ));
    }
    if input.new_user.is_some() {
        return Err(refuse(
            "unexpected_field",
            format!(
                "`new_user` applies to create_user only, not {}",
                input.action
            ),
        ));
    }
    let account = resolve_user(store, org, input).await?;
    checks.push(Checked {
        check: "user_exists".into(),
        detail: format!("{} is {} in the synced model", account.username, account.id),
    });
    let entitlement = match (&input.entitlement, input.action.needs_entitlement()) {
        (Some(reference), true) => Some(resolve_entitlement(store, org, reference).await?),
        (None, true) if input.action == Action::ChangeRole => None,
        (None, true) => {
            return Err(refuse(
                "missing_field",
                format!(
                "{} needs `entitlement`: an id, or {{\"type\": \"...\", \"name\": \"API name\"}}",
                input.action
            ),
            ))
        }
        (Some(_), false) => {
            return Err(refuse(
                "unexpected_field",
                format!("{} does not take an `entitlement`", input.action),
            ))
        }
        (None, false) => None,
    };
    if let Some(entitlement) = &entitlement {
        checks.push(Checked {
            check: "entitlement_exists".into(),
            detail: format!(
                "{} `{}` is {}",
                entitlement.kind, entitlement.api_name, entitlement.id
            ),
        });
    }
    let needs = needed_preflight(input.action, entitlement.as_ref());
    check_preflight(store, org, needs, &mut checks).await?;
    let grants = store.grants_of_account(org, &account.id).await?;
    let (summary, change) = match input.action {
        Action::Grant => {
            let entitlement = entitlement.as_ref().expect("grant needs an entitlement");
            grant(&account, entitlement, &grants, expires_at, &mut checks)?
        }
        Action::Revoke => {
            let entitlement = entitlement.as_ref().expect("revoke needs an entitlement");
            revoke(&account, entitlement, &grants, &mut checks)?
        }
        Action::ChangeProfile => {
            let profile = entitlement.as_ref().expect("needs a profile");
            change_profile(store, org, &account, profile, &grants, &mut checks).await?
        }
        Action::ChangeRole => change_role(&account, entitlement.as_ref(), &mut checks)?,
        Action::DeactivateUser | Action::ReactivateUser => {
            let activate = input.action == Action::ReactivateUser;
            if account.active == activate {
                let (code, state) = if activate {
                    ("already_active", "active")
                } else {
                    ("already_inactive", "inactive")
                };
                return Err(refuse(
                    code,
                    format!("{} is already {state}", account.username),
                ));
            }
            (
                format!(
                    "{} {}",
                    if activate { "Reactivate" } else { "Deactivate" },
                    account.username
                ),
                Change::SetActive {
                    account: account.id.clone(),
                    active: activate,
                },
            )
        }
        Action::FreezeUser | Action::UnfreezeUser => {
            let freeze = input.action == Action::FreezeUser;
            let frozen = account.attributes.get("IsFrozen") == Some(&Value::Bool(true));
            if frozen == freeze {
                let (code, state) = if freeze {
                    ("already_frozen", "frozen")
                } else {
                    ("not_frozen", "not frozen")
                };
                return Err(refuse(code, format!("{} is {state}", account.username)));
            }
            if freeze && !account.active {
                return Err(refuse(
                    "user_inactive",
                    format!(
                        "{} is inactive, so cannot log in anyway; freezing applies to active users",
                        account.username
                    ),
                ));
            }
            (
                format!(
                    "{} {}",
                    if freeze { "Freeze" } else { "Unfreeze" },
                    account.username
                ),
                Change::SetFrozen {
                    account: account.id.clone(),
                    frozen: freeze,
                },
            )
        }
        Action::UpdateUser => update_user(store, org, &account, input, &mut checks).await?,
        Action::CreateUser => unreachable!("planned above"),
    };
    Ok(Planned {
        plan: Plan {
            summary,
            write: writes.prepare(&change),
            checks,
            user: Some(Named {
                id: account.id.clone(),
                name: account.username.clone(),
            }),
            entitlement: entitlement.as_ref().map(planned_entitlement),
        },
        account_id: Some(account.id),
        entitlement_id: entitlement.map(|e| e.id),
        expires_at,
    })
}

fn planned_entitlement(entitlement: &Entitlement) -> PlannedEntitlement {
    PlannedEntitlement {
        id: entitlement.id.clone(),
        kind: entitlement.kind,
        api_name: entitlement.api_name.clone(),
        label: entitlement.label.clone(),
    }
}

fn expiry(input: &RequestInput, now: OffsetDateTime) -> Result<Option<OffsetDateTime>, PlanError> {
    let Some(text) = &input.expires_at else {
        return Ok(None);
    };
    if input.action != Action::Grant {
        return Err(refuse(
            "bad_expiry",
            format!("`expires_at` applies to grants only, not {}", input.action),
        ));
    }
    let at = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|err| {
            refuse(
                "bad_expiry",
                format!("`expires_at` `{text}` is not an RFC 3339 date-time ({err}); write e.g. 2026-12-31T18:00:00Z"),
            )
        })?;
    if at <= now + time::Duration::minutes(1) {
        return Err(refuse(
            "bad_expiry",
            format!("`expires_at` {text} is not in the future (at least a minute from now)"),
        ));
    }
    // Salesforce keeps date-times to the second.
    Ok(Some(
        at.replace_nanosecond(0).expect("0 is a valid nanosecond"),
    ))
}

async fn resolve_user(
    store: &dyn Store,
    org: OrgId,
    input: &RequestInput,
) -> Result<Account, PlanError> {
    let key = input
        .user
        .as_deref()
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .ok_or_else(|| {
            refuse(
                "missing_field",
                format!(
                    "{} needs `user`: the Salesforce user id, username or email",
                    input.action
                ),
            )
        })?;
    match store.find_account(org, key).await? {
        AccountMatch::One(account) => Ok(*account),
        AccountMatch::None => Err(refuse(
            "unknown_user",
            format!("no user `{key}` (by id, username or email) in the synced model; if the user is new in Salesforce, sync the org first (provost sync)"),
        )),
        AccountMatch::Several(ids) => Err(refuse(
            "ambiguous_user",
            format!(
                "the email `{key}` belongs to {} users ({}); name the user by id or username",
                ids.len(),
                ids.join(", ")
            ),
        )),
    }
}

async fn resolve_entitlement(
    store: &dyn Store,
    org: OrgId,
    reference: &EntitlementRef,
) -> Result<Entitlement, PlanError> {
    let found = match reference {
        EntitlementRef::Id(id) => store.get_entitlement(org, id.trim()).await?,
        EntitlementRef::Named { kind, name } => {
            store.entitlement_by_name(org, *kind, name.trim()).await?
        }
    };
    found.ok_or_else(|| {
        let what = match reference {
            EntitlementRef::Id(id) => format!("id `{id}`"),
            EntitlementRef::Named { kind, name } => format!("{kind} named `{name}`"),
        };
        refuse(
            "unknown_entitlement",
            format!("no entitlement with {what} in the synced model; list them with GET /scim/v2/Entitlements or sync the org if it is new"),
        )
    })
}

/// The preflight check that must pass for the action.
fn needed_preflight(action: Action, entitlement: Option<&Entitlement>) -> &'static str {
    match (action, entitlement.map(|e| e.kind)) {
        (
            Action::Grant | Action::Revoke,
            Some(EntitlementKind::PermissionSet | EntitlementKind::PermissionSetGroup),
        ) => "assign_permission_sets",
        _ => "manage_users",
    }
}

async fn check_preflight(
    store: &dyn Store,
    org: OrgId,
    check: &'static str,
    checks: &mut Vec<Checked>,
) -> Result<(), PlanError> {
    let Some((report, at)) = store.last_preflight(org).await? else {
        return Err(refuse(
            "preflight_missing",
            "no preflight of this org is on record; run `provost preflight` (or a sync) first so Provost knows what the connected user may do",
        ));
    };
    let found = report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["id"] == check);
    let at = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    match found {
        Some(found) if found["status"] == "pass" => {
            checks.push(Checked {
                check: format!("preflight:{check}"),
                detail: format!("the connected user holds it (preflight of {at})"),
            });
            Ok(())
        }
        Some(found) => Err(refuse(
            "preflight_denies",
            format!(
                "the connected user lacks what this needs ({}, preflight of {at}): {}. {}",
                found["needed_for"].as_str().unwrap_or(check),
                found["detail"].as_str().unwrap_or_default(),
                found["remedy"].as_str().unwrap_or("Grant it in Salesforce Setup, then run `provost preflight` again.")
            ),
        )),
        None => Err(refuse(
            "preflight_missing",
            format!("the last preflight (of {at}) has no `{check}` check; run `provost preflight` again"),
        )),
    }
}

fn require_active(account: &Account) -> Result<(), PlanError> {
    if account.active {
        Ok(())
    } else {
        Err(refuse(
            "user_inactive",
            format!(
                "{} is inactive; reactivate the user first (action reactivate_user)",
                account.username
            ),
        ))
    }
}

fn grant(
    account: &Account,
    entitlement: &Entitlement,
    grants: &[Grant],
    expires_at: Option<OffsetDateTime>,
    checks: &mut Vec<Checked>,
) -> Result<(String, Change), PlanError> {
    require_active(account)?;
    checks.push(Checked {
        check: "user_active".into(),
        detail: format!("{} is active", account.username),
    });
    match entitlement.kind {
        EntitlementKind::PermissionSet => {
            if !entitlement.grantable {
                let why = match entitlement.attributes.get("set_kind").and_then(Value::as_str) {
                    Some("profile_owned") => "it is owned by a profile: users get it through their profile (use change_profile)",
                    Some("group_aggregate") => "it is a permission set group's aggregate set: grant the group instead",
                    _ => "Salesforce does not allow assigning it directly",
                };
                return Err(refuse(
                    "not_grantable",
                    format!("permission set `{}` cannot be granted: {why}", entitlement.api_name),
                ));
            }
            let set_license = entitlement.attributes.get("LicenseId").and_then(Value::as_str);
            let user_license = account.attributes.get("UserLicenseId").and_then(Value::as_str);
            if let Some(set_license) = set_license {
                if Some(set_license) != user_license {
                    return Err(refuse(
                        "license_mismatch",
                        format!(
                            "permission set `{}` needs the user license {set_license}, and {} has {}; Salesforce would refuse the assignment",
                            entitlement.api_name,
                            account.username,
                            user_license.unwrap_or("none")
                        ),
                    ));
                }
                checks.push(Checked {
                    check: "license_matches".into(),
                    detail: format!("the set and the user both have license {set_license}"),
                });
            }
        }
        EntitlementKind::PermissionSetGroup | EntitlementKind::PublicGroup => {}
        EntitlementKind::Profile => {
            return Err(refuse(
                "wrong_action_for_kind",
                "a user has exactly one profile: use change_profile",
            ))
        }
        EntitlementKind::Role => {
            return Err(refuse(
                "wrong_action_for_kind",
                "a user has at most one role: use change_role",
            ))
        }
        EntitlementKind::UserLicense | EntitlementKind::PermissionSetLicense => {
            return Err(refuse(
                "not_grantable",
                format!(
                    "{} `{}` is not granted directly: a user license comes with the profile, and Provost does not assign permission set licenses",
                    entitlement.kind, entitlement.api_name
                ),
            ))
        }
    };
    let direct = grants
        .iter()
        .find(|g| g.entitlement_id == entitlement.id && g.source == GrantSource::Direct);
    if let Some(existing) = direct {
        return Err(refuse(
            "already_granted",
            format!(
                "{} already holds {} `{}` (assignment {})",
                account.username, entitlement.kind, entitlement.api_name, existing.id
            ),
        ));
    }
    checks.push(Checked {
        check: "not_yet_granted".into(),
        detail: match grants.iter().find(|g| g.entitlement_id == entitlement.id) {
            Some(through) => format!(
                "not assigned directly (held through {}); a direct assignment keeps it if that ends",
                through.source.encode()
            ),
            None => "the user does not hold it".into(),
        },
    });
    let mut summary = format!(
        "Grant {} `{}` to {}",
        entitlement.kind, entitlement.api_name, account.username
    );
    let until = expires_at.map(crate::util::times::rfc3339);
    if let Some(text) = &until {
        summary.push_str(&format!(" until {text} (Provost revokes it then)"));
    }
    Ok((
        summary,
        Change::Grant {
            account: account.id.clone(),
            entitlement: entitlement.id.clone(),
            kind: entitlement.kind,
            until,
        },
    ))
}

fn revoke(
    account: &Account,
    entitlement: &Entitlement,
    grants: &[Grant],
    checks: &mut Vec<Checked>,
) -> Result<(String, Change), PlanError> {
    match entitlement.kind {
        EntitlementKind::PermissionSet
        | EntitlementKind::PermissionSetGroup
        | EntitlementKind::PublicGroup => {}
        EntitlementKind::Role => {
            if account.attributes.get("UserRoleId").and_then(Value::as_str)
                != Some(entitlement.id.as_str())
            {
                return Err(refuse(
                    "not_granted",
                    format!(
                        "{} does not have the role `{}`",
                        account.username, entitlement.api_name
                    ),
                ));
            }
            return Ok((
                format!(
                    "Remove the role `{}` from {}",
                    entitlement.api_name, account.username
                ),
                Change::SetRole {
                    account: account.id.clone(),
                    role: None,
                },
            ));
        }
        EntitlementKind::Profile => {
            return Err(refuse(
                "wrong_action_for_kind",
                "a user always has a profile: use change_profile to give another",
            ))
        }
        EntitlementKind::UserLicense | EntitlementKind::PermissionSetLicense => {
            return Err(refuse(
                "not_grantable",
                format!(
                    "{} `{}` is not revoked directly: a user license follows the profile",
                    entitlement.kind, entitlement.api_name
                ),
            ))
        }
    };
    let held: Vec<&Grant> = grants
        .iter()
        .filter(|g| g.entitlement_id == entitlement.id)
        .collect();
    let Some(direct) = held.iter().find(|g| g.source == GrantSource::Direct) else {
        return Err(match held.first() {
            Some(through) => refuse(
                "granted_through_group",
                format!(
                    "{} holds `{}` only through {}; revoke that instead",
                    account.username,
                    entitlement.api_name,
                    through.source.encode()
                ),
            ),
            None => refuse(
                "not_granted",
                format!(
                    "{} does not hold {} `{}` in the synced model",
                    account.username, entitlement.kind, entitlement.api_name
                ),
            ),
        });
    };
    checks.push(Checked {
        check: "granted".into(),
        detail: format!("assigned directly as {}", direct.id),
    });
    Ok((
        format!(
            "Revoke {} `{}` from {}",
            entitlement.kind, entitlement.api_name, account.username
        ),
        Change::Revoke {
            account: account.id.clone(),
            grant: direct.id.clone(),
            entitlement: entitlement.id.clone(),
            kind: entitlement.kind,
        },
    ))
}

async fn change_profile(
    store: &dyn Store,
    org: OrgId,
    account: &Account,
    profile: &Entitlement,
    grants: &[Grant],
    checks: &mut Vec<Checked>,
) -> Result<(String, Change), PlanError> {
    if profile.kind != EntitlementKind::Profile {
        return Err(refuse(
            "wrong_action_for_kind",
            format!(
                "change_profile takes a profile, and `{}` is a {}",
                profile.api_name, profile.kind
            ),
        ));
    }
    let current = account.attributes.get("ProfileId").and_then(Value::as_str);
    if current == Some(profile.id.as_str()) {
        return Err(refuse(
            "same_profile",
            format!(
                "{} already has the profile `{}`",
                account.username, profile.api_name
            ),
        ));
    }
    let new_license = profile
        .attributes
        .get("UserLicenseId")
        .and_then(Value::as_str);
    let old_license = account
        .attributes
        .get("UserLicenseId")
        .and_then(Value::as_str);
    if new_license != old_license {
        // Directly assigned sets bound to the old license block the change in Salesforce.
        for held in grants.iter().filter(|g| g.source == GrantSource::Direct) {
            let Some(set) = store.get_entitlement(org, &held.entitlement_id).await? else {
                continue;
            };
            let set_license = set.attributes.get("LicenseId").and_then(Value::as_str);
            if set.kind == EntitlementKind::PermissionSet
                && set_license.is_some()
                && set_license != new_license
            {
                return Err(refuse(
                    "license_mismatch",
                    format!(
                        "the profile `{}` has the user license {}, and {} holds the permission set `{}` that needs {}; revoke it first",
                        profile.api_name,
                        new_license.unwrap_or("none"),
                        account.username,
                        set.api_name,
                        set_license.unwrap_or_default()
                    ),
                ));
            }
        }
        checks.push(Checked {
            check: "license_compatible".into(),
            detail: format!(
                "the license changes from {} to {}; no directly assigned set needs the old one",
                old_license.unwrap_or("none"),
                new_license.unwrap_or("none")
            ),
        });
    } else {
        checks.push(Checked {
            check: "license_compatible".into(),
            detail: format!("same user license {}", new_license.unwrap_or("none")),
        });
    }
    Ok((
        format!(
            "Change the profile of {} to `{}`",
            account.username, profile.api_name
        ),
        Change::SetProfile {
            account: account.id.clone(),
            profile: profile.id.clone(),
        },
    ))
}

fn change_role(
    account: &Account,
    role: Option<&Entitlement>,
    checks: &mut Vec<Checked>,
) -> Result<(String, Change), PlanError> {
    if let Some(role) = role {
        if role.kind != EntitlementKind::Role {
            return Err(refuse(
                "wrong_action_for_kind",
                format!(
                    "change_role takes a role, and `{}` is a {}",
                    role.api_name, role.kind
                ),
            ));
        }
    }
    let current = account.attributes.get("UserRoleId").and_then(Value::as_str);
    let target = role.map(|r| r.id.as_str());
    if current == target {
        return Err(refuse(
            "same_role",
            match role {
                Some(role) => format!(
                    "{} already has the role `{}`",
                    account.username, role.api_name
                ),
                None => format!("{} has no role to remove", account.username),
            },
        ));
    }
    checks.push(Checked {
        check: "role_differs".into(),
        detail: format!("the current role is {}", current.unwrap_or("none")),
    });
    Ok((
        match role {
            Some(role) => format!(
                "Change the role of {} to `{}`",
                account.username, role.api_name
            ),
            None => format!("Remove the role of {}", account.username),
        },
        Change::SetRole {
            account: account.id.clone(),
            role: target.map(str::to_owned),
        },
    ))
}

/// The fields of `update_user` that differ from the synced user, checked as Salesforce
/// would check them.
async fn update_user(
    store: &dyn Store,
    org: OrgId,
    account: &Account,
    input: &RequestInput,
    checks: &mut Vec<Checked>,
) -> Result<(String, Change), PlanError> {
    let changes = input.changes.as_ref().ok_or_else(|| {
        refuse(
            "missing_field",
            "update_user needs `changes`: any of username, email, first_name, last_name, title, department, federation_id",
        )
    })?;
    let attr = |name: &str| {
        account
            .attributes
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut fields: Vec<(AccountField, Option<String>)> = Vec::new();
    for (field, wanted, current, required) in [
        (
            AccountField::Username,
            &changes.username,
            Some(account.username.clone()),
            true,
        ),
        (
            AccountField::Email,
            &changes.email,
            account.email.clone(),
            true,
        ),
        (
            AccountField::FirstName,
            &changes.first_name,
            account.first_name.clone(),
            false,
        ),
        (
            AccountField::LastName,
            &changes.last_name,
            account.last_name.clone(),
            true,
        ),
        (AccountField::Title, &changes.title, attr("Title"), false),
        (
            AccountField::Department,
            &changes.department,
            attr("Department"),
            false,
        ),
        (
            AccountField::FederationId,
            &changes.federation_id,
            attr("FederationIdentifier"),
            false,
        ),
    ] {
        let name = field.as_str();
        let Some(wanted) = wanted.as_deref().map(str::trim) else {
            continue;
        };
        if wanted.is_empty() && required {
            return Err(refuse(
                "missing_field",
                format!("`changes.{name}` cannot be empty: Salesforce requires it"),
            ));
        }
        if matches!(field, AccountField::Username | AccountField::Email)
            && !looks_like_email(wanted)
        {
            return Err(refuse(
                "invalid_field",
                format!("`changes.{name}` `{wanted}` must have the form of an email address"),
            ));
        }
        if current.as_deref().unwrap_or_default() != wanted {
            fields.push((field, (!wanted.is_empty()).then(|| wanted.to_owned())));
        }
    }
    if fields.is_empty() {
        return Err(refuse(
            "no_change",
            format!(
                "{} already has these values; nothing to change",
                account.username
            ),
        ));
    }
    let new_username = fields
        .iter()
        .find(|(field, _)| *field == AccountField::Username)
        .and_then(|(_, value)| value.clone());
    if let Some(username) = new_username {
        if let AccountMatch::One(other) = store.find_account(org, &username).await? {
            if other.id != account.id && other.username.eq_ignore_ascii_case(&username) {
                return Err(refuse(
                    "username_taken",
                    format!(
                        "the username `{username}` is taken by {} in this org; Salesforce usernames are unique across every org, so pick another",
                        other.id
                    ),
                ));
            }
        }
    }
    let changed: Vec<&str> = fields.iter().map(|(field, _)| field.as_str()).collect();
    checks.push(Checked {
        check: "fields_differ".into(),
        detail: format!("changing {}", changed.join(", ")),
    });
    Ok((
        format!("Update {} of {}", changed.join(", "), account.username),
        Change::UpdateAccount {
            account: account.id.clone(),
            fields,
        },
    ))
}

async fn plan_create_user(
    store: &dyn Store,
    org: OrgId,
    input: &RequestInput,
    writes: &dyn Writes,
    mut checks: Vec<Checked>,
) -> Result<Planned, PlanError> {
    let new = input.new_user.as_ref().ok_or_else(|| {
        refuse(
            "missing_field",
            "create_user needs `new_user`: {\"username\", \"email\", \"last_name\", optional first_name, alias, federation_id, department, title}",
        )
    })?;
    if input.user.is_some() {
        return Err(refuse(
            "unexpected_field",
            "create_user takes the new user's fields in `new_user`, not `user`",
        ));
    }
    let reference = input.entitlement.as_ref().ok_or_else(|| {
        refuse(
            "missing_field",
            "create_user needs `entitlement`: the new user's profile ({\"type\": \"profile\", \"name\": \"...\"} or its id)",
        )
    })?;
    let profile = resolve_entitlement(store, org, reference).await?;
    if profile.kind != EntitlementKind::Profile {
        return Err(refuse(
            "wrong_action_for_kind",
            format!(
                "create_user's entitlement is the new user's profile, and `{}` is a {}",
                profile.api_name, profile.kind
            ),
        ));
    }
    for (name, value) in [
        ("username", &new.username),
        ("email", &new.email),
        ("last_name", &new.last_name),
    ] {
        if value.trim().is_empty() {
            return Err(refuse(
                "missing_field",
                format!("`new_user.{name}` is empty"),
            ));
        }
    }
    if !looks_like_email(&new.username) {
        return Err(refuse(
            "missing_field",
            format!(
                "`new_user.username` `{}` must have the form of an email address (Salesforce usernames do)",
                new.username
            ),
        ));
    }
    check_preflight(store, org, "manage_users", &mut checks).await?;
    if let AccountMatch::One(existing) = store.find_account(org, &new.username).await? {
        if existing.username.eq_ignore_ascii_case(&new.username) {
            return Err(refuse(
                "username_taken",
                format!(
                    "the username `{}` is taken by {} in this org; Salesforce usernames are unique across every org, so pick another",
                    new.username, existing.id
                ),
            ));
        }
    }
    checks.push(Checked {
        check: "username_free".into(),
        detail: format!(
            "no user of this org is named `{}` (Salesforce also checks other orgs when the user is created)",
            new.username
        ),
    });
    checks.push(Checked {
        check: "required_fields".into(),
        detail: "Alias, TimeZoneSidKey, LocaleSidKey, LanguageLocaleKey and EmailEncodingKey come from the org's user_defaults".into(),
    });
    Ok(Planned {
        plan: Plan {
            summary: format!(
                "Create the user {} with the profile `{}`",
                new.username, profile.api_name
            ),
            write: writes.prepare(&Change::CreateAccount {
                account: new.clone(),
                profile: profile.id.clone(),
            }),
            checks,
            user: None,
            entitlement: Some(planned_entitlement(&profile)),
        },
        account_id: None,
        entitlement_id: Some(profile.id),
        expires_at: None,
    })
}

fn looks_like_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn entitlement_references_take_an_id_or_a_type_and_name() {
        let by_id: EntitlementRef = serde_json::from_value(json!("0PS000000000001AAA")).unwrap();
        assert_eq!(by_id, EntitlementRef::Id("0PS000000000001AAA".into()));
        let named: EntitlementRef =
            serde_json::from_value(json!({"type": "permission_set", "name": "Sales_Ops"})).unwrap();
        assert_eq!(
            named,
            EntitlementRef::Named {
                kind: EntitlementKind::PermissionSet,
                name: "Sales_Ops".into()
            }
        );
        assert!(
            serde_json::from_value::<EntitlementRef>(json!({"type": "permset", "name": "x"}))
                .is_err()
        );
    }

    #[test]
    fn unknown_fields_in_a_request_are_errors() {
        let err = serde_json::from_value::<RequestInput>(
            json!({"action": "grant", "user": "a@b.c", "entitlment": "x"}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("entitlment"), "{err}");
    }

    #[test]
    fn expiry_must_be_a_future_date_time_on_a_grant() {
        let now = time::macros::datetime!(2026-11-22 12:00 UTC);
        let mut input: RequestInput = serde_json::from_value(
            json!({"action": "grant", "expires_at": "2026-11-23T12:00:00.250Z"}),
        )
        .unwrap();
        assert_eq!(
            expiry(&input, now).unwrap(),
            Some(time::macros::datetime!(2026-11-23 12:00 UTC))
        );
        input.expires_at = Some("2026-11-21T12:00:00Z".into());
        assert!(
            matches!(expiry(&input, now), Err(PlanError::Refused(r)) if r.code == "bad_expiry")
        );
        input.expires_at = Some("tomorrow".into());
        assert!(
            matches!(expiry(&input, now), Err(PlanError::Refused(r)) if r.code == "bad_expiry")
        );
        input.action = Action::Revoke;
        input.expires_at = Some("2026-11-23T12:00:00Z".into());
        assert!(
            matches!(expiry(&input, now), Err(PlanError::Refused(r)) if r.code == "bad_expiry")
        );
    }

    #[test]
    fn usernames_must_look_like_email_addresses() {
        assert!(looks_like_email("jane@acme.com"));
        assert!(!looks_like_email("jane"));
        assert!(!looks_like_email("@acme.com"));
        assert!(!looks_like_email("jane@acme."));
    }
}
