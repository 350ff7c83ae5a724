//! Preflight: can Provost work with this org as this user, and if not, exactly what is missing.
//!
//! It reads the connecting user's effective permissions (the OR over every permission set
//! assigned to them: the profile's own, direct ones and group aggregates) and checks each
//! capability's needs, saying what each is needed for and how to fix it in Setup.

use serde_json::Value;

pub use provost_connector::preflight::{Check, PreflightReport, Status};

use crate::client::SalesforceClient;
use crate::error::SalesforceError;
use crate::id::SalesforceId;
use crate::soql::{Condition, Literal, Query};

/// Community and portal user types, kept out of syncs by `exclude_portal_users`.
pub const EXTERNAL_USER_TYPES: [&str; 6] = [
    "PowerPartner",
    "PowerCustomerSuccess",
    "CustomerSuccess",
    "CspLitePortal",
    "SelfService",
    "Guest",
];

const PERMISSIONS: [&str; 9] = [
    "PermissionsApiEnabled",
    "PermissionsCustomizeApplication",
    "PermissionsModifyAllData",
    "PermissionsManageRemoteAccess",
    "PermissionsViewAllUsers",
    "PermissionsManageUsers",
    "PermissionsManageInternalUsers",
    "PermissionsAssignPermissionSets",
    "PermissionsManageProfilesPermissionsets",
];

#[derive(Debug, Clone, Copy)]
pub struct PreflightOptions {
    pub exclude_portal_users: bool,
}

struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn add(
        &mut self,
        id: &'static str,
        status: Status,
        required: bool,
        needed_for: &'static str,
        detail: String,
        remedy: Option<String>,
    ) {
        self.checks.push(Check {
            id,
            status,
            required,
            needed_for,
            detail,
            remedy,
        });
    }
}

