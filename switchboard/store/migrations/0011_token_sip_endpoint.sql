-- A supervisor's own phone (issue 11, item 6): the PJSIP endpoint their listen / whisper /
-- barge legs ring, bound to their API token; never taken from a request. A session
-- has none of its own and uses its login token's (PgTokenStore.fetch).
ALTER TABLE api_tokens ADD COLUMN IF NOT EXISTS sip_endpoint text
    CHECK (sip_endpoint ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$');
ALTER TABLE api_tokens DROP CONSTRAINT IF EXISTS api_tokens_sip_endpoint_role;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_sip_endpoint_role
    CHECK (role <> 'agent' OR sip_endpoint IS NULL);
