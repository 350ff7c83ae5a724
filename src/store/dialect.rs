//! Where the two databases' SQL differs: each difference is a method of [`Backend`], its text
//! made of the code's constants, never of input.

use super::Backend;

/// An account's grants (`a`), each with its entitlement's kind and label, as SQLite gathers
/// them into a JSON array.
const SQLITE_GRANTS_JSON: &str = "(SELECT json_group_array(json_array(g.entitlement_id, \
    e.kind, e.label, g.source)) FROM grants g JOIN entitlements e ON e.org_id = g.org_id \
    AND e.id = g.entitlement_id WHERE g.org_id = a.org_id AND g.account_id = a.id)";

/// The same, as PostgreSQL gathers them.
const POSTGRES_GRANTS_JSON: &str = "(SELECT COALESCE(json_agg(json_build_array(\
    g.entitlement_id, e.kind, e.label, g.source)), '[]')::text FROM grants g JOIN entitlements e \
    ON e.org_id = g.org_id AND e.id = g.entitlement_id WHERE g.org_id = a.org_id \
    AND g.account_id = a.id)";

impl Backend {
    /// An account's grants as a JSON array of `[entitlement_id, kind, label, source]` .
    pub(super) fn grants_json(self) -> &'static str {
        match self {
            Backend::Sqlite => SQLITE_GRANTS_JSON,
            Backend::Postgres => POSTGRES_GRANTS_JSON,
        }
    }

    /// The clause a claim of requests ends with: PostgreSQL's replicas skip rows another
    /// holds; SQLite has one writer at a time.
    pub(super) fn claim_lock(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// The entitlement a grant's row (`side`: `c.after` or `c.before`) names.
    fn entitlement_of(self, side: &str) -> String {
        match self {
            Backend::Sqlite => format!("json_extract({side}, '$.entitlement_id')"),
            Backend::Postgres => format!("({side} ->> 'entitlement_id')"),
        }
    }
}

/// A statement of a commit's apply: see [`Backend::apply_statements`].
pub(super) struct Apply {
    /// The entity whose staged rows it inserts; `None` for those that mark what changed.
    pub entity: Option<super::sync::Entity>,
    /// The statement, without `on_conflict`.
    pub statement: String,
    /// What an insert ends with to update a row already stored: left off where a load dropped
    /// the table's primary key, which it needs.
    pub on_conflict: String,
    /// Whether `$2` is the commit's time.
    pub at_commit: bool,
}