/// Runs every check. Never fails as a whole: what cannot be checked is a failed check.
pub async fn run(client: &SalesforceClient, options: PreflightOptions) -> PreflightReport {
    let mut report = Report { checks: Vec::new() };
    let finish =
        |report: Report, org: Option<String>, user: Option<String>, username: Option<String>| {
            let ok = report
                .checks
                .iter()
                .all(|c| !(c.required && c.status == Status::Fail));
            PreflightReport {
                ok,
                org_id: org,
                user_id: user,
                username,
                checks: report.checks,
            }
        };

    let session = match client.connect().await {
        Ok(session) => session,
        Err(err) => {
            report.add(
                "authentication",
                Status::Fail,
                true,
                "everything",
                err.to_string(),
                Some(remedy_of(&err)),
            );
            return finish(report, None, None, None);
        }
    };
    let Some((org_id, user_id)) = session
        .org_and_user()
        .map(|(o, u)| (o.to_owned(), u.to_owned()))
    else {
        report.add(
            "authentication",
            Status::Fail,
            true,
            "everything",
            format!(
                "the identity URL `{}` does not name an org and a user",
                session.identity_url
            ),
            None,
        );
        return finish(report, None, None, None);
    };
    let Ok(user) = SalesforceId::parse(&user_id) else {
        report.add(
            "authentication",
            Status::Fail,
            true,
            "everything",
            format!("the identity URL names `{user_id}`, which is not a user ID"),
            None,
        );
        return finish(report, Some(org_id), None, None);
    };

    let me = client
        .query(
            &Query::select("User", &["Id", "Username", "IsActive", "Profile.Name"])
                .filter(Condition::eq("Id", user.clone())),
        )
        .await;
    let username = match me {
        Ok(page) => {
            let record = page.records.first().cloned().unwrap_or(Value::Null);
            let username = record["Username"].as_str().unwrap_or_default().to_owned();
            let profile = record["Profile"]["Name"]
                .as_str()
                .unwrap_or("unknown profile")
                .to_owned();
            report.add(
                "authentication",
                Status::Pass,
                true,
                "everything",
                format!("reached org {org_id} as {username} ({profile})"),
                None,
            );
            report.add(
                "api_enabled",
                Status::Pass,
                true,
                "everything",
                "the user can call the REST API".to_owned(),
                None,
            );
            username
        }
        Err(err) if err.code() == Some("API_CURRENTLY_DISABLED") => {
            report.add(
                "authentication",
                Status::Pass,
                true,
                "everything",
                format!("reached org {org_id} as user {user}"),
                None,
            );
            report.add(
                "api_enabled",
                Status::Fail,
                true,
                "everything",
                "the user lacks API Enabled, so no REST call works".to_owned(),
                Some(format!("In Setup, give user {user} the API Enabled permission (on its profile or a permission set assigned to it).")),
            );
            return finish(report, Some(org_id), Some(user.to_string()), None);
        }
        Err(err) => {
            report.add(
                "authentication",
                Status::Fail,
                true,
                "everything",
                format!("reading the connecting user failed: {err}"),
                Some(remedy_of(&err)),
            );
            return finish(report, Some(org_id), Some(user.to_string()), None);
        }
    };

    let held = match effective_permissions(client, &user).await {
        Ok(held) => held,
        Err(err) => {
            report.add(
                "permissions",
                Status::Fail,
                true,
                "everything",
                format!("reading the user's permissions failed: {err}"),
                Some(remedy_of(&err)),
            );
            return finish(report, Some(org_id), Some(user.to_string()), Some(username));
        }
    };
    let has = |p: &str| held.iter().any(|(name, _)| name == p);
    let via = |p: &str| -> String {
        held.iter()
            .find(|(name, _)| name == p)
            .map(|(_, sets)| sets.join(", "))
            .unwrap_or_default()
    };
    let grant_remedy = |what: &str| {
        format!("In Setup > Permission Sets, create or edit a permission set with {what} and assign it to {username}.")
    };

    // Connecting Provost: Customize Application AND (Modify All Data OR Manage Connected Apps).
    let customize = has("PermissionsCustomizeApplication");
    let mad_or_apps = has("PermissionsModifyAllData") || has("PermissionsManageRemoteAccess");
    if customize && mad_or_apps {
        report.add(
            "connect",
            Status::Pass,
            true,
            "connecting Provost to the org",
            format!(
                "Customize Application (via {}) and Modify All Data or Manage Connected Apps",
                via("PermissionsCustomizeApplication")
            ),
            None,
        );
    } else {
        let mut missing = Vec::new();
        if !customize {
            missing.push("Customize Application");
        }
        if !mad_or_apps {
            missing.push("Modify All Data or Manage Connected Apps");
        }
        report.add(
            "connect",
            Status::Fail,
            true,
            "connecting Provost to the org",
            format!("missing: {}", missing.join(" and ")),
            Some(grant_remedy(&missing.join(" and "))),
        );
    }

    if has("PermissionsViewAllUsers") || has("PermissionsManageUsers") {
        report.add(
            "read_users",
            Status::Pass,
            true,
            "reading users and their access",
            "View All Users or Manage Users".to_owned(),
            None,
        );
    } else {
        report.add(
            "read_users",
            Status::Fail,
            true,
            "reading users and their access",
            "missing: View All Users (or Manage Users)".to_owned(),
            Some(grant_remedy("View All Users")),
        );
    }

    let optional = |report: &mut Report,
                    id: &'static str,
                    ok: bool,
                    needed_for: &'static str,
                    held: String,
                    missing: &str| {
        if ok {
            report.add(id, Status::Pass, false, needed_for, held, None);
        } else {
            report.add(
                id,
                Status::Warn,
                false,
                needed_for,
                format!("missing: {missing}"),
                Some(grant_remedy(missing)),
            );
        }
    };
    optional(
        &mut report,
        "manage_users",
        has("PermissionsManageUsers"),
        "creating, deactivating and freezing users",
        "Manage Users".to_owned(),
        "Manage Users",
    );
    optional(
        &mut report,
        "assign_permission_sets",
        has("PermissionsAssignPermissionSets") || has("PermissionsManageProfilesPermissionsets"),
        "granting and revoking permission sets",
        "Assign Permission Sets or Manage Profiles and Permission Sets".to_owned(),
        "Assign Permission Sets",
    );
    optional(
        &mut report,
        "provision_profiles",
        has("PermissionsModifyAllData"),
        "changing profiles and provisioning permission sets",
        "Modify All Data".to_owned(),
        "Modify All Data",
    );

    for (id, object, feature) in [
        (
            "permission_set_groups",
            "PermissionSetGroup",
            "permission set groups",
        ),
        (
            "permission_set_licenses",
            "PermissionSetLicense",
            "permission set licenses",
        ),
    ] {
        match client.query(&Query::count(object)).await {
            Ok(page) => report.add(
                id,
                Status::Pass,
                false,
                "reading the access model",
                format!("the org has {feature} ({} records)", page.total_size),
                None,
            ),
            Err(err) if err.code() == Some("INVALID_TYPE") => report.add(
                id,
                Status::Warn,
                false,
                "reading the access model",
                format!("the org has no {feature}: there are none to sync"),
                None,
            ),
            Err(err) => report.add(
                id,
                Status::Warn,
                false,
                "reading the access model",
                format!("could not tell whether the org has {feature}: {err}"),
                None,
            ),
        }
    }

    match client.get_json(&client.data_path("limits")).await {
        Ok(limits) => {
            let max = limits["DailyApiRequests"]["Max"].as_u64().unwrap_or(0);
            let remaining = limits["DailyApiRequests"]["Remaining"]
                .as_u64()
                .unwrap_or(0);
            let status = if remaining == 0 {
                Status::Fail
            } else if remaining * 10 < max {
                Status::Warn
            } else {
                Status::Pass
            };
            let remedy = (status != Status::Pass).then(|| "Wait for the rolling 24-hour window to free requests, or raise the org's allocation with Salesforce.".to_owned());
            report.add(
                "api_headroom",
                status,
                false,
                "syncing and provisioning",
                format!("{remaining} of {max} daily API requests remain"),
                remedy,
            );
        }
        Err(err) => report.add(
            "api_headroom",
            Status::Warn,
            false,
            "syncing and provisioning",
            format!("could not read the org's limits: {err}"),
            None,
        ),
    }

    let external = Query::count("User").filter(Condition::is_in(
        "UserType",
        EXTERNAL_USER_TYPES.map(Literal::from),
    ));
    match client.query(&external).await {
        Ok(page) if options.exclude_portal_users => report.add(
            "portal_users",
            Status::Pass,
            false,
            "reading users",
            format!(
                "{} community and portal users are kept out by the query filter",
                page.total_size
            ),
            None,
        ),
        Ok(page) => report.add(
            "portal_users",
            Status::Pass,
            false,
            "reading users",
            format!(
                "{} community and portal users will be synced (exclude_portal_users is off)",
                page.total_size
            ),
            None,
        ),
        Err(err) => report.add(
            "portal_users",
            Status::Warn,
            false,
            "reading users",
            format!("could not count community and portal users: {err}"),
            None,
        ),
    }

    finish(report, Some(org_id), Some(user.to_string()), Some(username))
}

