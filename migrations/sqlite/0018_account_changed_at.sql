-- When Provost last saw anything a user shows change: the user's own row or one of its grants
-- (SCIM's meta.lastModified, which identity providers sync incrementally by). Salesforce's
-- LastModifiedDate is not it: it moves on every edit of the record, and not when access does.
-- The sync and the executor set it with the changes they record; here it is filled in from
-- the committed history.
ALTER TABLE accounts ADD COLUMN changed_at TEXT;
UPDATE accounts SET changed_at = (
    SELECT MAX(at) FROM (
        SELECT MAX(c.observed_at) AS at FROM changes c
        WHERE c.org_id = accounts.org_id AND c.entity = 'account' AND c.object_id = accounts.id
            AND (c.run_id IS NULL
                 OR EXISTS (SELECT 1 FROM sync_runs r WHERE r.id = c.run_id AND r.status = 'succeeded'))
        UNION ALL
        SELECT MAX(c.observed_at) AS at FROM changes c
        WHERE c.org_id = accounts.org_id AND c.entity = 'grant'
            AND json_extract(COALESCE(c.after, c.before), '$.account_id') = accounts.id
            AND (c.run_id IS NULL
                 OR EXISTS (SELECT 1 FROM sync_runs r WHERE r.id = c.run_id AND r.status = 'succeeded'))
    ));
CREATE INDEX accounts_by_changed_at ON accounts (org_id, changed_at);
