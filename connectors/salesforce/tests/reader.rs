//! Reading the access model through the connector interface, checked against the emulator's
//! org with ground truth computed here, independently of the reader's code.

use std::collections::{HashMap, HashSet};

use provost_connector::connector::{Connector, ConnectorError, Cursor, Page, ResourceType};
use provost_connector::model::{EntitlementKind, GrantSource};
use provost_salesforce::reader::{self, ReadOptions, SalesforceReader};
use provost_salesforce::{ClientConfig, SalesforceClient};
use provost_salesforce_emulator::{EmulatorConfig, Preset};
use serde_json::json;

const EXTERNAL: &str = "('PowerPartner', 'PowerCustomerSuccess', 'CustomerSuccess', 'CspLitePortal', 'SelfService', 'Guest')";

mod common;

use common::Org;

async fn org(preset: Preset) -> Org {
    Org::start(EmulatorConfig {
        preset,
        ..EmulatorConfig::default()
    })
    .await
}

impl Org {
    fn reader(&self, options: ReadOptions, batch_size: u16) -> SalesforceReader {
        let mut config = ClientConfig::new(&self.base);
        config.batch_size = batch_size;
        SalesforceReader::new(SalesforceClient::new(config, self.jwt()).unwrap(), options)
    }
}

async fn read_all(reader: &SalesforceReader, resource: &ResourceType) -> Page {
    let mut all = Page::default();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = reader
            .read_page(resource, cursor.as_ref(), None)
            .await
            .unwrap();
        all.accounts.extend(page.accounts);
        all.entitlements.extend(page.entitlements);
        all.grants.extend(page.grants);
        all.permissions.extend(page.permissions);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
}

async fn read_everything(reader: &SalesforceReader) -> Page {
    let mut all = Page::default();
    for resource in reader.resource_types() {
        let page = read_all(reader, resource).await;
        all.accounts.extend(page.accounts);
        all.entitlements.extend(page.entitlements);
        all.grants.extend(page.grants);
        all.permissions.extend(page.permissions);
    }
    all
}

const DEFAULTS: ReadOptions = ReadOptions {
    exclude_portal_users: true,
    include_inactive_users: true,
    read_access: true,
};

