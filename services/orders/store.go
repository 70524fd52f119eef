package orders

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/store"
)

//go:embed migrations
var migrationsFS embed.FS

// Migrations creates the orders' tables. Apply it with bus.Migrations (the
// outbox, and the inbox of the read model's consumer) to the orders
// database.
var Migrations = store.Migrations{Name: "orders", FS: migrationsFS}

// The SQL of the orders. Every function takes the Querier or Tx to run in;
// the service decides the transaction. None returns sql.ErrNoRows: a
// missing row is errNoOrder (or found == false).

var errNoOrder = errors.New("no such order")

// record is an order as stored: the Order without its fulfilments and
// refunds (separate tables), plus what only the service sees.
type record struct {
	Order
	tokenDigest string
	fingerprint string
	capturedAmt int64
	refundedAmt int64
	pendingAmt  int64
	authAmt     int64
	paymentID   string
	provider    string
}

// clone is a copy of r whose slices a change may modify without touching r's.
func (r record) clone() record {
	r.Items = slices.Clone(r.Items)
	r.Promotions = slices.Clone(r.Promotions)
	r.DiscountCodes = slices.Clone(r.DiscountCodes)
	return r
}

// available is what may still be refunded: captured, less refunded and
// refunds in flight.
func (r record) refundable() int64 { return r.capturedAmt - r.refundedAmt - r.pendingAmt }

const orderColumns = `id, cart_id, customer_id, email, cart_token_digest, request_fingerprint, status, cancellation,
	currency, prices_include_tax, items, discount_codes, promotions, subtotal, discount_total, shipping_total, tax_total, total,
	shipping_address, billing_address, shipping_method, payment_provider, capture_policy, payment_id,
	authorized_amount, captured_amount, refunded_amount, refund_pending, version, created_at, updated_at, confirmed_at`

func scanOrder(s store.RowScanner) (record, error) {
	var (
		r                                    record
		customer, cancellation               sql.NullString
		shipping, billing, method            sql.NullString
		items, codes, promos                 string
		status                               string
		subtotal, discount, ship, tax, total int64
		created, updated                     time.Time
		confirmed                            sql.NullTime
		capturePolicy                        string
	)
	if err := s.Scan(&r.ID, &r.CartID, &customer, &r.Email, &r.tokenDigest, &r.fingerprint, &status, &cancellation,
		&r.Currency, &r.PricesIncludeTax, &items, &codes, &promos, &subtotal, &discount, &ship, &tax, &total,
		&shipping, &billing, &method, &r.provider, &capturePolicy, &r.paymentID,
		&r.authAmt, &r.capturedAmt, &r.refundedAmt, &r.pendingAmt, &r.Version, &created, &updated, &confirmed); err != nil {
		return record{}, err
	}
	r.Status = Status(status)
	if customer.Valid {
		c := customer.String
		r.CustomerID = &c
	}
	cur := r.Currency
	r.Subtotal, r.DiscountTotal, r.ShippingTotal = money.New(subtotal, cur), money.New(discount, cur), money.New(ship, cur)
	r.TaxTotal, r.Total = money.New(tax, cur), money.New(total, cur)
	r.CreatedAt, r.UpdatedAt = created.UTC(), updated.UTC()
	if confirmed.Valid {
		t := confirmed.Time.UTC()
		r.ConfirmedAt = &t
	}
	for _, f := range []struct {
		raw string
		dst any
	}{{items, &r.Items}, {codes, &r.DiscountCodes}, {promos, &r.Promotions}} {
		if err := json.Unmarshal([]byte(f.raw), f.dst); err != nil {
			return record{}, fmt.Errorf("decode order %s: %w", r.ID, err)
		}
	}
	for _, f := range []struct {
		raw sql.NullString
		dst any
	}{{shipping, &r.ShippingAddress}, {billing, &r.BillingAddress}, {method, &r.ShippingMethod}, {cancellation, &r.Cancellation}} {
		if f.raw.Valid {
			if err := json.Unmarshal([]byte(f.raw.String), f.dst); err != nil {
				return record{}, fmt.Errorf("decode order %s: %w", r.ID, err)
			}
		}
	}
	r.Payment.CapturePolicy = capturePolicy
	r.derive()
	return r, nil
}

