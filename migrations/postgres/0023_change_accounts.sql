-- Waits at most this long for the table it changes (a running server may be using it):
-- past it, the migration fails and the next start applies it again. Once it has the table,
-- readers of the history wait for the rewrite below.
SET LOCAL lock_timeout = '30s';

-- The user a grant's change concerns, in a column of its own, set as the change is written:
-- the index of a user's grant history was on an expression that took it out of each grant
-- change's JSON as it went in, and every reader of it did so again.
ALTER TABLE changes ADD COLUMN account_id TEXT COLLATE "C";
DROP INDEX changes_grants_by_account;
UPDATE changes SET account_id = COALESCE(after, before) ->> 'account_id'
    WHERE entity = 'grant';
CREATE INDEX changes_grants_by_account ON changes (org_id, account_id, id)
    WHERE entity = 'grant';
-- A server of an earlier version still running beside a newer one (a rolling upgrade) writes
-- grant changes without the column: each start fills it in (`Store::migrate`), and finds them
-- here, in an index that is otherwise empty.
CREATE INDEX changes_grants_without_account ON changes (id)
    WHERE entity = 'grant' AND account_id IS NULL;
