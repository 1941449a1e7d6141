-- A declined card leaves the order payable (Stripe's `requires_payment_method`): each
-- payment attempt gets its own provider idempotency key, attempt 1 the order id, attempt n
-- `<order id>:<n>`. `payment_attempt` is the number of the attempt in flight, or of the
-- next one while the order waits for payment. `checkout_decline_code` is the decline of the
-- checkout's own charge, so that a retried checkout (same Idempotency-Key) answers the same
-- 402 as the first time.
ALTER TABLE orders ADD COLUMN payment_attempt BIGINT NOT NULL DEFAULT 1;
ALTER TABLE orders ADD COLUMN checkout_decline_code TEXT;
