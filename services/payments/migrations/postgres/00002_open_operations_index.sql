-- +goose Up
-- Recovery looks for operations that are unknown, or pending past their
-- lease; a settled operation (the vast majority) never needs an entry.
-- With every operation in the index, settling one moved its entry from the
-- pending part to the succeeded part — about one and a half WAL pages per
-- payments commit under the checkout benchmark. The query's
-- "state = 'unknown' OR (state = 'pending' AND …)" implies this condition,
-- arm by arm, so both engines still answer it from the index.
DROP INDEX payment_operations_open;
CREATE INDEX payment_operations_open ON payment_operations (state, lease_until) WHERE state = 'pending' OR state = 'unknown';

-- +goose Down
DROP INDEX payment_operations_open;
CREATE INDEX payment_operations_open ON payment_operations (state, lease_until);
