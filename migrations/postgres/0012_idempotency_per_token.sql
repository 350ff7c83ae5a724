-- An Idempotency-Key belongs to the token that sent it: two tokens using the same key make
-- two requests, and neither gets the other's back. The key moves to `request_key`, unique per
-- org and creating token (SQLite's migration keeps its old column, empty; here it goes).
ALTER TABLE access_requests ADD COLUMN request_key TEXT;
UPDATE access_requests SET request_key = idempotency_key WHERE idempotency_key IS NOT NULL;
ALTER TABLE access_requests DROP COLUMN idempotency_key;
CREATE UNIQUE INDEX access_requests_by_key ON access_requests (org_id, created_by, request_key);
