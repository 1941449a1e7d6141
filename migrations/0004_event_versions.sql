-- Typed domain events (src/events.rs, docs/EVENTS.md): every outbox row records the version
-- of its event type's payload schema, so consumers can tell old payloads from new ones.
ALTER TABLE outbox ADD COLUMN event_version INTEGER NOT NULL DEFAULT 1;
