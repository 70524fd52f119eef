package orders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/resilience"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/services/payments"
)

// maxAdminAttempts bounds how often an admin operation starts over after
// the order changed under it.
const maxAdminAttempts = 5

// audit writes the audit row of a staff operation, in tx.
func (s *Service) audit(ctx context.Context, tx *store.Tx, orderID, action string, detail any) error {
	actor, kind := actorOf(ctx)
	raw, err := json.Marshal(detail)
	if err != nil {
		return fmt.Errorf("audit detail: %w", err)
	}
	return insertAudit(ctx, tx, orderID, AuditEntry{ID: id.New(auditPrefix), Actor: actor, ActorKind: kind, Action: action,
		Detail: raw, CreatedAt: s.now()})
}

// checkText validates a free-text field: required (when asked), one line
// of printable text, at most n characters.
func checkText(v *apperr.Validation, field, val string, required bool, n int) {
	switch {
	case val == "" && required:
		v.Addf(field, "required", "%s is required", field)
	case utf8.RuneCountInString(val) > n:
		v.Addf(field, "too_long", "%s must be at most %d characters", field, n)
	case !utf8.ValidString(val) || strings.ContainsFunc(val, unicode.IsControl):
		v.Addf(field, "invalid", "%s must be printable text on one line", field)
	}
}

// Cancel cancels an order for staff (reason by_staff; in.Reason, required,
// is kept with it and in the audit log), through its saga: a pending
// order's saga is asked to stop and compensate what it did; a confirmed
// order that has not shipped gets its saga reopened to compensate — the
// payment voided, or refunded when it was captured, the sale restocked,
// the vouchers released. It waits up to Config.WaitBudget for that and
// returns the order as it is then (cancelled, or still on its way there:
// the saga goes on). Errors: validation_failed (reason), not_found,
// conflict (already cancelled or being cancelled, or shipped: refund it
// instead).
func (s *Service) Cancel(ctx context.Context, orderID string, in CancelInput) (AdminOrder, error) {
	reason := strings.TrimSpace(in.Reason)
	var v apperr.Validation
	checkText(&v, "reason", reason, true, maxReasonLen)
	if err := v.Err(); err != nil {
		return AdminOrder{}, fmt.Errorf("cancel order: %w", err)
	}
	if !id.Valid(orderPrefix, orderID) {
		return AdminOrder{}, notFound("order", orderID)
	}
	for attempt := 1; ; attempt++ {
		err := s.db.InTx(ctx, func(tx *store.Tx) error {
			r, err := getOrder(ctx, tx, orderID)
			if errors.Is(err, errNoOrder) {
				return notFound("order", orderID)
			}
			if err != nil {
				return err
			}
			g, err := getSaga(ctx, tx, orderID)
			if err != nil {
				return err
			}
			now := s.now()
			switch {
			case r.Status == StatusCancelled || g.status == sagaCompensating || g.cancelRequested != "":
				return apperr.New(apperr.Conflict, "order %s is already cancelled or being cancelled", orderID)
			case r.Status == StatusPending:
				ok, err := requestCancel(ctx, tx, orderID, reason, now)
				if err != nil {
					return err
				}
				if !ok {
					return errConcurrentChange // the saga finished meanwhile: decide again
				}
			case r.Status == StatusConfirmed && g.status == sagaDone && !shipped(r.Items):
				// Bump the order's version, conditionally, so that a
				// fulfilment racing this cancellation (it writes the order
				// at the version it read) cannot also succeed.
				res, err := tx.Exec(ctx, `UPDATE orders_orders SET version = version + 1, updated_at = ? WHERE id = ? AND version = ?`,
					now, orderID, r.Version)
				if err != nil {
					return fmt.Errorf("cancel order: %w", err)
				}
				if n, _ := res.RowsAffected(); n != 1 {
					return errConcurrentChange
				}
				ok, err := reopenForCancel(ctx, tx, orderID, reason, "", epoch, now)
				if err != nil {
					return err
				}
				if !ok {
					return errConcurrentChange
				}
			default:
				return apperr.New(apperr.Conflict, "order %s is %s: it has shipped; refund it instead", orderID, r.Status)
			}
			return s.audit(ctx, tx, orderID, "cancel", map[string]any{"reason": reason, "status": r.Status})
		})
		if errors.Is(err, errConcurrentChange) && attempt < maxAdminAttempts {
			continue
		}
		if err != nil {
			return AdminOrder{}, fmt.Errorf("cancel order: %w", err)
		}
		break
	}
	s.kick(orderID)
	if _, err := s.await(ctx, orderID, s.cfg.WaitBudget); err != nil && !isCancellation(err) {
		return AdminOrder{}, fmt.Errorf("cancel order: %w", err)
	}
	return s.AdminGet(ctx, orderID)
}

