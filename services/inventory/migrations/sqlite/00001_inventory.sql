-- +goose Up
-- Inventory: stock locations, per-SKU settings, stock levels per SKU and
-- location, reservations with their lines and allocations, and the audit
-- log of every change to on_hand. Same in both engines except column types
-- (TIMESTAMP here, TIMESTAMPTZ in PostgreSQL). "available" is never stored:
-- it is on_hand - reserved, computed on read.
CREATE TABLE inventory_locations (
    id         TEXT PRIMARY KEY,
    code       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    address    TEXT NOT NULL DEFAULT '',
    country    TEXT NOT NULL DEFAULT '',
    priority   INTEGER NOT NULL CHECK (priority >= 0),
    active     BOOLEAN NOT NULL,
    version    BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX inventory_locations_priority ON inventory_locations (priority, id);

-- One row per SKU the inventory knows: its settings. Every transaction that
-- changes a SKU's stock locks this row first (PostgreSQL), so changes to
-- one SKU are serialised and low-stock crossings are seen exactly once.
-- low_stock_threshold NULL means the service's configured default.
CREATE TABLE inventory_items (
    sku                 TEXT PRIMARY KEY,
    backorder           BOOLEAN NOT NULL DEFAULT FALSE,
    low_stock_threshold BIGINT CHECK (low_stock_threshold >= 0),
    version             BIGINT NOT NULL,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL
);

-- Stock of a SKU at a location. backorder mirrors the SKU's setting (set on
-- every level when backorder is turned on; cleared where the level is not
-- over-committed when it is turned off) so that the CHECK below, the last
-- line of defence against overselling, can see it: without backorder a level
-- can never hold more reservations than stock, whatever a buggy statement
-- tries. Reservations are taken by conditional UPDATEs
-- (... WHERE on_hand - reserved >= ?), which is what actually keeps
-- concurrent buyers from overselling.
CREATE TABLE inventory_stock_levels (
    sku         TEXT NOT NULL REFERENCES inventory_items (sku),
    location_id TEXT NOT NULL REFERENCES inventory_locations (id),
    on_hand     BIGINT NOT NULL,
    reserved    BIGINT NOT NULL DEFAULT 0,
    backorder   BOOLEAN NOT NULL DEFAULT FALSE,
    version     BIGINT NOT NULL,
    updated_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (sku, location_id),
    CONSTRAINT inventory_stock_levels_no_oversell
        CHECK (reserved >= 0 AND (backorder OR (on_hand >= 0 AND reserved <= on_hand)))
);
CREATE INDEX inventory_stock_levels_location ON inventory_stock_levels (location_id, sku);

-- A reservation is claimed by its idempotency key before any stock is
-- touched (insert first): a second request with the key finds the row.
CREATE TABLE inventory_reservations (
    id              TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    fingerprint     TEXT NOT NULL,
    order_id        TEXT,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'committed', 'released', 'expired')),
    expires_at      TIMESTAMP NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    closed_at       TIMESTAMP,
    CHECK ((state = 'pending') = (closed_at IS NULL))
);
CREATE INDEX inventory_reservations_expiry ON inventory_reservations (state, expires_at);

CREATE TABLE inventory_reservation_lines (
    reservation_id TEXT NOT NULL REFERENCES inventory_reservations (id) ON DELETE CASCADE,
    line_no        INTEGER NOT NULL,
    sku            TEXT NOT NULL,
    quantity       BIGINT NOT NULL CHECK (quantity > 0),
    backordered    BIGINT NOT NULL CHECK (backordered >= 0 AND backordered <= quantity),
    PRIMARY KEY (reservation_id, line_no)
);

CREATE TABLE inventory_reservation_allocations (
    reservation_id TEXT NOT NULL,
    line_no        INTEGER NOT NULL,
    location_id    TEXT NOT NULL REFERENCES inventory_locations (id),
    quantity       BIGINT NOT NULL CHECK (quantity > 0),
    backordered    BIGINT NOT NULL CHECK (backordered >= 0 AND backordered <= quantity),
    PRIMARY KEY (reservation_id, line_no, location_id),
    FOREIGN KEY (reservation_id, line_no) REFERENCES inventory_reservation_lines (reservation_id, line_no) ON DELETE CASCADE
);

-- The audit log: one row per change of a level's on_hand, written in the
-- same transaction as the change. No foreign keys: the log outlives what it
-- describes.
CREATE TABLE inventory_adjustments (
    id             TEXT PRIMARY KEY,
    sku            TEXT NOT NULL,
    location_id    TEXT NOT NULL,
    delta          BIGINT NOT NULL CHECK (delta <> 0),
    on_hand_before BIGINT NOT NULL,
    on_hand_after  BIGINT NOT NULL,
    reason         TEXT NOT NULL CHECK (reason IN ('received', 'damaged', 'lost', 'correction', 'returned', 'cycle_count', 'sale')),
    note           TEXT NOT NULL DEFAULT '',
    actor          TEXT NOT NULL,
    reservation_id TEXT,
    order_id       TEXT,
    created_at     TIMESTAMP NOT NULL,
    CHECK (on_hand_after = on_hand_before + delta)
);
CREATE INDEX inventory_adjustments_sku ON inventory_adjustments (sku, id);

-- Facts about the database itself, such as "the demo stock was loaded".
CREATE TABLE inventory_meta (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- +goose Down
DROP TABLE inventory_meta;
DROP TABLE inventory_adjustments;
DROP TABLE inventory_reservation_allocations;
DROP TABLE inventory_reservation_lines;
DROP TABLE inventory_reservations;
DROP TABLE inventory_stock_levels;
DROP TABLE inventory_items;
DROP TABLE inventory_locations;
