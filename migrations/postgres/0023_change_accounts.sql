-- Waits at most this long for the table it changes (a running server may be using it):
-- past it, the migration fails and the next start applies it again.
SET LOCAL lock_timeout = '30s';

-- The user a grant's change concerns, in a column of its own, set as the change is written:
-- the index of a user's grant history was on an expression that took it out of each grant
-- change's JSON as it went in, and every reader of it did so again.
ALTER TABLE changes ADD COLUMN account_id TEXT;
UPDATE changes SET account_id = COALESCE(after, before) ->> 'account_id'
    WHERE entity = 'grant';
DROP INDEX changes_grants_by_account;
CREATE INDEX changes_grants_by_account ON changes (org_id, account_id, id)
    WHERE entity = 'grant';
