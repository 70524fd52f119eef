-- +goose Up
-- The revision of what GetVariant answers (products, variants and their
-- category links): every transaction that writes the catalogue runs
-- `UPDATE catalog_revision SET n = n + 1` before it commits, so a process
-- that reads n and finds the value it cached variants under knows they are
-- current, whichever replica wrote last (ADR 0019).
-- The two engines' files differ only in how the random start is drawn: a
-- database made anew never repeats the revisions of one a process cached
-- before.
CREATE TABLE catalog_revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO catalog_revision (id, n) VALUES (1, abs(random() % 1000000000000));

-- +goose Down
DROP TABLE catalog_revision;
