//! Reports for auditors, from the synced model: each streams its rows into a
//! [`output::RowWriter`] and comes with a [`manifest::Manifest`].
//!
//! - `entitlements`: one row per user and entitlement held, and how it is held.
//! - `effective-permissions`: each sensitive system permission of each user, with every grant
//!   that confers it.
//! - `changes`: grants added, removed and changed and user lifecycle changes in a window, and
//!   whether each came through Provost or straight from Salesforce.
//! - `dormant`: active users holding entitlements who have not logged in for N days, or ever.
//! - `object-access`, `field-access`, `setup-access`: what users can do on objects, which
//!   fields they can read or edit, which setup entities (connected apps, Apex classes, custom
//!   permissions) they can use, and through which path.

mod access;
mod changes;
pub mod dormant;
pub mod effective;
mod entitlements;
mod history;
pub use effective::{resolve_permission, PERMISSIONS};
pub mod manifest;
pub mod output;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use provost_connector::model::Entitlement;
use provost_connector::times::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::store::sync::RunStatus;
use crate::store::{OrgRecord, Page, Store};
use manifest::Manifest;
use output::Format;

/// The reports there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Report {
    Entitlements,
    EffectivePermissions,
    Changes,
    Dormant,
    ObjectAccess,
    FieldAccess,
    SetupAccess,
}

impl Report {
    pub const ALL: [Report; 7] = [
        Report::Entitlements,
        Report::EffectivePermissions,
        Report::Changes,
        Report::Dormant,
        Report::ObjectAccess,
        Report::FieldAccess,
        Report::SetupAccess,
    ];

    pub const NAMES: [&'static str; 7] = [
        "entitlements",
        "effective-permissions",
        "changes",
        "dormant",
        "object-access",
        "field-access",
        "setup-access",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Report::Entitlements => "entitlements",
            Report::EffectivePermissions => "effective-permissions",
            Report::Changes => "changes",
            Report::Dormant => "dormant",
            Report::ObjectAccess => "object-access",
            Report::FieldAccess => "field-access",
            Report::SetupAccess => "setup-access",
        }
    }

    pub fn parse(text: &str) -> Option<Report> {
        Report::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// The reports of what permission sets open (object, field, setup-entity permissions).
    fn is_access(self) -> bool {
        matches!(
            self,
            Report::ObjectAccess | Report::FieldAccess | Report::SetupAccess
        )
    }

    /// Whether `as_of` applies: the reports of who holds what.
    fn has_as_of(self) -> bool {
        !matches!(self, Report::Changes | Report::Dormant)
    }
}

/// A report's parameters; each report reads those that apply to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Only this entitlement (id or API name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entitlement: Option<String>,
    /// Only users of this user type (Standard, PowerPartner...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    /// Only active users.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub active_only: bool,
    /// `effective-permissions`: only this permission (`ModifyAllData`, `Modify All Data`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    /// `changes`: the window, from `since` (inclusive) to `until` (exclusive; now if unset).
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "provost_connector::times::serde::option",
        default
    )]
    pub since: Option<Timestamp>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "provost_connector::times::serde::option",
        default
    )]
    pub until: Option<Timestamp>,
    /// `entitlements`, `effective-permissions`: the state at this past time, rebuilt from the
    /// change history.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "provost_connector::times::serde::option",
        default
    )]
    pub as_of: Option<Timestamp>,
    /// `dormant`: days without a login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    /// `object-access`: only this object (`Opportunity`); `field-access`: only its fields.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object: Option<String>,
    /// `field-access`: only this field (`Contact.SSN__c`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
    /// `object-access`, `field-access`: only paths that allow this action (`delete`, `edit`...).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub action: Option<String>,
    /// `setup-access`: only this setup entity, by id or name (`DataLoader`, `Approve_Refunds`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub setup_entity: Option<String>,
}

