-- +goose Up
-- Full-text search, SQLite flavour (PostgreSQL's differs: a tsvector column).
-- catalog_search holds one document per product; catalog_search_fts is an
-- FTS5 index over it (external content, keyed by the integer doc_id, which
-- unlike a rowid never changes on VACUUM), kept in step by triggers, so every
-- write to catalog_search updates the index in the same transaction.
CREATE TABLE catalog_search (
    doc_id      INTEGER PRIMARY KEY,
    product_id  TEXT NOT NULL UNIQUE REFERENCES catalog_products (id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    description TEXT NOT NULL,
    skus        TEXT NOT NULL
);

CREATE VIRTUAL TABLE catalog_search_fts USING fts5 (
    title, description, skus,
    content = 'catalog_search',
    content_rowid = 'doc_id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

-- +goose StatementBegin
CREATE TRIGGER catalog_search_ai AFTER INSERT ON catalog_search BEGIN
    INSERT INTO catalog_search_fts (rowid, title, description, skus)
    VALUES (new.doc_id, new.title, new.description, new.skus);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER catalog_search_ad AFTER DELETE ON catalog_search BEGIN
    INSERT INTO catalog_search_fts (catalog_search_fts, rowid, title, description, skus)
    VALUES ('delete', old.doc_id, old.title, old.description, old.skus);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER catalog_search_au AFTER UPDATE ON catalog_search BEGIN
    INSERT INTO catalog_search_fts (catalog_search_fts, rowid, title, description, skus)
    VALUES ('delete', old.doc_id, old.title, old.description, old.skus);
    INSERT INTO catalog_search_fts (rowid, title, description, skus)
    VALUES (new.doc_id, new.title, new.description, new.skus);
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER catalog_search_au;
DROP TRIGGER catalog_search_ad;
DROP TRIGGER catalog_search_ai;
DROP TABLE catalog_search_fts;
DROP TABLE catalog_search;
