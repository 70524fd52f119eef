-- +goose Up
-- Full-text search, PostgreSQL flavour (SQLite's differs: an FTS5 table).
-- catalog_search holds one document per product; its tsvector is a stored
-- generated column (title weighted A, SKUs B, description C) under a GIN
-- index, so every write to catalog_search updates the index in the same
-- transaction.
CREATE TABLE catalog_search (
    product_id  TEXT PRIMARY KEY REFERENCES catalog_products (id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    description TEXT NOT NULL,
    skus        TEXT NOT NULL,
    document    tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, title), 'A') ||
        setweight(to_tsvector('english'::regconfig, skus), 'B') ||
        setweight(to_tsvector('english'::regconfig, description), 'C')
    ) STORED
);
CREATE INDEX catalog_search_document ON catalog_search USING GIN (document);

-- +goose Down
DROP TABLE catalog_search;
