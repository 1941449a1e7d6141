-- Account safety (issue 10). `token_version` is copied into every access token; bumping it
-- (a role change, a deactivation) refuses the user's access tokens on their next request.
-- `deactivated_at`: set while an account is deactivated (no login, no tokens, no API keys).
-- The index serves the per-request session check: a user's live refresh-token families.
ALTER TABLE users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN deactivated_at TEXT;
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id, revoked_at);
