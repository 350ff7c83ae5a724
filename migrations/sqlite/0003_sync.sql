-- Sync runs: each stored row remembers which resource read it and a digest of its content, so a
-- sync compares a page with what is stored by key range and digest; each run's changes are
-- staged in `changes` and become the history once the run commits.
ALTER TABLE accounts ADD COLUMN resource TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN digest INTEGER NOT NULL DEFAULT 0;
CREATE INDEX accounts_by_resource ON accounts (org_id, resource, id);
ALTER TABLE entitlements ADD COLUMN resource TEXT NOT NULL DEFAULT '';
ALTER TABLE entitlements ADD COLUMN digest INTEGER NOT NULL DEFAULT 0;
CREATE INDEX entitlements_by_resource ON entitlements (org_id, resource, id);
ALTER TABLE grants ADD COLUMN resource TEXT NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN digest INTEGER NOT NULL DEFAULT 0;
CREATE INDEX grants_by_resource ON grants (org_id, resource, id);

CREATE TABLE sync_runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id       INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    mode         TEXT    NOT NULL CHECK (mode IN ('full', 'incremental')),
    started_by   TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('running', 'paused', 'succeeded', 'failed')),
    pause_reason TEXT,
    started_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL,
    finished_at  TEXT,
    attempts     INTEGER NOT NULL DEFAULT 1,
    api_calls    INTEGER NOT NULL DEFAULT 0,
    api_used     INTEGER,
    api_limit    INTEGER,
    counts       TEXT    NOT NULL DEFAULT '{}',
    error        TEXT
);
CREATE INDEX sync_runs_by_org ON sync_runs (org_id, id);

CREATE TABLE sync_resources (
    run_id     INTEGER NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    resource   TEXT    NOT NULL,
    done       BOOLEAN NOT NULL DEFAULT FALSE,
    cursor     TEXT,
    last_key   TEXT,
    since      TEXT,
    watermark  TEXT,
    pages      INTEGER NOT NULL DEFAULT 0,
    records    INTEGER NOT NULL DEFAULT 0,
    total      INTEGER,
    PRIMARY KEY (run_id, resource)
);

CREATE TABLE sync_watermarks (
    org_id     INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    resource   TEXT    NOT NULL,
    watermark  TEXT    NOT NULL,
    PRIMARY KEY (org_id, resource)
);

CREATE TABLE sync_locks (
    org_id      INTEGER PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    holder      TEXT    NOT NULL,
    run_id      INTEGER,
    acquired_at TEXT    NOT NULL,
    expires_at  TEXT    NOT NULL
);

CREATE TABLE changes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id       INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    run_id       INTEGER NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    resource     TEXT    NOT NULL,
    entity       TEXT    NOT NULL CHECK (entity IN ('account', 'entitlement', 'grant')),
    object_id    TEXT    NOT NULL,
    op           TEXT    NOT NULL CHECK (op IN ('created', 'updated', 'removed')),
    fields       TEXT,
    before       TEXT,
    after        TEXT,
    digest       INTEGER NOT NULL DEFAULT 0,
    observed_at  TEXT    NOT NULL
);
CREATE INDEX changes_by_run ON changes (run_id, id);
CREATE INDEX changes_by_object ON changes (org_id, entity, object_id, id);
