-- Lookups the access-request API makes per request, indexed.
-- A user's grants in id order (the planner reads them): with (org_id, account_id) alone SQLite
-- scanned every grant of the org in id order instead (44 ms a user on the medium org).
DROP INDEX grants_by_account;
CREATE INDEX grants_by_account ON grants (org_id, account_id, id);
-- A user's requests (the duplicate-request check, the list filter).
CREATE INDEX access_requests_by_account ON access_requests (org_id, account_id, id);
-- The requests an executor may claim, so a claim reads those and not the org's whole history
-- (the claim query repeats this condition, which lets both databases use the partial index).
CREATE INDEX access_requests_due ON access_requests (org_id, id)
    WHERE state IN ('approved', 'executing', 'expiring') OR (state = 'completed' AND expires_at IS NOT NULL);
