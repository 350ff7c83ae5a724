//! `[console]`: the web console's sessions and who holds which role in it.
//!
//! Every person who signs in with their Salesforce user of a configured org is a requester
//! (they may ask for access for themselves); reviewers are whoever has review items waiting.
//! Admins, approvers and auditors are named here: by Salesforce username or user id, or by
//! what Salesforce itself says, membership of a public group or an assigned permission set
//! (read from the synced model, so a change in Salesforce counts after the next sync).

use serde::{Deserialize, Serialize};

use super::ConfigProblem;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Minutes without a request after which a session ends.
    #[serde(default = "default_idle_minutes")]
    pub session_idle_minutes: u32,
    /// Hours after sign-in after which a session ends, however active.
    #[serde(default = "default_session_hours")]
    pub session_hours: u32,
    /// May see and do everything: sync now, approve, every page.
    #[serde(default)]
    pub admins: RoleRule,
    /// May approve and reject access requests, and see users and entitlements.
    #[serde(default)]
    pub approvers: RoleRule,
    /// May see everything and download reports and the audit log; change nothing.
    #[serde(default)]
    pub auditors: RoleRule,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            session_idle_minutes: default_idle_minutes(),
            session_hours: default_session_hours(),
            admins: RoleRule::default(),
            approvers: RoleRule::default(),
            auditors: RoleRule::default(),
        }
    }
}

/// Who holds a role: any of these.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleRule {
    /// Salesforce usernames or user ids (15 or 18 characters).
    #[serde(default)]
    pub users: Vec<String>,
    /// API names of public groups whose direct members hold the role.
    #[serde(default)]
    pub public_groups: Vec<String>,
    /// API names of permission sets whose assignees hold the role.
    #[serde(default)]
    pub permission_sets: Vec<String>,
}

impl RoleRule {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.public_groups.is_empty() && self.permission_sets.is_empty()
    }
}

fn default_idle_minutes() -> u32 {
    30
}

fn default_session_hours() -> u32 {
    12
}

pub(super) fn validate(console: &ConsoleConfig, problems: &mut Vec<ConfigProblem>) {
    let mut check = |key: &str, value: u32, range: std::ops::RangeInclusive<u32>, unit: &str| {
        if !range.contains(&value) {
            problems.push(ConfigProblem {
                source: "configuration".to_owned(),
                key: format!("console.{key}"),
                message: format!(
                    "{value} is outside {}..={} ({unit})",
                    range.start(),
                    range.end()
                ),
            });
        }
    };
    check(
        "session_idle_minutes",
        console.session_idle_minutes,
        1..=1440,
        "minutes",
    );
    check("session_hours", console.session_hours, 1..=168, "hours");
    for (role, rule) in [
        ("admins", &console.admins),
        ("approvers", &console.approvers),
        ("auditors", &console.auditors),
    ] {
        for (list, names) in [
            ("users", &rule.users),
            ("public_groups", &rule.public_groups),
            ("permission_sets", &rule.permission_sets),
        ] {
            if let Some(blank) = names.iter().find(|n| n.trim().is_empty() || n.len() > 255) {
                problems.push(ConfigProblem {
                    source: "configuration".to_owned(),
                    key: format!("console.{role}.{list}"),
                    message: format!(
                        "`{blank}` is not a name: give 1 to 255 characters (a username, user id or API name)"
                    ),
                });
            }
        }
    }
}