/// Why a report cannot be made; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    BadParameter(String),
    #[error("org `{0}` has no successful sync yet: run `provost sync --org {0}` first")]
    NotSynced(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("writing the report failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Rows are read from the store this many at a time.
const PAGE: u32 = 5000;

/// Pages of held entitlements in user order: the live model, or the state at `as_of` rebuilt
/// from the change history.
struct Pages {
    as_of: Option<Timestamp>,
    live_after: Option<(String, String)>,
    user_after: String,
    done: bool,
}

impl Pages {
    fn new(params: &Params) -> Pages {
        Pages {
            as_of: params.as_of,
            live_after: None,
            user_after: String::new(),
            done: false,
        }
    }

    /// The next page of `org`'s; `None` at the end.
    async fn next(
        &mut self,
        store: &Arc<dyn Store>,
        org: crate::store::OrgId,
    ) -> Result<Option<Vec<crate::store::reports::HeldEntitlement>>, crate::store::StoreError> {
        while !self.done {
            let page = match self.as_of {
                None => {
                    let page = store
                        .held_entitlements(
                            org,
                            self.live_after
                                .as_ref()
                                .map(|(a, g)| (a.as_str(), g.as_str())),
                            PAGE,
                        )
                        .await?;
                    match page.last() {
                        Some(last) => {
                            self.live_after = Some((last.account.id.clone(), last.grant_id.clone()))
                        }
                        None => self.done = true,
                    }
                    page
                }
                Some(at) => {
                    let (users, changes) = store
                        .history_of_users(org, at, &self.user_after, 500)
                        .await?;
                    match users.last() {
                        Some(last) => self.user_after = last.clone(),
                        None => self.done = true,
                    }
                    history::held_at(&users, &changes)
                }
            };
            if !page.is_empty() {
                return Ok(Some(page));
            }
        }
        Ok(None)
    }
}

/// Each user's held entitlements together, in user order (pages split users anywhere): the
/// live model, or as of `params.as_of`. Access reviews read the live model through it too.
pub(crate) struct Users {
    pages: Pages,
    page: std::vec::IntoIter<crate::store::reports::HeldEntitlement>,
    /// The first grant of the next user, read while finishing the previous one.
    carry: Option<crate::store::reports::HeldEntitlement>,
}

impl Users {
    pub(crate) fn new(params: &Params) -> Users {
        Users {
            pages: Pages::new(params),
            page: Vec::new().into_iter(),
            carry: None,
        }
    }

    /// The next user's grants of `org`; `None` at the end.
    pub(crate) async fn next(
        &mut self,
        store: &Arc<dyn Store>,
        org: crate::store::OrgId,
    ) -> Result<Option<Vec<crate::store::reports::HeldEntitlement>>, crate::store::StoreError> {
        let mut user: Vec<crate::store::reports::HeldEntitlement> =
            self.carry.take().into_iter().collect();
        loop {
            let held = match self.page.next() {
                Some(held) => held,
                None => match self.pages.next(store, org).await? {
                    Some(page) => {
                        self.page = page.into_iter();
                        continue;
                    }
                    None => return Ok((!user.is_empty()).then_some(user)),
                },
            };
            if user
                .first()
                .is_some_and(|first| first.account.id != held.account.id)
            {
                self.carry = Some(held);
                return Ok(Some(user));
            }
            user.push(held);
        }
    }
}

/// What every report needs about its org: the entitlements by id and the sync it reflects.
struct Context {
    org: OrgRecord,
    entitlements: HashMap<String, Entitlement>,
    now: Timestamp,
}

impl Context {
    /// The kind and API name of entitlement `id`; empty for one a sync added after the report
    /// read the catalog (grants reference stored entitlements).
    fn kind_and_name(&self, id: &str) -> (&str, &str) {
        self.entitlements
            .get(id)
            .map_or(("", ""), |e| (e.kind.as_str(), e.api_name.as_str()))
    }

    fn name_of(&self, id: Option<&str>) -> Value {
        id.and_then(|id| self.entitlements.get(id))
            .map_or(Value::Null, |e| json!(e.api_name))
    }
}

/// Writes report `report` of `org` to `out` and returns its manifest (without a file name).
pub async fn generate(
    store: &Arc<dyn Store>,
    org_name: &str,
    report: Report,
    params: &Params,
    format: Format,
    out: impl Write,
) -> Result<Manifest, ReportError> {
    let org = store
        .find_org(org_name)
        .await?
        .ok_or_else(|| ReportError::NotSynced(org_name.to_owned()))?;
    if params.as_of.is_some() && !report.has_as_of() {
        return Err(ReportError::BadParameter(format!(
            "--as-of applies to the reports of who holds what, not {}",
            report.as_str()
        )));
    }
    if params.as_of.is_some_and(|at| at > chrono::Utc::now()) {
        return Err(ReportError::BadParameter(
            "--as-of is in the future: give a past time, or leave it out for now".to_owned(),
        ));
    }
    if let Some(at) = params.as_of {
        // The history begins with the org's first sync: nothing is known before it.
        let first = store
            .list_changes(
                org.id,
                &crate::store::sync::ChangeQuery {
                    limit: 1,
                    ..Default::default()
                },
            )
            .await?;
        match first.first() {
            Some(first) if at >= first.observed_at => {}
            Some(first) => {
                return Err(ReportError::BadParameter(format!(
                    "org `{org_name}`'s history starts at {}, with its first sync: Provost cannot tell what was held before; give a later --as-of",
                    crate::util::times::rfc3339(first.observed_at)
                )))
            }
            None => return Err(ReportError::NotSynced(org_name.to_owned())),
        }
    }
    if report.is_access() {
        // The permissions' history begins with the first sync that read them.
        let first = store
            .first_change_at(org.id, crate::store::sync::Entity::Permission)
            .await?;
        match (first, params.as_of) {
            (None, _) => {
                return Err(ReportError::BadParameter(format!(
                    "org `{org_name}` has no object, field or setup-entity permissions synced: set sync_access_permissions = true for it (the default) and run `provost sync --org {org_name}`"
                )))
            }
            (Some(first), Some(at)) if at < first => {
                return Err(ReportError::BadParameter(format!(
                    "org `{org_name}`'s object, field and setup-entity permissions were first synced at {}: Provost cannot tell what they were before; give a later --as-of",
                    crate::util::times::rfc3339(first)
                )))
            }
            _ => {}
        }
    }
    let runs = store.list_sync_runs(org.id, 100).await?;
    let run = runs
        .iter()
        .find(|r| r.status == RunStatus::Succeeded)
        .ok_or_else(|| ReportError::NotSynced(org_name.to_owned()))?
        .clone();
    let entitlements = match params.as_of {
        // As they were then: a set's permissions, a group's aggregate, names.
        Some(at) => store
            .entitlements_at(org.id, at)
            .await?
            .into_iter()
            .map(|e| (e.id.clone(), e))
            .collect(),
        None => catalog(store, org.id).await?,
    };
    let context = Context {
        org,
        entitlements,
        now: chrono::Utc::now(),
    };
    let written = match report {
        Report::Entitlements => entitlements::write(store, &context, params, format, out).await?,
        Report::EffectivePermissions => {
            effective::write(store, &context, params, format, out).await?
        }
        Report::Changes => changes::write(store, &context, params, format, out).await?,
        Report::Dormant => dormant::write(store, &context, params, format, out).await?,
        Report::ObjectAccess => {
            access::write(store, &context, params, access::Of::Objects, format, out).await?
        }
        Report::FieldAccess => {
            access::write(store, &context, params, access::Of::Fields, format, out).await?
        }
        Report::SetupAccess => {
            access::write(
                store,
                &context,
                params,
                access::Of::SetupEntities,
                format,
                out,
            )
            .await?
        }
    };
    Ok(Manifest {
        report: report.as_str().to_owned(),
        format: format.as_str().to_owned(),
        org: org_name.to_owned(),
        parameters: serde_json::to_value(params).expect("parameters serialise"),
        sync_run: Some(run.id.0),
        data_as_of: run.finished_at.map(crate::util::times::rfc3339),
        generated_at: crate::util::times::rfc3339(context.now),
        generated_by: concat!("provost ", env!("CARGO_PKG_VERSION")).to_owned(),
        file: None,
        rows: written.rows,
        bytes: written.bytes,
        sha256: written.sha256,
    })
}

/// The org's entitlements by id, as stored now.
pub(crate) async fn catalog(
    store: &Arc<dyn Store>,
    org: crate::store::OrgId,
) -> Result<HashMap<String, Entitlement>, crate::store::StoreError> {
    let mut entitlements = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_entitlements(
                org,
                None,
                Page {
                    after: after.as_deref(),
                    limit: 5000,
                },
            )
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        entitlements.extend(page.into_iter().map(|e| (e.id.clone(), e)));
    }
    Ok(entitlements)
}

/// The permission sets that carry other entitlements' permissions, by the id of what they
/// carry them for: a profile's own set (by the profile), a group's aggregate set, which holds
/// the group's result with muted permissions removed (by the group). Profile and group ids
/// have different key prefixes, so one map holds both.
pub(crate) fn carrying_sets(
    entitlements: &HashMap<String, Entitlement>,
) -> HashMap<&str, &Entitlement> {
    entitlements
        .values()
        .filter_map(|set| {
            let attribute = |key: &str| set.attributes.get(key).and_then(Value::as_str);
            let owner = match attribute("set_kind")? {
                "profile_owned" => attribute("ProfileId")?,
                "group_aggregate" => attribute("PermissionSetGroupId")?,
                _ => return None,
            };
            Some((owner, set))
        })
        .collect()
}

/// Whether permission set `set` holds system permission `field` (`PermissionsModifyAllData`).
pub(crate) fn holds_permission(set: &Entitlement, field: &str) -> bool {
    set.attributes
        .get("system_permissions")
        .and_then(Value::as_array)
        .is_some_and(|held| held.iter().any(|p| p == field))
}

/// The entitlement `key` names (an id, or an API name of any kind), for filters.
fn resolve_entitlement<'a>(
    context: &'a Context,
    key: &str,
) -> Result<&'a Entitlement, ReportError> {
    if let Some(found) = context.entitlements.get(key) {
        return Ok(found);
    }
    let named: Vec<&Entitlement> = context
        .entitlements
        .values()
        .filter(|e| e.api_name == key)
        .collect();
    match named.as_slice() {
        [one] => Ok(one),
        [] => Err(ReportError::BadParameter(format!(
            "no entitlement of org `{}` has the id or API name `{key}`",
            context.org.name
        ))),
        several => Err(ReportError::BadParameter(format!(
            "`{key}` names {} entitlements ({}); give the id instead",
            several.len(),
            several
                .iter()
                .map(|e| format!("{} {}", e.kind, e.id))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

impl Params {
    /// Whether the user filters (`active_only`, `user_type`) let `account` in.
    fn admits(&self, account: &provost_connector::model::Account) -> bool {
        (!self.active_only || account.active)
            && self
                .user_type
                .as_ref()
                .is_none_or(|t| account.user_type.as_deref() == Some(t.as_str()))
    }
}

/// A writer of the user columns followed by a report's own `columns`.
fn user_rows<W: Write>(
    out: W,
    format: Format,
    columns: &[&'static str],
) -> std::io::Result<output::RowWriter<W>> {
    let all: Vec<&'static str> = USER_COLUMNS.iter().chain(columns).copied().collect();
    output::RowWriter::new(out, format, &all)
}

/// A time cell: RFC 3339, or null.
fn time_value(at: Option<Timestamp>) -> Value {
    at.map_or(Value::Null, |at| json!(crate::util::times::rfc3339(at)))
}

/// The user columns every report starts with.
const USER_COLUMNS: [&str; 11] = [
    "user_id",
    "username",
    "name",
    "email",
    "active",
    "frozen",
    "user_type",
    "profile",
    "role",
    "license",
    "last_login",
];

fn user_values(context: &Context, account: &provost_connector::model::Account) -> Vec<Value> {
    let attr = |key: &str| account.attributes.get(key).and_then(Value::as_str);
    vec![
        json!(account.id),
        json!(account.username),
        json!(account.display_name),
        json!(account.email),
        json!(account.active),
        json!(account.attributes.get("IsFrozen") == Some(&Value::Bool(true))),
        json!(account.user_type),
        context.name_of(attr("ProfileId")),
        context.name_of(attr("UserRoleId")),
        context
            .entitlements
            .get(attr("UserLicenseId").unwrap_or_default())
            .map_or(Value::Null, |e| json!(e.label)),
        json!(attr("LastLoginDate")),
    ]
}