#[tokio::test]
async fn a_full_read_matches_the_org_and_every_grant_resolves() {
    let org = org(Preset::SMALL).await;
    let model = read_everything(&org.reader(DEFAULTS, 2000)).await;

    let accounts: HashSet<String> = model.accounts.iter().map(|a| a.id.clone()).collect();
    assert_eq!(
        accounts,
        org.ids(&format!(
            "SELECT Id FROM User WHERE UserType NOT IN {EXTERNAL}"
        ))
        .await,
        "internal users only"
    );
    assert!(
        model.accounts.iter().any(|a| !a.active),
        "inactive users are kept by default"
    );

    let frozen: HashSet<String> = org
        .rows("SELECT UserId FROM UserLogin WHERE IsFrozen = true")
        .await
        .iter()
        .map(|r| r["UserId"].as_str().unwrap().to_owned())
        .filter(|id| accounts.contains(id))
        .collect();
    let read_frozen: HashSet<String> = model
        .accounts
        .iter()
        .filter(|a| a.attributes["IsFrozen"] == true)
        .map(|a| a.id.clone())
        .collect();
    assert_eq!(read_frozen, frozen);

    let by_kind = |kind: EntitlementKind| -> HashSet<String> {
        model
            .entitlements
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.id.clone())
            .collect()
    };
    assert_eq!(
        by_kind(EntitlementKind::Profile),
        org.ids("SELECT Id FROM Profile").await
    );
    assert_eq!(
        by_kind(EntitlementKind::Role),
        org.ids("SELECT Id FROM UserRole").await
    );
    assert_eq!(
        by_kind(EntitlementKind::PermissionSet),
        org.ids("SELECT Id FROM PermissionSet").await
    );
    assert_eq!(
        by_kind(EntitlementKind::PermissionSetGroup),
        org.ids("SELECT Id FROM PermissionSetGroup").await
    );
    assert_eq!(
        by_kind(EntitlementKind::PublicGroup),
        org.ids("SELECT Id FROM Group WHERE Type = 'Regular'").await
    );
    assert_eq!(
        by_kind(EntitlementKind::UserLicense),
        org.ids("SELECT Id FROM UserLicense").await
    );
    assert_eq!(
        by_kind(EntitlementKind::PermissionSetLicense),
        org.ids("SELECT Id FROM PermissionSetLicense").await
    );
    let grantable: HashSet<String> = model
        .entitlements
        .iter()
        .filter(|e| e.kind == EntitlementKind::PermissionSet && e.grantable)
        .map(|e| e.id.clone())
        .collect();
    assert_eq!(grantable, org.ids("SELECT Id FROM PermissionSet WHERE IsOwnedByProfile = false AND PermissionSetGroupId = null").await);

    // Every grant names a read account and a read entitlement (the store's foreign keys).
    let entitlements: HashSet<String> = model.entitlements.iter().map(|e| e.id.clone()).collect();
    for grant in &model.grants {
        assert!(accounts.contains(&grant.account_id), "{grant:?}");
        assert!(entitlements.contains(&grant.entitlement_id), "{grant:?}");
    }
    let ids: HashSet<&String> = model.grants.iter().map(|g| &g.id).collect();
    assert_eq!(ids.len(), model.grants.len(), "grant ids are unique");

    // Object, field and setup-entity permissions: every row of a permission set (not of a
    // muting set), each naming a read permission set.
    let mut expected = HashSet::new();
    for object in ["ObjectPermissions", "FieldPermissions", "SetupEntityAccess"] {
        for row in org
            .rows(&format!("SELECT Id, ParentId FROM {object}"))
            .await
        {
            if row["ParentId"].as_str().unwrap().starts_with("0PS") {
                expected.insert(row["Id"].as_str().unwrap().to_owned());
            }
        }
    }
    let read: HashSet<String> = model.permissions.iter().map(|p| p.id.clone()).collect();
    assert_eq!(
        read.len(),
        model.permissions.len(),
        "permission ids are unique"
    );
    assert_eq!(read, expected);
    for permission in &model.permissions {
        assert!(
            entitlements.contains(&permission.entitlement_id),
            "{permission:?}"
        );
        assert!(!permission.actions.is_empty(), "{permission:?}");
    }
    let named = model
        .permissions
        .iter()
        .filter(|p| p.attributes.get("name").is_some_and(|n| n.is_string()))
        .count();
    assert!(named > 0, "setup entities carry their names");

    // Direct permission set and group assignments, from the assignments of internal users.
    let direct: HashSet<String> = model
        .grants
        .iter()
        .filter(|g| g.id.starts_with("0Pa") && !g.id.contains(':'))
        .map(|g| g.id.clone())
        .collect();
    let expected = org
        .ids(&format!("SELECT Id FROM PermissionSetAssignment WHERE PermissionSet.IsOwnedByProfile = false AND Assignee.UserType NOT IN {EXTERNAL}"))
        .await;
    assert_eq!(direct, expected);

    // Through a group: one grant per component set of each group assignment.
    // A muting set (0QM) among the components grants nothing.
    let components: HashMap<String, usize> = org
        .rows("SELECT PermissionSetGroupId, PermissionSetId FROM PermissionSetGroupComponent")
        .await
        .iter()
        .filter(|r| r["PermissionSetId"].as_str().unwrap().starts_with("0PS"))
        .fold(HashMap::new(), |mut m, r| {
            *m.entry(r["PermissionSetGroupId"].as_str().unwrap().to_owned())
                .or_default() += 1;
            m
        });
    let group_assignments = org.rows(&format!("SELECT PermissionSetGroupId FROM PermissionSetAssignment WHERE PermissionSetGroupId != null AND Assignee.UserType NOT IN {EXTERNAL}")).await;
    let expected_through_groups: usize = group_assignments
        .iter()
        .map(|a| components[a["PermissionSetGroupId"].as_str().unwrap()])
        .sum();
    assert!(expected_through_groups > 0);
    assert_eq!(
        model
            .grants
            .iter()
            .filter(|g| matches!(g.source, GrantSource::Group { .. }))
            .count(),
        expected_through_groups
    );

    // Every account has exactly one profile grant.
    let profiles = model
        .grants
        .iter()
        .filter(|g| g.id.ends_with(":profile"))
        .count();
    assert_eq!(profiles, accounts.len());
    // Group members: users of public groups.
    let members = org.ids(&format!("SELECT Id FROM GroupMember WHERE Group.Type = 'Regular' AND UserOrGroupId IN (SELECT Id FROM User WHERE UserType NOT IN {EXTERNAL})")).await;
    let read_members: HashSet<String> = model
        .grants
        .iter()
        .filter(|g| g.id.starts_with("011"))
        .map(|g| g.id.clone())
        .collect();
    assert_eq!(read_members, members);
}

