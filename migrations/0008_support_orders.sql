-- Support tooling for orders (issue 10): carrier and tracking number on ship, and partial
-- refunds (src/orders/refund.rs, src/orders/partial_refund.rs). Portable like 0001.

ALTER TABLE orders ADD COLUMN carrier TEXT;
ALTER TABLE orders ADD COLUMN tracking_number TEXT;
-- Σ amounts of refunds claimed or settled, minor units. Every claim is one conditional
-- UPDATE of this column (`… WHERE refund_claimed_minor + $amount <= total_minor`), so two
-- racing refunds can never together exceed what was paid.
ALTER TABLE orders ADD COLUMN refund_claimed_minor BIGINT NOT NULL DEFAULT 0;
-- Σ amounts of refunds the gateway confirmed (settled), minor units.
ALTER TABLE orders ADD COLUMN refunded_minor BIGINT NOT NULL DEFAULT 0;

-- Units of a line refunded (claimed or settled), and units whose reservation a settled line
-- refund released (an order refunded before shipping ships only the rest).
ALTER TABLE order_lines ADD COLUMN refunded_quantity BIGINT NOT NULL DEFAULT 0;
ALTER TABLE order_lines ADD COLUMN released_quantity BIGINT NOT NULL DEFAULT 0;

-- One row per refund of part of an order (or the remainder refunded by a full refund after
-- partial ones). state: claimed (money not yet confirmed back) → settled, or failed (the
-- gateway refused; the claim was given back). `deadline`: while claimed, when the recovery
-- worker may take the refund over (NULL for a full refund's remainder: the order's saga
-- lease covers it).
CREATE TABLE order_refunds (
    id                 TEXT PRIMARY KEY,
    order_id           TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    amount_minor       BIGINT NOT NULL CHECK (amount_minor > 0),
    -- JSON [{"line_no": 1, "quantity": 1}, …], or NULL for a refund by amount.
    lines              TEXT,
    state              TEXT NOT NULL CHECK (state IN ('claimed', 'settled', 'failed')),
    gateway_refund_id  TEXT,
    deadline           TEXT,
    created_at         TEXT NOT NULL,
    settled_at         TEXT
);
CREATE INDEX order_refunds_order ON order_refunds (order_id, created_at);
CREATE INDEX order_refunds_claimed ON order_refunds (state, deadline);

-- The sandbox gateway's refunds, one per idempotency key, never more than the charge.
ALTER TABLE sandbox_payments ADD COLUMN refunded_minor BIGINT NOT NULL DEFAULT 0;
CREATE TABLE sandbox_refunds (
    id               TEXT PRIMARY KEY,
    payment_id       TEXT NOT NULL REFERENCES sandbox_payments (id),
    idempotency_key  TEXT NOT NULL UNIQUE,
    amount_minor     BIGINT NOT NULL CHECK (amount_minor > 0),
    created_at       TEXT NOT NULL
);
