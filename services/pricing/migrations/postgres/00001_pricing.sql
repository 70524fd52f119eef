-- +goose Up
-- Pricing, PostgreSQL flavour: as the SQLite file but with TIMESTAMPTZ and
-- BOOLEAN columns. JSON documents (target ids, conditions, countries, rates) are
-- TEXT columns, always read and written whole with their row.

CREATE TABLE pricing_price_lists (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    currency           TEXT NOT NULL,
    prices_include_tax BOOLEAN NOT NULL,
    customer_group     TEXT,
    starts_at          TIMESTAMPTZ,
    ends_at            TIMESTAMPTZ,
    priority           INTEGER NOT NULL DEFAULT 0,
    version            BIGINT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX pricing_price_lists_currency ON pricing_price_lists (currency);

CREATE TABLE pricing_prices (
    price_list_id TEXT NOT NULL REFERENCES pricing_price_lists (id) ON DELETE CASCADE,
    variant_id    TEXT NOT NULL,
    amount        BIGINT NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (price_list_id, variant_id)
);
CREATE INDEX pricing_prices_variant ON pricing_prices (variant_id);

CREATE TABLE pricing_promotions (
    id                       TEXT PRIMARY KEY,
    name                     TEXT NOT NULL,
    type                     TEXT NOT NULL CHECK (type IN ('percentage', 'fixed', 'buy_x_get_y', 'free_shipping')),
    value_percent            BIGINT,
    value_amount             BIGINT,
    value_currency           TEXT,
    target                   TEXT NOT NULL CHECK (target IN ('order', 'product', 'category')),
    target_ids               TEXT NOT NULL DEFAULT '[]',
    has_codes                BOOLEAN NOT NULL,
    usage_limit              BIGINT,
    usage_limit_per_customer BIGINT,
    starts_at                TIMESTAMPTZ,
    ends_at                  TIMESTAMPTZ,
    combinable               BOOLEAN NOT NULL,
    priority                 INTEGER NOT NULL DEFAULT 0,
    conditions               TEXT NOT NULL DEFAULT '{}',
    buy_x_get_y              TEXT,
    active                   BOOLEAN NOT NULL,
    version                  BIGINT NOT NULL,
    created_at               TIMESTAMPTZ NOT NULL,
    updated_at               TIMESTAMPTZ NOT NULL
);
CREATE INDEX pricing_promotions_automatic ON pricing_promotions (active, has_codes);

-- Voucher codes, upper-case, unique across promotions. usage_limit is the
-- promotion's, copied here so that one conditional UPDATE
-- (used < usage_limit) is the whole check: a limit is never exceeded.
CREATE TABLE pricing_promotion_codes (
    code         TEXT PRIMARY KEY,
    promotion_id TEXT NOT NULL REFERENCES pricing_promotions (id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    usage_limit  BIGINT,
    used         BIGINT NOT NULL DEFAULT 0 CHECK (used >= 0)
);
CREATE INDEX pricing_promotion_codes_promotion ON pricing_promotion_codes (promotion_id, position);

-- A customer's redemptions of a promotion (any of its codes), for
-- usage_limit_per_customer; counted by the same conditional UPDATE.
CREATE TABLE pricing_customer_usage (
    promotion_id TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    used         BIGINT NOT NULL DEFAULT 0 CHECK (used >= 0),
    PRIMARY KEY (promotion_id, customer_id)
);

-- Redemptions, unique by idempotency key. The row is inserted first, so a
-- concurrent redemption with the same key waits on the key and then finds
-- the first one's result.
CREATE TABLE pricing_redemptions (
    id          TEXT PRIMARY KEY,
    idem_key    TEXT NOT NULL UNIQUE,
    order_id    TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    currency    TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'redeemed', 'released')),
    created_at  TIMESTAMPTZ NOT NULL,
    released_at TIMESTAMPTZ
);

-- One row per code of a redemption (the code, the customer, the
-- redemption), kept after the code is released or deleted: the history.
CREATE TABLE pricing_redemption_codes (
    redemption_id TEXT NOT NULL REFERENCES pricing_redemptions (id) ON DELETE CASCADE,
    code          TEXT NOT NULL,
    promotion_id  TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    position      INTEGER NOT NULL,
    per_customer  BOOLEAN NOT NULL,
    PRIMARY KEY (redemption_id, code)
);
CREATE INDEX pricing_redemption_codes_customer ON pricing_redemption_codes (promotion_id, customer_id);

CREATE TABLE pricing_tax_rates (
    id         TEXT PRIMARY KEY,
    country    TEXT NOT NULL,
    region     TEXT NOT NULL DEFAULT '', -- '' is the country-wide rate
    rate_bps   BIGINT NOT NULL CHECK (rate_bps >= 0 AND rate_bps <= 10000),
    name       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (country, region)
);

CREATE TABLE pricing_shipping_methods (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    countries  TEXT NOT NULL DEFAULT '[]',
    rates      TEXT NOT NULL DEFAULT '[]',
    free_over  TEXT,
    active     BOOLEAN NOT NULL,
    version    BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Facts about the database itself, such as "the demo data was loaded".
CREATE TABLE pricing_meta (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE pricing_meta;
DROP TABLE pricing_shipping_methods;
DROP TABLE pricing_tax_rates;
DROP TABLE pricing_redemption_codes;
DROP TABLE pricing_redemptions;
DROP TABLE pricing_customer_usage;
DROP TABLE pricing_promotion_codes;
DROP TABLE pricing_promotions;
DROP TABLE pricing_prices;
DROP TABLE pricing_price_lists;
