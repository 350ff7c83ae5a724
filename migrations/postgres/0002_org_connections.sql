-- Connections made through the web server flow: the refresh token, sealed (AES-256-GCM),
-- and the one-use states that tie a callback to the authorisation that started it.
CREATE TABLE org_credentials (
    org_id                BIGINT      PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    refresh_token_sealed  TEXT        NOT NULL,
    instance_url          TEXT        NOT NULL,
    identity_url          TEXT        NOT NULL,
    connected_at          TIMESTAMPTZ NOT NULL
);

CREATE TABLE oauth_states (
    state                 TEXT        PRIMARY KEY,
    org_name              TEXT        NOT NULL,
    code_verifier_sealed  TEXT        NOT NULL,
    redirect_uri          TEXT        NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL,
    consumed_at           TIMESTAMPTZ
);
