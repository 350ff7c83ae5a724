//! What a successful write changes in the stored model, so the store reflects it at once
//! (the next sync confirms it). Mirrors how the Salesforce reader maps records: an assignment
//! or group membership is a grant under its record id; a user's profile, role and license are
//! grants `ID:profile`, `ID:role`, `ID:license`.
//!
//! A permission set group's component sets (grants `ASSIGNMENT:SET`) are not derived here: the
//! store does not keep a group's components, so the next sync adds them.

use provost_connector::connector::ConnectorError;
use provost_connector::model::{Account, Grant, GrantSource};
use provost_connector::provisioner::{Effect, ModelLookup};
use serde_json::{json, Map, Value};

use super::writes::{Method, Write};

fn grant(id: String, account: &str, entitlement: &str, source: GrantSource) -> Grant {
    Grant {
        id,
        account_id: account.to_owned(),
        entitlement_id: entitlement.to_owned(),
        source,
        expires_at: None,
        attributes: Map::new(),
    }
}

/// The effects of `write`, which Salesforce answered with `record_id`.
pub async fn of_write(
    write: &Write,
    record_id: Option<&str>,
    model: &dyn ModelLookup,
) -> Result<Vec<Effect>, ConnectorError> {
    let text = |name: &str| write.fields.get(name).and_then(Value::as_str);
    Ok(match (write.method, write.sobject.as_str()) {
        (Method::Create, "PermissionSetAssignment" | "GroupMember") => {
            let (account, entitlement) = if write.sobject == "GroupMember" {
                (text("UserOrGroupId"), text("GroupId"))
            } else {
                (
                    text("AssigneeId"),
                    text("PermissionSetGroupId").or(text("PermissionSetId")),
                )
            };
            let (Some(id), Some(account), Some(entitlement)) = (record_id, account, entitlement)
            else {
                return Ok(Vec::new());
            };
            let mut grant = grant(id.to_owned(), account, entitlement, GrantSource::Direct);
            let resource = if write.sobject == "GroupMember" {
                "group_members"
            } else {
                grant.expires_at =
                    text("ExpirationDate").and_then(provost_connector::times::parse_rfc3339);
                "permission_set_assignments"
            };
            vec![Effect::GrantSaved { resource, grant }]
        }
        (Method::Delete, _) => write
            .id
            .iter()
            .map(|id| Effect::GrantRemoved { id: id.clone() })
            .collect(),
        (Method::Create, "User") => {
            let Some(id) = record_id else {
                return Ok(Vec::new());
            };
            let profile_id = text("ProfileId").unwrap_or_default();
            let profile = model.entitlement(profile_id).await?;
            let license = profile
                .as_ref()
                .and_then(|p| p.attributes.get("UserLicenseId"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let mut attributes = Map::new();
            for field in [
                "ProfileId",
                "FederationIdentifier",
                "Department",
                "Title",
                "TimeZoneSidKey",
                "LocaleSidKey",
                "LanguageLocaleKey",
            ] {
                attributes.insert(field.into(), json!(text(field)));
            }
            attributes.insert("UserRoleId".into(), Value::Null);
            attributes.insert("UserLicenseId".into(), json!(license));
            attributes.insert("IsFrozen".into(), json!(false));
            let first = text("FirstName").map(str::to_owned);
            let last = text("LastName").map(str::to_owned);
            let account = Account {
                id: id.to_owned(),
                username: text("Username").unwrap_or_default().to_owned(),
                email: text("Email").map(str::to_owned),
                display_name: [first.as_deref(), last.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" "),
                first_name: first,
                last_name: last,
                active: true,
                user_type: profile
                    .as_ref()
                    .and_then(|p| p.attributes.get("UserType"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                attributes,
            };
            let mut effects = vec![Effect::AccountSaved {
                resource: "users",
                account,
            }];
            effects.push(Effect::GrantSaved {
                resource: "users",
                grant: grant(
                    format!("{id}:profile"),
                    id,
                    profile_id,
                    GrantSource::Profile,
                ),
            });
            if let Some(license) = license {
                effects.push(Effect::GrantSaved {
                    resource: "users",
                    grant: grant(format!("{id}:license"), id, &license, GrantSource::Profile),
                });
            }
            effects
        }
        (Method::Update, "User") => {
            let Some(id) = write.id.as_deref() else {
                return Ok(Vec::new());
            };
            let Some(mut account) = model.account(id).await? else {
                // Not in the synced model (filtered out): nothing to reflect.
                return Ok(Vec::new());
            };
            let mut effects = Vec::new();
            if let Some(active) = write.fields.get("IsActive").and_then(Value::as_bool) {
                account.active = active;
            }
            let own = |name: &str| {
                write
                    .fields
                    .get(name)
                    .map(|v| v.as_str().map(str::to_owned))
            };
            if let Some(Some(username)) = own("Username") {
                account.username = username;
            }
            if let Some(email) = own("Email") {
                account.email = email;
            }
            if let Some(first) = own("FirstName") {
                account.first_name = first;
            }
            if let Some(Some(last)) = own("LastName") {
                account.last_name = Some(last);
            }
            if write.fields.contains_key("FirstName") || write.fields.contains_key("LastName") {
                // Salesforce's Name: first and last names, space-separated.
                account.display_name =
                    [account.first_name.as_deref(), account.last_name.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" ");
            }
            for field in ["Title", "Department", "FederationIdentifier"] {
                if let Some(value) = write.fields.get(field) {
                    account.attributes.insert(field.into(), value.clone());
                }
            }
            if let Some(role) = write.fields.get("UserRoleId") {
                account.attributes.insert("UserRoleId".into(), role.clone());
                let key = format!("{id}:role");
                effects.push(match role.as_str() {
                    Some(role) => Effect::GrantSaved {
                        resource: "users",
                        grant: grant(key, id, role, GrantSource::Direct),
                    },
                    None => Effect::GrantRemoved { id: key },
                });
            }
            if let Some(profile_id) = text("ProfileId") {
                let profile = model.entitlement(profile_id).await?;
                let license = profile
                    .as_ref()
                    .and_then(|p| p.attributes.get("UserLicenseId"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                account
                    .attributes
                    .insert("ProfileId".into(), json!(profile_id));
                account
                    .attributes
                    .insert("UserLicenseId".into(), json!(license));
                if let Some(user_type) = profile
                    .as_ref()
                    .and_then(|p| p.attributes.get("UserType"))
                    .and_then(Value::as_str)
                {
                    account.user_type = Some(user_type.to_owned());
                }
                effects.push(Effect::GrantSaved {
                    resource: "users",
                    grant: grant(
                        format!("{id}:profile"),
                        id,
                        profile_id,
                        GrantSource::Profile,
                    ),
                });
                let key = format!("{id}:license");
                effects.push(match license {
                    Some(license) => Effect::GrantSaved {
                        resource: "users",
                        grant: grant(key, id, &license, GrantSource::Profile),
                    },
                    None => Effect::GrantRemoved { id: key },
                });
            }
            // The account first: grants refer to it.
            effects.insert(
                0,
                Effect::AccountSaved {
                    resource: "users",
                    account,
                },
            );
            effects
        }
        (Method::Update, "UserLogin") => {
            let Some(user) = write.login_of.as_deref() else {
                return Ok(Vec::new());
            };
            let Some(mut account) = model.account(user).await? else {
                return Ok(Vec::new());
            };
            let frozen = write.fields.get("IsFrozen").cloned().unwrap_or(Value::Null);
            account.attributes.insert("IsFrozen".into(), frozen);
            vec![Effect::AccountSaved {
                resource: "users",
                account,
            }]
        }
        _ => Vec::new(),
    })
}
