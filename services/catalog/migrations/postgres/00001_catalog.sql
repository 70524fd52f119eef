-- +goose Up
-- The catalogue. Same in both engines except column types (TIMESTAMPTZ here,
-- TIMESTAMP in SQLite). Options, media, variant options and attributes
-- are JSON documents in TEXT columns: they are always read and written whole
-- with their product.
CREATE TABLE catalog_categories (
    id          TEXT PRIMARY KEY,
    handle      TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    parent_id   TEXT REFERENCES catalog_categories (id),
    position    INTEGER NOT NULL DEFAULT 0,
    version     BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX catalog_categories_parent ON catalog_categories (parent_id);

CREATE TABLE catalog_products (
    id           TEXT PRIMARY KEY,
    handle       TEXT NOT NULL UNIQUE,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL CHECK (status IN ('draft', 'published', 'archived')),
    options      TEXT NOT NULL DEFAULT '[]',
    media        TEXT NOT NULL DEFAULT '[]',
    version      BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ
);
CREATE INDEX catalog_products_status ON catalog_products (status, id);

-- SKUs are unique across the whole catalogue, archived products included:
-- orders keep referring to them.
CREATE TABLE catalog_variants (
    id           TEXT PRIMARY KEY,
    product_id   TEXT NOT NULL REFERENCES catalog_products (id) ON DELETE CASCADE,
    sku          TEXT NOT NULL UNIQUE,
    title        TEXT NOT NULL,
    options      TEXT NOT NULL DEFAULT '{}',
    weight_grams BIGINT NOT NULL DEFAULT 0 CHECK (weight_grams >= 0),
    attributes   TEXT NOT NULL DEFAULT '{}',
    position     INTEGER NOT NULL
);
CREATE INDEX catalog_variants_product ON catalog_variants (product_id, position);

CREATE TABLE catalog_product_categories (
    product_id  TEXT NOT NULL REFERENCES catalog_products (id) ON DELETE CASCADE,
    category_id TEXT NOT NULL REFERENCES catalog_categories (id),
    position    INTEGER NOT NULL,
    PRIMARY KEY (product_id, category_id)
);
CREATE INDEX catalog_product_categories_category ON catalog_product_categories (category_id, product_id);

-- Facts about the database itself, such as "the demo catalogue was loaded".
CREATE TABLE catalog_meta (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE catalog_meta;
DROP TABLE catalog_product_categories;
DROP TABLE catalog_variants;
DROP TABLE catalog_products;
DROP TABLE catalog_categories;
