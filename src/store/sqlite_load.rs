//! A first load's references, checked at once (SQLite).
//!
//! SQLite checks a foreign key as each row goes in, and cannot drop one for a load as
//! PostgreSQL does: of the 1.9 s a first load of `large` took to put its 609,478 grants in, about
//! 0.5 s went on looking up each grant's user and entitlement. Into an org with nothing stored,
//! the commit runs instead on a connection whose checks are off, which is closed when the
//! transaction ends rather than handed back to the pool, and before it commits it checks at once
//! every reference the rows it wrote make: each user and entitlement is looked up once for all
//! their grants (0.2 s for `large`). A reference broken fails the commit as the row's own check
//! would have ([`StoreError::MissingReference`]), and nothing is applied.
//!
//! It does so only while the foreign keys of the tables a commit writes are those in
//! [`REFERENCES`], which it knows how to check; a schema with another one commits with the
//! checks on. (It compares the keys, not their `ON DELETE` actions: a first load deletes
//! nothing, as the org has nothing stored.)

use sqlx::SqlitePool;

use super::sql::{sql, Tx};
use super::{OrgId, StoreError};

/// A foreign key of a table a first load writes, and how the load's rows are checked against it.
struct Reference {
    /// The table and its columns, as `pragma_foreign_key_list` names them (`from`, comma-joined).
    table: &'static str,
    columns: &'static str,
    /// The table and columns it refers to.
    refers_to: &'static str,
    keys: &'static str,
    how: How,
    /// What the error names.
    what: &'static str,
}

/// How a first load's rows are checked against a [`Reference`].
#[derive(Clone, Copy, PartialEq)]
enum How {
    /// It refers to the org, looked up once for all of them (a commit writes only its org's).
    Org,
    /// Its columns are `org_id` and one more, whose distinct values are each looked up once.
    EachValueOnce,
    /// Not looked at: the rows' values were copied from columns whose own keys hold them, as
    /// the reference's comment says.
    HeldAtItsSource,
}

impl Reference {
    /// The query that says whether a row of org `$1` breaks it; `None` for
    /// [`How::HeldAtItsSource`]. Names are the constants above.
    fn broken(&self) -> Option<String> {
        match self.how {
            How::Org => Some("SELECT NOT EXISTS (SELECT 1 FROM orgs WHERE id = $1)".to_owned()),
            How::EachValueOnce => {
                let one_more = "each value once: `org_id` and one more column";
                let column = self.columns.strip_prefix("org_id,").expect(one_more);
                let key = self.keys.strip_prefix("org_id,").expect(one_more);
                Some(format!(
                    "SELECT EXISTS (SELECT 1 FROM \
                     (SELECT DISTINCT {column} FROM {table} WHERE org_id = $1) c \
                     WHERE NOT EXISTS (SELECT 1 FROM {refers_to} p \
                     WHERE p.org_id = $1 AND p.{key} = c.{column}))",
                    table = self.table,
                    refers_to = self.refers_to,
                ))
            }
            How::HeldAtItsSource => None,
        }
    }
}

/// Every foreign key of the tables a commit writes (the org's model, and its watermarks; the
/// run's own rows are updated, not their references).
const REFERENCES: &[Reference] = &[
    Reference {
        table: "accounts",
        columns: "org_id",
        refers_to: "orgs",
        keys: "id",
        how: How::Org,
        what: "a staged account",
    },
    Reference {
        table: "entitlements",
        columns: "org_id",
        refers_to: "orgs",
        keys: "id",
        how: How::Org,
        what: "a staged entitlement",
    },
    Reference {
        table: "grants",
        columns: "org_id,entitlement_id",
        refers_to: "entitlements",
        keys: "org_id,id",
        how: How::EachValueOnce,
        what: "a staged grant",
    },
    Reference {
        table: "grants",
        columns: "org_id,account_id",
        refers_to: "accounts",
        keys: "org_id,id",
        how: How::EachValueOnce,
        what: "a staged grant",
    },
    // A grant's request is its change's, copied by the apply; `changes.request_id` refers to
    // the same requests, checked as each change was written (and set to NULL if a request is
    // deleted), so the copy holds too.
    Reference {
        table: "grants",
        columns: "request_id",
        refers_to: "access_requests",
        keys: "id",
        how: How::HeldAtItsSource,
        what: "a staged grant",
    },
    Reference {
        table: "permissions",
        columns: "org_id,entitlement_id",
        refers_to: "entitlements",
        keys: "org_id,id",
        how: How::EachValueOnce,
        what: "a staged permission",
    },
    Reference {
        table: "sync_watermarks",
        columns: "org_id",
        refers_to: "orgs",
        keys: "id",
        how: How::Org,
        what: "a sync's watermark",
    },
];

/// The foreign keys of the tables `$1` (a JSON array of names) as `(table, table it refers to,
/// columns, keys)`, columns and keys comma-joined in order.
const FOREIGN_KEYS: &str = "SELECT m.name, f.\"table\", \
     group_concat(f.\"from\", ',' ORDER BY f.seq), \
     group_concat(COALESCE(f.\"to\", ''), ',' ORDER BY f.seq) \
     FROM sqlite_master m, pragma_foreign_key_list(m.name) f \
     WHERE m.type = 'table' AND m.name IN (SELECT value FROM json_each($1)) \
     GROUP BY m.name, f.id";

