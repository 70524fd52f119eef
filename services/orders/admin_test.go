package orders

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/services/payments"
)

// staffCtx is the context of a staff member's Admin API request.
func staffCtx(subject string) context.Context {
	return auth.WithPrincipal(bg, auth.Principal{Subject: subject, Kind: auth.KindStaff, Role: "admin", Name: subject})
}

// wantAudit checks the order's audit log holds the actions, by the actor.
func wantAudit(t testing.TB, e *env, orderID, actor string, actions ...string) []AuditEntry {
	t.Helper()
	a, err := e.s.AdminGet(bg, orderID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range a.Audit {
		if x.Actor != actor || x.ActorKind != string(auth.KindStaff) || x.CreatedAt.IsZero() || !json.Valid(x.Detail) {
			t.Fatalf("audit row %+v", x)
		}
		got = append(got, x.Action)
	}
	if !slices.Equal(got, actions) {
		t.Fatalf("audit actions %v, want %v", got, actions)
	}
	return a.Audit
}

func outboxTypes(t testing.TB, e *env, orderID string) []string {
	t.Helper()
	rows, err := e.db.Query(bg, `SELECT event_type FROM souk_outbox WHERE aggregate_id = ? ORDER BY seq`, orderID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// TestCancel: staff cancel a pending order (its saga stops and
// compensates) and a confirmed one (its saga reopens: the captured payment
// refunded, or an uncaptured one voided, the sale restocked, the voucher
// released); each is audited; a shipped order cannot be cancelled.
func TestCancel(t *testing.T) {
	engines(t, func(t *testing.T, engine store.Engine) {
		t.Run("pending: the saga stops and compensates", func(t *testing.T) {
			e, flaky := flakyEnv(t, engine, nil)
			promo, _ := e.pr.GetPromotion(bg, e.MustVoucher(t, "STAFF", 10).ID)
			flaky.down.Store(true) // the saga keeps retrying the reservation
			sh := e.MustCart(t, cartSpec{customer: "cus_ada", items: map[string]int64{"SKU-1": 2}, codes: []string{"STAFF"}})
			o, _ := e.s.Checkout(bg, sh.cartID, sh.caller, pay(payments.TokenVisa), "")
			if o.Status != StatusPending {
				t.Fatalf("order %s", o.Status)
			}
			if _, err := e.s.Cancel(staffCtx("usr_sam"), o.ID, CancelInput{Reason: "customer called"}); err != nil {
				t.Fatal(err)
			}
			got := e.awaitDone(t, o.ID)
			if got.Status != StatusCancelled || got.Cancellation.Reason != ReasonByStaff || !strings.Contains(got.Cancellation.Message, "customer called") {
				t.Fatalf("order %s %+v", got.Status, got.Cancellation)
			}
			if n := e.voucherUsed(t, promo.ID); n != 0 {
				t.Fatalf("voucher used %d", n)
			}
			wantStock(t, e, "SKU-1", 10, 0)
			wantAudit(t, e, o.ID, "usr_sam", "cancel")
			if got := outboxTypes(t, e, o.ID); !slices.Equal(got, []string{EventOrderPlaced, EventOrderCancelled}) {
				t.Fatalf("events %v", got)
			}
			_, err := e.s.Cancel(staffCtx("usr_sam"), o.ID, CancelInput{Reason: "again"})
			wantErr(t, err, apperr.Conflict)
		})

		t.Run("confirmed and captured: refunded, restocked, voucher released", func(t *testing.T) {
			e := newEnv(t, engine)
			e.MustProduct(t, "SKU-1", 1000, 10)
			promo := e.MustVoucher(t, "TEN", 10)
			sh := e.MustCart(t, cartSpec{customer: "cus_ada", items: map[string]int64{"SKU-1": 3}, codes: []string{"TEN"}})
			o := e.MustCheckout(t, sh, payments.TokenVisa)
			wantStock(t, e, "SKU-1", 7, 0)

			got, err := e.s.Cancel(staffCtx("usr_sam"), o.ID, CancelInput{Reason: "out of business"})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != StatusCancelled || got.RefundedTotal != o.Total || got.Cancellation.Reason != ReasonByStaff {
				t.Fatalf("order %s refunded %v, cancellation %+v", got.Status, got.RefundedTotal, got.Cancellation)
			}
			if len(got.Refunds) != 1 || got.Refunds[0].Status != RefundSucceeded || got.Refunds[0].Amount != o.Total {
				t.Fatalf("refunds %+v", got.Refunds)
			}
			p, err := e.pay.Get(bg, *o.Payment.PaymentID)
			if err != nil || p.Status != payments.StatusRefunded || p.Refunded != o.Total {
				t.Fatalf("payment %+v, %v", p, err)
			}
			wantStock(t, e, "SKU-1", 10, 0)
			if n := e.voucherUsed(t, promo.ID); n != 0 {
				t.Fatalf("voucher used %d", n)
			}
			hist := steps(t, e.db, o.ID)
			if want := []string{"void_payment/compensate/ok", "release_stock/compensate/ok", "release_vouchers/compensate/ok"}; !slices.Equal(hist[len(hist)-3:], want) {
				t.Fatalf("history %v", hist)
			}
			wantAudit(t, e, o.ID, "usr_sam", "cancel")
			if got := outboxTypes(t, e, o.ID); !slices.Equal(got, []string{EventOrderPlaced, EventOrderConfirmed, EventOrderCancelled}) {
				t.Fatalf("events %v", got)
			}
			_, err = e.s.Cancel(staffCtx("usr_sam"), o.ID, CancelInput{Reason: "again"})
			wantErr(t, err, apperr.Conflict)
		})

		t.Run("confirmed, capture on fulfilment: voided", func(t *testing.T) {
			e := newEnv(t, engine, withConfig(func(c *Config) { c.CapturePolicy = CaptureOnFulfilment }))
			e.MustProduct(t, "SKU-1", 1000, 10)
			o := e.MustCheckout(t, e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}}), payments.TokenVisa)
			if o.Payment.Captured.Amount != 0 || e.captures() != 0 {
				t.Fatalf("captured at confirmation: %+v", o.Payment)
			}
			got, err := e.s.Cancel(staffCtx("usr_sam"), o.ID, CancelInput{Reason: "fraud check"})
			if err != nil || got.Status != StatusCancelled || got.RefundedTotal.Amount != 0 {
				t.Fatalf("cancel = %s %v, %v", got.Status, got.RefundedTotal, err)
			}
			p, _ := e.pay.Get(bg, *o.Payment.PaymentID)
			if p.Status != payments.StatusVoided || e.total(payments.OpVoid) != 1 {
				t.Fatalf("payment %s, %d voids", p.Status, e.total(payments.OpVoid))
			}
			wantStock(t, e, "SKU-1", 10, 0)
		})

		t.Run("shipped: refund instead", func(t *testing.T) {
			e := newEnv(t, engine)
			e.MustProduct(t, "SKU-1", 1000, 10)
			o := e.MustCheckout(t, e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 2}}), payments.TokenVisa)
			if _, err := e.s.Fulfil(staffCtx("usr_pat"), o.ID, FulfilmentInput{Items: []FulfilmentItem{{ItemID: o.Items[0].ID, Quantity: 1}}}); err != nil {
				t.Fatal(err)
			}
			_, err := e.s.Cancel(staffCtx("usr_sam"), o.ID, CancelInput{Reason: "too late"})
			wantErr(t, err, apperr.Conflict)
		})

		t.Run("refused requests", func(t *testing.T) {
			e := newEnv(t, engine)
			_, err := e.s.Cancel(bg, "ord_01JD3Q0000000000000000000A", CancelInput{Reason: "x"})
			wantErr(t, err, apperr.NotFound)
			_, err = e.s.Cancel(bg, "ord_01JD3Q0000000000000000000A", CancelInput{})
			wantErr(t, err, apperr.ValidationFailed, "reason")
			_, err = e.s.Cancel(bg, "nope", CancelInput{Reason: "x"})
			wantErr(t, err, apperr.NotFound)
		})
	})
}

