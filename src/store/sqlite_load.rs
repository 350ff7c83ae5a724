//! A first load's references, checked at once (SQLite).
//!
//! SQLite checks a foreign key as each row goes in, and cannot drop one for a load as
//! PostgreSQL does: of the 2 s a first load of `large` took to put its 609,478 grants in, 0.75 s
//! went on looking up each grant's user and entitlement. Into an org with nothing stored, the
//! commit runs instead on a connection whose checks are off, which is closed when the
//! transaction ends rather than handed back to the pool, and before it commits it checks at
//! once every reference the rows it wrote make: each user and entitlement is looked up once for
//! all their grants (0.12 s). A reference broken fails the commit as the row's own check would
//! have ([`StoreError::MissingReference`]), and nothing is applied.
//!
//! It does so only while the foreign keys of the tables a commit writes are those in
//! [`REFERENCES`], which it knows how to check; a schema with another one commits with the
//! checks on.

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
    /// Whether a row the load wrote breaks it: `$1` is the org, `$2` (where it appears) the run.
    /// A commit writes only its own org's rows.
    broken: &'static str,
}

/// Every foreign key of the tables a commit writes (the org's model, and its watermarks; the
/// run's own rows are updated, not their references).
const REFERENCES: &[Reference] = &[
    Reference {
        table: "accounts",
        columns: "org_id",
        refers_to: "orgs",
        keys: "id",
        broken: ORG_MISSING,
    },
    Reference {
        table: "entitlements",
        columns: "org_id",
        refers_to: "orgs",
        keys: "id",
        broken: ORG_MISSING,
    },
    Reference {
        table: "grants",
        columns: "org_id,entitlement_id",
        refers_to: "entitlements",
        keys: "org_id,id",
        broken: "SELECT EXISTS (SELECT 1 FROM \
                 (SELECT DISTINCT entitlement_id FROM grants WHERE org_id = $1) g \
                 WHERE NOT EXISTS (SELECT 1 FROM entitlements e \
                 WHERE e.org_id = $1 AND e.id = g.entitlement_id))",
    },
    Reference {
        table: "grants",
        columns: "org_id,account_id",
        refers_to: "accounts",
        keys: "org_id,id",
        broken: "SELECT EXISTS (SELECT 1 FROM \
                 (SELECT DISTINCT account_id FROM grants WHERE org_id = $1) g \
                 WHERE NOT EXISTS (SELECT 1 FROM accounts a \
                 WHERE a.org_id = $1 AND a.id = g.account_id))",
    },
    // A grant's request is its change's (the apply copies it); a sync stages none, so this
    // looks at the run's changes that name one, through the index that holds only those.
    Reference {
        table: "grants",
        columns: "request_id",
        refers_to: "access_requests",
        keys: "id",
        broken: "SELECT EXISTS (SELECT 1 FROM changes INDEXED BY changes_by_request \
                 WHERE request_id IS NOT NULL AND run_id = $2 \
                 AND request_id NOT IN (SELECT id FROM access_requests))",
    },
    Reference {
        table: "permissions",
        columns: "org_id,entitlement_id",
        refers_to: "entitlements",
        keys: "org_id,id",
        broken: "SELECT EXISTS (SELECT 1 FROM \
                 (SELECT DISTINCT entitlement_id FROM permissions WHERE org_id = $1) p \
                 WHERE NOT EXISTS (SELECT 1 FROM entitlements e \
                 WHERE e.org_id = $1 AND e.id = p.entitlement_id))",
    },
    Reference {
        table: "sync_watermarks",
        columns: "org_id",
        refers_to: "orgs",
        keys: "id",
        broken: ORG_MISSING,
    },
];

const ORG_MISSING: &str = "SELECT NOT EXISTS (SELECT 1 FROM orgs WHERE id = $1)";

/// A transaction on a connection of `pool` that does not check foreign keys, for a first load
/// whose references [`check`] then checks; `None` when the schema has a foreign key
/// [`REFERENCES`] does not know. The connection is closed when the transaction ends (committed,
/// rolled back or dropped), so no other statement ever runs on it without the checks.
pub(super) async fn begin_unchecked(pool: &SqlitePool) -> Result<Option<Tx>, StoreError> {
    let mut connection = pool.acquire().await?;
    connection.close_on_drop();
    // Outside a transaction: inside one, SQLite ignores it.
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut *connection)
        .await?;
    // `Transaction::begin` is how sqlx's own `Pool::begin` makes its transaction; the
    // connection is moved in, and closed with it.
    let mut tx = Tx::Sqlite(sqlx::Transaction::begin(connection, None).await?);
    let tables: Vec<&str> = REFERENCES.iter().map(|r| r.table).collect();
    let mut found: Vec<(String, String, String, String)> = sql(
        "SELECT m.name, f.\"table\", group_concat(f.\"from\", ',' ORDER BY f.seq), \
         group_concat(COALESCE(f.\"to\", ''), ',' ORDER BY f.seq) \
         FROM sqlite_master m, pragma_foreign_key_list(m.name) f \
         WHERE m.type = 'table' AND m.name IN (SELECT value FROM json_each($1)) \
         GROUP BY m.name, f.id",
    )
    .bind(serde_json::to_string(&tables).expect("names serialise"))
    .fetch_all(&mut tx)
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
    Ok(Some(tx))
}

/// Whether every row the commit of `run` wrote into org `org` refers to what is stored, in
/// `tx` from [`begin_unchecked`]: [`StoreError::MissingReference`] for the first that does not.
pub(super) async fn check(tx: &mut Tx, org: OrgId, run: i64) -> Result<(), StoreError> {
    for reference in REFERENCES {
        let query = sql(reference.broken).bind(org.0);
        let query = match reference.broken.contains("$2") {
            true => query.bind(run),
            false => query,
        };
        let (broken,): (bool,) = query.fetch_one(&mut *tx).await?;
        if broken {
            tracing::debug!(
                table = reference.table,
                refers_to = reference.refers_to,
                "a first load's row refers to nothing stored"
            );
            return Err(StoreError::MissingReference {
                what: "a staged grant",
            });
        }
    }
    Ok(())
}
