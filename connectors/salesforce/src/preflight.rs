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
use crate::record::Record;
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

const PERMISSIONS: [&str; 10] = [
    "PermissionsApiEnabled",
    "PermissionsCustomizeApplication",
    "PermissionsModifyAllData",
    "PermissionsManageRemoteAccess",
    "PermissionsViewAllUsers",
    "PermissionsManageUsers",
    "PermissionsManageInternalUsers",
    "PermissionsAssignPermissionSets",
    "PermissionsManageProfilesPermissionsets",
    "PermissionsViewSetup",
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

impl Report {
    fn finish(self, identity: Identity) -> PreflightReport {
        let ok = self
            .checks
            .iter()
            .all(|c| !(c.required && c.status == Status::Fail));
        PreflightReport {
            ok,
            org_id: identity.org,
            user_id: identity.user.map(|u| u.to_string()),
            username: identity.username,
            checks: self.checks,
        }
    }
}

/// Who the connection is, as far as the preflight found out.
#[derive(Default)]
struct Identity {
    org: Option<String>,
    user: Option<SalesforceId>,
    username: Option<String>,
}

/// Runs every check. Never fails as a whole: what cannot be checked is a failed check. The
/// checks of what the user may do need to know who the user is and what it holds; when that
/// cannot be found out, the report ends there.
pub async fn run(client: &SalesforceClient, options: PreflightOptions) -> PreflightReport {
    let mut report = Report { checks: Vec::new() };
    let identity = identify(client, &mut report).await;
    let (Some(user), Some(username)) = (&identity.user, &identity.username) else {
        return report.finish(identity);
    };
    let held = match effective_permissions(client, user).await {
        Ok(held) => Held {
            permissions: held,
            username: username.clone(),
        },
        Err(err) => {
            report.add(
                "permissions",
                Status::Fail,
                true,
                "everything",
                format!("reading the user's permissions failed: {err}"),
                Some(remedy_of(&err)),
            );
            return report.finish(identity);
        }
    };
    check_connect(&held, &mut report);
    check_read_users(&held, &mut report);
    check_capabilities(&held, &mut report);
    check_features(client, &mut report).await;
    check_fields(client, &mut report).await;
    check_api_headroom(client, &mut report).await;
    check_portal_users(client, options, &mut report).await;
    report.finish(identity)
}

/// `authentication` and `api_enabled`: the session, and the connecting user read through it.
async fn identify(client: &SalesforceClient, report: &mut Report) -> Identity {
    let mut identity = Identity::default();
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
            return identity;
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
        return identity;
    };
    identity.org = Some(org_id.clone());
    let Ok(user) = SalesforceId::parse(&user_id) else {
        report.add(
            "authentication",
            Status::Fail,
            true,
            "everything",
            format!("the identity URL names `{user_id}`, which is not a user ID"),
            None,
        );
        return identity;
    };
    identity.user = Some(user.clone());
    let me = client
        .query(
            &Query::select("User", &["Id", "Username", "IsActive", "Profile.Name"])
                .filter(Condition::eq("Id", user.clone())),
        )
        .await;
    match me {
        Ok(page) => {
            let record = page.records.first().map_or(Value::Null, Record::to_value);
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
            identity.username = Some(username);
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
        }
    }
    identity
}

/// The permissions the connecting user holds, and through which sets.
struct Held {
    permissions: Vec<(String, Vec<String>)>,
    username: String,
}

impl Held {
    fn has(&self, permission: &str) -> bool {
        self.permissions.iter().any(|(name, _)| name == permission)
    }

    /// The labels of the sets that confer `permission`.
    fn via(&self, permission: &str) -> String {
        self.permissions
            .iter()
            .find(|(name, _)| name == permission)
            .map(|(_, sets)| sets.join(", "))
            .unwrap_or_default()
    }

    fn remedy(&self, what: &str) -> String {
        format!(
            "In Setup > Permission Sets, create or edit a permission set with {what} and assign it to {}.",
            self.username
        )
    }
}

/// `connect`: Customize Application AND (Modify All Data OR Manage Connected Apps).
fn check_connect(held: &Held, report: &mut Report) {
    let customize = held.has("PermissionsCustomizeApplication");
    let mad_or_apps =
        held.has("PermissionsModifyAllData") || held.has("PermissionsManageRemoteAccess");
    if customize && mad_or_apps {
        report.add(
            "connect",
            Status::Pass,
            true,
            "connecting Provost to the org",
            format!(
                "Customize Application (via {}) and Modify All Data or Manage Connected Apps",
                held.via("PermissionsCustomizeApplication")
            ),
            None,
        );
        return;
    }
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
        Some(held.remedy(&missing.join(" and "))),
    );
}

