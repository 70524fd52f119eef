-- +goose Up
-- Carts. Same in both engines except column types (TIMESTAMPTZ here,
-- TIMESTAMP in SQLite). A cart is one row: its line items, discount codes
-- and addresses are JSON documents in TEXT columns, always read and written
-- whole with the cart, so that one conditional UPDATE … WHERE version = ?
-- changes a cart atomically.
CREATE TABLE cart_carts (
    id                 TEXT PRIMARY KEY,
    currency           TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('active', 'checked_out', 'expired')),
    -- The customer the cart is bound to; NULL for an anonymous cart.
    customer_id        TEXT,
    -- SHA-256 of the cart token, hex; the token itself is never stored.
    token_digest       TEXT NOT NULL,
    email              TEXT NOT NULL DEFAULT '',
    items              TEXT NOT NULL DEFAULT '[]',
    discount_codes     TEXT NOT NULL DEFAULT '[]',
    shipping_address   TEXT,
    billing_address    TEXT,
    shipping_method_id TEXT NOT NULL DEFAULT '',
    -- Set when checked out: the order the cart became.
    order_id           TEXT,
    -- Set when an anonymous cart was merged into a customer's cart at login.
    merged_into        TEXT,
    version            BIGINT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    expires_at         TIMESTAMPTZ NOT NULL
);
-- The expiry sweep: active carts by expiry.
CREATE INDEX cart_carts_expiry ON cart_carts (status, expires_at);
-- Merge on login: a customer's active carts, most recent first.
CREATE INDEX cart_carts_customer ON cart_carts (customer_id, status, updated_at);

-- +goose Down
DROP TABLE cart_carts;
