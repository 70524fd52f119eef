-- +goose Up
-- Payments: one row per authorization (and what happened to it since), the
-- operations log that makes every operation idempotent by its key, and the
-- audit trail of provider switches. Same in both engines except column
-- types (TIMESTAMP here, TIMESTAMPTZ in PostgreSQL).
--
-- Amounts are minor units of the payment's currency. refund_pending is what
-- refunds in flight have reserved: a refund is admitted by a conditional
-- UPDATE (... WHERE refunded + refund_pending + ? <= captured) before the
-- provider is called, so concurrent refunds can never exceed the captured
-- amount; the CHECKs are the last line of defence. op_key is the key of the
-- capture or void in flight, which excludes any other.
CREATE TABLE payments (
    id             TEXT PRIMARY KEY,
    order_id       TEXT NOT NULL,
    provider       TEXT NOT NULL,
    provider_ref   TEXT NOT NULL DEFAULT '',
    status         TEXT NOT NULL CHECK (status IN ('authorized', 'captured', 'partially_refunded', 'refunded', 'voided', 'failed')),
    currency       TEXT NOT NULL,
    amount         BIGINT NOT NULL CHECK (amount > 0),
    captured       BIGINT NOT NULL DEFAULT 0,
    refunded       BIGINT NOT NULL DEFAULT 0,
    refund_pending BIGINT NOT NULL DEFAULT 0,
    op_key         TEXT,
    authorize_key  TEXT NOT NULL UNIQUE,
    failure_code   TEXT NOT NULL DEFAULT '',
    customer_id    TEXT NOT NULL DEFAULT '',
    email          TEXT NOT NULL DEFAULT '',
    version        BIGINT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL,
    CONSTRAINT payments_amounts CHECK (
        captured >= 0 AND captured <= amount AND refunded >= 0 AND refund_pending >= 0
        AND refunded + refund_pending <= captured)
);
CREATE INDEX payments_order ON payments (order_id, id);

-- Every authorize, capture, void and refund attempt, by its idempotency key.
-- The row is inserted (state pending, held until lease_until) and committed
-- before the provider is called with the same key; the result is recorded
-- after. attempts counts the claims of the row and is the condition of
-- every update of it, so only the current owner records. request is the
-- request's fingerprint (JSON, never the card token): the same key with
-- another request is refused.
CREATE TABLE payment_operations (
    idempotency_key TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('authorize', 'capture', 'void', 'refund')),
    payment_id      TEXT NOT NULL,
    provider        TEXT NOT NULL,
    request         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'succeeded', 'declined', 'unknown', 'abandoned')),
    currency        TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    provider_ref    TEXT NOT NULL DEFAULT '',
    failure_code    TEXT NOT NULL DEFAULT '',
    last_error      TEXT NOT NULL DEFAULT '',
    attempts        INTEGER NOT NULL,
    lease_until     TIMESTAMP NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);
CREATE INDEX payment_operations_payment ON payment_operations (payment_id, created_at);
CREATE INDEX payment_operations_open ON payment_operations (state, lease_until);

-- Who switched the active provider, when, from what to what and why. The
-- newest row names the active provider; with none, it is the configured
-- primary.
CREATE TABLE payment_provider_switches (
    id            TEXT PRIMARY KEY,
    from_provider TEXT NOT NULL,
    to_provider   TEXT NOT NULL,
    reason        TEXT NOT NULL,
    actor         TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL
);

-- +goose Down
DROP TABLE payment_provider_switches;
DROP TABLE payment_operations;
DROP TABLE payments;