/// `read_users`: View All Users or Manage Users.
fn check_read_users(held: &Held, report: &mut Report) {
    if held.has("PermissionsViewAllUsers") || held.has("PermissionsManageUsers") {
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
            Some(held.remedy("View All Users")),
        );
    }
}

/// What each provisioning capability needs; a warning, not a failure, when missing: reading
/// works without them.
fn check_capabilities(held: &Held, report: &mut Report) {
    for (id, ok, needed_for, held_text, missing) in [
        (
            "manage_users",
            held.has("PermissionsManageUsers"),
            "creating, deactivating and freezing users",
            "Manage Users",
            "Manage Users",
        ),
        (
            "assign_permission_sets",
            held.has("PermissionsAssignPermissionSets")
                || held.has("PermissionsManageProfilesPermissionsets"),
            "granting and revoking permission sets",
            "Assign Permission Sets or Manage Profiles and Permission Sets",
            "Assign Permission Sets",
        ),
        (
            "provision_profiles",
            held.has("PermissionsModifyAllData"),
            "changing profiles and provisioning permission sets",
            "Modify All Data",
            "Modify All Data",
        ),
        // Since Summer '20, ObjectPermissions, FieldPermissions, SetupEntityAccess and
        // MutingPermissionSet are readable with View Setup and Configuration.
        (
            "read_access_permissions",
            held.has("PermissionsViewSetup") || held.has("PermissionsModifyAllData"),
            "reading object, field and setup-entity permissions (the access reports; or set sync_access_permissions = false)",
            "View Setup and Configuration",
            "View Setup and Configuration",
        ),
    ] {
        if ok {
            report.add(
                id,
                Status::Pass,
                false,
                needed_for,
                held_text.to_owned(),
                None,
            );
        } else {
            report.add(
                id,
                Status::Warn,
                false,
                needed_for,
                format!("missing: {missing}"),
                Some(held.remedy(missing)),
            );
        }
    }
}

/// Whether the org has the optional features the access model reads.
async fn check_features(client: &SalesforceClient, report: &mut Report) {
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
}

/// `fields_{object}`: whether the org shows the connected user every field the sync reads of
/// the objects whose fields differ between orgs (edition, features, API version, field-level
/// security). A missing optional field is a warning saying what is lost; a missing field the
/// sync needs fails, with the remedy.
async fn check_fields(client: &SalesforceClient, report: &mut Report) {
    for object in crate::schema::ADAPTED_OBJECTS {
        let id = match object {
            "User" => "fields_user",
            "PermissionSet" => "fields_permission_set",
            _ => "fields_permission_set_assignment",
        };
        let shown = match crate::schema::visible_fields(client, object).await {
            Ok(shown) => shown,
            Err(err) => {
                report.add(
                    id,
                    Status::Fail,
                    true,
                    "reading the access model",
                    format!("describing {object} failed: {err}"),
                    Some(remedy_of(&err)),
                );
                continue;
            }
        };
        let wanted = crate::reader::wanted_fields(object);
        let adapted = crate::schema::adapt(object, &wanted, &shown);
        if let Some(field) = adapted.missing.first() {
            report.add(
                id,
                Status::Fail,
                true,
                "reading the access model",
                format!(
                    "{object}.{} is not visible to the connected user",
                    adapted.missing.join(&format!(", {object}."))
                ),
                Some(crate::schema::remedy(object, field)),
            );
        } else if adapted.lost.is_empty() {
            report.add(
                id,
                Status::Pass,
                false,
                "reading the access model",
                format!("every {object} field the sync reads is visible"),
                None,
            );
        } else {
            let lost: Vec<String> = adapted
                .lost
                .iter()
                .map(|(field, lost)| format!("{object}.{field} (without it: {lost})"))
                .collect();
            report.add(
                id,
                Status::Warn,
                false,
                "reading the access model",
                format!("not visible, synced without: {}", lost.join("; ")),
                Some(format!(
                    "If the org has these fields, give the connected user read access to them in field-level security (Setup > Object Manager > {object} > Fields & Relationships)"
                )),
            );
        }
    }
}

/// `api_headroom`: the daily API requests that remain.
async fn check_api_headroom(client: &SalesforceClient, report: &mut Report) {
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
}

/// `portal_users`: how many community and portal users the sync keeps out, or takes in.
async fn check_portal_users(
    client: &SalesforceClient,
    options: PreflightOptions,
    report: &mut Report,
) {
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