/// A transaction on a connection of `pool` that does not check foreign keys, for a first load
/// whose references [`check`] then checks; `None` when the schema has a foreign key
/// [`REFERENCES`] does not know. The connection is closed when the transaction ends (committed,
/// rolled back or dropped), so no other statement ever runs on it without the checks. It begins
/// `IMMEDIATE`: it waits for the write lock as the first write of any other transaction does.
pub(super) async fn begin_unchecked(pool: &SqlitePool) -> Result<Option<Tx>, StoreError> {
    let mut connection = pool.acquire().await?;
    connection.close_on_drop();
    let tables: Vec<&str> = REFERENCES.iter().map(|r| r.table).collect();
    let mut found: Vec<(String, String, String, String)> = sql(FOREIGN_KEYS)
        .bind(serde_json::to_string(&tables).expect("names serialise"))
        .fetch_all(&mut *connection)
        .await?;
    found.sort_unstable();
    let mut known: Vec<(String, String, String, String)> = REFERENCES
        .iter()
        .map(|r| {
            (
                r.table.to_owned(),
                r.refers_to.to_owned(),
                r.columns.to_owned(),
                r.keys.to_owned(),
            )
        })
        .collect();
    known.sort_unstable();
    if found != known {
        tracing::debug!(
            ?found,
            "foreign keys not known to the load's check; checked per row"
        );
        return Ok(None);
    }
    // Outside a transaction: inside one, SQLite ignores it.
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut *connection)
        .await?;
    // `Transaction::begin` is how sqlx's own `Pool::begin_with` makes its transaction; the
    // connection is moved in, and closed with it.
    let tx = sqlx::Transaction::begin(connection, Some("BEGIN IMMEDIATE".into())).await?;
    Ok(Some(Tx::Sqlite(tx)))
}

/// Whether every row the commit wrote into org `org` refers to what is stored, in `tx` from
/// [`begin_unchecked`]: [`StoreError::MissingReference`] for the first that does not.
pub(super) async fn check(tx: &mut Tx, org: OrgId) -> Result<(), StoreError> {
    let mut org_looked_up = false;
    for reference in REFERENCES {
        if reference.how == How::Org {
            if org_looked_up {
                continue;
            }
            org_looked_up = true;
        }
        let Some(broken) = reference.broken() else {
            continue;
        };
        let (broken,): (bool,) = sql(broken).bind(org.0).fetch_one(&mut *tx).await?;
        if broken {
            tracing::debug!(
                table = reference.table,
                refers_to = reference.refers_to,
                "a first load's row refers to nothing stored"
            );
            return Err(StoreError::MissingReference {
                what: reference.what,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On the schema the migrations make, a first load's commit runs without per-row checks,
    /// and [`check`] finds a row of each kind it looks at that refers to nothing; every other
    /// connection of the pool still checks each row.
    #[tokio::test]
    async fn the_migrated_schema_is_checked_at_once_and_only_there() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("load.db").display());
        let (pool, _copier) =
            super::super::sqlite::connect(&url, 2, std::time::Duration::from_secs(5))
                .await
                .unwrap();
        super::super::sqlite::MIGRATOR.run(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO orgs (id, name, created_at) \
             VALUES (1, 'load', '2026-12-05T00:00:00.000000000Z')",
        )
        .execute(&pool)
        .await
        .unwrap();
        let rows = [
            // (statement, what the check names)
            (
                "INSERT INTO grants (org_id, id, account_id, entitlement_id, source) \
                 VALUES (1, 'g1', 'nobody', 'e1', 'direct')",
                "a staged grant",
            ),
            (
                "INSERT INTO permissions (org_id, id, entitlement_id, kind, target) \
                 VALUES (1, 'p1', 'nothing', 'object', 'Account')",
                "a staged permission",
            ),
            (
                "INSERT INTO accounts (org_id, id, username, display_name, active) \
                 VALUES (2, 'a1', 'a@x.com', 'A', 1)",
                "a staged account",
            ),
        ];
        for (statement, named) in rows {
            let mut tx = begin_unchecked(&pool)
                .await
                .unwrap()
                .expect("the migrations' foreign keys are the ones known");
            let (on,): (i64,) = sql("PRAGMA foreign_keys").fetch_one(&mut tx).await.unwrap();
            assert_eq!(on, 0);
            sql(
                "INSERT INTO entitlements (org_id, id, kind, api_name, label, grantable) \
                 VALUES (1, 'e1', 'permission_set', 'E1', 'E1', 1)",
            )
            .execute(&mut tx)
            .await
            .unwrap();
            check(&mut tx, OrgId(1)).await.unwrap();
            sql(statement).execute(&mut tx).await.unwrap();
            let org = match named {
                "a staged account" => OrgId(2),
                _ => OrgId(1),
            };
            match check(&mut tx, org).await {
                Err(StoreError::MissingReference { what }) => assert_eq!(what, named),
                other => panic!("{statement}: {other:?}"),
            }
        }
        // Each unchecked connection was closed: both of the pool's, held at once, refuse a
        // grant of nobody.
        let mut held = vec![pool.acquire().await.unwrap(), pool.acquire().await.unwrap()];
        for connection in &mut held {
            let refused = sqlx::query(
                "INSERT INTO grants (org_id, id, account_id, entitlement_id, source) \
                 VALUES (1, 'g2', 'nobody', 'nothing', 'direct')",
            )
            .execute(&mut **connection)
            .await;
            assert!(refused.is_err(), "{refused:?}");
        }
    }
}
