-- orderly core schema. Portable across SQLite and PostgreSQL (see docs/ARCHITECTURE.md):
-- ids are TEXT (UUID v7), money is BIGINT minor units, timestamps are fixed-width
-- RFC 3339 UTC TEXT ('2026-11-22T10:00:00.000000Z', so text order is time order),
-- JSON is TEXT. Invariants the application relies on are CHECK constraints too.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    -- NULL: the account cannot log in until a password is set (imported customers).
    password_hash TEXT,
    role          TEXT NOT NULL CHECK (role IN ('customer', 'staff', 'admin')),
    external_ref  TEXT UNIQUE,
    segment       TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX users_created ON users (created_at, id);

CREATE TABLE refresh_tokens (
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    family_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    revoked_at  TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE password_resets (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    created_at  TEXT NOT NULL
);

CREATE TABLE categories (
    id          TEXT PRIMARY KEY,
    parent_id   TEXT REFERENCES categories (id),
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);
CREATE INDEX categories_parent ON categories (parent_id);

CREATE TABLE products (
    id           TEXT PRIMARY KEY,
    sku          TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    price_minor  BIGINT NOT NULL CHECK (price_minor >= 0),
    currency     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('active', 'archived')),
    category_id  TEXT REFERENCES categories (id),
    version      BIGINT NOT NULL DEFAULT 1,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX products_category ON products (category_id, id);
CREATE INDEX products_created ON products (created_at, id);
CREATE INDEX products_price ON products (price_minor, id);
CREATE INDEX products_name ON products (name, id);

-- available = on_hand - reserved; the CHECKs make overselling impossible even for a buggy
-- caller. Every change is a conditional relative UPDATE, never read-modify-write.
CREATE TABLE inventory (
    product_id           TEXT PRIMARY KEY REFERENCES products (id) ON DELETE CASCADE,
    on_hand              BIGINT NOT NULL CHECK (on_hand >= 0),
    reserved             BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    low_stock_threshold  BIGINT NOT NULL DEFAULT 10,
    updated_at           TEXT NOT NULL,
    CHECK (reserved <= on_hand)
);

CREATE TABLE orders (
    id                TEXT PRIMARY KEY,
    number            TEXT NOT NULL UNIQUE,
    customer_id       TEXT NOT NULL REFERENCES users (id),
    status            TEXT NOT NULL CHECK (status IN ('pending_payment', 'paid', 'shipped',
                          'delivered', 'cancelled', 'failed', 'refunded')),
    currency          TEXT NOT NULL,
    subtotal_minor    BIGINT NOT NULL,
    discount_minor    BIGINT NOT NULL,
    total_minor       BIGINT NOT NULL,
    -- Checkout saga progress: awaiting_payment | charging | completed | compensated.
    saga_state        TEXT NOT NULL,
    -- While charging: when another worker may take the saga over (crash recovery).
    saga_deadline     TEXT,
    -- While awaiting payment: when the stock reservation expires.
    reserved_until    TEXT,
    payment_id        TEXT,
    payment_last4     TEXT,
    failure_reason    TEXT,
    ship_mode         TEXT,
    shipping_address  TEXT,
    placed_at         TEXT NOT NULL,
    paid_at           TEXT,
    shipped_at        TEXT,
    delivered_at      TEXT,
    closed_at         TEXT,
    updated_at        TEXT NOT NULL
);
CREATE INDEX orders_customer ON orders (customer_id, placed_at, id);
CREATE INDEX orders_placed ON orders (placed_at, id);
CREATE INDEX orders_status ON orders (status, placed_at);
CREATE INDEX orders_saga ON orders (saga_state, saga_deadline);

-- Line items snapshot SKU, name and price at checkout: later catalog edits never change
-- what a customer bought. line_total = unit_price * quantity - discount.
CREATE TABLE order_lines (
    order_id          TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no           BIGINT NOT NULL,
    product_id        TEXT REFERENCES products (id),
    sku               TEXT NOT NULL,
    name              TEXT NOT NULL,
    unit_price_minor  BIGINT NOT NULL CHECK (unit_price_minor >= 0),
    quantity          BIGINT NOT NULL CHECK (quantity > 0),
    discount_minor    BIGINT NOT NULL DEFAULT 0,
    line_total_minor  BIGINT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_lines_product ON order_lines (product_id);

-- Transactional outbox: written in the same transaction as the change it describes.
CREATE TABLE outbox (
    id            TEXT PRIMARY KEY,
    event_type    TEXT NOT NULL,
    aggregate_id  TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    published_at  TEXT
);
CREATE INDEX outbox_unpublished ON outbox (published_at, id);
CREATE INDEX outbox_aggregate ON outbox (aggregate_id, id);

-- The built-in sandbox payment gateway keeps its ledger here, so that its idempotency
-- keys survive a restart exactly like a real gateway's would.
CREATE TABLE sandbox_payments (
    id               TEXT PRIMARY KEY,
    idempotency_key  TEXT NOT NULL UNIQUE,
    amount_minor     BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    status           TEXT NOT NULL,
    decline_code     TEXT,
    last4            TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
