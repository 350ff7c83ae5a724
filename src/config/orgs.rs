//! `[[orgs]]`: the Salesforce orgs Provost connects to, each with one way to authenticate.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigProblem, Secret};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgConfig {
    /// How Provost names the org in commands and URLs (`[a-z0-9_-]`).
    pub name: String,
    /// `https://login.salesforce.com`, `https://test.salesforce.com`, a My Domain URL, or any
    /// URL such as the emulator's.
    pub login_url: String,
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Leave community and portal users out, in the query itself.
    #[serde(default = "yes")]
    pub exclude_portal_users: bool,
    #[serde(default = "yes")]
    pub include_inactive_users: bool,
    /// Sync what each permission set opens: object, field and setup-entity permissions
    /// (ObjectPermissions, FieldPermissions, SetupEntityAccess). FieldPermissions runs to
    /// millions of rows in large orgs; off, the access reports have nothing to show.
    #[serde(default = "yes")]
    pub sync_access_permissions: bool,
    /// Records per query page (200 to 2000).
    #[serde(default = "default_batch_size")]
    pub batch_size: u16,
    /// Minutes between scheduled syncs inside `provost serve`; unset: syncs run only when asked.
    #[serde(default)]
    pub sync_interval_minutes: Option<u32>,
    /// Syncs pause when the org's API usage of the day reaches this percentage of its daily
    /// limit (read from `Sforce-Limit-Info`), leaving the rest to the org's other integrations.
    #[serde(default = "default_api_budget")]
    pub api_budget_percent: u8,
    /// Queries a sync keeps running at once: large resources (users, assignments, group
    /// members, permissions) are read as key ranges side by side, and the next resources are
    /// read while one is stored. Each holds one of the 10 query cursors Salesforce allows a
    /// user; 1 reads one page at a time.
    #[serde(default = "default_sync_concurrency")]
    pub sync_concurrency: u8,
    /// Access-request actions approved as they are made, for flows that approve upstream
    /// (e.g. `["grant", "revoke"]`). Every other request waits for an approver.
    #[serde(default)]
    pub auto_approve: Vec<String>,
    /// Values for the User fields Salesforce requires that a `create_user` request leaves out.
    #[serde(default)]
    pub user_defaults: UserDefaults,
    /// The most access requests (grants, revocations, user changes) one SCIM write may make.
    /// A write that would make more is refused with `tooMany` before any is made, so that a
    /// mistaken PUT of a Group (an empty member list, say) cannot revoke a permission set from
    /// everyone at once; an identity provider sends large changes in several PATCHes.
    #[serde(default = "default_scim_max_changes")]
    pub scim_max_changes: u32,
    /// Who owns each entitlement, for access reviews whose reviewer rule is `owner`: an
    /// entitlement's API name (or id) to its owner's Salesforce username (or user id), e.g.
    /// `{ Sales_Ops = "jane@acme.com" }`. A campaign's own `owners` add to and override these.
    #[serde(default)]
    pub entitlement_owners: std::collections::BTreeMap<String, String>,
    pub auth: AuthConfig,
}

/// Defaults for new users' required fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDefaults {
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    #[serde(default = "default_locale")]
    pub locale: String,
    #[serde(default = "default_language")]
    pub language: String,
    #[serde(default = "default_email_encoding")]
    pub email_encoding: String,
    /// The profile (name or id) of users created through SCIM without one.
    #[serde(default)]
    pub profile: Option<String>,
}

impl Default for UserDefaults {
    fn default() -> Self {
        UserDefaults {
            time_zone: default_time_zone(),
            locale: default_locale(),
            language: default_language(),
            email_encoding: default_email_encoding(),
            profile: None,
        }
    }
}

fn default_time_zone() -> String {
    "America/Los_Angeles".to_owned()
}

fn default_locale() -> String {
    "en_US".to_owned()
}

fn default_language() -> String {
    "en_US".to_owned()
}

fn default_email_encoding() -> String {
    "UTF-8".to_owned()
}

