//! From a request to the change it makes and the connector's exact write for it, checked
//! against the synced model first.
//!
//! [`plan`] resolves the user and the entitlement, checks everything that can be known before
//! calling Salesforce (the user exists and is active, the entitlement is grantable, licenses
//! match, the grant is or is not there, the connected user's preflight allows the action) and
//! either refuses with a [`Refusal`] that names the reason, or returns the [`Plan`]: the write
//! the connector will make, with every field value, and the checks it passed. The checks of
//! each family of actions are in their own module: [`grants`] (grant, revoke),
//! [`profile_role`] (change profile, change role) and [`users`] (create, update, deactivate,
//! reactivate, freeze, unfreeze).

mod grants;
mod profile_role;
mod users;

use chrono::Timelike;
use provost_connector::model::{Account, Entitlement, EntitlementKind};
use provost_connector::provisioner::{NewAccount, Write, Writes};
use provost_connector::times::Timestamp;
use serde::{Deserialize, Serialize};

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
    pub expires_at: Option<Timestamp>,
}

/// Why a request cannot work, found without calling Salesforce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

pub(super) fn refuse(code: &'static str, message: impl Into<String>) -> PlanError {
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
    now: Timestamp,
) -> Result<Planned, PlanError> {
    let mut checks = Vec::new();
    let expires_at = expiry(input, now)?;
    if expires_at.is_some() {
        writes
            .can_expire()
            .map_err(|message| refuse("bad_expiry", message))?;
    }
    if input.action == Action::CreateUser {
        return users::plan_create_user(store, org, input, writes, checks).await;
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
            grants::grant(&account, entitlement, &grants, expires_at, &mut checks)?
        }
        Action::Revoke => {
            let entitlement = entitlement.as_ref().expect("revoke needs an entitlement");
            grants::revoke(&account, entitlement, &grants, &mut checks)?
        }
        Action::ChangeProfile => {
            let profile = entitlement.as_ref().expect("needs a profile");
            profile_role::change_profile(store, org, &account, profile, &grants, &mut checks)
                .await?
        }
        Action::ChangeRole => {
            profile_role::change_role(&account, entitlement.as_ref(), &mut checks)?
        }
        Action::DeactivateUser | Action::ReactivateUser => {
            users::set_active(&account, input.action == Action::ReactivateUser)?
        }
        Action::FreezeUser | Action::UnfreezeUser => {
            users::set_frozen(&account, input.action == Action::FreezeUser)?
        }
        Action::UpdateUser => users::update_user(store, org, &account, input, &mut checks).await?,
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

pub(super) fn planned_entitlement(entitlement: &Entitlement) -> PlannedEntitlement {
    PlannedEntitlement {
        id: entitlement.id.clone(),
        kind: entitlement.kind,
        api_name: entitlement.api_name.clone(),
        label: entitlement.label.clone(),
    }
}

fn expiry(input: &RequestInput, now: Timestamp) -> Result<Option<Timestamp>, PlanError> {
    let Some(text) = &input.expires_at else {
        return Ok(None);
    };
    if input.action != Action::Grant {
        return Err(refuse(
            "bad_expiry",
            format!("`expires_at` applies to grants only, not {}", input.action),
        ));
    }
    let at = chrono::DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&chrono::Utc))
        .map_err(|err| {
            refuse(
                "bad_expiry",
                format!("`expires_at` `{text}` is not an RFC 3339 date-time ({err}); write e.g. 2026-12-31T18:00:00Z"),
            )
        })?;
    if at <= now + chrono::TimeDelta::minutes(1) {
        return Err(refuse(
            "bad_expiry",
            format!("`expires_at` {text} is not in the future (at least a minute from now)"),
        ));
    }
    // Salesforce keeps date-times to the second.
    Ok(Some(
        at.with_nanosecond(0).expect("0 is a valid nanosecond"),
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

pub(super) async fn resolve_entitlement(
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

pub(super) async fn check_preflight(
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
    let at = crate::util::times::rfc3339(at);
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

pub(super) fn require_active(account: &Account) -> Result<(), PlanError> {
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

pub(super) fn looks_like_email(text: &str) -> bool {
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
        let now = "2026-11-22T12:00:00Z".parse::<Timestamp>().unwrap();
        let mut input: RequestInput = serde_json::from_value(
            json!({"action": "grant", "expires_at": "2026-11-23T12:00:00.250Z"}),
        )
        .unwrap();
        assert_eq!(
            expiry(&input, now).unwrap(),
            Some("2026-11-23T12:00:00Z".parse::<Timestamp>().unwrap())
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
