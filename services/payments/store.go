package payments

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"time"

	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/store"
)

//go:embed migrations
var migrationsFS embed.FS

// Migrations creates the payments tables. Apply it with bus.Migrations (the
// outbox) to the payments database.
var Migrations = store.Migrations{Name: "payments", FS: migrationsFS}

// The SQL of payments. Every function takes the Querier or Tx to run in;
// the service decides the transaction. None returns sql.ErrNoRows: a
// missing row is a false "found", and a conditional write that matched
// nothing a false "changed".

// --- payments ---

// paymentRow is a payment with the columns the API does not show.
type paymentRow struct {
	Payment
	RefundPending int64
	OpKey         sql.NullString
	AuthorizeKey  string
	CustomerID    string
	Email         string
}

const paymentColumns = `id, order_id, provider, provider_ref, status, currency, amount, captured, refunded, refund_pending,
	op_key, authorize_key, failure_code, customer_id, email, version, created_at, updated_at`

func scanPayment(r store.RowScanner) (paymentRow, error) {
	var p paymentRow
	var cur string
	if err := r.Scan(&p.ID, &p.OrderID, &p.Provider, &p.ProviderRef, &p.Status, &cur, &p.Amount.Amount, &p.Captured.Amount,
		&p.Refunded.Amount, &p.RefundPending, &p.OpKey, &p.AuthorizeKey, &p.FailureCode, &p.CustomerID, &p.Email,
		&p.Version, &p.CreatedAt, &p.UpdatedAt); err != nil {
		return paymentRow{}, err
	}
	p.Amount.Currency, p.Captured.Currency, p.Refunded.Currency = cur, cur, cur
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return p, nil
}

// scanPaymentFound scans a row that may not be there: a read of one
// payment, or a conditional write returning it.
func scanPaymentFound(r store.RowScanner) (paymentRow, bool, error) {
	p, err := scanPayment(r)
	if errors.Is(err, sql.ErrNoRows) {
		return paymentRow{}, false, nil
	}
	return p, err == nil, err
}

func getPayment(ctx context.Context, q store.Querier, paymentID string) (paymentRow, bool, error) {
	return scanPaymentFound(q.QueryRow(ctx, `SELECT `+paymentColumns+` FROM payments WHERE id = ?`, paymentID))
}

func insertPayment(ctx context.Context, tx *store.Tx, p paymentRow) error {
	_, err := tx.Exec(ctx, `INSERT INTO payments (`+paymentColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.OrderID, p.Provider, p.ProviderRef, string(p.Status), p.Amount.Currency, p.Amount.Amount, p.Captured.Amount,
		p.Refunded.Amount, p.RefundPending, p.OpKey, p.AuthorizeKey, p.FailureCode, p.CustomerID, p.Email,
		p.Version, p.CreatedAt, p.UpdatedAt)
	return err
}

// listPayments lists payments by id, after the cursor id, of one order
// when orderID is set.
func listPayments(ctx context.Context, q store.Querier, orderID, after string, limit int) ([]Payment, error) {
	query := `SELECT ` + paymentColumns + ` FROM payments WHERE id > ?`
	args := []any{after}
	if orderID != "" {
		query += ` AND order_id = ?`
		args = append(args, orderID)
	}
	query += ` ORDER BY id LIMIT ?`
	args = append(args, limit)
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Payment
	for rows.Next() {
		p, err := scanPayment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Payment)
	}
	return out, rows.Err()
}

// claimPaymentOp takes the payment for a capture or void: it must be
// authorized with no other capture or void in flight, and, for a capture
// (capture.Currency set), in the capture's currency and of at least its
// amount.
func claimPaymentOp(ctx context.Context, tx *store.Tx, paymentID, key string, capture money.Money, now time.Time) (bool, error) {
	query := `UPDATE payments SET op_key = ?, version = version + 1, updated_at = ?
		WHERE id = ? AND status = 'authorized' AND op_key IS NULL`
	args := []any{key, now, paymentID}
	if capture.Currency != "" {
		query += ` AND currency = ? AND amount >= ?`
		args = append(args, capture.Currency, capture.Amount)
	}
	return store.ChangedOne(tx.Exec(ctx, query, args...))
}

