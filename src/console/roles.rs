//! The console's roles, and who holds them now: read on every request, so a role taken away
//! in the configuration, or in Salesforce (after the next sync), is gone at the next click.

use provost_connector::model::EntitlementKind;

use super::view::Problem;
use crate::config::RoleRule;
use crate::http::AppState;
use crate::store::console::ConsoleSession;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Approver,
    Reviewer,
    Auditor,
    Requester,
}

/// The roles a person holds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Roles(Vec<Role>);

impl Roles {
    pub fn has(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    pub fn admin(&self) -> bool {
        self.has(Role::Admin)
    }

    /// Users, entitlements and their holders: admins, approvers (who judge requests by them)
    /// and auditors.
    pub fn directory(&self) -> bool {
        self.admin() || self.has(Role::Approver) || self.has(Role::Auditor)
    }

    pub fn approve(&self) -> bool {
        self.admin() || self.has(Role::Approver)
    }

    /// Reports, the audit log and sync runs.
    pub fn audit(&self) -> bool {
        self.admin() || self.has(Role::Auditor)
    }

    /// What the page header and navigation show.
    pub fn names(&self) -> Vec<Role> {
        self.0.clone()
    }
}

/// Whether `rule` names the user by username or id (ids compare on 15 characters).
fn names_user(rule: &RoleRule, username: &str, user_id: &str) -> bool {
    rule.users.iter().any(|named| {
        named.eq_ignore_ascii_case(username)
            || (named.get(..15).is_some() && named.get(..15) == user_id.get(..15))
    })
}

/// How many open review items wait for the user `user_id`, named as items name reviewers.
pub async fn open_items_of(
    state: &AppState,
    org: crate::store::OrgId,
    user_id: &str,
) -> Result<i64, Problem> {
    let (reviewer, _) = crate::reviews::reviewer_of(&*state.store, org, user_id)
        .await
        .map_err(|err| Problem::internal(anyhow::anyhow!("{err}")))?;
    Ok(state.store.open_review_items(org, Some(&reviewer)).await?)
}

/// The roles `session`'s person holds now.
pub async fn resolve(state: &AppState, session: &ConsoleSession) -> Result<Roles, Problem> {
    if session.via == "link" {
        return Ok(Roles(vec![Role::Admin]));
    }
    let (Some(org_name), Some(user_id)) = (&session.org, &session.user_id) else {
        return Ok(Roles::default());
    };
    let org = state.store.ensure_org(org_name).await?;
    let console = &state.config.console;
    let rules = [
        (Role::Admin, &console.admins),
        (Role::Approver, &console.approvers),
        (Role::Auditor, &console.auditors),
    ];
    let needs_model = rules
        .iter()
        .any(|(_, rule)| !rule.public_groups.is_empty() || !rule.permission_sets.is_empty());
    let held = if needs_model {
        let grants = state.store.grants_of_account(org.id, user_id).await?;
        let ids: Vec<String> = grants.into_iter().map(|g| g.entitlement_id).collect();
        state.store.entitlements_by_ids(org.id, &ids).await?
    } else {
        Vec::new()
    };
    let holds = |kind: EntitlementKind, names: &[String]| {
        held.iter()
            .map(|found| &found.entitlement)
            .any(|e| e.kind == kind && names.iter().any(|n| n.eq_ignore_ascii_case(&e.api_name)))
    };
    let mut roles = Vec::new();
    for (role, rule) in rules {
        if names_user(rule, &session.username, user_id)
            || holds(EntitlementKind::PublicGroup, &rule.public_groups)
            || holds(EntitlementKind::PermissionSet, &rule.permission_sets)
        {
            roles.push(role);
        }
    }
    if open_items_of(state, org.id, user_id).await? > 0 {
        roles.push(Role::Reviewer);
    }
    roles.push(Role::Requester);
    Ok(Roles(roles))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_names_users_by_username_or_either_length_of_id() {
        let rule = RoleRule {
            users: vec!["Jane@Acme.com".into(), "005000000000001AAA".into()],
            ..RoleRule::default()
        };
        assert!(names_user(&rule, "jane@acme.com", "005000000000009AAA"));
        assert!(names_user(&rule, "bob@acme.com", "005000000000001"));
        assert!(!names_user(&rule, "bob@acme.com", "005000000000002AAA"));
        assert!(!names_user(
            &RoleRule::default(),
            "jane@acme.com",
            "005000000000001AAA"
        ));
    }

    #[test]
    fn a_name_whose_fifteenth_byte_is_inside_a_character_is_compared_not_sliced() {
        let accented = RoleRule {
            users: vec!["françois.dupré@acme.com".into()],
            ..RoleRule::default()
        };
        assert!(names_user(
            &accented,
            "François.dupré@acme.com",
            "005000000000001AAA"
        ));
        assert!(!names_user(&accented, "bob@acme.com", "005000000000001AAA"));
        assert!(!names_user(&accented, "bob@acme.com", "005"));
    }
}
