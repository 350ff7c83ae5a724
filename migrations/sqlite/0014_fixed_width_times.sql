-- Times become fixed-width text: `2026-11-01T10:00:00.120000000Z`, nine fraction digits always.
-- SQLite compares them as text, and the trimmed form written before (`10:00:00Z`,
-- `10:00:00.12Z`) does not sort as time within one second (`.` sorts before `Z`, `.12Z`
-- after `.123Z`): a change observed at 10:00:00.5 fell outside a window starting at 10:00:00.
-- Values written with an offset (`-05:00`, `+00:00`) are converted to UTC (SQLite's strftime
-- applies the offset), keeping every fraction digit. Every time column is rewritten here; the
-- API, reports and the audit chain show and hash times in RFC 3339 as before (trimmed), so
-- nothing outside the file changes.

UPDATE orgs SET created_at = CASE
        WHEN substr(created_at, 20, 1) = 'Z' THEN substr(created_at, 1, 19) || '.000000000Z'
        ELSE substr(created_at, 1, 20) || substr(substr(created_at, 21, length(created_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(created_at) <> 30;
UPDATE orgs SET created_at = strftime('%Y-%m-%dT%H:%M:%S', created_at) || '.' || CASE
        WHEN substr(created_at, 20, 1) = '.' THEN substr(substr(created_at, 21, length(created_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE grants SET expires_at = CASE
        WHEN substr(expires_at, 20, 1) = 'Z' THEN substr(expires_at, 1, 19) || '.000000000Z'
        ELSE substr(expires_at, 1, 20) || substr(substr(expires_at, 21, length(expires_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE expires_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(expires_at) <> 30;
UPDATE grants SET expires_at = strftime('%Y-%m-%dT%H:%M:%S', expires_at) || '.' || CASE
        WHEN substr(expires_at, 20, 1) = '.' THEN substr(substr(expires_at, 21, length(expires_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE expires_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE grants SET since = CASE
        WHEN substr(since, 20, 1) = 'Z' THEN substr(since, 1, 19) || '.000000000Z'
        ELSE substr(since, 1, 20) || substr(substr(since, 21, length(since) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE since GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(since) <> 30;
UPDATE grants SET since = strftime('%Y-%m-%dT%H:%M:%S', since) || '.' || CASE
        WHEN substr(since, 20, 1) = '.' THEN substr(substr(since, 21, length(since) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE since GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE org_credentials SET connected_at = CASE
        WHEN substr(connected_at, 20, 1) = 'Z' THEN substr(connected_at, 1, 19) || '.000000000Z'
        ELSE substr(connected_at, 1, 20) || substr(substr(connected_at, 21, length(connected_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE connected_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(connected_at) <> 30;
UPDATE org_credentials SET connected_at = strftime('%Y-%m-%dT%H:%M:%S', connected_at) || '.' || CASE
        WHEN substr(connected_at, 20, 1) = '.' THEN substr(substr(connected_at, 21, length(connected_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE connected_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE oauth_states SET created_at = CASE
        WHEN substr(created_at, 20, 1) = 'Z' THEN substr(created_at, 1, 19) || '.000000000Z'
        ELSE substr(created_at, 1, 20) || substr(substr(created_at, 21, length(created_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(created_at) <> 30;
UPDATE oauth_states SET created_at = strftime('%Y-%m-%dT%H:%M:%S', created_at) || '.' || CASE
        WHEN substr(created_at, 20, 1) = '.' THEN substr(substr(created_at, 21, length(created_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE oauth_states SET consumed_at = CASE
        WHEN substr(consumed_at, 20, 1) = 'Z' THEN substr(consumed_at, 1, 19) || '.000000000Z'
        ELSE substr(consumed_at, 1, 20) || substr(substr(consumed_at, 21, length(consumed_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE consumed_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(consumed_at) <> 30;
UPDATE oauth_states SET consumed_at = strftime('%Y-%m-%dT%H:%M:%S', consumed_at) || '.' || CASE
        WHEN substr(consumed_at, 20, 1) = '.' THEN substr(substr(consumed_at, 21, length(consumed_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE consumed_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE sync_runs SET started_at = CASE
        WHEN substr(started_at, 20, 1) = 'Z' THEN substr(started_at, 1, 19) || '.000000000Z'
        ELSE substr(started_at, 1, 20) || substr(substr(started_at, 21, length(started_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE started_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(started_at) <> 30;
UPDATE sync_runs SET started_at = strftime('%Y-%m-%dT%H:%M:%S', started_at) || '.' || CASE
        WHEN substr(started_at, 20, 1) = '.' THEN substr(substr(started_at, 21, length(started_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE started_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE sync_runs SET updated_at = CASE
        WHEN substr(updated_at, 20, 1) = 'Z' THEN substr(updated_at, 1, 19) || '.000000000Z'
        ELSE substr(updated_at, 1, 20) || substr(substr(updated_at, 21, length(updated_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(updated_at) <> 30;
UPDATE sync_runs SET updated_at = strftime('%Y-%m-%dT%H:%M:%S', updated_at) || '.' || CASE
        WHEN substr(updated_at, 20, 1) = '.' THEN substr(substr(updated_at, 21, length(updated_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE sync_runs SET finished_at = CASE
        WHEN substr(finished_at, 20, 1) = 'Z' THEN substr(finished_at, 1, 19) || '.000000000Z'
        ELSE substr(finished_at, 1, 20) || substr(substr(finished_at, 21, length(finished_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE finished_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(finished_at) <> 30;
UPDATE sync_runs SET finished_at = strftime('%Y-%m-%dT%H:%M:%S', finished_at) || '.' || CASE
        WHEN substr(finished_at, 20, 1) = '.' THEN substr(substr(finished_at, 21, length(finished_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE finished_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE sync_locks SET acquired_at = CASE
        WHEN substr(acquired_at, 20, 1) = 'Z' THEN substr(acquired_at, 1, 19) || '.000000000Z'
        ELSE substr(acquired_at, 1, 20) || substr(substr(acquired_at, 21, length(acquired_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE acquired_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(acquired_at) <> 30;
UPDATE sync_locks SET acquired_at = strftime('%Y-%m-%dT%H:%M:%S', acquired_at) || '.' || CASE
        WHEN substr(acquired_at, 20, 1) = '.' THEN substr(substr(acquired_at, 21, length(acquired_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE acquired_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE sync_locks SET expires_at = CASE
        WHEN substr(expires_at, 20, 1) = 'Z' THEN substr(expires_at, 1, 19) || '.000000000Z'
        ELSE substr(expires_at, 1, 20) || substr(substr(expires_at, 21, length(expires_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE expires_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(expires_at) <> 30;
UPDATE sync_locks SET expires_at = strftime('%Y-%m-%dT%H:%M:%S', expires_at) || '.' || CASE
        WHEN substr(expires_at, 20, 1) = '.' THEN substr(substr(expires_at, 21, length(expires_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE expires_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE api_tokens SET created_at = CASE
        WHEN substr(created_at, 20, 1) = 'Z' THEN substr(created_at, 1, 19) || '.000000000Z'
        ELSE substr(created_at, 1, 20) || substr(substr(created_at, 21, length(created_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(created_at) <> 30;
UPDATE api_tokens SET created_at = strftime('%Y-%m-%dT%H:%M:%S', created_at) || '.' || CASE
        WHEN substr(created_at, 20, 1) = '.' THEN substr(substr(created_at, 21, length(created_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE api_tokens SET last_used_at = CASE
        WHEN substr(last_used_at, 20, 1) = 'Z' THEN substr(last_used_at, 1, 19) || '.000000000Z'
        ELSE substr(last_used_at, 1, 20) || substr(substr(last_used_at, 21, length(last_used_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE last_used_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(last_used_at) <> 30;
UPDATE api_tokens SET last_used_at = strftime('%Y-%m-%dT%H:%M:%S', last_used_at) || '.' || CASE
        WHEN substr(last_used_at, 20, 1) = '.' THEN substr(substr(last_used_at, 21, length(last_used_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE last_used_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE api_tokens SET revoked_at = CASE
        WHEN substr(revoked_at, 20, 1) = 'Z' THEN substr(revoked_at, 1, 19) || '.000000000Z'
        ELSE substr(revoked_at, 1, 20) || substr(substr(revoked_at, 21, length(revoked_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE revoked_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(revoked_at) <> 30;
UPDATE api_tokens SET revoked_at = strftime('%Y-%m-%dT%H:%M:%S', revoked_at) || '.' || CASE
        WHEN substr(revoked_at, 20, 1) = '.' THEN substr(substr(revoked_at, 21, length(revoked_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE revoked_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE access_requests SET expires_at = CASE
        WHEN substr(expires_at, 20, 1) = 'Z' THEN substr(expires_at, 1, 19) || '.000000000Z'
        ELSE substr(expires_at, 1, 20) || substr(substr(expires_at, 21, length(expires_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE expires_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(expires_at) <> 30;
UPDATE access_requests SET expires_at = strftime('%Y-%m-%dT%H:%M:%S', expires_at) || '.' || CASE
        WHEN substr(expires_at, 20, 1) = '.' THEN substr(substr(expires_at, 21, length(expires_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE expires_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE access_requests SET claim_expires_at = CASE
        WHEN substr(claim_expires_at, 20, 1) = 'Z' THEN substr(claim_expires_at, 1, 19) || '.000000000Z'
        ELSE substr(claim_expires_at, 1, 20) || substr(substr(claim_expires_at, 21, length(claim_expires_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE claim_expires_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(claim_expires_at) <> 30;
UPDATE access_requests SET claim_expires_at = strftime('%Y-%m-%dT%H:%M:%S', claim_expires_at) || '.' || CASE
        WHEN substr(claim_expires_at, 20, 1) = '.' THEN substr(substr(claim_expires_at, 21, length(claim_expires_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE claim_expires_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE access_requests SET next_attempt_at = CASE
        WHEN substr(next_attempt_at, 20, 1) = 'Z' THEN substr(next_attempt_at, 1, 19) || '.000000000Z'
        ELSE substr(next_attempt_at, 1, 20) || substr(substr(next_attempt_at, 21, length(next_attempt_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE next_attempt_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(next_attempt_at) <> 30;
UPDATE access_requests SET next_attempt_at = strftime('%Y-%m-%dT%H:%M:%S', next_attempt_at) || '.' || CASE
        WHEN substr(next_attempt_at, 20, 1) = '.' THEN substr(substr(next_attempt_at, 21, length(next_attempt_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE next_attempt_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE access_requests SET created_at = CASE
        WHEN substr(created_at, 20, 1) = 'Z' THEN substr(created_at, 1, 19) || '.000000000Z'
        ELSE substr(created_at, 1, 20) || substr(substr(created_at, 21, length(created_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(created_at) <> 30;
UPDATE access_requests SET created_at = strftime('%Y-%m-%dT%H:%M:%S', created_at) || '.' || CASE
        WHEN substr(created_at, 20, 1) = '.' THEN substr(substr(created_at, 21, length(created_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE access_requests SET updated_at = CASE
        WHEN substr(updated_at, 20, 1) = 'Z' THEN substr(updated_at, 1, 19) || '.000000000Z'
        ELSE substr(updated_at, 1, 20) || substr(substr(updated_at, 21, length(updated_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(updated_at) <> 30;
UPDATE access_requests SET updated_at = strftime('%Y-%m-%dT%H:%M:%S', updated_at) || '.' || CASE
        WHEN substr(updated_at, 20, 1) = '.' THEN substr(substr(updated_at, 21, length(updated_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE access_requests SET finished_at = CASE
        WHEN substr(finished_at, 20, 1) = 'Z' THEN substr(finished_at, 1, 19) || '.000000000Z'
        ELSE substr(finished_at, 1, 20) || substr(substr(finished_at, 21, length(finished_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE finished_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(finished_at) <> 30;
UPDATE access_requests SET finished_at = strftime('%Y-%m-%dT%H:%M:%S', finished_at) || '.' || CASE
        WHEN substr(finished_at, 20, 1) = '.' THEN substr(substr(finished_at, 21, length(finished_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE finished_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE audit_log SET at = CASE
        WHEN substr(at, 20, 1) = 'Z' THEN substr(at, 1, 19) || '.000000000Z'
        ELSE substr(at, 1, 20) || substr(substr(at, 21, length(at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(at) <> 30;
UPDATE audit_log SET at = strftime('%Y-%m-%dT%H:%M:%S', at) || '.' || CASE
        WHEN substr(at, 20, 1) = '.' THEN substr(substr(at, 21, length(at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE preflight_reports SET checked_at = CASE
        WHEN substr(checked_at, 20, 1) = 'Z' THEN substr(checked_at, 1, 19) || '.000000000Z'
        ELSE substr(checked_at, 1, 20) || substr(substr(checked_at, 21, length(checked_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE checked_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(checked_at) <> 30;
UPDATE preflight_reports SET checked_at = strftime('%Y-%m-%dT%H:%M:%S', checked_at) || '.' || CASE
        WHEN substr(checked_at, 20, 1) = '.' THEN substr(substr(checked_at, 21, length(checked_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE checked_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE changes SET observed_at = CASE
        WHEN substr(observed_at, 20, 1) = 'Z' THEN substr(observed_at, 1, 19) || '.000000000Z'
        ELSE substr(observed_at, 1, 20) || substr(substr(observed_at, 21, length(observed_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE observed_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(observed_at) <> 30;
UPDATE changes SET observed_at = strftime('%Y-%m-%dT%H:%M:%S', observed_at) || '.' || CASE
        WHEN substr(observed_at, 20, 1) = '.' THEN substr(substr(observed_at, 21, length(observed_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE observed_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE webhook_cursors SET next_attempt_at = CASE
        WHEN substr(next_attempt_at, 20, 1) = 'Z' THEN substr(next_attempt_at, 1, 19) || '.000000000Z'
        ELSE substr(next_attempt_at, 1, 20) || substr(substr(next_attempt_at, 21, length(next_attempt_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE next_attempt_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(next_attempt_at) <> 30;
UPDATE webhook_cursors SET next_attempt_at = strftime('%Y-%m-%dT%H:%M:%S', next_attempt_at) || '.' || CASE
        WHEN substr(next_attempt_at, 20, 1) = '.' THEN substr(substr(next_attempt_at, 21, length(next_attempt_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE next_attempt_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE webhook_cursors SET failing_since = CASE
        WHEN substr(failing_since, 20, 1) = 'Z' THEN substr(failing_since, 1, 19) || '.000000000Z'
        ELSE substr(failing_since, 1, 20) || substr(substr(failing_since, 21, length(failing_since) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE failing_since GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(failing_since) <> 30;
UPDATE webhook_cursors SET failing_since = strftime('%Y-%m-%dT%H:%M:%S', failing_since) || '.' || CASE
        WHEN substr(failing_since, 20, 1) = '.' THEN substr(substr(failing_since, 21, length(failing_since) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE failing_since GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE webhook_cursors SET last_delivered_at = CASE
        WHEN substr(last_delivered_at, 20, 1) = 'Z' THEN substr(last_delivered_at, 1, 19) || '.000000000Z'
        ELSE substr(last_delivered_at, 1, 20) || substr(substr(last_delivered_at, 21, length(last_delivered_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE last_delivered_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(last_delivered_at) <> 30;
UPDATE webhook_cursors SET last_delivered_at = strftime('%Y-%m-%dT%H:%M:%S', last_delivered_at) || '.' || CASE
        WHEN substr(last_delivered_at, 20, 1) = '.' THEN substr(substr(last_delivered_at, 21, length(last_delivered_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE last_delivered_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE webhook_cursors SET claim_expires_at = CASE
        WHEN substr(claim_expires_at, 20, 1) = 'Z' THEN substr(claim_expires_at, 1, 19) || '.000000000Z'
        ELSE substr(claim_expires_at, 1, 20) || substr(substr(claim_expires_at, 21, length(claim_expires_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE claim_expires_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(claim_expires_at) <> 30;
UPDATE webhook_cursors SET claim_expires_at = strftime('%Y-%m-%dT%H:%M:%S', claim_expires_at) || '.' || CASE
        WHEN substr(claim_expires_at, 20, 1) = '.' THEN substr(substr(claim_expires_at, 21, length(claim_expires_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE claim_expires_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE webhook_cursors SET created_at = CASE
        WHEN substr(created_at, 20, 1) = 'Z' THEN substr(created_at, 1, 19) || '.000000000Z'
        ELSE substr(created_at, 1, 20) || substr(substr(created_at, 21, length(created_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(created_at) <> 30;
UPDATE webhook_cursors SET created_at = strftime('%Y-%m-%dT%H:%M:%S', created_at) || '.' || CASE
        WHEN substr(created_at, 20, 1) = '.' THEN substr(substr(created_at, 21, length(created_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
UPDATE webhook_dead_letters SET failed_at = CASE
        WHEN substr(failed_at, 20, 1) = 'Z' THEN substr(failed_at, 1, 19) || '.000000000Z'
        ELSE substr(failed_at, 1, 20) || substr(substr(failed_at, 21, length(failed_at) - 21) || '000000000', 1, 9) || 'Z'
    END
    WHERE failed_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*Z'
      AND length(failed_at) <> 30;
UPDATE webhook_dead_letters SET failed_at = strftime('%Y-%m-%dT%H:%M:%S', failed_at) || '.' || CASE
        WHEN substr(failed_at, 20, 1) = '.' THEN substr(substr(failed_at, 21, length(failed_at) - 26) || '000000000', 1, 9)
        ELSE '000000000'
    END || 'Z'
    WHERE failed_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*[+-][0-9][0-9]:[0-9][0-9]';
