-- Who started each authorisation (a token's name, or `cli`), and whether they confirmed that
-- it may replace a working connection or one to another Salesforce org.
ALTER TABLE oauth_states ADD COLUMN started_by TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth_states ADD COLUMN replace_confirmed BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX oauth_states_by_age ON oauth_states (created_at);
