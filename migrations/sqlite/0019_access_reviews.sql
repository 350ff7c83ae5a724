-- Access reviews: certification campaigns, their frozen items (one per user and entitlement in
-- scope when the campaign started), and every reviewer's decision on each. A token may name the
-- person it acts for (`subject`: a Salesforce username or user id), who decides as reviewer.
ALTER TABLE api_tokens ADD COLUMN subject TEXT;

CREATE TABLE review_campaigns (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id       INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('draft', 'active', 'closed', 'cancelled')),
    -- Scope, reviewer rules, close policy, recurrence and limits, as JSON.
    definition   TEXT    NOT NULL,
    due_at       TEXT    NOT NULL,
    created_by   TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    started_at   TEXT,
    -- When the sync that the items were taken from finished.
    data_as_of   TEXT,
    items        INTEGER NOT NULL DEFAULT 0,
    closed_at    TEXT,
    closed_by    TEXT,
    reminded_at  TEXT,
    overdue_at   TEXT,
    -- A recurring campaign's next run: made when this time comes, then cleared.
    -- A draft's last failed automatic start (retried an hour later) and why it failed.
    start_failed_at  TEXT,
    start_error  TEXT,
    next_run_at  TEXT,
    parent_id    INTEGER REFERENCES review_campaigns (id) ON DELETE SET NULL
);
CREATE INDEX review_campaigns_by_org ON review_campaigns (org_id, id);
CREATE INDEX review_campaigns_by_state ON review_campaigns (state, due_at);

CREATE TABLE review_items (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id      INTEGER NOT NULL REFERENCES review_campaigns (id) ON DELETE CASCADE,
    account_id       TEXT    NOT NULL,
    username         TEXT    NOT NULL,
    display_name     TEXT    NOT NULL,
    entitlement_id   TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    api_name         TEXT    NOT NULL,
    grant_id         TEXT    NOT NULL,
    -- What a reviewer needs to decide, as it was at the start (JSON).
    context          TEXT    NOT NULL,
    privileged       BOOLEAN NOT NULL,
    suggestion       TEXT,
    priority         INTEGER NOT NULL DEFAULT 0,
    stage            INTEGER NOT NULL DEFAULT 1,
    stages           INTEGER NOT NULL DEFAULT 1,
    reviewer         TEXT    NOT NULL,
    -- The reviewers of each stage, as JSON: [{"reviewer", "account_id", "rule"}].
    reviewers        TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('open', 'decided')),
    decision         TEXT    CHECK (decision IN ('keep', 'revoke')),
    comment          TEXT,
    decided_by       TEXT,
    decided_at       TEXT,
    drift            TEXT,
    remediation      TEXT    CHECK (remediation IN ('pending', 'requested', 'not_needed', 'refused')),
    request_id       INTEGER REFERENCES access_requests (id) ON DELETE SET NULL,
    remediation_note TEXT
);
CREATE INDEX review_items_by_campaign ON review_items (campaign_id, id);
CREATE INDEX review_items_by_reviewer ON review_items (reviewer, state, priority, id);
CREATE INDEX review_items_by_request ON review_items (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX review_items_to_remediate ON review_items (campaign_id, remediation)
    WHERE remediation = 'pending';

-- Each stage's decision and each reassignment, in order: the evidence of who decided what.
CREATE TABLE review_decisions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id     INTEGER NOT NULL REFERENCES review_items (id) ON DELETE CASCADE,
    stage       INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    decision    TEXT    NOT NULL CHECK (decision IN ('keep', 'revoke', 'reassign')),
    comment     TEXT,
    at          TEXT    NOT NULL
);
CREATE INDEX review_decisions_by_item ON review_decisions (item_id, id);