// TestFulfilment: shipping in parts with capture on fulfilment captures
// once, with the first shipment; statuses follow; events and audit rows
// are written; what is not left cannot ship.
func TestFulfilment(t *testing.T) {
	engines(t, func(t *testing.T, engine store.Engine) {
		e := newEnv(t, engine, withConfig(func(c *Config) { c.CapturePolicy = CaptureOnFulfilment }))
		e.MustProduct(t, "SKU-1", 1000, 10)
		e.MustProduct(t, "SKU-2", 250, 10)
		o := e.MustCheckout(t, e.MustCart(t, cartSpec{customer: "cus_ada", items: map[string]int64{"SKU-1": 2, "SKU-2": 1}}), payments.TokenVisa)
		if e.captures() != 0 {
			t.Fatal("captured before fulfilment")
		}
		ctx := staffCtx("usr_pat")
		i := slices.IndexFunc(o.Items, func(it Item) bool { return it.SKU == e.sku("SKU-1") })
		one := o.Items[i]

		_, err := e.s.Fulfil(ctx, o.ID, FulfilmentInput{Items: []FulfilmentItem{{ItemID: one.ID, Quantity: 3}}})
		wantErr(t, err, apperr.ValidationFailed, "items[0].quantity")
		_, err = e.s.Fulfil(ctx, o.ID, FulfilmentInput{Items: []FulfilmentItem{{ItemID: "item_nope", Quantity: 1}}})
		wantErr(t, err, apperr.ValidationFailed, "items[0].item_id")
		_, err = e.s.Fulfil(ctx, o.ID, FulfilmentInput{Items: []FulfilmentItem{{ItemID: one.ID, Quantity: 1}, {ItemID: one.ID, Quantity: 1}}})
		wantErr(t, err, apperr.ValidationFailed, "items[1].item_id")
		if e.captures() != 0 {
			t.Fatal("a refused fulfilment captured")
		}

		got, err := e.s.Fulfil(ctx, o.ID, FulfilmentInput{Items: []FulfilmentItem{{ItemID: one.ID, Quantity: 1}}, TrackingNumber: "TRK1", Carrier: "PostNL"})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != StatusPartiallyFulfilled || got.Payment.Captured != o.Total || e.captures() != 1 || len(got.Fulfilments) != 1 ||
			*got.Fulfilments[0].TrackingNumber != "TRK1" || got.Items[i].FulfilledQuantity != 1 {
			t.Fatalf("after the first shipment: %s captured %v (%d captures), %+v", got.Status, got.Payment.Captured, e.captures(), got.Fulfilments)
		}
		got, err = e.s.Fulfil(ctx, o.ID, FulfilmentInput{}) // the rest
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != StatusFulfilled || e.captures() != 1 || len(got.Fulfilments) != 2 {
			t.Fatalf("after the second: %s, %d captures", got.Status, e.captures())
		}
		var want []FulfilmentItem // the rest, in the order's line order
		for _, it := range o.Items {
			want = append(want, FulfilmentItem{ItemID: it.ID, Quantity: map[bool]int64{true: 1, false: it.Quantity}[it.ID == one.ID]})
		}
		if !slices.Equal(got.Fulfilments[1].Items, want) {
			t.Fatalf("second shipment %+v, want %+v", got.Fulfilments[1].Items, want)
		}
		_, err = e.s.Fulfil(ctx, o.ID, FulfilmentInput{})
		wantErr(t, err, apperr.Conflict)
		wantAudit(t, e, o.ID, "usr_pat", "fulfil", "fulfil")
		if got := outboxTypes(t, e, o.ID); !slices.Equal(got, []string{EventOrderPlaced, EventOrderConfirmed, EventOrderShipped, EventOrderShipped}) {
			t.Fatalf("events %v", got)
		}

		pending, flaky := flakyEnv(t, engine, nil)
		flaky.down.Store(true)
		sh := pending.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}})
		p, _ := pending.s.Checkout(bg, sh.cartID, sh.caller, pay(payments.TokenVisa), "")
		_, err = pending.s.Fulfil(ctx, p.ID, FulfilmentInput{})
		wantErr(t, err, apperr.Conflict)
	})
}

