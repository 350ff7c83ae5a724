-- Each grant keeps when Provost first saw it as it is now (its creation or, for a user's
-- profile and role, whose grant id stays, the last change of its entitlement) and the
-- Provost request that made it so, if one did: the sync and the provisioning executor set
-- them with the change they record, so reports read them off the grant instead of looking
-- the change up for each of hundreds of thousands of grants.
ALTER TABLE grants ADD COLUMN since TEXT;
ALTER TABLE grants ADD COLUMN request_id INTEGER REFERENCES access_requests (id) ON DELETE SET NULL;

-- The grants already stored take them from their history, as reports used to.
UPDATE grants SET (since, request_id) = (
    SELECT c.observed_at, c.request_id FROM changes c
    WHERE c.id = (
        SELECT MAX(c2.id) FROM changes c2
        WHERE c2.org_id = grants.org_id AND c2.entity = 'grant' AND c2.object_id = grants.id
            AND (c2.op = 'created'
                 OR (c2.op = 'updated' AND c2.fields LIKE '%"entitlement_id"%'))));
