//! Provisioning: access requests ([`request`]), their plans and approval ([`requests`]), the
//! checks that turn a request into a change and the connector's exact write for it
//! ([`plan`]), and the executor that has the connector make approved writes exactly once,
//! reflecting each in the stored model at once ([`executor`]).

pub mod executor;
pub mod plan;
pub mod request;
pub mod requests;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What an access request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Grant,
    Revoke,
    ChangeProfile,
    ChangeRole,
    CreateUser,
    DeactivateUser,
    ReactivateUser,
    FreezeUser,
    UnfreezeUser,
    /// Changes a user's own fields: username, email, names, title, department, federation id.
    UpdateUser,
}

impl Action {
    pub const ALL: [Action; 10] = [
        Action::Grant,
        Action::Revoke,
        Action::ChangeProfile,
        Action::ChangeRole,
        Action::CreateUser,
        Action::DeactivateUser,
        Action::ReactivateUser,
        Action::FreezeUser,
        Action::UnfreezeUser,
        Action::UpdateUser,
    ];

    pub const NAMES: [&'static str; 10] = [
        "grant",
        "revoke",
        "change_profile",
        "change_role",
        "create_user",
        "deactivate_user",
        "reactivate_user",
        "freeze_user",
        "unfreeze_user",
        "update_user",
    ];

    pub fn as_str(self) -> &'static str {
        Action::NAMES[Action::ALL
            .iter()
            .position(|a| *a == self)
            .expect("every action is listed")]
    }

    /// Whether the request names an entitlement.
    pub fn needs_entitlement(self) -> bool {
        matches!(
            self,
            Action::Grant
                | Action::Revoke
                | Action::ChangeProfile
                | Action::ChangeRole
                | Action::CreateUser
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown action `{s}`: expected one of {}",
                    Action::NAMES.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_through_their_names() {
        for action in Action::ALL {
            assert_eq!(action.as_str().parse::<Action>(), Ok(action));
            let json = serde_json::to_value(action).unwrap();
            assert_eq!(json, action.as_str());
        }
        assert!("delete_user"
            .parse::<Action>()
            .unwrap_err()
            .contains("grant"));
    }
}
