//! Changing a user's profile (the one every user has) and role (at most one).

use provost_connector::model::{Account, Entitlement, EntitlementKind, Grant, GrantSource};
use provost_connector::provisioner::Change;
use serde_json::Value;

use super::{refuse, Checked, PlanError};
use crate::store::{OrgId, Store};

pub(super) async fn change_profile(
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

pub(super) fn change_role(
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
