-- API tokens and web sessions (issue 7). Only a SHA-256 of each token's secret
-- is stored; the token itself is shown once, when it is created.
CREATE TABLE IF NOT EXISTS api_tokens (
    id           text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{12}$'),
    secret_hash  bytea NOT NULL CHECK (octet_length(secret_hash) = 32),
    role         text NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
    agent_id     text REFERENCES agents (id) ON DELETE CASCADE,
    name         text NOT NULL DEFAULT '',
    kind         text NOT NULL DEFAULT 'api' CHECK (kind IN ('api', 'session')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    parent_id    text REFERENCES api_tokens (id) ON DELETE CASCADE,  -- a session's login token
    CHECK (role <> 'agent' OR agent_id IS NOT NULL)
);

CREATE INDEX IF NOT EXISTS api_tokens_parent_idx ON api_tokens (parent_id);
CREATE INDEX IF NOT EXISTS api_tokens_agent_idx ON api_tokens (agent_id);
CREATE INDEX IF NOT EXISTS api_tokens_expiry_idx ON api_tokens (expires_at) WHERE kind = 'session';
