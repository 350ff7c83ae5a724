-- A user's grant history in order, for reports as of a past time (`--as-of`): the grant's
-- user is read from the row the change recorded (after it, or before it for a removal).
CREATE INDEX changes_grants_by_account
    ON changes (org_id, json_extract(COALESCE(after, before), '$.account_id'), id)
    WHERE entity = 'grant';