// releasePaymentOp frees the payment from the capture or void keyed key.
func releasePaymentOp(ctx context.Context, tx *store.Tx, paymentID, key string, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE payments SET op_key = NULL, version = version + 1, updated_at = ?
		WHERE id = ? AND op_key = ?`, now, paymentID, key)
	return err
}

// finishPaymentOp records a capture (captured > 0) or void (status voided)
// done by the operation keyed key, and returns the payment as it left it;
// false when the payment is not held by key.
func finishPaymentOp(ctx context.Context, tx *store.Tx, paymentID, key string, status Status, captured int64, now time.Time) (paymentRow, bool, error) {
	return scanPaymentFound(tx.QueryRow(ctx, `UPDATE payments SET status = ?, captured = ?, op_key = NULL, version = version + 1, updated_at = ?
		WHERE id = ? AND op_key = ? RETURNING `+paymentColumns, string(status), captured, now, paymentID, key))
}

// reserveRefund admits a refund of amount: the conditional UPDATE that
// keeps the refunds of a payment, in flight and done, within what was
// captured, whatever runs concurrently (and in the payment's currency).
func reserveRefund(ctx context.Context, tx *store.Tx, paymentID string, amount money.Money, now time.Time) (bool, error) {
	return store.ChangedOne(tx.Exec(ctx, `UPDATE payments SET refund_pending = refund_pending + ?, version = version + 1, updated_at = ?
		WHERE id = ? AND currency = ? AND status IN ('captured', 'partially_refunded') AND refunded + refund_pending + ? <= captured`,
		amount.Amount, now, paymentID, amount.Currency, amount.Amount))
}

// releaseRefund gives back a reservation of a refund that did not happen.
func releaseRefund(ctx context.Context, tx *store.Tx, paymentID string, amount int64, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE payments SET refund_pending = refund_pending - ?, version = version + 1, updated_at = ?
		WHERE id = ?`, amount, now, paymentID)
	return err
}

// finishRefund turns a reservation into a refund and returns the payment
// as it left it.
func finishRefund(ctx context.Context, tx *store.Tx, paymentID string, amount int64, now time.Time) (paymentRow, bool, error) {
	return scanPaymentFound(tx.QueryRow(ctx, `UPDATE payments SET refund_pending = refund_pending - ?, refunded = refunded + ?,
		status = CASE WHEN refunded + ? = captured THEN 'refunded' ELSE 'partially_refunded' END,
		version = version + 1, updated_at = ? WHERE id = ? RETURNING `+paymentColumns, amount, amount, amount, now, paymentID))
}

// --- operations ---

// opRow is one row of the operations log.
type opRow struct {
	Key         string
	Kind        Operation
	PaymentID   string
	Provider    string
	Request     string
	State       OpState
	Amount      money.Money
	ProviderRef string
	FailureCode string
	LastError   string
	Attempts    int
	LeaseUntil  time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time

	// payment, not a column, is the payment as the settlement that
	// recorded this row left it, when the call holding the row settled it
	// (see Service.settle); nil otherwise, as for a replay.
	payment *Payment
}

func (o opRow) record() OperationRecord {
	return OperationRecord{
		Key: o.Key, Kind: o.Kind, PaymentID: o.PaymentID, Provider: o.Provider, State: o.State, Amount: o.Amount,
		ProviderRef: o.ProviderRef, FailureCode: o.FailureCode, Attempts: o.Attempts, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
	}
}

const opColumns = `idempotency_key, kind, payment_id, provider, request, state, currency, amount, provider_ref,
	failure_code, last_error, attempts, lease_until, created_at, updated_at`

func scanOp(r store.RowScanner) (opRow, error) {
	var o opRow
	if err := r.Scan(&o.Key, &o.Kind, &o.PaymentID, &o.Provider, &o.Request, &o.State, &o.Amount.Currency, &o.Amount.Amount,
		&o.ProviderRef, &o.FailureCode, &o.LastError, &o.Attempts, &o.LeaseUntil, &o.CreatedAt, &o.UpdatedAt); err != nil {
		return opRow{}, err
	}
	o.LeaseUntil, o.CreatedAt, o.UpdatedAt = o.LeaseUntil.UTC(), o.CreatedAt.UTC(), o.UpdatedAt.UTC()
	return o, nil
}

