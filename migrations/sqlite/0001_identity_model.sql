-- The connected orgs and the identity model read from them: accounts, entitlements, grants.
CREATE TABLE orgs (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    created_at  TEXT    NOT NULL
);

CREATE TABLE accounts (
    org_id        INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id            TEXT    NOT NULL,
    username      TEXT    NOT NULL,
    email         TEXT,
    first_name    TEXT,
    last_name     TEXT,
    display_name  TEXT    NOT NULL,
    active        BOOLEAN NOT NULL,
    user_type     TEXT,
    attributes    TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (org_id, id)
);
CREATE INDEX accounts_by_username ON accounts (org_id, username);

CREATE TABLE entitlements (
    org_id       INTEGER NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id           TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('profile', 'permission_set', 'permission_set_group',
                                                  'role', 'public_group', 'user_license',
                                                  'permission_set_license')),
    api_name     TEXT    NOT NULL,
    label        TEXT    NOT NULL,
    description  TEXT,
    grantable    BOOLEAN NOT NULL,
    attributes   TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (org_id, id)
);
CREATE INDEX entitlements_by_kind ON entitlements (org_id, kind, api_name);

CREATE TABLE grants (
    org_id          INTEGER NOT NULL,
    id              TEXT    NOT NULL,
    account_id      TEXT    NOT NULL,
    entitlement_id  TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    expires_at      TEXT,
    attributes      TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, account_id) REFERENCES accounts (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, entitlement_id) REFERENCES entitlements (org_id, id) ON DELETE CASCADE
);
CREATE INDEX grants_by_account ON grants (org_id, account_id);
CREATE INDEX grants_by_entitlement ON grants (org_id, entitlement_id);
