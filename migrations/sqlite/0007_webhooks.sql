-- Webhooks: each configured webhook's place in the audit log. Notifications are read from the
-- log, which is written in the same transaction as every request state change, so none can be
-- lost; each webhook receives them in log order, one at a time, and its cursor moves past an
-- entry only once the receiver answered 2xx (or the entry was dead-lettered).
CREATE TABLE webhook_cursors (
    name               TEXT    PRIMARY KEY,
    after_seq          INTEGER NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    TEXT,
    failing_since      TEXT,
    last_error         TEXT,
    delivered          INTEGER NOT NULL DEFAULT 0,
    last_delivered_at  TEXT,
    claimed_by         TEXT,
    claim_expires_at   TEXT,
    created_at         TEXT    NOT NULL
);

-- Notifications given up on after the webhook's retry period; `provost webhook replay` sends
-- them again.
CREATE TABLE webhook_dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    event       TEXT    NOT NULL,
    attempts    INTEGER NOT NULL,
    last_error  TEXT    NOT NULL,
    failed_at   TEXT    NOT NULL
);
CREATE INDEX webhook_dead_letters_by_name ON webhook_dead_letters (name, id);