// derive sets the order's payment figures and refunded total from the
// record's own columns, and its fulfilments and refunds to none (complete
// reads them): the order as read from the database. Changes write the
// columns; the saga answers a waiting checkout with a derived record.
func (r *record) derive() {
	cur := r.Currency
	r.Payment = Payment{
		Provider: r.provider, CapturePolicy: r.Payment.CapturePolicy,
		Authorized: money.New(r.authAmt, cur), Captured: money.New(r.capturedAmt, cur), Refunded: money.New(r.refundedAmt, cur),
	}
	if r.paymentID != "" {
		p := r.paymentID
		r.Payment.PaymentID = &p
	}
	r.RefundedTotal = money.New(r.refundedAmt, cur)
	r.Fulfilments, r.Refunds = []Fulfilment{}, []Refund{}
}

// nullJSON is store.JSONText, or NULL for a nil pointer.
func nullJSON[T any](v *T) any {
	if v == nil {
		return nil
	}
	return store.JSONText(v)
}

func nullString(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func insertOrder(ctx context.Context, tx *store.Tx, r record) error {
	_, err := tx.Exec(ctx, `INSERT INTO orders_orders (`+orderColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.CartID, nullString(r.CustomerID), r.Email, r.tokenDigest, r.fingerprint, string(r.Status), nullJSON(r.Cancellation),
		r.Currency, r.PricesIncludeTax, store.JSONText(r.Items), store.JSONText(r.DiscountCodes), store.JSONText(r.Promotions),
		r.Subtotal.Amount, r.DiscountTotal.Amount, r.ShippingTotal.Amount, r.TaxTotal.Amount, r.Total.Amount,
		nullJSON(r.ShippingAddress), nullJSON(r.BillingAddress), nullJSON(r.ShippingMethod), r.provider, r.Payment.CapturePolicy, r.paymentID,
		r.authAmt, r.capturedAmt, r.refundedAmt, r.pendingAmt, r.Version, r.CreatedAt, r.UpdatedAt, r.ConfirmedAt)
	if err != nil {
		return fmt.Errorf("insert order: %w", err)
	}
	return nil
}

// updateOrder writes the mutable columns of r at version r.Version, if the
// row is still at expected; false when it is not.
func updateOrder(ctx context.Context, tx *store.Tx, r record, expected int64) (bool, error) {
	res, err := tx.Exec(ctx, `UPDATE orders_orders SET status = ?, cancellation = ?, items = ?, payment_provider = ?, payment_id = ?,
		authorized_amount = ?, captured_amount = ?, refunded_amount = ?, refund_pending = ?, version = ?, updated_at = ?, confirmed_at = ?
		WHERE id = ? AND version = ?`,
		string(r.Status), nullJSON(r.Cancellation), store.JSONText(r.Items), r.provider, r.paymentID,
		r.authAmt, r.capturedAmt, r.refundedAmt, r.pendingAmt, r.Version, r.UpdatedAt, r.ConfirmedAt, r.ID, expected)
	if err != nil {
		return false, fmt.Errorf("update order %s: %w", r.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("update order %s: %w", r.ID, err)
	}
	return n == 1, nil
}

func getOrder(ctx context.Context, q store.Querier, orderID string) (record, error) {
	r, err := scanOrder(q.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders_orders WHERE id = ?`, orderID))
	if errors.Is(err, sql.ErrNoRows) {
		return record{}, errNoOrder
	}
	if err != nil {
		return record{}, fmt.Errorf("read order %s: %w", orderID, err)
	}
	return r, nil
}

// liveOrderOfCart returns the cart's order that is not cancelled, if any
// (the partial unique index allows at most one).
func liveOrderOfCart(ctx context.Context, q store.Querier, cartID string) (record, bool, error) {
	r, err := scanOrder(q.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders_orders WHERE cart_id = ? AND status <> 'cancelled'`, cartID))
	if errors.Is(err, sql.ErrNoRows) {
		return record{}, false, nil
	}
	if err != nil {
		return record{}, false, fmt.Errorf("read order of cart %s: %w", cartID, err)
	}
	return r, true, nil
}

// listOrders returns up to limit orders, newest first, with ids below
// before (when set), of the status and customer (when set).
func listOrders(ctx context.Context, q store.Querier, f ListFilter, before string, limit int) ([]record, error) {
	var (
		where []string
		args  []any
	)
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, string(f.Status))
	}
	if f.CustomerID != "" {
		where, args = append(where, "customer_id = ?"), append(args, f.CustomerID)
	}
	if before != "" {
		where, args = append(where, "id < ?"), append(args, before)
	}
	query := `SELECT ` + orderColumns + ` FROM orders_orders`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	rows, err := q.Query(ctx, query+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	defer rows.Close()
	var out []record
	for rows.Next() {
		r, err := scanOrder(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	return out, nil
}

// --- fulfilments, refunds, audit ---

func insertFulfilment(ctx context.Context, tx *store.Tx, orderID string, f Fulfilment) error {
	_, err := tx.Exec(ctx, `INSERT INTO orders_fulfilments (id, order_id, items, tracking_number, carrier, created_by, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, f.ID, orderID, store.JSONText(f.Items), nullString(f.TrackingNumber), nullString(f.Carrier), f.CreatedBy, f.CreatedAt)
	if err != nil {
		return fmt.Errorf("insert fulfilment: %w", err)
	}
	return nil
}

func listFulfilments(ctx context.Context, q store.Querier, orderID string) ([]Fulfilment, error) {
	rows, err := q.Query(ctx, `SELECT id, items, tracking_number, carrier, created_by, created_at FROM orders_fulfilments WHERE order_id = ? ORDER BY id`, orderID)
	if err != nil {
		return nil, fmt.Errorf("list fulfilments: %w", err)
	}
	defer rows.Close()
	out := []Fulfilment{}
	for rows.Next() {
		var (
			f                 Fulfilment
			items             string
			tracking, carrier sql.NullString
		)
		if err := rows.Scan(&f.ID, &items, &tracking, &carrier, &f.CreatedBy, &f.CreatedAt); err != nil {
			return nil, fmt.Errorf("list fulfilments: %w", err)
		}
		if err := json.Unmarshal([]byte(items), &f.Items); err != nil {
			return nil, fmt.Errorf("decode fulfilment %s: %w", f.ID, err)
		}
		if tracking.Valid {
			f.TrackingNumber = &tracking.String
		}
		if carrier.Valid {
			f.Carrier = &carrier.String
		}
		f.CreatedAt = f.CreatedAt.UTC()
		out = append(out, f)
	}
	return out, rows.Err()
}

// refundRow is a refund as stored.
type refundRow struct {
	Refund
	orderID string
	key     string
}

func insertRefund(ctx context.Context, tx *store.Tx, r refundRow) error {
	_, err := tx.Exec(ctx, `INSERT INTO orders_refunds (id, order_id, idem_key, amount, reason, status, failure_code, created_by, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.ID, r.orderID, r.key, r.Amount.Amount, r.Reason, r.Status, "", r.CreatedBy, r.CreatedAt, r.UpdatedAt)
	if err != nil {
		return fmt.Errorf("insert refund: %w", err)
	}
	return nil
}

// settleRefund moves a pending refund to succeeded or failed; false when it
// was not pending any more.
func settleRefund(ctx context.Context, tx *store.Tx, refundID, status, failureCode string, now time.Time) (bool, error) {
	res, err := tx.Exec(ctx, `UPDATE orders_refunds SET status = ?, failure_code = ?, updated_at = ? WHERE id = ? AND status = ?`,
		status, failureCode, now, refundID, RefundPending)
	if err != nil {
		return false, fmt.Errorf("settle refund %s: %w", refundID, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

const refundColumns = `id, order_id, idem_key, amount, reason, status, failure_code, created_by, created_at, updated_at`

func scanRefund(s store.RowScanner, currency string) (refundRow, error) {
	var (
		r       refundRow
		amount  int64
		failure string
	)
	if err := s.Scan(&r.ID, &r.orderID, &r.key, &amount, &r.Reason, &r.Status, &failure, &r.CreatedBy, &r.CreatedAt, &r.UpdatedAt); err != nil {
		return refundRow{}, err
	}
	r.Amount = money.New(amount, currency)
	if failure != "" {
		r.FailureCode = &failure
	}
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	return r, nil
}

func refundByKey(ctx context.Context, q store.Querier, orderID, key, currency string) (refundRow, bool, error) {
	r, err := scanRefund(q.QueryRow(ctx, `SELECT `+refundColumns+` FROM orders_refunds WHERE order_id = ? AND idem_key = ?`, orderID, key), currency)
	if errors.Is(err, sql.ErrNoRows) {
		return refundRow{}, false, nil
	}
	if err != nil {
		return refundRow{}, false, fmt.Errorf("read refund: %w", err)
	}
	return r, true, nil
}

func listRefunds(ctx context.Context, q store.Querier, orderID, currency string) ([]Refund, error) {
	rows, err := q.Query(ctx, `SELECT `+refundColumns+` FROM orders_refunds WHERE order_id = ? ORDER BY created_at, id`, orderID)
	if err != nil {
		return nil, fmt.Errorf("list refunds: %w", err)
	}
	defer rows.Close()
	out := []Refund{}
	for rows.Next() {
		r, err := scanRefund(rows, currency)
		if err != nil {
			return nil, fmt.Errorf("list refunds: %w", err)
		}
		out = append(out, r.Refund)
	}
	return out, rows.Err()
}

func insertAudit(ctx context.Context, tx *store.Tx, orderID string, a AuditEntry) error {
	_, err := tx.Exec(ctx, `INSERT INTO orders_audit (id, order_id, actor, actor_kind, action, detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		a.ID, orderID, a.Actor, a.ActorKind, a.Action, string(a.Detail), a.CreatedAt)
	if err != nil {
		return fmt.Errorf("write audit row: %w", err)
	}
	return nil
}

func listAudit(ctx context.Context, q store.Querier, orderID string) ([]AuditEntry, error) {
	rows, err := q.Query(ctx, `SELECT id, actor, actor_kind, action, detail, created_at FROM orders_audit WHERE order_id = ? ORDER BY id`, orderID)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	out := []AuditEntry{}
	for rows.Next() {
		var (
			a      AuditEntry
			detail string
		)
		if err := rows.Scan(&a.ID, &a.Actor, &a.ActorKind, &a.Action, &detail, &a.CreatedAt); err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		a.Detail, a.CreatedAt = json.RawMessage(detail), a.CreatedAt.UTC()
		out = append(out, a)
	}
	return out, rows.Err()
}

// --- sagas ---

// sagaRow is an order's saga as stored.
type sagaRow struct {
	orderID         string
	status          string
	step            string
	attempts        int
	stepStartedAt   *time.Time
	nextAttemptAt   time.Time
	deadline        time.Time
	failedStep      string
	reason          string
	detail          reasonDetail
	cancelRequested string
	paymentToken    string
	reservationID   string
	leaseOwner      string
	leaseUntil      time.Time
	updatedAt       time.Time
}

// reasonDetail is what the client is told of a cancellation besides its
// reason code.
type reasonDetail struct {
	Message string              `json:"message"`
	Errors  []apperr.FieldError `json:"errors"`
}

const sagaColumns = `order_id, status, step, attempts, step_started_at, next_attempt_at, deadline, failed_step, reason, reason_detail,
	cancel_requested, payment_token, reservation_id, lease_owner, lease_until, updated_at`

func scanSaga(s store.RowScanner) (sagaRow, error) {
	var (
		g       sagaRow
		started sql.NullTime
		detail  string
	)
	if err := s.Scan(&g.orderID, &g.status, &g.step, &g.attempts, &started, &g.nextAttemptAt, &g.deadline, &g.failedStep, &g.reason, &detail,
		&g.cancelRequested, &g.paymentToken, &g.reservationID, &g.leaseOwner, &g.leaseUntil, &g.updatedAt); err != nil {
		return sagaRow{}, err
	}
	if started.Valid {
		t := started.Time.UTC()
		g.stepStartedAt = &t
	}
	if detail != "" {
		if err := json.Unmarshal([]byte(detail), &g.detail); err != nil {
			return sagaRow{}, fmt.Errorf("decode saga %s: %w", g.orderID, err)
		}
	}
	g.nextAttemptAt, g.deadline, g.leaseUntil, g.updatedAt = g.nextAttemptAt.UTC(), g.deadline.UTC(), g.leaseUntil.UTC(), g.updatedAt.UTC()
	return g, nil
}

func detailText(d reasonDetail) string {
	if d.Message == "" && len(d.Errors) == 0 {
		return ""
	}
	return store.JSONText(d)
}

func insertSaga(ctx context.Context, tx *store.Tx, g sagaRow) error {
	_, err := tx.Exec(ctx, `INSERT INTO orders_sagas (`+sagaColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		g.orderID, g.status, g.step, g.attempts, g.stepStartedAt, g.nextAttemptAt, g.deadline, g.failedStep, g.reason, detailText(g.detail),
		g.cancelRequested, g.paymentToken, g.reservationID, g.leaseOwner, g.leaseUntil, g.updatedAt)
	if err != nil {
		return fmt.Errorf("insert saga: %w", err)
	}
	return nil
}

func getSaga(ctx context.Context, q store.Querier, orderID string) (sagaRow, error) {
	g, err := scanSaga(q.QueryRow(ctx, `SELECT `+sagaColumns+` FROM orders_sagas WHERE order_id = ?`, orderID))
	if errors.Is(err, sql.ErrNoRows) {
		return sagaRow{}, errNoOrder
	}
	if err != nil {
		return sagaRow{}, fmt.Errorf("read saga %s: %w", orderID, err)
	}
	return g, nil
}

// saveSaga writes the saga's state, if this process still holds its lease
// (owner), and returns the cancellation staff asked for meanwhile (if
// any); false when it does not hold it (the lease expired and another
// process took the saga over: this one must stop).
func saveSaga(ctx context.Context, tx *store.Tx, g sagaRow, owner string) (bool, string, error) {
	var cancelReq string
	err := tx.QueryRow(ctx, `UPDATE orders_sagas SET status = ?, step = ?, attempts = ?, step_started_at = ?, next_attempt_at = ?,
		failed_step = ?, reason = ?, reason_detail = ?, payment_token = ?, reservation_id = ?, lease_owner = ?, lease_until = ?, updated_at = ?
		WHERE order_id = ? AND lease_owner = ? RETURNING cancel_requested`,
		g.status, g.step, g.attempts, g.stepStartedAt, g.nextAttemptAt, g.failedStep, g.reason, detailText(g.detail),
		g.paymentToken, g.reservationID, g.leaseOwner, g.leaseUntil, g.updatedAt, g.orderID, owner).Scan(&cancelReq)
	if errors.Is(err, sql.ErrNoRows) {
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("save saga %s: %w", g.orderID, err)
	}
	return true, cancelReq, nil
}

// claimSaga gives the saga to owner until leaseUntil, if it is unfinished,
// due at now and not held by a live lease — and still held by prevOwner
// (what the caller read), so two claimers cannot both win.
func claimSaga(ctx context.Context, q store.Querier, orderID, prevOwner, owner string, now, leaseUntil time.Time) (bool, error) {
	res, err := q.Exec(ctx, `UPDATE orders_sagas SET lease_owner = ?, lease_until = ?
		WHERE order_id = ? AND status <> 'done' AND next_attempt_at <= ? AND lease_owner = ? AND (lease_owner = '' OR lease_until < ?)`,
		owner, leaseUntil, orderID, now, prevOwner, now)
	if err != nil {
		return false, fmt.Errorf("claim saga %s: %w", orderID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim saga %s: %w", orderID, err)
	}
	return n == 1, nil
}

// dueSagas lists unfinished sagas due at now that no live lease holds,
// most overdue first.
func dueSagas(ctx context.Context, q store.Querier, now time.Time, limit int) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT order_id FROM orders_sagas
		WHERE status <> 'done' AND next_attempt_at <= ? AND (lease_owner = '' OR lease_until < ?)
		ORDER BY next_attempt_at, order_id LIMIT ?`, now, now, limit)
	if err != nil {
		return nil, fmt.Errorf("list due sagas: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list due sagas: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// stepRecord is one attempt of one step, for orders_saga_steps.
type stepRecord struct {
	id                string
	step, action      string
	outcome           string
	errCode, errMsg   string
	attempt           int
	started, finished time.Time
}

func insertStep(ctx context.Context, tx *store.Tx, orderID string, r stepRecord) error {
	_, err := tx.Exec(ctx, `INSERT INTO orders_saga_steps (id, order_id, step, action, outcome, error_code, error_message, attempt, started_at, finished_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.id, orderID, r.step, r.action, r.outcome, r.errCode, r.errMsg, r.attempt, r.started, r.finished)
	if err != nil {
		return fmt.Errorf("record saga step: %w", err)
	}
	return nil
}

func listSteps(ctx context.Context, q store.Querier, orderID string) ([]SagaStep, error) {
	rows, err := q.Query(ctx, `SELECT step, action, outcome, error_code, error_message, attempt, started_at, finished_at
		FROM orders_saga_steps WHERE order_id = ? ORDER BY id`, orderID)
	if err != nil {
		return nil, fmt.Errorf("list saga steps: %w", err)
	}
	defer rows.Close()
	out := []SagaStep{}
	for rows.Next() {
		var (
			st        SagaStep
			code, msg string
			finished  sql.NullTime
		)
		if err := rows.Scan(&st.Step, &st.Action, &st.Outcome, &code, &msg, &st.Attempt, &st.StartedAt, &finished); err != nil {
			return nil, fmt.Errorf("list saga steps: %w", err)
		}
		if code != "" {
			st.ErrorCode = &code
		}
		if msg != "" {
			st.ErrorMessage = &msg
		}
		st.StartedAt = st.StartedAt.UTC()
		if finished.Valid {
			t := finished.Time.UTC()
			st.FinishedAt = &t
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

// --- the read model ---

// customerOrderRow is a row of the customers' read model.
type customerOrderRow struct {
	CustomerOrder
	customerID string
	rank       int
}

func getCustomerOrder(ctx context.Context, q store.Querier, orderID string) (customerOrderRow, bool, error) {
	var (
		r                customerOrderRow
		status, currency string
		total, refunded  int64
	)
	err := q.QueryRow(ctx, `SELECT order_id, customer_id, status, status_rank, currency, total, refunded_total, item_count, placed_at, updated_at
		FROM orders_customer_orders WHERE order_id = ?`, orderID).
		Scan(&r.ID, &r.customerID, &status, &r.rank, &currency, &total, &refunded, &r.ItemCount, &r.PlacedAt, &r.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return customerOrderRow{}, false, nil
	}
	if err != nil {
		return customerOrderRow{}, false, fmt.Errorf("read customer order %s: %w", orderID, err)
	}
	r.Status, r.Total, r.RefundedTotal = Status(status), money.New(total, currency), money.New(refunded, currency)
	r.PlacedAt, r.UpdatedAt = r.PlacedAt.UTC(), r.UpdatedAt.UTC()
	return r, true, nil
}

func upsertCustomerOrder(ctx context.Context, tx *store.Tx, r customerOrderRow, exists bool) error {
	var err error
	if exists {
		_, err = tx.Exec(ctx, `UPDATE orders_customer_orders SET status = ?, status_rank = ?, currency = ?, total = ?, refunded_total = ?,
			item_count = ?, updated_at = ? WHERE order_id = ?`,
			string(r.Status), r.rank, r.Total.Currency, r.Total.Amount, r.RefundedTotal.Amount, r.ItemCount, r.UpdatedAt, r.ID)
	} else {
		_, err = tx.Exec(ctx, `INSERT INTO orders_customer_orders (order_id, customer_id, status, status_rank, currency, total, refunded_total, item_count, placed_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.customerID, string(r.Status), r.rank, r.Total.Currency, r.Total.Amount, r.RefundedTotal.Amount, r.ItemCount, r.PlacedAt, r.UpdatedAt)
	}
	if err != nil {
		return fmt.Errorf("write customer order %s: %w", r.ID, err)
	}
	return nil
}

func listCustomerOrders(ctx context.Context, q store.Querier, customerID, before string, limit int) ([]CustomerOrder, error) {
	query := `SELECT order_id, status, currency, total, refunded_total, item_count, placed_at, updated_at
		FROM orders_customer_orders WHERE customer_id = ?`
	args := []any{customerID}
	if before != "" {
		query, args = query+` AND order_id < ?`, append(args, before)
	}
	rows, err := q.Query(ctx, query+` ORDER BY order_id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list customer orders: %w", err)
	}
	defer rows.Close()
	out := []CustomerOrder{}
	for rows.Next() {
		var (
			c                CustomerOrder
			status, currency string
			total, refunded  int64
		)
		if err := rows.Scan(&c.ID, &status, &currency, &total, &refunded, &c.ItemCount, &c.PlacedAt, &c.UpdatedAt); err != nil {
			return nil, fmt.Errorf("list customer orders: %w", err)
		}
		c.Status, c.Total, c.RefundedTotal = Status(status), money.New(total, currency), money.New(refunded, currency)
		c.PlacedAt, c.UpdatedAt = c.PlacedAt.UTC(), c.UpdatedAt.UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}
