-- The outbox relay (src/events/relay.rs) and durable consumers (src/events/consumers.rs).
--
-- `seq` is the publish sequence: the relay assigns it when it publishes a row, under the
-- lock of `relay_cursor`'s one row, so publish order is one total order on every replica.
-- It is the SSE `id:` and the resume point of `Last-Event-ID`, and the offset of durable
-- consumers on the embedded bus. NULL until published.
ALTER TABLE outbox ADD COLUMN seq BIGINT;
CREATE UNIQUE INDEX outbox_seq ON outbox (seq);

CREATE TABLE relay_cursor (
    id        INTEGER PRIMARY KEY,
    last_seq  BIGINT NOT NULL
);
INSERT INTO relay_cursor (id, last_seq) VALUES (1, 0);

-- How far each durable consumer has come on the embedded bus (JetStream keeps its own).
CREATE TABLE consumer_offsets (
    consumer    TEXT PRIMARY KEY,
    last_seq    BIGINT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Events a consumer has handled, so a redelivered event is acknowledged, not handled twice.
CREATE TABLE processed_events (
    consumer      TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    processed_at  TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX processed_events_age ON processed_events (processed_at);

-- Events a consumer gave up on after its retries, with the last error; replayable.
CREATE TABLE dead_letters (
    id           TEXT PRIMARY KEY,
    consumer     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    envelope     TEXT NOT NULL,
    error        TEXT NOT NULL,
    attempts     BIGINT NOT NULL,
    failed_at    TEXT NOT NULL,
    replayed_at  TEXT
);
CREATE INDEX dead_letters_consumer ON dead_letters (consumer, failed_at);
