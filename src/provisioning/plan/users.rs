//! A user's own life: creating one, updating its fields, deactivating and reactivating it,
//! freezing and unfreezing it.

use provost_connector::model::{Account, EntitlementKind};
use provost_connector::provisioner::{AccountField, Change, Writes};
use serde_json::Value;

use super::{
    check_preflight, looks_like_email, planned_entitlement, refuse, resolve_entitlement, Checked,
    Plan, PlanError, Planned, RequestInput,
};
use crate::store::provisioning::AccountMatch;
use crate::store::{OrgId, Store};

/// Deactivating (`active` false) or reactivating a user.
pub(super) fn set_active(account: &Account, activate: bool) -> Result<(String, Change), PlanError> {
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
    Ok((
        format!(
            "{} {}",
            if activate { "Reactivate" } else { "Deactivate" },
            account.username
        ),
        Change::SetActive {
            account: account.id.clone(),
            active: activate,
        },
    ))
}

/// Freezing (the user cannot log in, keeping all else) or unfreezing a user.
pub(super) fn set_frozen(account: &Account, freeze: bool) -> Result<(String, Change), PlanError> {
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
    Ok((
        format!(
            "{} {}",
            if freeze { "Freeze" } else { "Unfreeze" },
            account.username
        ),
        Change::SetFrozen {
            account: account.id.clone(),
            frozen: freeze,
        },
    ))
}

/// The fields of `update_user` that differ from the synced user, checked as Salesforce
/// would check them.
pub(super) async fn update_user(
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

pub(super) async fn plan_create_user(
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