func isCancellation(err error) bool {
	var c *CancelledError
	return errors.As(err, &c)
}

func shipped(items []Item) bool {
	for _, it := range items {
		if it.FulfilledQuantity > 0 {
			return true
		}
	}
	return false
}

// requestCancel asks a running saga to stop and compensate; false when it
// is not running any more.
func requestCancel(ctx context.Context, tx *store.Tx, orderID, reason string, now time.Time) (bool, error) {
	res, err := tx.Exec(ctx, `UPDATE orders_sagas SET cancel_requested = ?, next_attempt_at = ?, updated_at = ?
		WHERE order_id = ? AND status = ?`, reason, now, now, orderID, sagaRunning)
	if err != nil {
		return false, fmt.Errorf("request cancellation: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// reopenForCancel turns a finished saga of a confirmed order into one that
// compensates everything (staff cancelled it), held by owner until
// leaseUntil ("" and epoch: nobody, due now); false when the saga is not
// done.
func reopenForCancel(ctx context.Context, q store.Querier, orderID, reason, owner string, leaseUntil, now time.Time) (bool, error) {
	detail := detailText(reasonDetail{Message: "cancelled by staff: " + reason, Errors: []apperr.FieldError{}})
	res, err := q.Exec(ctx, `UPDATE orders_sagas SET status = ?, step = ?, attempts = 0, step_started_at = NULL, next_attempt_at = ?,
		failed_step = ?, reason = ?, reason_detail = ?, cancel_requested = ?, lease_owner = ?, lease_until = ?, updated_at = ?
		WHERE order_id = ? AND status = ?`,
		sagaCompensating, stepVoid, now, stepConfirm, ReasonByStaff, detail, reason, owner, leaseUntil, now, orderID, sagaDone)
	if err != nil {
		return false, fmt.Errorf("reopen saga: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// Fulfil records a shipment of a confirmed order: in.Items (default:
// everything not shipped yet), with an optional tracking number and
// carrier. With the on_fulfilment capture policy the first shipment
// captures the payment first (idempotently: a retry never captures
// twice). The order becomes partially_fulfilled or fulfilled, and
// order_shipped is published. Errors: validation_failed (items[i].item_id
// unknown or repeated, items[i].quantity over what is left, tracking_number,
// carrier), not_found, conflict (not confirmed: pending, cancelled, being
// cancelled or fully shipped), payment_declined and other payments errors
// from the capture, unavailable.
func (s *Service) Fulfil(ctx context.Context, orderID string, in FulfilmentInput) (Order, error) {
	in.TrackingNumber, in.Carrier = strings.TrimSpace(in.TrackingNumber), strings.TrimSpace(in.Carrier)
	var v apperr.Validation
	checkText(&v, "tracking_number", in.TrackingNumber, false, maxTrackingLen)
	checkText(&v, "carrier", in.Carrier, false, maxCarrierLen)
	if err := v.Err(); err != nil {
		return Order{}, fmt.Errorf("fulfil order: %w", err)
	}
	if !id.Valid(orderPrefix, orderID) {
		return Order{}, notFound("order", orderID)
	}
	for attempt := 1; ; attempt++ {
		r, err := getOrder(ctx, s.db, orderID)
		if errors.Is(err, errNoOrder) {
			return Order{}, notFound("order", orderID)
		}
		if err != nil {
			return Order{}, fmt.Errorf("fulfil order: %w", err)
		}
		g, err := getSaga(ctx, s.db, orderID)
		if err != nil {
			return Order{}, fmt.Errorf("fulfil order: %w", err)
		}
		if (r.Status != StatusConfirmed && r.Status != StatusPartiallyFulfilled) || g.status != sagaDone {
			return Order{}, apperr.New(apperr.Conflict, "order %s is %s: only a confirmed order that is not being cancelled ships", orderID, r.Status)
		}
		ship, err := planShipment(r.Items, in.Items)
		if err != nil {
			return Order{}, fmt.Errorf("fulfil order: %w", err)
		}
		captured := r.capturedAmt
		if r.Payment.CapturePolicy == CaptureOnFulfilment && captured == 0 && r.Total.Amount > 0 {
			var p payments.Payment
			err := s.pol.payments.Do(resilience.Idempotent(ctx), func(ctx context.Context) (err error) {
				p, err = s.deps.Payments.Capture(ctx, opKey(r.ID, opCapture), r.paymentID, r.Total)
				return err
			})
			if err != nil {
				return Order{}, fmt.Errorf("fulfil order: capture the payment: %w", dependencyError("payments", err))
			}
			captured = p.Captured.Amount
		}
		out, err := s.recordShipment(ctx, r, ship, captured, in)
		if errors.Is(err, errConcurrentChange) && attempt < maxAdminAttempts {
			continue
		}
		if err != nil {
			return Order{}, fmt.Errorf("fulfil order: %w", err)
		}
		return out, nil
	}
}

// planShipment checks what is asked to ship against what is left of each
// line; nothing asked means everything left.
func planShipment(items []Item, asked []FulfilmentItem) ([]FulfilmentItem, error) {
	left := func(it Item) int64 { return it.Quantity - it.FulfilledQuantity }
	if len(asked) == 0 {
		var out []FulfilmentItem
		for _, it := range items {
			if n := left(it); n > 0 {
				out = append(out, FulfilmentItem{ItemID: it.ID, Quantity: n})
			}
		}
		if len(out) == 0 {
			return nil, apperr.New(apperr.Conflict, "everything in the order has shipped")
		}
		return out, nil
	}
	var v apperr.Validation
	seen := map[string]bool{}
	for i, a := range asked {
		field := fmt.Sprintf("items[%d]", i)
		idx := -1
		for j, it := range items {
			if it.ID == a.ItemID {
				idx = j
			}
		}
		switch {
		case a.ItemID == "":
			v.Add(field+".item_id", "required", "item_id is required")
		case idx < 0:
			v.Addf(field+".item_id", "unknown", "the order has no item %q", a.ItemID)
		case seen[a.ItemID]:
			v.Addf(field+".item_id", "duplicate", "item %q is listed twice", a.ItemID)
		case a.Quantity < 1 || a.Quantity > left(items[idx]):
			v.Addf(field+".quantity", "out_of_range", "quantity must be from 1 to %d (what is left to ship of %s)", left(items[idx]), a.ItemID)
		}
		seen[a.ItemID] = true
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	return asked, nil
}

// recordShipment writes the fulfilment, the order's new quantities,
// status and captured amount, the audit row and order_shipped, if the
// order is still as read.
func (s *Service) recordShipment(ctx context.Context, r record, ship []FulfilmentItem, captured int64, in FulfilmentInput) (Order, error) {
	now := s.now()
	actor, _ := actorOf(ctx)
	f := Fulfilment{ID: id.New(fulfilmentPrefix), Items: ship, CreatedBy: actor, CreatedAt: now}
	if in.TrackingNumber != "" {
		f.TrackingNumber = &in.TrackingNumber
	}
	if in.Carrier != "" {
		f.Carrier = &in.Carrier
	}
	next := r
	next.Items = append([]Item(nil), r.Items...)
	for _, sh := range ship {
		for i := range next.Items {
			if next.Items[i].ID == sh.ItemID {
				next.Items[i].FulfilledQuantity += sh.Quantity
			}
		}
	}
	next.Status = StatusFulfilled
	for _, it := range next.Items {
		if it.FulfilledQuantity < it.Quantity {
			next.Status = StatusPartiallyFulfilled
		}
	}
	next.capturedAmt = captured
	next.Version, next.UpdatedAt = r.Version+1, now
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		g, err := getSaga(ctx, tx, r.ID)
		if err != nil {
			return err
		}
		if g.status != sagaDone {
			return errConcurrentChange
		}
		ok, err := updateOrder(ctx, tx, next, r.Version)
		if err != nil {
			return err
		}
		if !ok {
			return errConcurrentChange
		}
		if err := insertFulfilment(ctx, tx, r.ID, f); err != nil {
			return err
		}
		detail := map[string]any{"fulfilment_id": f.ID, "items": ship, "tracking_number": f.TrackingNumber, "carrier": f.Carrier}
		if captured != r.capturedAmt {
			detail["captured"] = money.New(captured, r.Currency)
		}
		if err := s.audit(ctx, tx, r.ID, "fulfil", detail); err != nil {
			return err
		}
		return s.emit(ctx, tx, EventOrderShipped, r.ID, OrderShipped{OrderID: r.ID, CustomerID: r.CustomerID, Email: r.Email,
			FulfilmentID: f.ID, Items: ship, TrackingNumber: f.TrackingNumber, Carrier: f.Carrier, Status: next.Status, ShippedAt: now})
	})
	if err != nil {
		return Order{}, err
	}
	return s.load(ctx, s.db, r.ID)
}

// Refund gives back in.Amount (default: everything captured and not yet
// refunded) of an order's captured payment, for in.Reason (required). key
// makes it idempotent (the request's Idempotency-Key; "" for a new refund
// each call): the refund is recorded pending, its amount held against the
// order, before payments is asked with a key derived from the order and
// the refund, so a retry after a lost answer or a crash completes the same
// refund and never refunds twice. The total refunded never exceeds what
// was captured, whatever the concurrency (a conditional update, and a
// CHECK on the order row). A succeeded refund publishes order_refunded.
// Errors: validation_failed (amount, reason), not_found, conflict (nothing
// captured: a pending order, or capture waits for fulfilment),
// refund_exceeds_captured (naming amount), payments' refusals, unavailable
// (the refund stays pending; retry with the same key).
func (s *Service) Refund(ctx context.Context, orderID string, in RefundInput, key string) (Refund, error) {
	reason := strings.TrimSpace(in.Reason)
	var v apperr.Validation
	checkText(&v, "reason", reason, true, maxReasonLen)
	if in.Amount != nil && in.Amount.Amount <= 0 {
		v.Add("amount.amount", "out_of_range", "amount must be positive")
	}
	if len(key) > 255 {
		v.Add("Idempotency-Key", "too_long", "the key must be at most 255 characters")
	}
	if err := v.Err(); err != nil {
		return Refund{}, fmt.Errorf("refund order: %w", err)
	}
	if !id.Valid(orderPrefix, orderID) {
		return Refund{}, notFound("order", orderID)
	}
	r, err := getOrder(ctx, s.db, orderID)
	if errors.Is(err, errNoOrder) {
		return Refund{}, notFound("order", orderID)
	}
	if err != nil {
		return Refund{}, fmt.Errorf("refund order: %w", err)
	}
	if in.Amount != nil && in.Amount.Currency != r.Currency {
		return Refund{}, fieldError(apperr.ValidationFailed, "amount.currency", "invalid", "the order is in %s, not %s", r.Currency, in.Amount.Currency)
	}
	rf, found := refundRow{}, false
	if key != "" {
		if rf, found, err = refundByKey(ctx, s.db, orderID, key, r.Currency); err != nil {
			return Refund{}, fmt.Errorf("refund order: %w", err)
		}
	}
	if !found {
		if rf, err = s.startRefund(ctx, r, in.Amount, reason, key); err != nil {
			return Refund{}, fmt.Errorf("refund order: %w", err)
		}
	}
	switch rf.Status {
	case RefundSucceeded:
		return rf.Refund, nil
	case RefundFailed:
		return rf.Refund, apperr.New(apperr.Conflict, "refund %s failed (%s)", rf.ID, deref(rf.FailureCode))
	}
	err = s.pol.payments.Do(resilience.Idempotent(ctx), func(ctx context.Context) error {
		_, err := s.deps.Payments.Refund(ctx, opKey(orderID, "refund/"+rf.ID), r.paymentID, rf.Amount)
		return err
	})
	if err != nil && transient(stepVoid, err) {
		return rf.Refund, fmt.Errorf("refund order: %w (the refund %s stays pending; retry with the same Idempotency-Key)",
			apperr.Wrap(err, apperr.Unavailable, "payments did not answer; the refund is pending"), rf.ID)
	}
	out, serr := s.settle(ctx, r, rf, err)
	if serr != nil {
		return Refund{}, fmt.Errorf("refund order: %w", serr)
	}
	if err != nil {
		return out, fmt.Errorf("refund order: %w", err)
	}
	return out, nil
}

// startRefund records a pending refund, holding its amount against the
// order so concurrent refunds can never add up to more than was captured.
func (s *Service) startRefund(ctx context.Context, r record, amount *money.Money, reason, key string) (refundRow, error) {
	now := s.now()
	actor, _ := actorOf(ctx)
	rf := refundRow{Refund: Refund{ID: id.New(refundPrefix), Reason: reason, Status: RefundPending, CreatedBy: actor, CreatedAt: now, UpdatedAt: now},
		orderID: r.ID, key: key}
	if rf.key == "" {
		rf.key = rf.ID
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		cur, err := getOrder(ctx, tx, r.ID)
		if err != nil {
			return err
		}
		if cur.capturedAmt == 0 {
			return apperr.New(apperr.Conflict, "order %s has no captured payment to refund (status %s)", r.ID, cur.Status)
		}
		left := cur.refundable()
		want := left
		if amount != nil {
			want = amount.Amount
		}
		if want <= 0 || want > left {
			return fieldError(CodeRefundExceedsCaptured, "amount", "out_of_range",
				"at most %s may be refunded (captured %s, refunded or being refunded %s)",
				money.New(max(left, 0), cur.Currency), money.New(cur.capturedAmt, cur.Currency), money.New(cur.refundedAmt+cur.pendingAmt, cur.Currency))
		}
		res, err := tx.Exec(ctx, `UPDATE orders_orders SET refund_pending = refund_pending + ?, version = version + 1, updated_at = ?
			WHERE id = ? AND captured_amount - refunded_amount - refund_pending >= ?`, want, now, r.ID, want)
		if err != nil {
			return fmt.Errorf("hold refund amount: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errConcurrentChange
		}
		rf.Amount = money.New(want, cur.Currency)
		if err := insertRefund(ctx, tx, rf); err != nil {
			return err
		}
		return s.audit(ctx, tx, r.ID, "refund", map[string]any{"refund_id": rf.ID, "amount": rf.Amount, "reason": reason})
	})
	switch {
	case errors.Is(err, errConcurrentChange):
		return refundRow{}, apperr.New(apperr.Conflict, "the order's refunds changed meanwhile; retry")
	case err != nil && store.IsUniqueViolation(err):
		// The same key raced us: go on with the refund it recorded.
		prev, found, rerr := refundByKey(ctx, s.db, r.ID, rf.key, r.Currency)
		if rerr != nil || !found {
			return refundRow{}, apperr.New(apperr.Conflict, "a refund with this key is being recorded; retry")
		}
		return prev, nil
	case err != nil:
		return refundRow{}, err
	}
	return rf, nil
}

// settle records payments' answer to a pending refund: succeeded (the
// amount moves from held to refunded; order_refunded) or failed (the hold
// is released). payErr is payments' refusal, or nil.
func (s *Service) settle(ctx context.Context, r record, rf refundRow, payErr error) (Refund, error) {
	ctx = context.WithoutCancel(ctx)
	now := s.now()
	status, code := RefundSucceeded, ""
	if payErr != nil {
		status, code = RefundFailed, string(apperr.CodeOf(payErr))
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		ok, err := settleRefund(ctx, tx, rf.ID, status, code, now)
		if err != nil || !ok {
			return err // !ok: settled by a concurrent retry
		}
		moved := rf.Amount.Amount
		if payErr != nil {
			moved = 0
		}
		if _, err := tx.Exec(ctx, `UPDATE orders_orders SET refund_pending = refund_pending - ?, refunded_amount = refunded_amount + ?,
			version = version + 1, updated_at = ? WHERE id = ?`, rf.Amount.Amount, moved, now, r.ID); err != nil {
			return fmt.Errorf("settle refund amount: %w", err)
		}
		if payErr != nil {
			return nil
		}
		cur, err := getOrder(ctx, tx, r.ID)
		if err != nil {
			return err
		}
		return s.emit(ctx, tx, EventOrderRefunded, r.ID, OrderRefunded{OrderID: r.ID, CustomerID: r.CustomerID, RefundID: rf.ID,
			Amount: rf.Amount, RefundedTotal: money.New(cur.refundedAmt, cur.Currency), Reason: rf.Reason, RefundedAt: now})
	})
	if err != nil {
		return Refund{}, err
	}
	out, _, err := refundByKey(ctx, s.db, r.ID, rf.key, r.Currency)
	if err != nil {
		return Refund{}, err
	}
	return out.Refund, nil
}
