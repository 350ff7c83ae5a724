-- Provisioning: API tokens, access requests and their executor's claims, the hash-chained
-- audit log, the last preflight of each org, and changes that Provost itself made (history
-- rows with a request instead of a sync run).
CREATE TABLE api_tokens (
    id            BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT        NOT NULL UNIQUE,
    token_hash    TEXT        NOT NULL UNIQUE,
    scopes        TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ
);

CREATE TABLE access_requests (
    id                BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id            BIGINT      NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    action            TEXT        NOT NULL,
    state             TEXT        NOT NULL CHECK (state IN ('pending_approval', 'approved', 'executing',
                                      'completed', 'failed', 'rejected', 'cancelled', 'expiring', 'expired')),
    account_id        TEXT,
    entitlement_id    TEXT,
    requester         TEXT        NOT NULL,
    created_by        TEXT        NOT NULL,
    approver          TEXT,
    justification     TEXT,
    ticket            TEXT,
    expires_at        TIMESTAMPTZ,
    idempotency_key   TEXT,
    input             JSONB       NOT NULL,
    plan              JSONB       NOT NULL,
    result            JSONB,
    error             TEXT,
    attempts          BIGINT      NOT NULL DEFAULT 0,
    claimed_by        TEXT,
    claim_expires_at  TIMESTAMPTZ,
    next_attempt_at   TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    finished_at       TIMESTAMPTZ,
    UNIQUE (org_id, idempotency_key)
);
CREATE INDEX access_requests_by_state ON access_requests (state, next_attempt_at, id);
CREATE INDEX access_requests_by_org ON access_requests (org_id, id);
CREATE INDEX access_requests_by_expiry ON access_requests (state, expires_at)
    WHERE expires_at IS NOT NULL;

CREATE TABLE audit_log (
    seq         BIGINT      PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    actor       TEXT        NOT NULL,
    org         TEXT,
    request_id  BIGINT,
    event       TEXT        NOT NULL,
    data        TEXT        NOT NULL,
    prev_hash   TEXT        NOT NULL,
    hash        TEXT        NOT NULL
);
CREATE INDEX audit_log_by_request ON audit_log (request_id, seq);

-- The chain's head: every append updates this one row first, so appends are serialised and
-- each entry links to the one before it.
CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   BIGINT  NOT NULL,
    hash  TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE preflight_reports (
    org_id      BIGINT      PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    report      JSONB       NOT NULL,
    checked_at  TIMESTAMPTZ NOT NULL
);

-- A change is observed by a sync run or made by Provost for a request.
ALTER TABLE changes ALTER COLUMN run_id DROP NOT NULL;
ALTER TABLE changes ADD COLUMN request_id BIGINT REFERENCES access_requests (id) ON DELETE SET NULL;
ALTER TABLE changes ADD CONSTRAINT changes_run_or_request
    CHECK (run_id IS NOT NULL OR request_id IS NOT NULL);
CREATE INDEX changes_by_request ON changes (request_id) WHERE request_id IS NOT NULL;