// TestRefunds: partial and full refunds, idempotent by key, never above
// what was captured — also when refunds race each other.
func TestRefunds(t *testing.T) {
	engines(t, func(t *testing.T, engine store.Engine) {
		e := newEnv(t, engine)
		e.MustProduct(t, "SKU-1", 1000, 50)
		o := e.MustCheckout(t, e.MustCart(t, cartSpec{customer: "cus_ada", items: map[string]int64{"SKU-1": 2}}), payments.TokenVisa)
		total := o.Total.Amount
		ctx := staffCtx("usr_rae")

		first, err := e.s.Refund(ctx, o.ID, RefundInput{Amount: ptr(eur(500)), Reason: "damaged box"}, "key-1")
		if err != nil || first.Status != RefundSucceeded || first.Amount != eur(500) {
			t.Fatalf("refund = %+v, %v", first, err)
		}
		again, err := e.s.Refund(ctx, o.ID, RefundInput{Amount: ptr(eur(500)), Reason: "damaged box"}, "key-1")
		if err != nil || again.ID != first.ID {
			t.Fatalf("retry = %+v, %v", again, err)
		}
		_, err = e.s.Refund(ctx, o.ID, RefundInput{Amount: ptr(eur(total)), Reason: "too much"}, "")
		wantErr(t, err, CodeRefundExceedsCaptured, "amount")
		_, err = e.s.Refund(ctx, o.ID, RefundInput{Amount: ptr(money.New(1, "USD")), Reason: "x"}, "")
		wantErr(t, err, apperr.ValidationFailed, "amount.currency")
		_, err = e.s.Refund(ctx, o.ID, RefundInput{Amount: ptr(eur(1))}, "")
		wantErr(t, err, apperr.ValidationFailed, "reason")

		rest, err := e.s.Refund(ctx, o.ID, RefundInput{Reason: "returned"}, "")
		if err != nil || rest.Amount != eur(total-500) {
			t.Fatalf("the rest = %+v, %v", rest, err)
		}
		got, err := e.s.Get(bg, customerCaller("cus_ada"), o.ID)
		if err != nil || got.RefundedTotal != o.Total || len(got.Refunds) != 2 {
			t.Fatalf("order refunded %v, refunds %+v, %v", got.RefundedTotal, got.Refunds, err)
		}
		_, err = e.s.Refund(ctx, o.ID, RefundInput{Reason: "more"}, "")
		wantErr(t, err, CodeRefundExceedsCaptured, "amount")
		p, _ := e.pay.Get(bg, *o.Payment.PaymentID)
		if p.Refunded != o.Total || p.Status != payments.StatusRefunded || e.total(payments.OpRefund) != 2 {
			t.Fatalf("payment %+v, %d provider refunds", p, e.total(payments.OpRefund))
		}
		wantAudit(t, e, o.ID, "usr_rae", "refund", "refund")
		if got := outboxTypes(t, e, o.ID); !slices.Equal(got, []string{EventOrderPlaced, EventOrderConfirmed, EventOrderRefunded, EventOrderRefunded}) {
			t.Fatalf("events %v", got)
		}

		// Racing refunds of half the total each: two fit, the rest are refused.
		race := e.MustCheckout(t, e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 2}}), payments.TokenVisa)
		half := race.Total.Amount / 2
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			oks  int
			errs []error
		)
		for range 6 {
			wg.Go(func() {
				_, err := e.s.Refund(ctx, race.ID, RefundInput{Amount: ptr(eur(half)), Reason: "race"}, "")
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					oks++
				} else {
					errs = append(errs, err)
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if !apperr.Is(err, CodeRefundExceedsCaptured) && !apperr.Is(err, apperr.Conflict) {
				t.Fatalf("racing refund: %v", err)
			}
		}
		r, err := getOrder(bg, e.db, race.ID)
		if err != nil || oks != 2 || r.refundedAmt != 2*half || r.pendingAmt != 0 || r.refundedAmt > r.capturedAmt {
			t.Fatalf("%d refunds succeeded, refunded %d of %d captured (pending %d), %v", oks, r.refundedAmt, r.capturedAmt, r.pendingAmt, err)
		}

		// Nothing captured yet: nothing to refund.
		lazy := newEnv(t, engine, withConfig(func(c *Config) { c.CapturePolicy = CaptureOnFulfilment }))
		lazy.MustProduct(t, "SKU-1", 1000, 5)
		uncaptured := lazy.MustCheckout(t, lazy.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}}), payments.TokenVisa)
		_, err = lazy.s.Refund(ctx, uncaptured.ID, RefundInput{Reason: "x"}, "")
		wantErr(t, err, apperr.Conflict)
	})
}

func ptr[T any](v T) *T { return &v }
