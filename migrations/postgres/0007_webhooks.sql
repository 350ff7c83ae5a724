-- Webhooks: each configured webhook's place in the audit log. Notifications are read from the
-- log, which is written in the same transaction as every request state change, so none can be
-- lost; each webhook receives them in log order, one at a time, and its cursor moves past an
-- entry only once the receiver answered 2xx (or the entry was dead-lettered).
CREATE TABLE webhook_cursors (
    name               TEXT        PRIMARY KEY,
    after_seq          BIGINT      NOT NULL,
    attempts           BIGINT      NOT NULL DEFAULT 0,
    next_attempt_at    TIMESTAMPTZ,
    failing_since      TIMESTAMPTZ,
    last_error         TEXT,
    delivered          BIGINT      NOT NULL DEFAULT 0,
    last_delivered_at  TIMESTAMPTZ,
    claimed_by         TEXT,
    claim_expires_at   TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL
);

-- Notifications given up on after the webhook's retry period; `provost webhook replay` sends
-- them again.
CREATE TABLE webhook_dead_letters (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT        NOT NULL,
    seq         BIGINT      NOT NULL,
    event       TEXT        NOT NULL,
    attempts    BIGINT      NOT NULL,
    last_error  TEXT        NOT NULL,
    failed_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_dead_letters_by_name ON webhook_dead_letters (name, id);
