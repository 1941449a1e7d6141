-- Low-stock alerts (src/stock_alerts.rs), kept by the `stock-alerts` durable consumer from
-- `inventory.low` events, and dead-letter lookups by event (src/events/consumers).
--
-- One row per product: a later `inventory.low` updates it; one after the alert was
-- acknowledged opens it again. `last_event_id` (UUID v7: text order is time order) makes
-- the upsert idempotent: a redelivered or older event changes nothing.
CREATE TABLE stock_alerts (
    product_id       TEXT PRIMARY KEY REFERENCES products (id) ON DELETE CASCADE,
    available        BIGINT NOT NULL,
    raised_at        TEXT NOT NULL,
    last_event_id    TEXT NOT NULL,
    acknowledged_at  TEXT,
    acknowledged_by  TEXT
);
-- Open alerts, newest first.
CREATE INDEX stock_alerts_open ON stock_alerts (acknowledged_at, raised_at);

-- A consumer's dead letter of one event is found again when the event fails once more
-- (after an offset reset) or is replayed.
CREATE INDEX dead_letters_event ON dead_letters (consumer, event_id);
