-- What each entitlement (a permission set) opens beyond who holds it: object, field and
-- setup-entity permissions, one row per Salesforce record, kept per permission set and never
-- multiplied per user. Synced like the other tables (resource, digest) and with their history
-- in `changes` under the entity `permission`.
CREATE TABLE permissions (
    org_id          INTEGER NOT NULL,
    id              TEXT    NOT NULL,
    entitlement_id  TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('object', 'field', 'setup_entity')),
    target          TEXT    NOT NULL,
    actions         TEXT    NOT NULL DEFAULT '[]',
    attributes      TEXT    NOT NULL DEFAULT '{}',
    resource        TEXT    NOT NULL DEFAULT '',
    digest          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, entitlement_id) REFERENCES entitlements (org_id, id) ON DELETE CASCADE
);
-- "Who can read Contact.SSN__c": the sets that open one target, then their holders.
CREATE INDEX permissions_by_target ON permissions (org_id, kind, target);
CREATE INDEX permissions_by_entitlement ON permissions (org_id, entitlement_id);
CREATE INDEX permissions_by_resource ON permissions (org_id, resource, id);

-- The history admits the new entity: SQLite cannot alter a CHECK, so the table is rebuilt.
CREATE TABLE changes_new (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id       INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    run_id       INTEGER REFERENCES sync_runs (id) ON DELETE CASCADE,
    request_id   INTEGER REFERENCES access_requests (id) ON DELETE SET NULL,
    resource     TEXT    NOT NULL,
    entity       TEXT    NOT NULL CHECK (entity IN ('account', 'entitlement', 'grant',
                                                    'permission')),
    object_id    TEXT    NOT NULL,
    op           TEXT    NOT NULL CHECK (op IN ('created', 'updated', 'removed')),
    fields       TEXT,
    before       TEXT,
    after        TEXT,
    digest       INTEGER NOT NULL DEFAULT 0,
    observed_at  TEXT    NOT NULL,
    CHECK (run_id IS NOT NULL OR request_id IS NOT NULL)
);
INSERT INTO changes_new (id, org_id, run_id, request_id, resource, entity, object_id, op,
                         fields, before, after, digest, observed_at)
    SELECT id, org_id, run_id, request_id, resource, entity, object_id, op, fields, before,
           after, digest, observed_at FROM changes;
DROP TABLE changes;
ALTER TABLE changes_new RENAME TO changes;
CREATE INDEX changes_by_run ON changes (run_id, id);
CREATE INDEX changes_by_object ON changes (org_id, entity, object_id, id);
CREATE INDEX changes_by_request ON changes (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX changes_grants_by_account
    ON changes (org_id, json_extract(COALESCE(after, before), '$.account_id'), id)
    WHERE entity = 'grant';
