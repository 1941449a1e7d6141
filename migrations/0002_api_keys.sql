-- API keys for machine clients (src/auth/api_keys.rs). Portable like 0001: TEXT ids,
-- fixed-width RFC 3339 UTC TEXT timestamps. The key itself is never stored: only `prefix`
-- (public, for lookup) and the SHA-256 of the whole key.

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    prefix        TEXT NOT NULL UNIQUE,
    key_hash      TEXT NOT NULL,
    name          TEXT NOT NULL,
    -- The key acts as this user, with the user's current role, narrowed to `scopes`.
    owner_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Space-separated, like an OAuth 2.0 scope string (RFC 6749 §3.3): 'catalog:read orders:write'.
    scopes        TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    -- Set by rotation: the old key keeps working until then (the overlap window).
    expires_at    TEXT,
    revoked_at    TEXT,
    -- Written at most once a minute per key (see api_keys::UsageTracker).
    last_used_at  TEXT,
    -- The key that replaced this one by rotation.
    replaced_by   TEXT REFERENCES api_keys (id)
);
CREATE INDEX api_keys_created ON api_keys (created_at, id);
CREATE INDEX api_keys_owner ON api_keys (owner_id);
