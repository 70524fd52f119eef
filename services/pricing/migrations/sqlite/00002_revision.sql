-- +goose Up
-- The revision of pricing's definitions (price lists and prices, promotions
-- and their codes, tax rates, shipping methods): every transaction that
-- writes one runs `UPDATE pricing_revision SET n = n + 1` before it commits,
-- so a process that reads n and finds the value it cached definitions under
-- knows they are current, whichever process wrote last (ADR 0017). Usage
-- counts and redemptions do not bump it: they are never cached.
-- The PostgreSQL file differs only in how the random start is drawn: a
-- database made anew never repeats the revisions of one a process cached
-- before.
CREATE TABLE pricing_revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO pricing_revision (id, n) VALUES (1, abs(random() % 1000000000000));

-- +goose Down
DROP TABLE pricing_revision;
