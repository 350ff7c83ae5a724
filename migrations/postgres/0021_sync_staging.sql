-- Waits at most this long for the tables it changes (a running server may be using them):
-- past it, the migration fails and the next start applies it again.
SET LOCAL lock_timeout = '30s';

-- A sync's commit applies each entity's staged changes in order (accounts, entitlements,
-- grants, permissions) and counts them by entity and operation: this index reaches one
-- entity's changes of a run directly, in id order, with the operation at hand, instead of
-- walking every change of the run once per entity.
CREATE INDEX changes_by_run_entity ON changes (run_id, entity, id, op);

-- A sync stages every change it sees here, a million rows for a large org's first sync. The
-- keys naming the change's org and run were checked row by row by triggers, each a query that
-- locked the run's row: two fifths of the database's work while staging. The run is written
-- before its first change and neither runs nor orgs are ever deleted, so the keys are dropped
-- (the one naming an access request stays: NULL for a sync's changes, it costs nothing).
DO $$
DECLARE
    k record;
BEGIN
    FOR k IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'changes'::regclass AND contype = 'f'
          AND confrelid IN ('orgs'::regclass, 'sync_runs'::regclass)
    LOOP
        EXECUTE format('ALTER TABLE changes DROP CONSTRAINT %I', k.conname);
    END LOOP;
END
$$;
