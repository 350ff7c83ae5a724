-- When `provost webhook replay` sent a dead letter again (NULL: not replayed).
ALTER TABLE webhook_dead_letters ADD COLUMN replayed_at TIMESTAMPTZ;
