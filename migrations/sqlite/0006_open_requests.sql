-- At most one open request per user, action and entitlement, enforced by the database: two
-- POSTs racing on different connections (or on different replicas) cannot both be stored.
-- The create path reads the twin through this index to name it in its 409.
CREATE UNIQUE INDEX access_requests_open
    ON access_requests (org_id, account_id, action, COALESCE(entitlement_id, ''))
    WHERE state IN ('pending_approval', 'approved', 'executing') AND account_id IS NOT NULL;
-- Listing an org's requests in one state, newest first.
CREATE INDEX access_requests_by_org_state ON access_requests (org_id, state, id);
