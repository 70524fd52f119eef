-- +goose Up
CREATE TABLE widgets (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    stock BIGINT NOT NULL CHECK (stock >= 0),
    created_at TIMESTAMP NOT NULL
);

-- +goose Down
DROP TABLE widgets;
