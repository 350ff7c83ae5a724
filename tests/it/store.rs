//! The store behaves the same on SQLite and PostgreSQL.

use provost::store::{Page, StoreError};
use provost_connector::model::{Account, Entitlement, EntitlementKind, Grant, GrantSource};
use provost_connector::times::parse_rfc3339;
use serde_json::json;

use crate::helpers::on_each_backend;

fn account(id: &str, username: &str) -> Account {
    Account {
        id: id.to_owned(),
        username: username.to_owned(),
        email: Some(format!("{username}.mail")),
        first_name: Some("Zoë".to_owned()),
        last_name: Some("O'Brien".to_owned()),
        display_name: "Zoë O'Brien".to_owned(),
        active: true,
        user_type: Some("Standard".to_owned()),
        attributes: json!({ "ProfileId": "00e000000000001AAA" })
            .as_object()
            .unwrap()
            .clone(),
    }
}

fn entitlement(id: &str, kind: EntitlementKind, grantable: bool) -> Entitlement {
    Entitlement {
        id: id.to_owned(),
        kind,
        api_name: format!("api_{id}"),
        label: format!("Label {id}"),
        description: None,
        grantable,
        attributes: Default::default(),
    }
}

fn grant(id: &str, account_id: &str, entitlement_id: &str, source: GrantSource) -> Grant {
    Grant {
        id: id.to_owned(),
        account_id: account_id.to_owned(),
        entitlement_id: entitlement_id.to_owned(),
        source,
        expires_at: None,
        attributes: Default::default(),
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_the_database_answers() {
    on_each_backend(|store| async move {
        store
            .migrate()
            .await
            .expect("second migration run is a no-op");
        store.ping().await.expect("ping");
    })
    .await;
}

#[tokio::test]
async fn orgs_are_created_once_by_name() {
    on_each_backend(|store| async move {
        let first = store.ensure_org("production").await.unwrap();
        let again = store.ensure_org("production").await.unwrap();
        assert_eq!(first, again);
        let sandbox = store.ensure_org("sandbox").await.unwrap();
        assert_ne!(first.id, sandbox.id);
        let names: Vec<_> = store
            .list_orgs()
            .await
            .unwrap()
            .into_iter()
            .map(|org| org.name)
            .collect();
        assert_eq!(names, ["production", "sandbox"]);
        assert_eq!(store.find_org("missing").await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn accounts_round_trip_update_in_place_and_page_by_id() {
    on_each_backend(|store| async move {
        let org = store.ensure_org("production").await.unwrap().id;
        let accounts: Vec<_> = (0..5)
            .map(|n| account(&format!("005{n:015}"), &format!("user{n}@example.com")))
            .collect();
        store.upsert_accounts(org, &accounts).await.unwrap();
        assert_eq!(
            store
                .get_account(org, &accounts[2].id)
                .await
                .unwrap()
                .as_ref(),
            Some(&accounts[2]),
            "non-ASCII letters, quotes and attributes survive"
        );

        let mut changed = accounts[2].clone();
        changed.active = false;
        changed.email = None;
        store
            .upsert_accounts(org, &[changed.clone()])
            .await
            .unwrap();
        assert_eq!(
            store.get_account(org, &changed.id).await.unwrap(),
            Some(changed)
        );

        let first = store.list_accounts(org, Page::first(2)).await.unwrap();
        let second = store
            .list_accounts(
                org,
                Page {
                    after: Some(&first[1].id),
                    limit: 2,
                },
            )
            .await
            .unwrap();
        let third = store
            .list_accounts(
                org,
                Page {
                    after: Some(&second[1].id),
                    limit: 2,
                },
            )
            .await
            .unwrap();
        let ids: Vec<_> = first
            .iter()
            .chain(&second)
            .chain(&third)
            .map(|a| a.id.clone())
            .collect();
        let expected: Vec<_> = accounts.iter().map(|a| a.id.clone()).collect();
        assert_eq!(ids, expected);
    })
    .await;
}

#[tokio::test]
async fn orgs_do_not_see_each_others_accounts() {
    on_each_backend(|store| async move {
        let production = store.ensure_org("production").await.unwrap().id;
        let sandbox = store.ensure_org("sandbox").await.unwrap().id;
        let same_id = account("005000000000000001", "a@example.com");
        store
            .upsert_accounts(production, std::slice::from_ref(&same_id))
            .await
            .unwrap();
        assert_eq!(store.get_account(sandbox, &same_id.id).await.unwrap(), None);
        assert!(store
            .list_accounts(sandbox, Page::first(10))
            .await
            .unwrap()
            .is_empty());
    })
    .await;
}

#[tokio::test]
async fn entitlements_filter_by_kind() {
    on_each_backend(|store| async move {
        let org = store.ensure_org("production").await.unwrap().id;
        let all = vec![
            entitlement("00e000000000001", EntitlementKind::Profile, false),
            entitlement("0PS000000000001", EntitlementKind::PermissionSet, true),
            entitlement("0PS000000000002", EntitlementKind::PermissionSet, false),
            entitlement("0PG000000000001", EntitlementKind::PermissionSetGroup, true),
        ];
        store.upsert_entitlements(org, &all).await.unwrap();
        let sets = store
            .list_entitlements(org, Some(EntitlementKind::PermissionSet), Page::first(10))
            .await
            .unwrap();
        assert_eq!(sets, all[1..3].to_vec());
        let everything = store
            .list_entitlements(org, None, Page::first(10))
            .await
            .unwrap();
        assert_eq!(everything.len(), 4);
    })
    .await;
}

#[tokio::test]
async fn grants_need_their_account_and_entitlement() {
    on_each_backend(|store| async move {
        let org = store.ensure_org("production").await.unwrap().id;
        let holder = account("005000000000000001", "a@example.com");
        store
            .upsert_accounts(org, std::slice::from_ref(&holder))
            .await
            .unwrap();
        store
            .upsert_entitlements(
                org,
                &[entitlement(
                    "0PS000000000001",
                    EntitlementKind::PermissionSet,
                    true,
                )],
            )
            .await
            .unwrap();

        let dangling = grant(
            "0Pa000000000001",
            &holder.id,
            "0PS00000000000X",
            GrantSource::Direct,
        );
        let err = store.upsert_grants(org, &[dangling]).await.unwrap_err();
        assert!(matches!(err, StoreError::MissingReference { .. }), "{err}");
        assert!(
            store
                .grants_of_account(org, &holder.id)
                .await
                .unwrap()
                .is_empty(),
            "all or none"
        );

        let mut timed = grant(
            "0Pa000000000002",
            &holder.id,
            "0PS000000000001",
            GrantSource::Direct,
        );
        timed.expires_at = Some(parse_rfc3339("2027-03-31T23:59:59Z").unwrap());
        let via_group = grant(
            "0Pa000000000003",
            &holder.id,
            "0PS000000000001",
            GrantSource::Group {
                group_id: "0PG000000000001AAA".to_owned(),
            },
        );
        store
            .upsert_grants(org, &[timed.clone(), via_group.clone()])
            .await
            .unwrap();
        assert_eq!(
            store.grants_of_account(org, &holder.id).await.unwrap(),
            vec![timed.clone(), via_group.clone()]
        );

        let removed = store
            .delete_grants(org, &[timed.id.clone(), "0Pa00000000000Z".to_owned()])
            .await
            .unwrap();
        assert_eq!(removed, 1);
        assert_eq!(
            store.grants_of_account(org, &holder.id).await.unwrap(),
            vec![via_group]
        );
    })
    .await;
}

#[tokio::test]
async fn connections_are_stored_per_org_and_states_are_used_once() {
    use provost::store::{OAuthState, StateLimits, StateLookup, StoredConnection};
    on_each_backend(|store| async move {
        let org = store.ensure_org("production").await.unwrap().id;
        assert_eq!(store.connection(org).await.unwrap(), None);
        let mut connection = StoredConnection {
            refresh_token_sealed: "v1:sealed".to_owned(),
            instance_url: "https://acme.my.salesforce.com".to_owned(),
            identity_url: "https://login.salesforce.com/id/00D/005".to_owned(),
            connected_at: parse_rfc3339("2026-11-01T10:00:00Z").unwrap(),
        };
        store.save_connection(org, &connection).await.unwrap();
        connection.refresh_token_sealed = "v1:rotated".to_owned();
        store.save_connection(org, &connection).await.unwrap();
        assert_eq!(store.connection(org).await.unwrap(), Some(connection));

        let pending = OAuthState {
            org_name: "production".to_owned(),
            code_verifier_sealed: "v1:verifier".to_owned(),
            redirect_uri: "http://127.0.0.1:8080/api/integrations/callback/salesforce".to_owned(),
            created_at: parse_rfc3339("2026-11-01T10:00:00Z").unwrap(),
            started_by: "ops-admin".to_owned(),
            replace_confirmed: true,
        };
        let at = |pending: &OAuthState| StateLimits {
            forget_before: pending.created_at - chrono::TimeDelta::days(1),
            open_since: pending.created_at - chrono::TimeDelta::minutes(10),
            most_open: 2,
        };
        assert!(store
            .insert_oauth_state("state-1", &pending, at(&pending))
            .await
            .unwrap());
        assert_eq!(
            store.consume_oauth_state("state-1").await.unwrap(),
            StateLookup::Fresh(pending.clone())
        );
        assert_eq!(
            store.consume_oauth_state("state-1").await.unwrap(),
            StateLookup::Replayed
        );
        assert_eq!(
            store.consume_oauth_state("never-issued").await.unwrap(),
            StateLookup::Unknown
        );

        // Two unused states are under way: a third is refused until one is used.
        let later = |minutes| OAuthState {
            created_at: pending.created_at + chrono::TimeDelta::minutes(minutes),
            ..pending.clone()
        };
        assert!(store
            .insert_oauth_state("open-1", &later(1), at(&later(1)))
            .await
            .unwrap());
        assert!(store
            .insert_oauth_state("open-2", &later(2), at(&later(2)))
            .await
            .unwrap());
        assert!(!store
            .insert_oauth_state("open-3", &later(3), at(&later(3)))
            .await
            .unwrap());
        assert_eq!(
            store.consume_oauth_state("open-3").await.unwrap(),
            StateLookup::Unknown
        );
        assert!(matches!(
            store.consume_oauth_state("open-1").await.unwrap(),
            StateLookup::Fresh(_)
        ));
        assert!(store
            .insert_oauth_state("open-3", &later(3), at(&later(3)))
            .await
            .unwrap());
        // Ten minutes on, they no longer count as under way; a day on, they are forgotten.
        assert!(store
            .insert_oauth_state("open-4", &later(14), at(&later(14)))
            .await
            .unwrap());
        let next_day = later(24 * 60 + 5);
        assert!(store
            .insert_oauth_state("next-day", &next_day, at(&next_day))
            .await
            .unwrap());
        assert_eq!(
            store.consume_oauth_state("open-1").await.unwrap(),
            StateLookup::Unknown
        );
        assert_eq!(
            store.consume_oauth_state("open-2").await.unwrap(),
            StateLookup::Unknown
        );
        assert!(matches!(
            store.consume_oauth_state("next-day").await.unwrap(),
            StateLookup::Fresh(_)
        ));
    })
    .await;
}

#[tokio::test]
async fn a_scim_query_past_its_time_is_stopped_and_the_pool_stays_usable() {
    use provost::store::scim::{
        Column, Criterion, Order, QueryDeadline, ScimQuery, ScimTable, TextOp,
    };
    use sqlx::Connection;
    use std::time::{Duration, Instant};

    for db in crate::helpers::TestDatabase::all().await {
        let store = db.store().await;
        let org = store.ensure_org("production").await.unwrap().id;
        // 150,000 users, made in the database in one statement.
        let make = match store.backend() {
            provost::store::Backend::Sqlite => {
                "INSERT INTO accounts (org_id, id, username, display_name, active, attributes, digest) \
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150000) \
                 SELECT $1, printf('005%015d', i), printf('u%d@x.com', i), printf('User %d', i), TRUE, '{}', 0 FROM n"
            }
            provost::store::Backend::Postgres => {
                "INSERT INTO accounts (org_id, id, username, display_name, active, attributes, digest) \
                 SELECT $1, '005' || lpad(i::text, 15, '0'), 'u' || i || '@x.com', 'User ' || i, TRUE, '{}', 0 \
                 FROM generate_series(1, 150000) AS i"
            }
        };
        match store.backend() {
            provost::store::Backend::Sqlite => {
                let mut raw = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
                sqlx::query(make)
                    .bind(org.0)
                    .execute(&mut raw)
                    .await
                    .unwrap();
            }
            provost::store::Backend::Postgres => {
                let mut raw = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::query(make)
                    .bind(org.0)
                    .execute(&mut raw)
                    .await
                    .unwrap();
            }
        }
        // Five substring tests of every user's name, none of which matches: the whole table,
        // five times over.
        let contains = |needle: &str| Criterion::Text {
            column: Column::DisplayName,
            op: TextOp::Contains,
            value: needle.to_owned(),
            case_exact: false,
        };
        let mut slow = contains("zq0");
        for needle in ["zq1", "zq2", "zq3", "zq4"] {
            slow = Criterion::Or(Box::new(slow), Box::new(contains(needle)));
        }
        let slow: &'static Criterion = Box::leak(Box::new(slow));
        let query = |filter: Option<&'static Criterion>, timeout: Duration| ScimQuery {
            table: ScimTable::Accounts,
            filter,
            order: Order {
                by: None,
                descending: false,
            },
            offset: 0,
            limit: 10,
            counted: None,
            deadline: QueryDeadline::after(timeout),
        };
        let started = Instant::now();
        let whole = store
            .scim_select(org, query(Some(slow), Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(whole.1, 0);
        let takes = started.elapsed();
        let deadline = (takes / 4).max(Duration::from_millis(5));
        eprintln!(
            "{}: the filter takes {takes:?}; stopped after {deadline:?}",
            store.backend().name()
        );
        for _ in 0..3 {
            let started = Instant::now();
            let err = store
                .scim_select(org, query(Some(slow), deadline))
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::TimedOut(_)), "{err}");
            assert!(started.elapsed() < takes, "{:?}", started.elapsed());
            // The connection goes back without its deadline: a query after it runs whole.
            tokio::time::sleep(deadline * 2).await;
            let (ids, total) = store
                .scim_select(org, query(None, Duration::from_secs(60)))
                .await
                .unwrap();
            assert_eq!((ids.len(), total), (10, 150_000));
            let (accounts, _) = store
                .scim_accounts(org, query(None, Duration::from_secs(60)))
                .await
                .unwrap();
            assert_eq!(accounts.len(), 10);
        }
        store.close().await;
        db.drop_database().await;
    }
}

/// SQLite keeps times as fixed-width RFC 3339 text (nine fraction digits, `Z`), so that
/// comparing the text compares the times; migration 0014 rewrites the trimmed text earlier
/// versions wrote, and the store reads both the same.
#[tokio::test]
async fn sqlite_stores_times_as_fixed_width_text_and_migrates_the_trimmed_form() {
    use provost::store::StoredConnection;
    let db = crate::helpers::TestDatabase::sqlite().await;
    let store = db.store().await;
    let cases = [
        (
            "whole",
            "2026-11-01T10:00:00Z",
            "2026-11-01T10:00:00.000000000Z",
        ),
        (
            "millis",
            "2026-11-01T10:00:00.120Z",
            "2026-11-01T10:00:00.120000000Z",
        ),
        (
            "offset",
            "2026-11-01T11:00:00.5+01:00",
            "2026-11-01T10:00:00.500000000Z",
        ),
        (
            "nanos",
            "2026-11-01T10:00:00.123456789Z",
            "2026-11-01T10:00:00.123456789Z",
        ),
    ];
    let mut connections = Vec::new();
    for (org, at, _) in cases {
        let id = store.ensure_org(org).await.unwrap().id;
        let connection = StoredConnection {
            refresh_token_sealed: "v1:sealed".to_owned(),
            instance_url: "https://acme.my.salesforce.com".to_owned(),
            identity_url: "https://login.salesforce.com/id/00D/005".to_owned(),
            connected_at: parse_rfc3339(at).unwrap(),
        };
        store.save_connection(id, &connection).await.unwrap();
        assert_eq!(
            store.connection(id).await.unwrap(),
            Some(connection.clone())
        );
        connections.push((id, connection));
    }
    let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
    let texts = || async {
        sqlx::query_scalar::<_, String>("SELECT connected_at FROM org_credentials ORDER BY org_id")
            .fetch_all(&pool)
            .await
            .unwrap()
    };
    let fixed: Vec<&str> = cases.iter().map(|(_, _, text)| *text).collect();
    assert_eq!(texts().await, fixed);

    // A database from before 0014 holds the trimmed form (or an offset); the migration makes
    // it fixed-width UTC.
    for (trimmed, (id, _)) in [
        "2026-11-01T10:00:00Z",
        "2026-11-01T10:00:00.12Z",
        // Written with an offset by an older build: converted to UTC.
        "2026-11-01T05:00:00.5-05:00",
        "2026-11-01T10:00:00.123456789Z",
    ]
    .iter()
    .zip(&connections)
    {
        sqlx::query("UPDATE org_credentials SET connected_at = ? WHERE org_id = ?")
            .bind(*trimmed)
            .bind(id.0)
            .execute(&pool)
            .await
            .unwrap();
    }
    let migration = std::fs::read_to_string(format!(
        "{}/migrations/sqlite/0014_fixed_width_times.sql",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    sqlx::raw_sql(&migration).execute(&pool).await.unwrap();
    assert_eq!(texts().await, fixed);
    for (id, connection) in &connections {
        assert_eq!(
            store.connection(*id).await.unwrap().as_ref(),
            Some(connection)
        );
    }
}

/// Times compare as times on both backends, also within one second: a bound of 10:00:00 is
/// before 10:00:00.5, and 10:00:00.12 before 10:00:00.123 (as trimmed text neither was).
#[tokio::test]
async fn times_within_one_second_compare_as_times() {
    use provost::store::{OAuthState, StateLimits};
    on_each_backend(|store| async move {
        let state = |created_at: &str| OAuthState {
            org_name: "production".to_owned(),
            code_verifier_sealed: "v1:verifier".to_owned(),
            redirect_uri: "http://127.0.0.1:8080/api/integrations/callback/salesforce".to_owned(),
            created_at: parse_rfc3339(created_at).unwrap(),
            started_by: "ops-admin".to_owned(),
            replace_confirmed: false,
        };
        let limits = |open_since: &str| StateLimits {
            forget_before: parse_rfc3339("2026-11-01T09:00:00Z").unwrap(),
            open_since: parse_rfc3339(open_since).unwrap(),
            most_open: 1,
        };
        // Half a second after the bound: under way, so a second start is refused.
        let first = state("2026-11-01T10:00:00.5Z");
        let bound = limits("2026-11-01T10:00:00Z");
        assert!(store.insert_oauth_state("a", &first, bound).await.unwrap());
        assert!(
            !store.insert_oauth_state("b", &first, bound).await.unwrap(),
            "a state made at 10:00:00.5 is open since 10:00:00"
        );
        // Before the bound by 3 ms: not under way, so another start is accepted.
        let bound = limits("2026-11-01T10:00:00.503Z");
        assert!(
            store.insert_oauth_state("c", &first, bound).await.unwrap(),
            "a state made at 10:00:00.5 is not open since 10:00:00.503"
        );
    })
    .await;
}

/// The console's sessions, links and paged reads behave the same on both databases: a session
/// lives until idle, past its end or ended; a link works once and not after it expires; the
/// catalog counts holders and searches `%` and `_` as text; holders page by user id; the
/// audit log filters newest first.
#[tokio::test]
async fn console_sessions_links_and_pages() {
    use provost::store::console::{AuditFilter, ConsoleSession};
    on_each_backend(|store| async move {
        let org = store.ensure_org("acme").await.unwrap();
        let now = chrono::Utc::now();
        let minutes = chrono::TimeDelta::minutes;
        let session = ConsoleSession {
            org: Some("acme".to_owned()),
            user_id: Some("005000000000001AAA".to_owned()),
            username: "jane@acme.com".to_owned(),
            display_name: "Jane".to_owned(),
            via: "salesforce".to_owned(),
            csrf_token: "csrf".to_owned(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + minutes(60),
        };
        store.insert_session("live", &session).await.unwrap();
        let touched = store
            .touch_session("live", now + minutes(10), now - minutes(20))
            .await
            .unwrap()
            .expect("a live session is found");
        assert_eq!(touched.username, "jane@acme.com");
        assert_eq!(touched.org.as_deref(), Some("acme"));
        assert!(
            store
                .touch_session("live", now + minutes(50), now + minutes(15))
                .await
                .unwrap()
                .is_none(),
            "idle since before the last use: ended"
        );
        assert!(
            store
                .touch_session("live", now + minutes(61), now)
                .await
                .unwrap()
                .is_none(),
            "past its absolute end"
        );
        assert!(store
            .touch_session("nope", now, now - minutes(30))
            .await
            .unwrap()
            .is_none());
        assert!(store.end_session("live", now).await.unwrap());
        assert!(!store.end_session("live", now).await.unwrap(), "ended once");
        assert!(store
            .touch_session("live", now + minutes(1), now - minutes(30))
            .await
            .unwrap()
            .is_none());

        store
            .insert_link("link", "first-admin", now, now + minutes(15))
            .await
            .unwrap();
        store
            .insert_link("old", "late", now - minutes(30), now - minutes(15))
            .await
            .unwrap();
        assert!(
            store.use_link("old", now).await.unwrap().is_none(),
            "expired"
        );
        assert_eq!(
            store.use_link("link", now).await.unwrap().as_deref(),
            Some("first-admin")
        );
        assert!(
            store.use_link("link", now).await.unwrap().is_none(),
            "used once"
        );

        let mut set = entitlement("0PS000000000001AAA", EntitlementKind::PermissionSet, true);
        set.label = "Sales 100% _Ops".to_owned();
        let other = entitlement("0PS000000000002AAA", EntitlementKind::PermissionSet, true);
        let profile = entitlement("00e000000000001AAA", EntitlementKind::Profile, false);
        store
            .upsert_entitlements(org.id, &[set.clone(), other.clone(), profile.clone()])
            .await
            .unwrap();
        let accounts: Vec<Account> = (1..=5)
            .map(|i| account(&format!("00500000000000{i}AAA"), &format!("u{i}@acme.com")))
            .collect();
        store.upsert_accounts(org.id, &accounts).await.unwrap();
        let grants: Vec<Grant> = accounts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                grant(
                    &format!("0Pa00000000000{i}AAA"),
                    &a.id,
                    &set.id,
                    GrantSource::Direct,
                )
            })
            .chain([
                grant(
                    "0Pa000000000009AAA",
                    &accounts[0].id,
                    &other.id,
                    GrantSource::Direct,
                ),
                // The second user holds the set a second way, through a group.
                grant(
                    "0Pa00000000000gAAA",
                    &accounts[1].id,
                    &set.id,
                    GrantSource::Group {
                        group_id: "0PG000000000001AAA".to_owned(),
                    },
                ),
            ])
            .collect();
        store.upsert_grants(org.id, &grants).await.unwrap();

        let (all, total) = store.catalog(org.id, None, None, 0, 50).await.unwrap();
        assert_eq!(total, 3);
        let holders: Vec<(String, i64)> = all
            .iter()
            .map(|e| (e.entitlement.id.clone(), e.holders))
            .collect();
        assert!(
            holders.contains(&(set.id.clone(), 5)),
            "people, not grants: {holders:?}"
        );
        assert!(holders.contains(&(other.id.clone(), 1)));
        assert_eq!(
            all[0].entitlement.kind,
            EntitlementKind::PermissionSet,
            "ordered by kind"
        );
        for (search, found) in [
            ("100%", 1),
            ("% _o", 1),
            ("1_0", 0),
            ("%", 1),
            ("SALES", 1),
            ("zzz", 0),
            ("label", 2),
            ("api_", 3),
        ] {
            let (_, total) = store
                .catalog(org.id, None, Some(search), 0, 50)
                .await
                .unwrap();
            assert_eq!(total, found, "search `{search}`");
        }
        let (profiles, total) = store
            .catalog(org.id, Some(EntitlementKind::Profile), None, 0, 50)
            .await
            .unwrap();
        assert_eq!((profiles.len(), total), (1, 1));
        let (second, total) = store.catalog(org.id, None, None, 1, 1).await.unwrap();
        assert_eq!((second.len(), total), (1, 3), "offset and limit page it");

        // A page ending between a user's two grants of the set goes on with the second.
        let (first, total) = store.holders_page(org.id, &set.id, None, 2).await.unwrap();
        assert_eq!(total, 5, "five people hold it, one of them twice");
        assert_eq!(
            first
                .iter()
                .map(|h| h.account.id.as_str())
                .collect::<Vec<_>>(),
            [accounts[0].id.as_str(), accounts[1].id.as_str()]
        );
        let (next, _) = store
            .holders_page(
                org.id,
                &set.id,
                Some((&first[1].account.id, &first[1].grant_id)),
                10,
            )
            .await
            .unwrap();
        assert_eq!(next.len(), 4, "the rest after the cursor: {next:?}");
        assert_eq!(
            next[0].account.id, accounts[1].id,
            "the same user's second grant"
        );
        assert_eq!(next[0].source, "group:0PG000000000001AAA");
        let mut seen: Vec<&str> = first
            .iter()
            .chain(&next)
            .map(|h| h.grant_id.as_str())
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 6, "every grant once");

        store
            .append_audit(&[
                provost::audit::AuditEvent {
                    actor: "jane@acme.com".to_owned(),
                    org: Some("acme".to_owned()),
                    request_id: Some(7),
                    event: "request_approved".to_owned(),
                    data: json!({}),
                },
                provost::audit::AuditEvent {
                    actor: "bob@acme.com".to_owned(),
                    org: Some("acme".to_owned()),
                    request_id: None,
                    event: "console_signed_in".to_owned(),
                    data: json!({}),
                },
            ])
            .await
            .unwrap();
        let filter = |actor: Option<&str>, event: Option<&str>, request: Option<i64>| AuditFilter {
            org: None,
            actor: actor.map(str::to_owned),
            event: event.map(str::to_owned),
            request_id: request,
            before: None,
            limit: 10,
        };
        let newest = store.audit_page(&filter(None, None, None)).await.unwrap();
        assert!(newest.len() >= 2);
        assert!(
            newest.windows(2).all(|w| w[0].seq > w[1].seq),
            "newest first"
        );
        let janes = store
            .audit_page(&filter(Some("jane@acme.com"), None, None))
            .await
            .unwrap();
        assert_eq!(janes.len(), 1);
        assert_eq!(janes[0].request_id, Some(7));
        assert_eq!(
            store
                .audit_page(&filter(None, Some("console_signed_in"), None))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store
                .audit_page(&filter(None, None, Some(7)))
                .await
                .unwrap()
                .len(),
            1
        );
        let before = store
            .audit_page(&AuditFilter {
                before: Some(newest[0].seq),
                ..filter(None, None, None)
            })
            .await
            .unwrap();
        assert_eq!(
            before[0].seq, newest[1].seq,
            "the next page starts after the cursor"
        );
        let of_org = |org: &str| AuditFilter {
            org: Some(org.to_owned()),
            ..filter(None, None, None)
        };
        assert_eq!(store.audit_page(&of_org("acme")).await.unwrap().len(), 2);
        assert!(
            store
                .audit_page(&of_org("globex"))
                .await
                .unwrap()
                .is_empty(),
            "another org's view"
        );
        assert_eq!(
            store
                .open_review_items(org.id, Some("jane@acme.com"))
                .await
                .unwrap(),
            0
        );
        assert_eq!(store.open_review_items(org.id, None).await.unwrap(), 0);
        // Ended or expired sessions and used or expired links are forgotten a day on: their ids
        // may be stored again (they are primary keys), and nothing else went.
        assert!(
            store.insert_session("live", &session).await.is_err(),
            "still kept"
        );
        store.insert_session("other", &session).await.unwrap();
        store.purge_console(now + minutes(30)).await.unwrap();
        store.insert_session("live", &session).await.unwrap();
        store
            .insert_link("link", "again", now, now + minutes(15))
            .await
            .unwrap();
        assert!(
            store
                .touch_session("other", now + minutes(1), now - minutes(30))
                .await
                .unwrap()
                .is_some(),
            "a live session is not purged"
        );
    })
    .await;
}

const HOLDER: &str = "test-holder";

fn lock_ttl() -> chrono::TimeDelta {
    chrono::TimeDelta::seconds(60)
}

/// Org `name`, locked by [`HOLDER`], and a full sync run of its users.
async fn users_run(
    store: &std::sync::Arc<dyn provost::store::Store>,
    name: &str,
) -> (provost::store::OrgRecord, provost::store::sync::SyncRun) {
    let org = store.ensure_org(name).await.unwrap();
    store
        .acquire_sync_lock(org.id, HOLDER, lock_ttl())
        .await
        .unwrap();
    let run = store
        .create_sync_run(
            org.id,
            provost::store::sync::SyncMode::Full,
            "test",
            &[("users", None)],
        )
        .await
        .unwrap();
    (org, run)
}

/// The creation of `row` (an account, entitlement or grant of id `id`), staged as a sync of
/// users stages it.
fn staged_creation(
    entity: provost::store::sync::Entity,
    id: &str,
    row: &impl serde::Serialize,
) -> provost::store::sync::StagedChange {
    let after = serde_json::to_string(row).unwrap();
    provost::store::sync::StagedChange {
        resource: "users".to_owned(),
        entity,
        object_id: id.to_owned(),
        op: provost::store::sync::ChangeOp::Created,
        fields: None,
        before: None,
        after: Some(serde_json::value::RawValue::from_string(after).unwrap()),
        digest: 1,
    }
}

/// A page staged with text that COPY's format escapes (backslashes, tabs, newlines, quotes,
/// non-ASCII) and a change with a before-value and changed fields comes back, and is applied
/// at the commit, exactly as it was sent, on both databases.
#[tokio::test]
async fn staged_changes_keep_every_character_through_the_commit() {
    use provost::store::sync::{ChangeOp, ChangeQuery, Entity, StagedChange};
    use serde_json::value::RawValue;
    on_each_backend(|store| async move {
        let (org, run) = users_run(&store, "staging").await;
        let mut tricky = account("005T0000000001AAA", "back\\slash\ttab\nline@x.com");
        tricky.display_name = "Zoë \"Q\" \\N \u{1F600}\r".to_owned();
        tricky
            .attributes
            .insert("Note".to_owned(), json!("a\tb\\c\nd"));
        let after = |a: &Account| RawValue::from_string(serde_json::to_string(a).unwrap()).unwrap();
        let plain = account("005T0000000002AAA", "plain@x.com");
        let changes = vec![
            StagedChange {
                resource: "users".to_owned(),
                entity: Entity::Account,
                object_id: tricky.id.clone(),
                op: ChangeOp::Created,
                fields: None,
                before: None,
                after: Some(after(&tricky)),
                digest: 7,
            },
            StagedChange {
                resource: "users".to_owned(),
                entity: Entity::Account,
                object_id: plain.id.clone(),
                op: ChangeOp::Created,
                fields: Some(vec!["display\tname".to_owned(), "x\\y".to_owned()]),
                before: Some(json!({ "was": "tab\there\\" })),
                after: Some(after(&plain)),
                digest: -9_000_000_000_000,
            },
        ];
        let mut state = store.sync_resources(run.id).await.unwrap().remove(0);
        state.done = true;
        state.pages = 1;
        state.records = 2;
        store
            .stage_page(&run, &state, &changes, None)
            .await
            .unwrap();
        let mut done = run.clone();
        done.status = provost::store::sync::RunStatus::Succeeded;
        assert!(store
            .commit_sync_run(&done, HOLDER, lock_ttl())
            .await
            .unwrap());
        let stored = store
            .get_account(org.id, &tricky.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored, tricky);
        let history = store
            .list_changes(
                org.id,
                &ChangeQuery {
                    run: Some(run.id),
                    limit: 10,
                    ..ChangeQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].object_id, tricky.id);
        assert_eq!(
            history[0].after,
            Some(serde_json::to_value(&tricky).unwrap())
        );
        assert_eq!(history[0].before, None);
        assert_eq!(
            history[1].fields,
            Some(vec!["display\tname".to_owned(), "x\\y".to_owned()])
        );
        assert_eq!(history[1].before, Some(json!({ "was": "tab\there\\" })));
    })
    .await;
}

/// Pages staged side by side (PostgreSQL's writers) move the checkpoint in their order: a page
/// staged after one still being written waits for it before its checkpoint and commit, and a
/// page after one that was not staged is not staged either. On SQLite, whose one writer takes
/// the pages one at a time, the same holds.
#[tokio::test]
async fn a_page_staged_beside_the_one_before_commits_after_it_and_not_without_it() {
    use provost::store::sync::Entity;
    on_each_backend(|store| async move {
        let (_, run) = users_run(&store, "in-turn").await;
        let page = |id: &str| {
            let row = account(id, &format!("{id}@x.com"));
            vec![staged_creation(Entity::Account, &row.id, &row)]
        };
        let state = store.sync_resources(run.id).await.unwrap().remove(0);
        let checkpoint = |pages: i64| {
            let mut state = state.clone();
            state.pages = pages;
            state.records = pages;
            state
        };
        let pages_staged = || {
            let store = store.clone();
            async move { store.sync_resources(run.id).await.unwrap()[0].pages }
        };

        // The second page is handed over while the first is not staged yet: it waits.
        let (first_staged, after_first) = tokio::sync::oneshot::channel();
        let second = tokio::spawn({
            let (store, run, checkpoint) = (store.clone(), run.clone(), checkpoint(2));
            async move {
                store
                    .stage_page(
                        &run,
                        &checkpoint,
                        &page("005T0000000002AAA"),
                        Some(after_first),
                    )
                    .await
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!second.is_finished(), "the second page waits for the first");
        assert_eq!(
            pages_staged().await,
            0,
            "no checkpoint past a page not staged"
        );
        assert!(
            store
                .staged_keys(run.id, Entity::Account)
                .await
                .unwrap()
                .is_empty(),
            "nothing of the waiting page is staged yet"
        );
        store
            .stage_page(&run, &checkpoint(1), &page("005T0000000001AAA"), None)
            .await
            .unwrap();
        assert_eq!(pages_staged().await, 1);
        first_staged.send(()).unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(pages_staged().await, 2);

        // A page after one that was not staged fails, and nothing of it is kept.
        let (failed, after_failed) = tokio::sync::oneshot::channel::<()>();
        drop(failed);
        let third = store
            .stage_page(
                &run,
                &checkpoint(3),
                &page("005T0000000003AAA"),
                Some(after_failed),
            )
            .await;
        assert!(
            matches!(third, Err(provost::store::StoreError::OutOfTurn)),
            "{third:?}"
        );
        assert_eq!(pages_staged().await, 2);
        let mut staged: Vec<String> = store
            .staged_keys(run.id, Entity::Account)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        staged.sort();
        assert_eq!(staged, ["005T0000000001AAA", "005T0000000002AAA"]);
    })
    .await;
}

/// Grant changes written without the user they concern (by a server of a version before
/// migration 0023, still running beside a newer one) get it at the next start, from the row
/// they recorded; a change of another entity keeps none.
#[tokio::test]
async fn grant_changes_an_older_server_wrote_get_their_user_at_the_next_start() {
    use sqlx::Connection;
    for db in crate::helpers::TestDatabase::all().await {
        let store = db.store().await;
        let (org, run) = users_run(&store, "older-server").await;
        let rows = [
            ("grant", Some(r#"{"id":"g1","account_id":"005A"}"#), None),
            ("grant", None, Some(r#"{"id":"g2","account_id":"005B"}"#)),
            ("account", Some(r#"{"id":"005C"}"#), None),
        ];
        let insert = match store.backend() {
            provost::store::Backend::Sqlite => {
                "INSERT INTO changes (org_id, run_id, resource, entity, object_id, op, after, \
                 before, observed_at) VALUES ($1, $2, 'users', $3, 'x', 'created', $4, $5, \
                 '2026-12-05T10:00:00.000000000Z') RETURNING id"
            }
            provost::store::Backend::Postgres => {
                "INSERT INTO changes (org_id, run_id, resource, entity, object_id, op, after, \
                 before, observed_at) VALUES ($1, $2, 'users', $3, 'x', 'created', $4::jsonb, \
                 $5::jsonb, now()) RETURNING id"
            }
        };
        let select = "SELECT account_id FROM changes WHERE id = $1";
        let mut ids = Vec::new();
        let mut found = Vec::new();
        macro_rules! raw {
            ($connection:ty) => {{
                let mut raw = <$connection>::connect(&db.url).await.unwrap();
                for (entity, after, before) in rows {
                    let (id,): (i64,) = sqlx::query_as(insert)
                        .bind(org.id.0)
                        .bind(run.id.0)
                        .bind(entity)
                        .bind(after)
                        .bind(before)
                        .fetch_one(&mut raw)
                        .await
                        .unwrap();
                    ids.push(id);
                }
                let (nulls,): (i64,) =
                    sqlx::query_as("SELECT COUNT(*) FROM changes WHERE account_id IS NULL")
                        .fetch_one(&mut raw)
                        .await
                        .unwrap();
                assert_eq!(
                    nulls, 3,
                    "written without the column, as an older server does"
                );
                store.migrate().await.unwrap();
                for id in &ids {
                    let (account,): (Option<String>,) = sqlx::query_as(select)
                        .bind(id)
                        .fetch_one(&mut raw)
                        .await
                        .unwrap();
                    found.push(account);
                }
            }};
        }
        match store.backend() {
            provost::store::Backend::Sqlite => raw!(sqlx::SqliteConnection),
            provost::store::Backend::Postgres => raw!(sqlx::PgConnection),
        }
        assert_eq!(
            found,
            [Some("005A".to_owned()), Some("005B".to_owned()), None],
            "{}",
            store.backend().name()
        );
        store.close().await;
        db.drop_database().await;
    }
}

/// A run an older version staged (grant changes without `account_id`) and this one commits
/// still marks the users of its grant changes changed (SCIM's meta.lastModified), reading the
/// user from the row the change recorded.
#[tokio::test]
async fn a_resumed_run_of_an_older_version_marks_the_users_of_its_grant_changes() {
    use provost::store::sync::{Entity, RunStatus, SyncMode};
    use sqlx::Connection;
    for db in crate::helpers::TestDatabase::all().await {
        let store = db.store().await;
        let (org, run) = users_run(&store, "resumed").await;
        let user = account("005R0000000001AAA", "resumed@x.com");
        let created = staged_creation(Entity::Account, &user.id, &user);
        let mut state = store.sync_resources(run.id).await.unwrap().remove(0);
        state.done = true;
        store
            .stage_page(&run, &state, &[created], None)
            .await
            .unwrap();
        let mut done = run.clone();
        done.status = RunStatus::Succeeded;
        assert!(store
            .commit_sync_run(&done, HOLDER, lock_ttl())
            .await
            .unwrap());
        // The next run, staged by an older version: a grant's removal without the column.
        let resumed = store
            .create_sync_run(org.id, SyncMode::Full, "test", &[("users", None)])
            .await
            .unwrap();
        let before = format!(r#"{{"id":"0PaR1","account_id":"{}"}}"#, user.id);
        let (insert, marked) = match store.backend() {
            provost::store::Backend::Sqlite => (
                "INSERT INTO changes (org_id, run_id, resource, entity, object_id, op, before, \
                 observed_at) VALUES ($1, $2, 'users', 'grant', '0PaR1', 'removed', $3, \
                 '2026-12-05T10:00:00.000000000Z')",
                "SELECT COUNT(*) FROM accounts a JOIN sync_runs r ON r.id = $2 \
                 WHERE a.org_id = $1 AND a.id = $3 AND a.changed_at = r.finished_at",
            ),
            provost::store::Backend::Postgres => (
                "INSERT INTO changes (org_id, run_id, resource, entity, object_id, op, before, \
                 observed_at) VALUES ($1, $2, 'users', 'grant', '0PaR1', 'removed', $3::jsonb, \
                 now())",
                "SELECT COUNT(*) FROM accounts a JOIN sync_runs r ON r.id = $2 \
                 WHERE a.org_id = $1 AND a.id = $3 AND a.changed_at = r.finished_at",
            ),
        };
        macro_rules! raw {
            ($connection:ty, $step:expr) => {{
                let mut raw = <$connection>::connect(&db.url).await.unwrap();
                match $step {
                    0 => {
                        sqlx::query(insert)
                            .bind(org.id.0)
                            .bind(resumed.id.0)
                            .bind(&before)
                            .execute(&mut raw)
                            .await
                            .unwrap();
                        0
                    }
                    _ => {
                        let (n,): (i64,) = sqlx::query_as(marked)
                            .bind(org.id.0)
                            .bind(resumed.id.0)
                            .bind(&user.id)
                            .fetch_one(&mut raw)
                            .await
                            .unwrap();
                        n
                    }
                }
            }};
        }
        match store.backend() {
            provost::store::Backend::Sqlite => raw!(sqlx::SqliteConnection, 0),
            provost::store::Backend::Postgres => raw!(sqlx::PgConnection, 0),
        };
        let mut done = resumed.clone();
        done.status = RunStatus::Succeeded;
        assert!(store
            .commit_sync_run(&done, HOLDER, lock_ttl())
            .await
            .unwrap());
        let marked = match store.backend() {
            provost::store::Backend::Sqlite => raw!(sqlx::SqliteConnection, 1),
            provost::store::Backend::Postgres => raw!(sqlx::PgConnection, 1),
        };
        assert_eq!(
            marked,
            1,
            "{}: the user changed at the commit",
            store.backend().name()
        );
        store.close().await;
        db.drop_database().await;
    }
}

/// A first load whose grant names a user or a permission set it did not stage fails at the
/// commit as a grant checked on its own would (SQLite checks a first load's references at once,
/// once its rows are in), applies nothing, and leaves every connection of the store checking
/// each row it writes.
#[tokio::test]
async fn a_first_load_whose_grant_refers_to_nothing_staged_commits_nothing() {
    use provost::store::sync::{Entity, RunStatus};
    on_each_backend(|store| async move {
        let user = account("005F0000000001AAA", "first@x.com");
        let set = entitlement("0PSF000000000001", EntitlementKind::PermissionSet, true);
        for (org_name, holder, held) in [
            ("no-user", "005F0000000009AAA", set.id.as_str()),
            ("no-set", user.id.as_str(), "0PSF000000000009"),
        ] {
            let (org, run) = users_run(&store, org_name).await;
            let dangling = grant("0PaF00000000001", holder, held, GrantSource::Direct);
            let fine = grant("0PaF00000000002", &user.id, &set.id, GrantSource::Direct);
            let changes = [
                staged_creation(Entity::Account, &user.id, &user),
                staged_creation(Entity::Entitlement, &set.id, &set),
                staged_creation(Entity::Grant, &fine.id, &fine),
                staged_creation(Entity::Grant, &dangling.id, &dangling),
            ];
            let mut state = store.sync_resources(run.id).await.unwrap().remove(0);
            state.done = true;
            store
                .stage_page(&run, &state, &changes, None)
                .await
                .unwrap();
            let mut done = run.clone();
            done.status = RunStatus::Succeeded;
            let err = store
                .commit_sync_run(&done, HOLDER, lock_ttl())
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::MissingReference { .. }),
                "{org_name}: {err}"
            );
            assert_eq!(
                store.get_account(org.id, &user.id).await.unwrap(),
                None,
                "{org_name}: nothing applied"
            );
            assert!(store
                .list_entitlements(org.id, None, Page::first(10))
                .await
                .unwrap()
                .is_empty());
            assert_eq!(
                store.sync_run(run.id).await.unwrap().unwrap().status,
                RunStatus::Running,
                "{org_name}: the run is not committed"
            );
        }
        // Every connection the pool holds still checks each row: as many writes at once as the
        // test store's pool has connections (4, `TestDatabase::config`), each refused.
        let org = store.ensure_org("no-user").await.unwrap().id;
        store
            .upsert_accounts(org, std::slice::from_ref(&user))
            .await
            .unwrap();
        let writes = (0..4).map(|n| {
            let store = store.clone();
            let dangling = grant(
                &format!("0PaF0000000010{n}"),
                &user.id,
                "0PSF000000000009",
                GrantSource::Direct,
            );
            async move { store.upsert_grants(org, &[dangling]).await }
        });
        for refused in futures_util::future::join_all(writes).await {
            assert!(
                matches!(refused, Err(StoreError::MissingReference { .. })),
                "{refused:?}"
            );
        }
    })
    .await;
}
