-- Waits at most this long for the table it changes (a running server may be using it):
-- past it, the migration fails and the next start applies it again.
SET LOCAL lock_timeout = '30s';

-- A sync's commit keeps no fingerprint of a resource (a watermark of its rows as read) whose
-- grants provisioning wrote since the run started: this index finds provisioning's changes of
-- one resource of an org from a time on, without walking the org's sync history.
CREATE INDEX changes_provisioned ON changes (org_id, resource, observed_at)
    WHERE request_id IS NOT NULL;
