-- A sync's commit keeps no fingerprint of a resource (a watermark of its rows as read) whose
-- grants provisioning wrote since the run started: this index finds provisioning's changes of
-- one resource of an org from a time on, without walking the org's sync history.
CREATE INDEX changes_provisioned ON changes (org_id, resource, observed_at)
    WHERE request_id IS NOT NULL;
