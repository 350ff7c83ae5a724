-- Sync runs: each stored row remembers which resource read it and a digest of its content, so a
-- sync compares a page with what is stored by key range and digest; each run's changes are
-- staged in `changes` and become the history once the run commits.
-- Key ranges follow the source's byte order, so ids collate bytewise ("C").
ALTER TABLE grants DROP CONSTRAINT grants_org_id_account_id_fkey;
ALTER TABLE grants DROP CONSTRAINT grants_org_id_entitlement_id_fkey;
ALTER TABLE accounts ALTER COLUMN id TYPE TEXT COLLATE "C";
ALTER TABLE entitlements ALTER COLUMN id TYPE TEXT COLLATE "C";
ALTER TABLE grants ALTER COLUMN id TYPE TEXT COLLATE "C";
ALTER TABLE grants ALTER COLUMN account_id TYPE TEXT COLLATE "C";
ALTER TABLE grants ALTER COLUMN entitlement_id TYPE TEXT COLLATE "C";
ALTER TABLE grants ADD FOREIGN KEY (org_id, account_id) REFERENCES accounts (org_id, id) ON DELETE CASCADE;
ALTER TABLE grants ADD FOREIGN KEY (org_id, entitlement_id) REFERENCES entitlements (org_id, id) ON DELETE CASCADE;

ALTER TABLE accounts ADD COLUMN resource TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN digest BIGINT NOT NULL DEFAULT 0;
CREATE INDEX accounts_by_resource ON accounts (org_id, resource, id);
ALTER TABLE entitlements ADD COLUMN resource TEXT NOT NULL DEFAULT '';
ALTER TABLE entitlements ADD COLUMN digest BIGINT NOT NULL DEFAULT 0;
CREATE INDEX entitlements_by_resource ON entitlements (org_id, resource, id);
ALTER TABLE grants ADD COLUMN resource TEXT NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN digest BIGINT NOT NULL DEFAULT 0;
CREATE INDEX grants_by_resource ON grants (org_id, resource, id);

CREATE TABLE sync_runs (
    id           BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id       BIGINT      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    mode         TEXT        NOT NULL CHECK (mode IN ('full', 'incremental')),
    started_by   TEXT        NOT NULL,
    status       TEXT        NOT NULL CHECK (status IN ('running', 'paused', 'succeeded', 'failed')),
    pause_reason TEXT,
    started_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    attempts     BIGINT      NOT NULL DEFAULT 1,
    api_calls    BIGINT      NOT NULL DEFAULT 0,
    api_used     BIGINT,
    api_limit    BIGINT,
    counts       JSONB       NOT NULL DEFAULT '{}',
    error        TEXT
);
CREATE INDEX sync_runs_by_org ON sync_runs (org_id, id);

CREATE TABLE sync_resources (
    run_id     BIGINT  NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    position   BIGINT  NOT NULL,
    resource   TEXT    NOT NULL,
    done       BOOLEAN NOT NULL DEFAULT FALSE,
    cursor     TEXT,
    last_key   TEXT COLLATE "C",
    since      TEXT,
    watermark  TEXT,
    pages      BIGINT  NOT NULL DEFAULT 0,
    records    BIGINT  NOT NULL DEFAULT 0,
    total      BIGINT,
    PRIMARY KEY (run_id, resource)
);

CREATE TABLE sync_watermarks (
    org_id     BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    resource   TEXT   NOT NULL,
    watermark  TEXT   NOT NULL,
    PRIMARY KEY (org_id, resource)
);

CREATE TABLE sync_locks (
    org_id      BIGINT      PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    holder      TEXT        NOT NULL,
    run_id      BIGINT,
    acquired_at TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE changes (
    id           BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id       BIGINT      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    run_id       BIGINT      NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    resource     TEXT        NOT NULL,
    entity       TEXT        NOT NULL CHECK (entity IN ('account', 'entitlement', 'grant')),
    object_id    TEXT        COLLATE "C" NOT NULL,
    op           TEXT        NOT NULL CHECK (op IN ('created', 'updated', 'removed')),
    fields       TEXT,
    before       JSONB,
    after        JSONB,
    digest       BIGINT      NOT NULL DEFAULT 0,
    observed_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX changes_by_run ON changes (run_id, id);
CREATE INDEX changes_by_object ON changes (org_id, entity, object_id, id);
