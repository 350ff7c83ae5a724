//! Granting and revoking an entitlement held directly: a permission set, a permission set
//! group, a public group (and a role, revoked as the user's role).

use provost_connector::model::{Account, Entitlement, EntitlementKind, Grant, GrantSource};
use provost_connector::provisioner::Change;
use provost_connector::times::Timestamp;
use serde_json::Value;

use super::{refuse, require_active, Checked, PlanError};

pub(super) fn grant(
    account: &Account,
    entitlement: &Entitlement,
    grants: &[Grant],
    expires_at: Option<Timestamp>,
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

pub(super) fn revoke(
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
