-- A sync's commit applies each entity's staged changes in order (accounts, entitlements,
-- grants, permissions) and counts them by entity and operation: this index reaches one
-- entity's changes of a run directly, in id order, with the operation at hand, instead of
-- walking every change of the run once per entity.
CREATE INDEX changes_by_run_entity ON changes (run_id, entity, id, op);