/// One authentication method, chosen by `method`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// Server to server: a JWT signed with the key whose certificate the connected app holds.
    JwtBearer {
        client_id: String,
        username: String,
        private_key_file: PathBuf,
    },
    /// The connected app's own credentials (My Domain login URLs only).
    ClientCredentials {
        client_id: String,
        client_secret: Secret,
    },
    /// A refresh token obtained elsewhere.
    RefreshToken {
        client_id: String,
        client_secret: Option<Secret>,
        refresh_token: Secret,
    },
    /// Interactive authorisation with PKCE (`provost connect`); the refresh token is stored
    /// encrypted. A public client needs no secret.
    WebServer {
        client_id: String,
        client_secret: Option<Secret>,
    },
}

fn default_api_version() -> String {
    "62.0".to_owned()
}

fn default_batch_size() -> u16 {
    2000
}

fn default_api_budget() -> u8 {
    80
}

fn default_sync_concurrency() -> u8 {
    crate::sync::DEFAULT_CONCURRENCY as u8
}

pub fn default_scim_max_changes() -> u32 {
    1000
}

fn yes() -> bool {
    true
}

/// Checks what types cannot: names, URLs, versions, files.
pub(super) fn validate(orgs: &[OrgConfig], problems: &mut Vec<ConfigProblem>) {
    let mut problem = |index: usize, key: &str, message: String| {
        problems.push(ConfigProblem {
            source: "configuration".to_owned(),
            key: format!("orgs[{index}].{key}"),
            message,
        });
    };
    for (index, org) in orgs.iter().enumerate() {
        if !super::is_valid_name(&org.name) {
            problem(
                index,
                "name",
                format!(
                    "`{}` must be lower-case letters, digits, `-` or `_`",
                    org.name
                ),
            );
        }
        if orgs[..index].iter().any(|other| other.name == org.name) {
            problem(
                index,
                "name",
                format!("`{}` names two orgs; names must be unique", org.name),
            );
        }
        match url::Url::parse(&org.login_url) {
            Ok(url) if matches!(url.scheme(), "https" | "http") => {}
            _ => problem(
                index,
                "login_url",
                format!(
                    "`{}` is not an http(s) URL such as https://login.salesforce.com",
                    org.login_url
                ),
            ),
        }
        let version_ok = org
            .api_version
            .split_once('.')
            .is_some_and(|(major, minor)| major.parse::<u32>().is_ok() && minor == "0");
        if !version_ok {
            problem(
                index,
                "api_version",
                format!("`{}` is not an API version such as 62.0", org.api_version),
            );
        }
        if !(200..=2000).contains(&org.batch_size) {
            problem(
                index,
                "batch_size",
                format!("{} is outside 200..=2000", org.batch_size),
            );
        }
        if !(1..=100).contains(&org.api_budget_percent) {
            problem(
                index,
                "api_budget_percent",
                format!(
                    "{} is outside 1..=100 (the share of the daily API limit syncs may reach)",
                    org.api_budget_percent
                ),
            );
        }
        if !(1..=crate::sync::MAX_CONCURRENCY as u8).contains(&org.sync_concurrency) {
            problem(
                index,
                "sync_concurrency",
                format!(
                    "{} is outside 1..={} (queries at once; Salesforce keeps 10 open query cursors per user, and provisioning needs some); the default is {}",
                    org.sync_concurrency,
                    crate::sync::MAX_CONCURRENCY,
                    crate::sync::DEFAULT_CONCURRENCY
                ),
            );
        }
        if org.scim_max_changes == 0 {
            problem(
                index,
                "scim_max_changes",
                "0 would refuse every SCIM write that changes anything; the default is 1000"
                    .to_owned(),
            );
        }
        if org.sync_interval_minutes == Some(0) {
            problem(
                index,
                "sync_interval_minutes",
                "0 is not an interval; leave it unset for manual syncs only".to_owned(),
            );
        }
        for action in &org.auto_approve {
            if !crate::provisioning::Action::NAMES.contains(&action.as_str()) {
                problem(
                    index,
                    "auto_approve",
                    format!(
                        "`{action}` is not an access-request action: expected some of {}",
                        crate::provisioning::Action::NAMES.join(", ")
                    ),
                );
            }
        }
        if let AuthConfig::JwtBearer {
            private_key_file, ..
        } = &org.auth
        {
            if !private_key_file.is_file() {
                problem(
                    index,
                    "auth.private_key_file",
                    format!(
                        "{} does not exist or is not a file",
                        private_key_file.display()
                    ),
                );
            }
        }
    }
}
