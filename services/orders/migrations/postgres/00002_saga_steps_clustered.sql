-- +goose Up
-- A saga's history is only ever read by order, in id order: the primary
-- key (order_id, id) serves that read, and the separate index on it and
-- the one on id alone were two index inserts per step for nothing. Ids are
-- ULIDs, unique on their own.
ALTER TABLE orders_saga_steps DROP CONSTRAINT orders_saga_steps_pkey;
DROP INDEX orders_saga_steps_order;
ALTER TABLE orders_saga_steps ADD PRIMARY KEY (order_id, id);

-- +goose Down
ALTER TABLE orders_saga_steps DROP CONSTRAINT orders_saga_steps_pkey;
ALTER TABLE orders_saga_steps ADD PRIMARY KEY (id);
CREATE INDEX orders_saga_steps_order ON orders_saga_steps (order_id, id);
