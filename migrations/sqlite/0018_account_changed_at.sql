-- When Provost last saw anything a user shows change: the user's own row or one of its grants
-- (SCIM's meta.lastModified, which identity providers sync incrementally by); the same for an
-- entitlement (a SCIM Group, Entitlement or Role): its own row or who holds it. Salesforce's
-- LastModifiedDate is not it: it moves on every edit of the record, and not when access does.
-- The sync (at its commit) and the executor set it; here it is filled in from the committed
-- history, in one pass over it.
ALTER TABLE accounts ADD COLUMN changed_at TEXT;
UPDATE accounts SET changed_at = t.at FROM (
    SELECT org_id, account, MAX(at) AS at FROM (
        SELECT c.org_id, c.object_id AS account, MAX(c.observed_at) AS at
        FROM changes c LEFT JOIN sync_runs r ON r.id = c.run_id
        WHERE c.entity = 'account' AND (c.run_id IS NULL OR r.status = 'succeeded')
        GROUP BY c.org_id, c.object_id
        UNION ALL
        SELECT c.org_id, json_extract(COALESCE(c.after, c.before), '$.account_id') AS account,
               MAX(c.observed_at) AS at
        FROM changes c LEFT JOIN sync_runs r ON r.id = c.run_id
        WHERE c.entity = 'grant' AND (c.run_id IS NULL OR r.status = 'succeeded')
        GROUP BY c.org_id, json_extract(COALESCE(c.after, c.before), '$.account_id')
    ) GROUP BY org_id, account
) t
WHERE accounts.org_id = t.org_id AND accounts.id = t.account;
CREATE INDEX accounts_by_changed_at ON accounts (org_id, changed_at);

ALTER TABLE entitlements ADD COLUMN changed_at TEXT;
UPDATE entitlements SET changed_at = t.at FROM (
    SELECT org_id, entitlement, MAX(at) AS at FROM (
        SELECT c.org_id, c.object_id AS entitlement, MAX(c.observed_at) AS at
        FROM changes c LEFT JOIN sync_runs r ON r.id = c.run_id
        WHERE c.entity = 'entitlement' AND (c.run_id IS NULL OR r.status = 'succeeded')
        GROUP BY c.org_id, c.object_id
        UNION ALL
        SELECT c.org_id, json_extract(c.after, '$.entitlement_id') AS entitlement, MAX(c.observed_at) AS at
        FROM changes c LEFT JOIN sync_runs r ON r.id = c.run_id
        WHERE c.entity = 'grant' AND c.after IS NOT NULL
            AND (c.run_id IS NULL OR r.status = 'succeeded')
        GROUP BY c.org_id, json_extract(c.after, '$.entitlement_id')
        UNION ALL
        SELECT c.org_id, json_extract(c.before, '$.entitlement_id') AS entitlement, MAX(c.observed_at) AS at
        FROM changes c LEFT JOIN sync_runs r ON r.id = c.run_id
        WHERE c.entity = 'grant' AND c.before IS NOT NULL
            AND (c.run_id IS NULL OR r.status = 'succeeded')
        GROUP BY c.org_id, json_extract(c.before, '$.entitlement_id')
    ) u GROUP BY org_id, entitlement
) t
WHERE entitlements.org_id = t.org_id AND entitlements.id = t.entitlement;
