-- An Idempotency-Key belongs to the token that sent it: two tokens using the same key make
-- two requests, and neither gets the other's back. The key moves to `request_key`, unique per
-- org and creating token. The old `idempotency_key` column stays (SQLite cannot drop a column
-- its table's UNIQUE constraint names without rebuilding a table that other tables reference)
-- but holds only NULL from here on, and nothing reads it.
ALTER TABLE access_requests ADD COLUMN request_key TEXT;
UPDATE access_requests SET request_key = idempotency_key, idempotency_key = NULL
    WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX access_requests_by_key ON access_requests (org_id, created_by, request_key);
