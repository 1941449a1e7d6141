-- Webhooks (src/webhooks): endpoints, one delivery per (endpoint, event), and the log of
-- every attempt. Timestamps are fixed-width RFC 3339 text (text order is time order).

-- An admin-managed receiver. `event_types` is a JSON array of event types or ["*"];
-- `secret` (whsec_…) signs deliveries and is never read back by the API.
CREATE TABLE webhook_endpoints (
    id           TEXT PRIMARY KEY,
    url          TEXT NOT NULL,
    description  TEXT NOT NULL,
    event_types  TEXT NOT NULL,
    enabled      BIGINT NOT NULL,
    secret       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX webhook_endpoints_created ON webhook_endpoints (created_at, id);

-- One event for one endpoint. status: pending (not tried yet, or replayed), failed (will be
-- retried at next_attempt_at), succeeded, dead (gave up after webhooks.max_attempts).
-- A worker claims a due row by setting lease_owner/lease_until; an expired lease (a crashed
-- replica) makes the row claimable again. `attempts` counts attempts since the delivery was
-- created or last replayed. `payload` is the envelope JSON, the exact body sent.
CREATE TABLE webhook_deliveries (
    id                TEXT PRIMARY KEY,
    endpoint_id       TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id          TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    payload           TEXT NOT NULL,
    status            TEXT NOT NULL,
    attempts          BIGINT NOT NULL,
    next_attempt_at   TEXT,
    lease_owner       TEXT,
    lease_until       TEXT,
    last_status_code  BIGINT,
    last_error        TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    delivered_at      TEXT,
    CONSTRAINT webhook_deliveries_endpoint_event UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at, id);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);

-- Every attempt: the HTTP status (NULL when none came back), the error, how long it took.
CREATE TABLE webhook_attempts (
    id            TEXT PRIMARY KEY,
    delivery_id   TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt       BIGINT NOT NULL,
    status_code   BIGINT,
    error         TEXT,
    duration_ms   BIGINT NOT NULL,
    attempted_at  TEXT NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempt);
