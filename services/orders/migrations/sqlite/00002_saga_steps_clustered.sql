-- +goose Up
-- A saga's history is only ever read by order, in id order. As a rowid
-- table with a TEXT primary key and an (order_id, id) index, every step
-- written was three B-tree inserts — about four WAL pages per orders
-- commit under the checkout benchmark. Keyed by (order_id, id) without a
-- rowid it is one, and the history reads in key order. Ids are ULIDs, so
-- they stay unique on their own; order ids are ULIDs too, so new steps go
-- to the end of the tree.
CREATE TABLE orders_saga_steps_new (
    id            TEXT NOT NULL,
    order_id      TEXT NOT NULL,
    step          TEXT NOT NULL,
    action        TEXT NOT NULL CHECK (action IN ('do', 'compensate')),
    outcome       TEXT NOT NULL CHECK (outcome IN ('ok', 'skipped', 'retry', 'failed')),
    error_code    TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    attempt       INTEGER NOT NULL,
    started_at    TIMESTAMP NOT NULL,
    finished_at   TIMESTAMP,
    PRIMARY KEY (order_id, id)
) WITHOUT ROWID;
INSERT INTO orders_saga_steps_new (id, order_id, step, action, outcome, error_code, error_message, attempt, started_at, finished_at)
    SELECT id, order_id, step, action, outcome, error_code, error_message, attempt, started_at, finished_at FROM orders_saga_steps;
DROP TABLE orders_saga_steps;
ALTER TABLE orders_saga_steps_new RENAME TO orders_saga_steps;

-- +goose Down
CREATE TABLE orders_saga_steps_old (
    id            TEXT PRIMARY KEY,
    order_id      TEXT NOT NULL,
    step          TEXT NOT NULL,
    action        TEXT NOT NULL CHECK (action IN ('do', 'compensate')),
    outcome       TEXT NOT NULL CHECK (outcome IN ('ok', 'skipped', 'retry', 'failed')),
    error_code    TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    attempt       INTEGER NOT NULL,
    started_at    TIMESTAMP NOT NULL,
    finished_at   TIMESTAMP
);
INSERT INTO orders_saga_steps_old SELECT id, order_id, step, action, outcome, error_code, error_message, attempt, started_at, finished_at FROM orders_saga_steps;
DROP TABLE orders_saga_steps;
ALTER TABLE orders_saga_steps_old RENAME TO orders_saga_steps;
CREATE INDEX orders_saga_steps_order ON orders_saga_steps (order_id, id);
