-- The web console: its signed-in sessions and one-time sign-in links for the first admin. Every secret is kept as its SHA-256 only.
CREATE TABLE console_sessions (
    id_hash       TEXT    PRIMARY KEY,
    -- The org whose Salesforce user signed in; NULL for a one-time link's session.
    org_name      TEXT,
    user_id       TEXT,
    -- The actor in the audit log: the Salesforce username, or `link:NAME`.
    username      TEXT    NOT NULL,
    display_name  TEXT    NOT NULL,
    via           TEXT    NOT NULL CHECK (via IN ('salesforce', 'link')),
    csrf_token    TEXT    NOT NULL,
    created_at    TIMESTAMPTZ    NOT NULL,
    last_seen_at  TIMESTAMPTZ    NOT NULL,
    expires_at    TIMESTAMPTZ    NOT NULL,
    ended_at      TIMESTAMPTZ
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);

CREATE TABLE console_links (
    token_hash  TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);

-- An entitlement's holders in user order, a page at a time (the console's holder lists):
-- the index the holder lookups used, with the user added.
DROP INDEX grants_by_entitlement;
CREATE INDEX grants_by_entitlement ON grants (org_id, entitlement_id, account_id);

-- Users in userName order a page at a time (the console's user list, SCIM's sortBy=userName),
-- as SQLite orders them: byte order (`COLLATE "C"`), which the lookup index on lower(username),
-- in the database's collation, cannot give; the id in the index too, so a page deep in the
-- list is read from the index alone.
CREATE INDEX accounts_by_username_order ON accounts (org_id, (lower(username) COLLATE "C"), id);