impl Backend {
    /// The definitions of a table's indexes that can be dropped and built again: not those
    /// behind its primary key or a unique or exclusion constraint. `(name, CREATE INDEX
    /// statement)`; `$1` is the table. Their text comes from the database's own schema, which
    /// the migrations made.
    pub(super) fn secondary_indexes(self) -> &'static str {
        match self {
            Backend::Sqlite => {
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = $1 \
                 AND sql IS NOT NULL AND upper(sql) NOT LIKE 'CREATE UNIQUE%' ORDER BY name"
            }
            Backend::Postgres => {
                "SELECT c.relname::text, pg_get_indexdef(i.indexrelid) FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid \
                 JOIN pg_class t ON t.oid = i.indrelid \
                 JOIN pg_namespace n ON n.oid = t.relnamespace \
                 WHERE n.nspname = current_schema() AND t.relname = $1 \
                 AND NOT i.indisprimary AND NOT i.indisunique AND NOT i.indisexclusion \
                 ORDER BY c.relname"
            }
        }
    }

    /// The statement that takes `tables` for a load that drops and builds their indexes,
    /// failing at once if another transaction uses one (PostgreSQL); SQLite has one writer.
    /// The names are the code's constants.
    pub(super) fn lock_for_load(self, tables: &[&str]) -> Option<String> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some(format!(
                "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE NOWAIT",
                tables.join(", ")
            )),
        }
    }

    /// The foreign keys of table `$1` that refer to another model table, as `(name, the table
    /// it refers to, definition)`, which a load drops and adds again once its rows are in
    /// (PostgreSQL: checking a million rows' keys at once is a join; row by row, each locked
    /// the row it named). Dropping one takes the table it refers to as well, so that table is
    /// locked first, without waiting. SQLite cannot drop a foreign key; it checks each row
    /// against an index.
    pub(super) fn model_foreign_keys(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                "SELECT c.conname::text, r.relname::text, pg_get_constraintdef(c.oid) \
                 FROM pg_constraint c \
                 JOIN pg_class t ON t.oid = c.conrelid \
                 JOIN pg_class r ON r.oid = c.confrelid \
                 JOIN pg_namespace n ON n.oid = t.relnamespace \
                 WHERE c.contype = 'f' AND n.nspname = current_schema() AND t.relname = $1 \
                 AND r.relname IN ('accounts', 'entitlements') ORDER BY c.conname",
            ),
        }
    }

    /// The primary key of table `$1` as `(name, definition)`, when no foreign key refers to
    /// the table: a load into it drops the key and adds it again once its rows are in
    /// (PostgreSQL: a first load of `large` put its 609,478 grants in 1.7 s without the key
    /// and built it in 0.4 s, against 3.7 s with the key in place). SQLite cannot drop one.
    pub(super) fn unreferenced_primary_key(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                "SELECT c.conname::text, pg_get_constraintdef(c.oid) FROM pg_constraint c \
                 JOIN pg_class t ON t.oid = c.conrelid \
                 JOIN pg_namespace n ON n.oid = t.relnamespace \
                 WHERE c.contype = 'p' AND n.nspname = current_schema() AND t.relname = $1 \
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' \
                 AND f.confrelid = c.conrelid)",
            ),
        }
    }

    /// What a transaction that stages a page of a sync sets first: on PostgreSQL it does not
    /// wait for its write-ahead log to reach the disk. A crash may then lose the last pages
    /// staged, each whole with its checkpoint, and the run resumes before them; the commit
    /// that applies the run waits as every other transaction does.
    pub(super) fn staging_settings(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("SET LOCAL synchronous_commit = off"),
        }
    }

    /// `path` is a constant field path such as `source.type`; never input.
    pub(super) fn text(self, path: &str) -> String {
        match self {
            Backend::Sqlite => format!("json_extract(after, '$.{path}')"),
            Backend::Postgres => {
                let mut parts: Vec<&str> = path.split('.').collect();
                let last = parts.pop().expect("a path");
                let mut expr = "after".to_owned();
                for part in parts {
                    expr = format!("{expr}->'{part}'");
                }
                format!("({expr}->>'{last}')")
            }
        }
    }

    fn boolean(self, path: &str) -> String {
        match self {
            Backend::Sqlite => self.text(path),
            Backend::Postgres => format!("{}::boolean", self.text(path)),
        }
    }

    fn json(self, path: &str) -> String {
        match self {
            Backend::Sqlite => self.text(path),
            Backend::Postgres => format!("(after->'{path}')"),
        }
    }

    fn timestamp(self, path: &str) -> String {
        match self {
            Backend::Sqlite => self.text(path),
            Backend::Postgres => format!("{}::timestamptz", self.text(path)),
        }
    }

    /// The user a grant's change concerns, read from the row it recorded (after it, or before it
    /// for a removal): what `changes.account_id` holds.
    pub(super) fn account_in_change(self) -> &'static str {
        match self {
            Backend::Sqlite => "json_extract(COALESCE(after, before), '$.account_id')",
            Backend::Postgres => "(COALESCE(after, before) ->> 'account_id')",
        }
    }

    /// The statements that apply a run's staged creations and updates to the live tables,
    /// set-based inside the database: accounts, entitlements, grants, permissions, in that
    /// order; then the users whose grants changed are marked changed. `$1` is the run; `$2`,
    /// in the statements flagged `true`, the commit's time: a user changed when the change
    /// became visible (SCIM's meta.lastModified), not when its page was staged, or a client
    /// polling for changes since its last poll would miss what a long run staged before it.
    pub(super) fn apply_statements(self) -> [Apply; 6] {
        // PostgreSQL takes the rows in key order: each goes in beside the one before in the
        // primary key's index (a first load of `large`: 4.1 s for the grants in the order they
        // were staged, 3.7 s in this one, with their sort; 2.6 s and 2.0 s for the
        // permissions). SQLite's sort cost more than it saved. A run stages an object once,
        // so either order applies the same rows.
        let order = match self {
            Backend::Sqlite => "id",
            Backend::Postgres => "object_id, id",
        };
        let from = |entity: &str| {
            format!(
                " FROM changes WHERE run_id = $1 AND entity = '{entity}' AND op <> 'removed' \
                 ORDER BY {order}"
            )
        };
        let accounts = format!(
            "INSERT INTO accounts (org_id, id, username, email, first_name, last_name, \
             display_name, active, user_type, attributes, resource, digest, changed_at) \
             SELECT org_id, object_id, {}, {}, {}, {}, {}, {}, {}, {}, resource, digest, \
             $2{}",
            self.text("username"),
            self.text("email"),
            self.text("first_name"),
            self.text("last_name"),
            self.text("display_name"),
            self.boolean("active"),
            self.text("user_type"),
            self.json("attributes"),
            from("account"),
        );
        let accounts_conflict = "ON CONFLICT (org_id, id) DO UPDATE SET \
             username = excluded.username, email = excluded.email, \
             first_name = excluded.first_name, last_name = excluded.last_name, \
             display_name = excluded.display_name, active = excluded.active, \
             user_type = excluded.user_type, attributes = excluded.attributes, \
             resource = excluded.resource, digest = excluded.digest, \
             changed_at = excluded.changed_at";
        let entitlements = format!(
            "INSERT INTO entitlements (org_id, id, kind, api_name, label, description, \
             grantable, attributes, resource, digest, changed_at) \
             SELECT org_id, object_id, {}, {}, {}, {}, {}, {}, resource, digest, $2{}",
            self.text("kind"),
            self.text("api_name"),
            self.text("label"),
            self.text("description"),
            self.boolean("grantable"),
            self.json("attributes"),
            from("entitlement"),
        );
        let entitlements_conflict = "ON CONFLICT (org_id, id) DO UPDATE SET \
             kind = excluded.kind, api_name = excluded.api_name, label = excluded.label, \
             description = excluded.description, grantable = excluded.grantable, \
             attributes = excluded.attributes, resource = excluded.resource, \
             digest = excluded.digest, changed_at = excluded.changed_at";
        // The source as the `source` column encodes it (`direct`, `profile`, `group:0PG...`).
        let source = format!(
            "CASE {kind} WHEN 'group' THEN 'group:' || {group} ELSE {kind} END",
            kind = self.text("source.type"),
            group = self.text("source.group_id"),
        );
        // A grant's `since` and `request_id` are those of the change that created it or last
        // changed its entitlement (a user's profile and role keep their grant id). Its user is
        // the change's column (reading it from the row took SQLite 0.1 to 0.35 s of a first
        // load of `large`), or the row's for a change an older version staged.
        let grants = format!(
            "INSERT INTO grants (org_id, id, account_id, entitlement_id, source, expires_at, \
             attributes, resource, digest, since, request_id) \
             SELECT org_id, object_id, COALESCE(account_id, {}), {}, {source}, {}, {}, \
             resource, digest, observed_at, request_id{}",
            self.text("account_id"),
            self.text("entitlement_id"),
            self.timestamp("expires_at"),
            self.json("attributes"),
            from("grant"),
        );
        let grants_conflict = format!(
            "ON CONFLICT (org_id, id) DO UPDATE SET account_id = excluded.account_id, \
             entitlement_id = excluded.entitlement_id, source = excluded.source, \
             expires_at = excluded.expires_at, attributes = excluded.attributes, \
             resource = excluded.resource, digest = excluded.digest, {}",
            super::sync_queries::SINCE_ON_CONFLICT,
        );
        let permissions = format!(
            "INSERT INTO permissions (org_id, id, entitlement_id, kind, target, actions, \
             attributes, resource, digest) \
             SELECT org_id, object_id, {}, {}, {}, {}, {}, resource, digest{}",
            self.text("entitlement_id"),
            self.text("kind"),
            self.text("target"),
            self.json("actions"),
            self.json("attributes"),
            from("permission"),
        );
        let permissions_conflict = "ON CONFLICT (org_id, id) DO UPDATE SET \
             entitlement_id = excluded.entitlement_id, kind = excluded.kind, \
             target = excluded.target, actions = excluded.actions, \
             attributes = excluded.attributes, resource = excluded.resource, \
             digest = excluded.digest";
        // A user whose grants changed (added, changed or removed) changed too: SCIM's
        // meta.lastModified.
        // (A run an older version staged and this one resumed has grant changes without the
        // column: their user is read from the row they recorded.)
        let touched = format!(
            "UPDATE accounts SET changed_at = $2 \
             WHERE org_id = (SELECT org_id FROM sync_runs WHERE id = $1) \
             AND id IN (SELECT COALESCE(c.account_id, {}) FROM changes c WHERE c.run_id = $1 \
             AND c.entity = 'grant') AND (changed_at IS NULL OR changed_at < $2)",
            self.account_in_change(),
        );
        // And an entitlement whose holders changed (a SCIM Group's members), before and after
        // a grant moved.
        let holders_changed = format!(
            "UPDATE entitlements SET changed_at = $2 \
             WHERE org_id = (SELECT org_id FROM sync_runs WHERE id = $1) \
             AND id IN (SELECT {} FROM changes c WHERE c.run_id = $1 AND c.entity = 'grant' \
             AND c.after IS NOT NULL UNION SELECT {} FROM changes c WHERE c.run_id = $1 \
             AND c.entity = 'grant' AND c.before IS NOT NULL) \
             AND (changed_at IS NULL OR changed_at < $2)",
            self.entitlement_of("c.after"),
            self.entitlement_of("c.before"),
        );
        use super::sync::Entity;
        let insert = |entity, statement, on_conflict: &str, at_commit| Apply {
            entity: Some(entity),
            statement,
            on_conflict: format!(" {on_conflict}"),
            at_commit,
        };
        let mark = |statement| Apply {
            entity: None,
            statement,
            on_conflict: String::new(),
            at_commit: true,
        };
        [
            insert(Entity::Account, accounts, accounts_conflict, true),
            insert(
                Entity::Entitlement,
                entitlements,
                entitlements_conflict,
                true,
            ),
            insert(Entity::Grant, grants, &grants_conflict, false),
            insert(Entity::Permission, permissions, permissions_conflict, false),
            mark(touched),
            mark(holders_changed),
        ]
    }
}
