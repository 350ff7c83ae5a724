-- Provisioning: API tokens, access requests and their executor's claims, the hash-chained
-- audit log, the last preflight of each org, and changes that Provost itself made (history
-- rows with a request instead of a sync run).
CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL UNIQUE,
    token_hash    TEXT    NOT NULL UNIQUE,
    scopes        TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    last_used_at  TEXT,
    revoked_at    TEXT
);

CREATE TABLE access_requests (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id            INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    action            TEXT    NOT NULL,
    state             TEXT    NOT NULL CHECK (state IN ('pending_approval', 'approved', 'executing',
                                  'completed', 'failed', 'rejected', 'cancelled', 'expiring', 'expired')),
    account_id        TEXT,
    entitlement_id    TEXT,
    requester         TEXT    NOT NULL,
    created_by        TEXT    NOT NULL,
    approver          TEXT,
    justification     TEXT,
    ticket            TEXT,
    expires_at        TEXT,
    idempotency_key   TEXT,
    input             TEXT    NOT NULL,
    plan              TEXT    NOT NULL,
    result            TEXT,
    error             TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    claimed_by        TEXT,
    claim_expires_at  TEXT,
    next_attempt_at   TEXT,
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL,
    finished_at       TEXT,
    UNIQUE (org_id, idempotency_key)
);
CREATE INDEX access_requests_by_state ON access_requests (state, next_attempt_at, id);
CREATE INDEX access_requests_by_org ON access_requests (org_id, id);
CREATE INDEX access_requests_by_expiry ON access_requests (state, expires_at)
    WHERE expires_at IS NOT NULL;

CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,
    at          TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    org         TEXT,
    request_id  INTEGER,
    event       TEXT    NOT NULL,
    data        TEXT    NOT NULL,
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL
);
CREATE INDEX audit_log_by_request ON audit_log (request_id, seq);

-- The chain's head: every append updates this one row first, so appends are serialised and
-- each entry links to the one before it.
CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   INTEGER NOT NULL,
    hash  TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE preflight_reports (
    org_id      INTEGER PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    report      TEXT    NOT NULL,
    checked_at  TEXT    NOT NULL
);

-- A change is observed by a sync run or made by Provost for a request.
CREATE TABLE changes_new (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id       INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    run_id       INTEGER REFERENCES sync_runs (id) ON DELETE CASCADE,
    request_id   INTEGER REFERENCES access_requests (id) ON DELETE SET NULL,
    resource     TEXT    NOT NULL,
    entity       TEXT    NOT NULL CHECK (entity IN ('account', 'entitlement', 'grant')),
    object_id    TEXT    NOT NULL,
    op           TEXT    NOT NULL CHECK (op IN ('created', 'updated', 'removed')),
    fields       TEXT,
    before       TEXT,
    after        TEXT,
    digest       INTEGER NOT NULL DEFAULT 0,
    observed_at  TEXT    NOT NULL,
    CHECK (run_id IS NOT NULL OR request_id IS NOT NULL)
);
INSERT INTO changes_new (id, org_id, run_id, resource, entity, object_id, op, fields, before,
                         after, digest, observed_at)
    SELECT id, org_id, run_id, resource, entity, object_id, op, fields, before, after, digest,
           observed_at FROM changes;
DROP TABLE changes;
ALTER TABLE changes_new RENAME TO changes;
CREATE INDEX changes_by_run ON changes (run_id, id);
CREATE INDEX changes_by_object ON changes (org_id, entity, object_id, id);
CREATE INDEX changes_by_request ON changes (request_id) WHERE request_id IS NOT NULL;
