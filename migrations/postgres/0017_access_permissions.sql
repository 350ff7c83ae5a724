-- What each entitlement (a permission set) opens beyond who holds it: object, field and
-- setup-entity permissions, one row per Salesforce record, kept per permission set and never
-- multiplied per user. Synced like the other tables (resource, digest) and with their history
-- in `changes` under the entity `permission`.
CREATE TABLE permissions (
    org_id          BIGINT NOT NULL,
    id              TEXT   COLLATE "C" NOT NULL,
    entitlement_id  TEXT   COLLATE "C" NOT NULL,
    kind            TEXT   NOT NULL CHECK (kind IN ('object', 'field', 'setup_entity')),
    target          TEXT   COLLATE "C" NOT NULL,
    actions         JSONB  NOT NULL DEFAULT '[]',
    attributes      JSONB  NOT NULL DEFAULT '{}',
    resource        TEXT   NOT NULL DEFAULT '',
    digest          BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, entitlement_id) REFERENCES entitlements (org_id, id) ON DELETE CASCADE
);
-- "Who can read Contact.SSN__c": the sets that open one target, then their holders.
CREATE INDEX permissions_by_target ON permissions (org_id, kind, target);
CREATE INDEX permissions_by_entitlement ON permissions (org_id, entitlement_id);
CREATE INDEX permissions_by_resource ON permissions (org_id, resource, id);

ALTER TABLE changes DROP CONSTRAINT changes_entity_check;
ALTER TABLE changes ADD CONSTRAINT changes_entity_check
    CHECK (entity IN ('account', 'entitlement', 'grant', 'permission'));