#[tokio::test]
async fn portal_users_can_be_kept_and_inactive_users_left_out() {
    let org = org(Preset::SMALL).await;
    let reader = org.reader(
        ReadOptions {
            exclude_portal_users: false,
            include_inactive_users: false,
            read_access: true,
        },
        2000,
    );
    let users = read_all(&reader, &reader::USERS).await;
    let ids: HashSet<String> = users.accounts.iter().map(|a| a.id.clone()).collect();
    assert_eq!(
        ids,
        org.ids("SELECT Id FROM User WHERE IsActive = true").await
    );
    assert!(users
        .accounts
        .iter()
        .any(|a| a.user_type.as_deref() == Some("CspLitePortal")
            || a.user_type.as_deref() == Some("PowerPartner")));
}

#[tokio::test]
async fn a_read_resumes_from_its_cursor_after_the_quota_runs_out_and_after_a_locator_expires() {
    let org = org(Preset {
        users: 650,
        ..Preset::SMALL
    })
    .await;
    let reader = org.reader(DEFAULTS, 200);
    let expected = org
        .ids(&format!(
            "SELECT Id FROM User WHERE UserType NOT IN {EXTERNAL}"
        ))
        .await;
    assert!(expected.len() > 400, "several pages");

    let first = reader.read_page(&reader::USERS, None, None).await.unwrap();
    assert_eq!(first.total, Some(expected.len() as u64));
    let mut seen: Vec<String> = first.accounts.iter().map(|a| a.id.clone()).collect();
    let cursor = first.next.unwrap();

    // The daily quota runs out: a typed stop, and the cursor still works afterwards.
    org.admin_ok(
        reqwest::Method::PUT,
        "/limits",
        json!({ "used": 1_000_000, "max": 1_000_000 }),
    )
    .await;
    let err = reader
        .read_page(&reader::USERS, Some(&cursor), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::QuotaExhausted { .. }),
        "{err}"
    );
    org.admin_ok(reqwest::Method::PUT, "/limits", json!({ "used": 0 }))
        .await;
    let second = reader
        .read_page(&reader::USERS, Some(&cursor), None)
        .await
        .unwrap();
    seen.extend(second.accounts.iter().map(|a| a.id.clone()));

    // The locator is forgotten (as after Salesforce's 15 minutes): continue after the last ID.
    org.http
        .post(format!("{}/__emulator/reset", org.base))
        .send()
        .await
        .unwrap();
    let mut cursor = second.next;
    while let Some(next) = cursor {
        let page = reader
            .read_page(&reader::USERS, Some(&next), None)
            .await
            .unwrap();
        seen.extend(page.accounts.iter().map(|a| a.id.clone()));
        cursor = page.next;
    }
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no user read twice");
    assert_eq!(unique, expected, "no user missed");

    let garbage = reader
        .read_page(&reader::USERS, Some(&Cursor("not json".into())), None)
        .await
        .unwrap_err();
    assert!(matches!(garbage, ConnectorError::InvalidCursor { .. }));
}

#[tokio::test]
async fn an_org_without_permission_set_groups_reads_without_them() {
    let org = org(Preset::SMALL).await;
    org.admin_ok(
        reqwest::Method::PUT,
        "/features",
        json!({ "permission_set_groups": false, "permission_set_licenses": false }),
    )
    .await;
    let model = read_everything(&org.reader(DEFAULTS, 2000)).await;
    assert!(!model
        .entitlements
        .iter()
        .any(|e| e.kind == EntitlementKind::PermissionSetGroup
            || e.kind == EntitlementKind::PermissionSetLicense));
    assert!(!model
        .grants
        .iter()
        .any(|g| matches!(g.source, GrantSource::Group { .. })));
    assert!(!model.accounts.is_empty());
}