func getOp(ctx context.Context, q store.Querier, key string) (opRow, bool, error) {
	o, err := scanOp(q.QueryRow(ctx, `SELECT `+opColumns+` FROM payment_operations WHERE idempotency_key = ?`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return opRow{}, false, nil
	}
	return o, err == nil, err
}

const insertOpSQL = `INSERT INTO payment_operations (` + opColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

func opArgs(o opRow) []any {
	return []any{o.Key, string(o.Kind), o.PaymentID, o.Provider, o.Request, string(o.State), o.Amount.Currency, o.Amount.Amount,
		o.ProviderRef, o.FailureCode, o.LastError, o.Attempts, o.LeaseUntil, o.CreatedAt, o.UpdatedAt}
}

// insertOp inserts an operation's row; a key that has one is a unique
// violation.
func insertOp(ctx context.Context, tx *store.Tx, o opRow) error {
	_, err := tx.Exec(ctx, insertOpSQL, opArgs(o)...)
	return err
}

// insertNewOp inserts an operation's row unless its key has one: false
// when it has. Under PostgreSQL an insert of the key by a transaction in
// flight makes it wait for that one's outcome, so true means no other
// request holds or held the key.
func insertNewOp(ctx context.Context, tx *store.Tx, o opRow) (bool, error) {
	return store.ChangedOne(tx.Exec(ctx, insertOpSQL+` ON CONFLICT (idempotency_key) DO NOTHING`, opArgs(o)...))
}

// takeOverOp claims an operation that nobody holds (pending past its
// lease, unknown or abandoned) for a new attempt, if it is still at the
// attempt it was read at.
func takeOverOp(ctx context.Context, tx *store.Tx, o opRow, leaseUntil, now time.Time) (bool, error) {
	return store.ChangedOne(tx.Exec(ctx, `UPDATE payment_operations SET state = 'pending', attempts = attempts + 1, lease_until = ?, updated_at = ?
		WHERE idempotency_key = ? AND attempts = ? AND state = ?`, leaseUntil, now, o.Key, o.Attempts, string(o.State)))
}

// settleOp records the outcome of the attempt that holds the operation;
// false when another attempt took it over meanwhile.
func settleOp(ctx context.Context, tx *store.Tx, o opRow, state OpState, providerRef, failureCode, lastError string, now time.Time) (bool, error) {
	return store.ChangedOne(tx.Exec(ctx, `UPDATE payment_operations SET state = ?, provider_ref = ?, failure_code = ?, last_error = ?,
		lease_until = ?, updated_at = ? WHERE idempotency_key = ? AND attempts = ? AND state = 'pending'`,
		string(state), providerRef, failureCode, truncate(lastError, 500), now, now, o.Key, o.Attempts))
}

func listOps(ctx context.Context, q store.Querier, paymentID string) ([]OperationRecord, error) {
	rows, err := q.Query(ctx, `SELECT `+opColumns+` FROM payment_operations WHERE payment_id = ? ORDER BY created_at, idempotency_key`, paymentID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []OperationRecord{}
	for rows.Next() {
		o, err := scanOp(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, o.record())
	}
	return out, rows.Err()
}

// openOps lists operations whose outcome is not known and that nobody
// holds: unknown, or pending past their lease.
func openOps(ctx context.Context, q store.Querier, now time.Time, limit int) ([]opRow, error) {
	rows, err := q.Query(ctx, `SELECT `+opColumns+` FROM payment_operations
		WHERE state = 'unknown' OR (state = 'pending' AND lease_until < ?) ORDER BY updated_at LIMIT ?`, now, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []opRow
	for rows.Next() {
		o, err := scanOp(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// --- provider switches ---

func insertSwitch(ctx context.Context, tx *store.Tx, sw ProviderSwitch) error {
	_, err := tx.Exec(ctx, `INSERT INTO payment_provider_switches (id, from_provider, to_provider, reason, actor, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`, sw.ID, sw.From, sw.To, sw.Reason, sw.Actor, sw.CreatedAt)
	return err
}

// listSwitches returns the newest switches first (ids sort by time).
func listSwitches(ctx context.Context, q store.Querier, limit int) ([]ProviderSwitch, error) {
	rows, err := q.Query(ctx, `SELECT id, from_provider, to_provider, reason, actor, created_at
		FROM payment_provider_switches ORDER BY created_at DESC, id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []ProviderSwitch{}
	for rows.Next() {
		var sw ProviderSwitch
		if err := rows.Scan(&sw.ID, &sw.From, &sw.To, &sw.Reason, &sw.Actor, &sw.CreatedAt); err != nil {
			return nil, err
		}
		sw.CreatedAt = sw.CreatedAt.UTC()
		out = append(out, sw)
	}
	return out, rows.Err()
}
