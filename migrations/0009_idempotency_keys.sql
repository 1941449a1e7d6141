-- Idempotency keys for checkout (draft-ietf-httpapi-idempotency-key-header; Stripe's
-- semantics): a retried POST /orders with the same key and the same request returns the
-- order the first one created, never a second order or a second charge. Keys are scoped
-- to the customer; the fingerprint (SHA-256 of the parsed request) tells a retry from a
-- different request that reuses the key.
ALTER TABLE orders ADD COLUMN idempotency_key TEXT;
ALTER TABLE orders ADD COLUMN request_fingerprint TEXT;
CREATE UNIQUE INDEX orders_idempotency_key ON orders (customer_id, idempotency_key);
