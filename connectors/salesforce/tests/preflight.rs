//! Preflight against the emulator: what passes, what fails, and that each failure is named.

use provost_salesforce::preflight::{self, PreflightOptions, PreflightReport, Status};
use provost_salesforce::{ClientConfig, SalesforceClient};
use provost_salesforce_emulator::EmulatorConfig;
use serde_json::{json, Value};

mod common;

use common::Org;

impl Org {
    async fn preflight_as(&self, username: &str) -> PreflightReport {
        let client =
            SalesforceClient::new(ClientConfig::new(&self.base), self.jwt_as(username)).unwrap();
        preflight::run(
            &client,
            PreflightOptions {
                exclude_portal_users: true,
            },
        )
        .await
    }

    /// A new user whose profile grants API Enabled and nothing else.
    async fn restricted_user(&self) -> String {
        let profile = &self
            .rows("SELECT Id FROM Profile WHERE Name = 'Minimum Access - Salesforce'")
            .await[0]["Id"];
        let owned = &self
            .rows(&format!(
                "SELECT Id FROM PermissionSet WHERE ProfileId = '{}'",
                profile.as_str().unwrap()
            ))
            .await[0]["Id"];
        let mut flags = serde_json::Map::new();
        for field in provost_salesforce_emulator::schema::PERMISSION_FIELDS {
            flags.insert(field.to_string(), json!(*field == "PermissionsApiEnabled"));
        }
        self.admin_ok(
            reqwest::Method::PATCH,
            &format!("/records/PermissionSet/{}", owned.as_str().unwrap()),
            Value::Object(flags),
        )
        .await;
        let username = "restricted@acme.example.com";
        self.admin_ok(
            reqwest::Method::POST,
            "/records/User",
            json!({ "Username": username, "LastName": "Restricted", "Email": "r@acme.example.com", "Alias": "restr",
                    "TimeZoneSidKey": "GMT", "LocaleSidKey": "en_GB", "EmailEncodingKey": "UTF-8", "LanguageLocaleKey": "en_US", "ProfileId": profile }),
        )
        .await;
        username.to_owned()
    }

    /// Assigns a new permission set holding `permissions` to `username`.
    async fn grant(&self, username: &str, name: &str, permissions: &[&str]) {
        let mut fields = serde_json::Map::new();
        fields.insert("Name".into(), json!(name));
        fields.insert("Label".into(), json!(name.replace('_', " ")));
        for permission in permissions {
            fields.insert(permission.to_string(), json!(true));
        }
        let set = self
            .admin_ok(
                reqwest::Method::POST,
                "/records/PermissionSet",
                Value::Object(fields),
            )
            .await;
        let user = &self
            .rows(&format!(
                "SELECT Id FROM User WHERE Username = '{username}'"
            ))
            .await[0]["Id"];
        self.admin_ok(
            reqwest::Method::POST,
            "/records/PermissionSetAssignment",
            json!({ "AssigneeId": user, "PermissionSetId": set["id"] }),
        )
        .await;
    }
}

fn status(report: &PreflightReport, id: &str) -> Status {
    report
        .checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id}: {report:?}"))
        .status
}

#[tokio::test]
async fn the_integration_admin_passes_every_check() {
    let org = Org::start(EmulatorConfig::default()).await;
    let report = org.preflight_as(&org.emulator.integration_username()).await;
    assert!(report.ok, "{report:#?}");
    for check in &report.checks {
        assert_eq!(check.status, Status::Pass, "{check:?}");
    }
    assert!(report.org_id.as_deref().unwrap().starts_with("00D"));
    let portal = report
        .checks
        .iter()
        .find(|c| c.id == "portal_users")
        .unwrap();
    let external = org.rows("SELECT Id FROM User WHERE UserType IN ('PowerPartner', 'PowerCustomerSuccess', 'CustomerSuccess', 'CspLitePortal', 'SelfService', 'Guest')").await.len();
    assert!(
        portal
            .detail
            .starts_with(&format!("{external} community and portal users")),
        "{}",
        portal.detail
    );
}