/// Each permission the user holds, with the labels of the permission sets that confer it.
async fn effective_permissions(
    client: &SalesforceClient,
    user: &SalesforceId,
) -> Result<Vec<(String, Vec<String>)>, SalesforceError> {
    let mut fields = vec!["Id", "Label"];
    fields.extend(PERMISSIONS);
    let query = Query::select("PermissionSet", &fields).filter(Condition::in_query(
        "Id",
        Query::select("PermissionSetAssignment", &["PermissionSetId"])
            .filter(Condition::eq("AssigneeId", user.clone())),
    ));
    let page = client.query(&query).await?;
    Ok(PERMISSIONS
        .iter()
        .filter_map(|permission| {
            let sets: Vec<String> = page
                .records
                .iter()
                .filter(|set| set[*permission] == Value::Bool(true))
                .map(|set| {
                    set["Label"]
                        .as_str()
                        .unwrap_or("a permission set")
                        .to_owned()
                })
                .collect();
            (!sets.is_empty()).then(|| (permission.to_string(), sets))
        })
        .collect())
}

fn remedy_of(err: &SalesforceError) -> String {
    match err {
        SalesforceError::Auth { hint, .. } => hint.to_string(),
        SalesforceError::DailyLimitExceeded { .. } => "Wait for the org's daily API allocation to free up, then run the preflight again.".to_owned(),
        _ => "Check that login_url points at the org and that Salesforce is reachable, then run the preflight again.".to_owned(),
    }
}
