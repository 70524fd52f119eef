-- +goose Up
-- Orders: the orders with their frozen lines and totals, the checkout saga
-- of each (its state and the history of every step), fulfilments, refunds,
-- the audit log of staff operations, and the per-customer read model fed
-- by the orders' own events. Same in both engines except column types
-- (TIMESTAMPTZ here, TIMESTAMP in SQLite).
CREATE TABLE orders_orders (
    id                  TEXT PRIMARY KEY,
    cart_id             TEXT NOT NULL,
    customer_id         TEXT,
    email               TEXT NOT NULL,
    cart_token_digest   TEXT NOT NULL DEFAULT '',
    request_fingerprint TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'partially_fulfilled', 'fulfilled', 'cancelled')),
    cancellation        TEXT,
    currency            TEXT NOT NULL,
    prices_include_tax  BOOLEAN NOT NULL,
    items               TEXT NOT NULL,
    discount_codes      TEXT NOT NULL,
    promotions          TEXT NOT NULL,
    subtotal            BIGINT NOT NULL,
    discount_total      BIGINT NOT NULL,
    shipping_total      BIGINT NOT NULL,
    tax_total           BIGINT NOT NULL,
    total               BIGINT NOT NULL,
    shipping_address    TEXT,
    billing_address     TEXT,
    shipping_method     TEXT,
    payment_provider    TEXT NOT NULL DEFAULT '',
    capture_policy      TEXT NOT NULL,
    payment_id          TEXT NOT NULL DEFAULT '',
    authorized_amount   BIGINT NOT NULL DEFAULT 0,
    captured_amount     BIGINT NOT NULL DEFAULT 0,
    refunded_amount     BIGINT NOT NULL DEFAULT 0,
    refund_pending      BIGINT NOT NULL DEFAULT 0,
    version             BIGINT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    confirmed_at        TIMESTAMPTZ,
    -- Never refund more than was captured, whatever the concurrency.
    CHECK (refunded_amount >= 0 AND refund_pending >= 0 AND refunded_amount + refund_pending <= captured_amount)
);
-- One cart, at most one live order: two checkouts of a cart racing each
-- other cannot both create one. A cancelled order frees the cart.
CREATE UNIQUE INDEX orders_one_live_order_per_cart ON orders_orders (cart_id) WHERE status <> 'cancelled';
CREATE INDEX orders_orders_status ON orders_orders (status, id);
CREATE INDEX orders_orders_customer ON orders_orders (customer_id, id);

-- The checkout saga of an order, one row, rewritten after every step.
-- lease_owner/lease_until: the process running it ('' when none);
-- payment_token is kept only until the authorization is settled.
CREATE TABLE orders_sagas (
    order_id         TEXT PRIMARY KEY REFERENCES orders_orders (id),
    status           TEXT NOT NULL CHECK (status IN ('running', 'compensating', 'done')),
    step             TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    step_started_at  TIMESTAMPTZ,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    deadline         TIMESTAMPTZ NOT NULL,
    failed_step      TEXT NOT NULL DEFAULT '',
    reason           TEXT NOT NULL DEFAULT '',
    reason_detail    TEXT NOT NULL DEFAULT '',
    cancel_requested TEXT NOT NULL DEFAULT '',
    payment_token    TEXT NOT NULL DEFAULT '',
    reservation_id   TEXT NOT NULL DEFAULT '',
    lease_owner      TEXT NOT NULL DEFAULT '',
    lease_until      TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX orders_sagas_due ON orders_sagas (next_attempt_at) WHERE status <> 'done';

-- Every attempt of every saga step, for the admin view.
CREATE TABLE orders_saga_steps (
    id            TEXT PRIMARY KEY,
    order_id      TEXT NOT NULL,
    step          TEXT NOT NULL,
    action        TEXT NOT NULL CHECK (action IN ('do', 'compensate')),
    outcome       TEXT NOT NULL CHECK (outcome IN ('ok', 'skipped', 'retry', 'failed')),
    error_code    TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    attempt       INTEGER NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ
);
CREATE INDEX orders_saga_steps_order ON orders_saga_steps (order_id, id);

CREATE TABLE orders_fulfilments (
    id              TEXT PRIMARY KEY,
    order_id        TEXT NOT NULL REFERENCES orders_orders (id),
    items           TEXT NOT NULL,
    tracking_number TEXT,
    carrier         TEXT,
    created_by      TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX orders_fulfilments_order ON orders_fulfilments (order_id, id);

-- A refund is recorded (pending, its amount held in refund_pending)
-- before payments is asked, so a crash or a lost answer is resumed with
-- the same key.
CREATE TABLE orders_refunds (
    id           TEXT PRIMARY KEY,
    order_id     TEXT NOT NULL REFERENCES orders_orders (id),
    idem_key     TEXT NOT NULL,
    amount       BIGINT NOT NULL CHECK (amount > 0),
    reason       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    failure_code TEXT NOT NULL DEFAULT '',
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (order_id, idem_key)
);

-- Who did what to an order through the Admin API.
CREATE TABLE orders_audit (
    id         TEXT PRIMARY KEY,
    order_id   TEXT NOT NULL,
    actor      TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    action     TEXT NOT NULL,
    detail     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX orders_audit_order ON orders_audit (order_id, id);

-- The read model of GET /store/customers/me/orders, written only by the
-- consumer of souk.orders.* events (never by the order's own writes).
-- status_rank keeps a late, redelivered or reordered event from moving an
-- order back.
CREATE TABLE orders_customer_orders (
    order_id       TEXT PRIMARY KEY,
    customer_id    TEXT NOT NULL,
    status         TEXT NOT NULL,
    status_rank    INTEGER NOT NULL,
    currency       TEXT NOT NULL,
    total          BIGINT NOT NULL,
    refunded_total BIGINT NOT NULL DEFAULT 0,
    item_count     BIGINT NOT NULL,
    placed_at      TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX orders_customer_orders_customer ON orders_customer_orders (customer_id, order_id);

-- +goose Down
DROP TABLE orders_customer_orders;
DROP TABLE orders_audit;
DROP TABLE orders_refunds;
DROP TABLE orders_fulfilments;
DROP TABLE orders_saga_steps;
DROP TABLE orders_sagas;
DROP TABLE orders_orders;
