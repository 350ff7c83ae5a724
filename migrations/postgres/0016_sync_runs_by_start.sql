-- Sync health and metrics read an org's runs of the last days by their start.
CREATE INDEX sync_runs_by_start ON sync_runs (org_id, started_at);
