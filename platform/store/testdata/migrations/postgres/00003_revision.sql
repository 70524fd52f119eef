-- +goose Up
-- A store.Revision's table. The PostgreSQL file differs only in how the
-- random start is drawn.
CREATE TABLE widgets_revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO widgets_revision (id, n) VALUES (1, floor(random() * 1000000000000)::BIGINT);

-- +goose Down
DROP TABLE widgets_revision;