#[tokio::test]
async fn a_restricted_user_is_told_each_missing_permission_until_granted() {
    let org = Org::start(EmulatorConfig::default()).await;
    let user = org.restricted_user().await;
    let report = org.preflight_as(&user).await;
    assert!(!report.ok);
    let connect = report.checks.iter().find(|c| c.id == "connect").unwrap();
    assert_eq!(connect.status, Status::Fail);
    assert!(
        connect.detail.contains("Customize Application")
            && connect.detail.contains("Manage Connected Apps"),
        "{}",
        connect.detail
    );
    assert!(
        connect.remedy.as_deref().unwrap().contains(&user),
        "the remedy names the user"
    );
    assert_eq!(status(&report, "read_users"), Status::Fail);
    assert_eq!(status(&report, "manage_users"), Status::Warn);
    assert_eq!(status(&report, "assign_permission_sets"), Status::Warn);

    org.grant(&user, "Provost_Read", &["PermissionsViewAllUsers"])
        .await;
    let report = org.preflight_as(&user).await;
    assert_eq!(status(&report, "read_users"), Status::Pass);
    assert_eq!(status(&report, "connect"), Status::Fail);

    org.grant(
        &user,
        "Provost_Connect",
        &["PermissionsCustomizeApplication"],
    )
    .await;
    let report = org.preflight_as(&user).await;
    let connect = report.checks.iter().find(|c| c.id == "connect").unwrap();
    assert_eq!(
        connect.detail, "missing: Modify All Data or Manage Connected Apps",
        "only what is still missing"
    );

    org.grant(&user, "Provost_Apps", &["PermissionsManageRemoteAccess"])
        .await;
    let report = org.preflight_as(&user).await;
    assert!(report.ok, "{report:#?}");
    assert_eq!(
        status(&report, "provision_profiles"),
        Status::Warn,
        "Modify All Data is still missing, for provisioning only"
    );
    let access = report
        .checks
        .iter()
        .find(|c| c.id == "read_access_permissions")
        .unwrap();
    assert_eq!(access.status, Status::Warn);
    assert!(access
        .remedy
        .as_deref()
        .unwrap()
        .contains("View Setup and Configuration"));

    org.grant(&user, "Provost_Setup", &["PermissionsViewSetup"])
        .await;
    let report = org.preflight_as(&user).await;
    assert_eq!(status(&report, "read_access_permissions"), Status::Pass);
}

#[tokio::test]
async fn a_user_without_api_enabled_gets_that_named() {
    let org = Org::start(EmulatorConfig::default()).await;
    let user = org.restricted_user().await;
    let profile = &org
        .rows("SELECT Id FROM Profile WHERE Name = 'Minimum Access - Salesforce'")
        .await[0]["Id"];
    let owned = &org
        .rows(&format!(
            "SELECT Id FROM PermissionSet WHERE ProfileId = '{}'",
            profile.as_str().unwrap()
        ))
        .await[0]["Id"];
    org.admin_ok(
        reqwest::Method::PATCH,
        &format!("/records/PermissionSet/{}", owned.as_str().unwrap()),
        json!({ "PermissionsApiEnabled": false }),
    )
    .await;
    let report = org.preflight_as(&user).await;
    assert!(!report.ok);
    assert_eq!(status(&report, "authentication"), Status::Pass);
    let api = report
        .checks
        .iter()
        .find(|c| c.id == "api_enabled")
        .unwrap();
    assert_eq!(api.status, Status::Fail);
    assert!(api.remedy.as_deref().unwrap().contains("API Enabled"));
}

#[tokio::test]
async fn failed_authentication_and_a_missing_feature_are_reported() {
    let org = Org::start(EmulatorConfig::default()).await;
    let report = org.preflight_as("ghost@acme.example.com").await;
    assert!(!report.ok);
    assert_eq!(report.checks.len(), 1);
    assert_eq!(report.checks[0].id, "authentication");
    assert!(report.checks[0]
        .remedy
        .as_deref()
        .unwrap()
        .contains("Pre-authorise"));

    org.admin_ok(
        reqwest::Method::PUT,
        "/features",
        json!({ "permission_set_groups": false }),
    )
    .await;
    let report = org.preflight_as(&org.emulator.integration_username()).await;
    assert!(report.ok, "an optional object missing is a warning");
    let groups = report
        .checks
        .iter()
        .find(|c| c.id == "permission_set_groups")
        .unwrap();
    assert_eq!(groups.status, Status::Warn);
    assert!(groups.detail.contains("no permission set groups"));
}
