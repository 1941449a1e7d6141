-- Idempotency keys on every state-changing POST (issue 7, part 3; Stripe's semantics and
-- draft-ietf-httpapi-idempotency-key-header): the first answer to a request with an
-- `Idempotency-Key` is stored and replayed to retries (src/idempotency.rs). Portable like
-- 0001: TEXT ids and timestamps (db::ts, fixed width, so text order is time order).
--
-- scope: whose key it is (`user:<uuid>` or `api_key:<uuid>`); keys of different callers
-- never meet. fingerprint: keyed SHA-256 (hex) of method, path, query and body.
-- state: in_progress (claimed by lease_token until locked_until; a replica that died
-- leaves a row another request takes over once the lease expires) → complete (status,
-- headers as a JSON array of [name, value], body as text).
CREATE TABLE idempotency_keys (
    scope         TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('in_progress', 'complete')),
    lease_token   TEXT,
    locked_until  TEXT,
    status        BIGINT,
    headers       TEXT,
    body          TEXT,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (scope, idem_key)
);
-- The pruner deletes by age.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
