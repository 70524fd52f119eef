package payments

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/apperr/apperrtest"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/telemetry/telemetrytest"
)

func TestCaptureVoidRefundLifecycle(t *testing.T) {
	runStores(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		p := MustAuthorize(t, f, "o1:auth", 5000)

		// Capture: at most the authorized amount, in its currency.
		_, err := f.Capture(ctx, "o1:capture", p.ID, eur(5001))
		apperrtest.Want(t, err, apperr.ValidationFailed, "amount.amount")
		_, err = f.Capture(ctx, "o1:capture", p.ID, money.New(5000, "USD"))
		apperrtest.Want(t, err, apperr.ValidationFailed, "amount.currency")
		_, err = f.Capture(ctx, "o1:capture", "pay_01JD3Q0000000000000000000A", eur(1))
		apperrtest.Want(t, err, apperr.NotFound)
		// A refused request leaves no trace: the key is still free.
		c := MustCapture(t, f, "o1:capture", p.ID, 4000)
		if c.Status != StatusCaptured || c.Captured != eur(4000) || c.Version <= p.Version {
			t.Fatalf("captured %+v", c)
		}
		again := MustCapture(t, f, "o1:capture", p.ID, 4000)
		if !reflect.DeepEqual(again, c) || f.tp.Calls(OpCapture, "o1:capture") != 1 {
			t.Fatalf("replayed capture %+v, %d calls", again, f.tp.Calls(OpCapture, "o1:capture"))
		}
		_, err = f.Capture(ctx, "o1:capture-2", p.ID, eur(100))
		apperrtest.Want(t, err, apperr.Conflict)
		_, err = f.Void(ctx, "o1:void", p.ID)
		apperrtest.Want(t, err, apperr.Conflict)

		// Refunds: partial, then the rest; never more than captured.
		_, err = f.Refund(ctx, "o1:refund-1", p.ID, eur(4001))
		apperrtest.Want(t, err, apperr.ValidationFailed, "amount.amount")
		r1, err := f.Refund(ctx, "o1:refund-1", p.ID, eur(1500))
		if err != nil || r1.Status != StatusPartiallyRefunded || r1.Refunded != eur(1500) {
			t.Fatalf("refund 1 = %+v, %v", r1, err)
		}
		if again, err := f.Refund(ctx, "o1:refund-1", p.ID, eur(1500)); err != nil || again.Refunded != eur(1500) {
			t.Fatalf("replayed refund = %+v, %v", again, err)
		}
		_, err = f.Refund(ctx, "o1:refund-1", p.ID, eur(1000))
		apperrtest.Want(t, err, apperr.IdempotencyKeyReused, "key")
		_, err = f.Refund(ctx, "o1:refund-2", p.ID, eur(2501))
		apperrtest.Want(t, err, apperr.ValidationFailed, "amount.amount")
		r2, err := f.Refund(ctx, "o1:refund-2", p.ID, eur(2500))
		if err != nil || r2.Status != StatusRefunded || r2.Refunded != eur(4000) {
			t.Fatalf("refund 2 = %+v, %v", r2, err)
		}
		_, err = f.Refund(ctx, "o1:refund-3", p.ID, eur(1))
		apperrtest.Want(t, err, apperr.Conflict) // refunded: nothing is left
		if f.tp.Refunded(c.ProviderRef) != 4000 || f.tp.Calls(OpRefund, "o1:refund-1") != 1 {
			t.Fatalf("provider refunded %d", f.tp.Refunded(c.ProviderRef))
		}
		want := []string{"payment_authorized", "payment_captured", "payment_refunded", "payment_refunded"}
		if got := outboxTypes(t, f.Service, p.ID); !reflect.DeepEqual(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}

		// Void: an authorized payment; then voiding again is fine, whatever the key.
		v := MustAuthorize(t, f, "o2:auth", 700)
		voided, err := f.Void(ctx, "o2:void", v.ID)
		if err != nil || voided.Status != StatusVoided {
			t.Fatalf("void = %+v, %v", voided, err)
		}
		for _, key := range []string{"o2:void", "o2:void-again"} {
			if again, err := f.Void(ctx, key, v.ID); err != nil || !reflect.DeepEqual(again, voided) {
				t.Fatalf("void again (%s) = %+v, %v", key, again, err)
			}
		}
		if f.tp.Calls(OpVoid, "o2:void") != 1 || f.tp.Calls(OpVoid, "o2:void-again") != 0 {
			t.Fatal("a repeated void reached the provider")
		}
		_, err = f.Capture(ctx, "o2:capture", v.ID, eur(700))
		apperrtest.Want(t, err, apperr.Conflict)
		_, err = f.Refund(ctx, "o2:refund", v.ID, eur(1))
		apperrtest.Want(t, err, apperr.Conflict)

		// A failed payment holds nothing: voiding it is fine too.
		_, err = f.Authorize(ctx, authReq("o3:auth", TokenDeclined, 100))
		wantDeclined(t, err, "card_declined")
		failed, _ := f.ByKey(ctx, "o3:auth")
		if got, err := f.Void(ctx, "o3:void", failed.ID); err != nil || got.Status != StatusFailed {
			t.Fatalf("void of a failed payment = %+v, %v", got, err)
		}
	})
}

// TestConcurrentRefundsNeverExceedCaptured: many refunds race on one
// payment; the conditional UPDATE admits exactly what was captured.
func TestConcurrentRefundsNeverExceedCaptured(t *testing.T) {
	runStores(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		p := MustAuthorize(t, f, "o1:auth", 1000)
		c := MustCapture(t, f, "o1:capture", p.ID, 1000)
		const n = 12 // of 300 each: only 3 fit in 1000
		var (
			wg      sync.WaitGroup
			ok      atomic.Int64
			refused atomic.Int64
		)
		for i := range n {
			wg.Go(func() {
				_, err := f.Refund(ctx, fmt.Sprintf("o1:refund-%d", i), p.ID, eur(300))
				switch {
				case err == nil:
					ok.Add(1)
				case apperr.Is(err, apperr.ValidationFailed):
					refused.Add(1)
				default:
					t.Errorf("refund %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		got, err := f.Get(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ok.Load() != 3 || refused.Load() != n-3 || got.Refunded != eur(900) || got.Status != StatusPartiallyRefunded {
			t.Fatalf("%d refunds admitted, %d refused; payment %+v", ok.Load(), refused.Load(), got)
		}
		if f.tp.Refunded(c.ProviderRef) != 900 || f.tp.Total(OpRefund) != 3 {
			t.Fatalf("provider refunded %d in %d refunds", f.tp.Refunded(c.ProviderRef), f.tp.Total(OpRefund))
		}
		if pending := countRows(t, f.Service, `SELECT refund_pending FROM payments WHERE id = ?`, p.ID); pending != 0 {
			t.Fatalf("refund_pending %d left", pending)
		}
	})
}

// TestConcurrentCaptureAndVoid: a capture and a void race on one
// authorization; exactly one of them happens.
func TestConcurrentCaptureAndVoid(t *testing.T) {
	runStores(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		for round := range 5 {
			p := MustAuthorize(t, f, fmt.Sprintf("o%d:auth", round), 1000)
			var wg sync.WaitGroup
			var capErr, voidErr error
			wg.Go(func() { _, capErr = f.Capture(ctx, fmt.Sprintf("o%d:capture", round), p.ID, eur(1000)) })
			wg.Go(func() { _, voidErr = f.Void(ctx, fmt.Sprintf("o%d:void", round), p.ID) })
			wg.Wait()
			got, _ := f.Get(ctx, p.ID)
			switch {
			case capErr == nil && apperr.Is(voidErr, apperr.Conflict):
				if got.Status != StatusCaptured {
					t.Fatalf("capture won but payment is %s", got.Status)
				}
			case voidErr == nil && apperr.Is(capErr, apperr.Conflict):
				if got.Status != StatusVoided {
					t.Fatalf("void won but payment is %s", got.Status)
				}
			default:
				t.Fatalf("capture: %v, void: %v, payment %s", capErr, voidErr, got.Status)
			}
		}
		if f.tp.Total(OpCapture)+f.tp.Total(OpVoid) != 5 {
			t.Fatalf("%d captures and %d voids for 5 payments", f.tp.Total(OpCapture), f.tp.Total(OpVoid))
		}
	})
}

func TestConcurrentSameKeyRefundCallsTheProviderOnce(t *testing.T) {
	runStores(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		p := MustAuthorize(t, f, "o1:auth", 1000)
		MustCapture(t, f, "o1:capture", p.ID, 1000)
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				if got, err := f.Refund(ctx, "o1:refund", p.ID, eur(400)); err != nil || got.Refunded != eur(400) {
					t.Errorf("refund = %+v, %v", got, err)
				}
			})
		}
		wg.Wait()
		if f.tp.Calls(OpRefund, "o1:refund") != 1 {
			t.Fatalf("provider called %d times", f.tp.Calls(OpRefund, "o1:refund"))
		}
	})
}

// TestUnknownRefundHoldsItsAmountUntilReconciled: a refund whose outcome
// is unknown keeps its amount reserved, so no other refund can use it;
// the reconciler learns it happened and records it.
func TestUnknownRefundHoldsItsAmountUntilReconciled(t *testing.T) {
	runStores(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		p := MustAuthorize(t, f, "o1:auth", 1000)
		MustCapture(t, f, "o1:capture", p.ID, 1000)
		f.afterProvider = func(Operation, string) error { return errors.New("crash") }
		_, _ = f.Refund(ctx, "o1:refund-1", p.ID, eur(700))
		f.afterProvider = nil
		_, err := f.Refund(ctx, "o1:refund-2", p.ID, eur(400))
		apperrtest.Want(t, err, apperr.ValidationFailed, "amount.amount") // 700 are held

		if n, err := f.Reconcile(ctx, 10); err != nil || n != 0 {
			t.Fatalf("Reconcile within the lease = %d, %v", n, err) // the attempt may still be alive
		}
		f.clock.Advance(f.lease + time.Second)
		if n, err := f.Reconcile(ctx, 10); err != nil || n != 1 {
			t.Fatalf("Reconcile = %d, %v", n, err)
		}
		got, _ := f.Get(ctx, p.ID)
		if got.Refunded != eur(700) || got.Status != StatusPartiallyRefunded {
			t.Fatalf("payment %+v", got)
		}
		if f.tp.Calls(OpRefund, "o1:refund-1") != 1 {
			t.Fatal("the reconciler refunded again")
		}
		if _, err := f.Refund(ctx, "o1:refund-2", p.ID, eur(300)); err != nil {
			t.Fatal(err)
		}
	})
}

// TestReconcilerReleasesWhatNeverHappened: a capture that never reached
// the provider (the process died before the call) is abandoned by the
// reconciler, and the payment can be captured again.
func TestReconcilerReleasesWhatNeverHappened(t *testing.T) {
	f := MustNewSQLite(t)
	ctx := context.Background()
	p := MustAuthorize(t, f, "o1:auth", 1000)
	// The claim committed, then the process died: no provider call.
	err := f.db.InTx(ctx, func(tx *store.Tx) error {
		now := f.now()
		if err := f.reserveCaptureOrVoid(ctx, tx, OpCapture, p.ID, "o1:capture", eur(1000), now); err != nil {
			return err
		}
		return insertOp(ctx, tx, opRow{Key: "o1:capture", Kind: OpCapture, PaymentID: p.ID, Provider: ProviderTest, Request: "{}",
			State: OpPending, Amount: eur(1000), Attempts: 1, LeaseUntil: now.Add(time.Minute), CreatedAt: now, UpdatedAt: now})
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Capture(ctx, "o1:capture-2", p.ID, eur(1000))
	apperrtest.Want(t, err, apperr.Conflict) // held by the dead attempt
	f.clock.Advance(time.Hour)
	if n, err := f.Reconcile(ctx, 10); err != nil || n != 1 {
		t.Fatalf("Reconcile = %d, %v", n, err)
	}
	if st := opState(t, f.Service, "o1:capture"); st != OpAbandoned {
		t.Fatalf("state %s", st)
	}
	if c := MustCapture(t, f, "o1:capture-2", p.ID, 1000); c.Status != StatusCaptured {
		t.Fatalf("capture %+v", c)
	}
	if f.tp.Calls(OpCapture, "o1:capture") != 0 {
		t.Fatal("the reconciler captured")
	}
}

func TestConcurrentSameKeyCaptureAndVoidCallTheProviderOnce(t *testing.T) {
	runStores(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		c := MustAuthorize(t, f, "o1:auth", 1000)
		v := MustAuthorize(t, f, "o2:auth", 1000)
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				if got, err := f.Capture(ctx, "o1:capture", c.ID, eur(1000)); err != nil || got.Status != StatusCaptured {
					t.Errorf("capture = %+v, %v", got, err)
				}
			})
			wg.Go(func() {
				if got, err := f.Void(ctx, "o2:void", v.ID); err != nil || got.Status != StatusVoided {
					t.Errorf("void = %+v, %v", got, err)
				}
			})
		}
		wg.Wait()
		if f.tp.Calls(OpCapture, "o1:capture") != 1 || f.tp.Calls(OpVoid, "o2:void") != 1 {
			t.Fatalf("provider calls: capture %d, void %d", f.tp.Calls(OpCapture, "o1:capture"), f.tp.Calls(OpVoid, "o2:void"))
		}
	})
}

// TestRunReconciles: the background reconciler settles what a crash left.
func TestRunReconciles(t *testing.T) {
	f := MustNewSQLite(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.afterProvider = func(Operation, string) error { return errors.New("crash") }
	_, _ = f.Authorize(ctx, authReq("o1:auth", TokenVisa, 100))
	f.afterProvider = nil
	f.clock.Advance(f.lease + time.Second)
	done := make(chan error)
	go func() { done <- f.Run(ctx, 0) }()
	for opState(t, f.Service, "o1:auth") != OpSucceeded {
		time.Sleep(5 * time.Millisecond) // Run's first sweep is at once
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p, err := f.ByKey(context.Background(), "o1:auth"); err != nil || p.Status != StatusAuthorized {
		t.Fatalf("ByKey = %+v, %v", p, err)
	}
	if f.tp.Calls(OpAuthorize, "o1:auth") != 1 {
		t.Fatal("the reconciler authorized again")
	}
}

func TestOperationMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := MustNewSQLite(t, WithMetrics(reg))
	ctx := context.Background()
	p := MustAuthorize(t, f, "o1:auth", 100)
	MustAuthorize(t, f, "o1:auth", 100) // replayed
	MustCapture(t, f, "o1:capture", p.ID, 100)
	_, _ = f.Authorize(ctx, authReq("o2:auth", TokenDeclined, 100))
	for _, tt := range []struct {
		op, outcome string
		want        float64
	}{
		{"authorize", outcomeSucceeded, 1}, {"authorize", outcomeReplayed, 1}, {"authorize", outcomeDeclined, 1},
		{"capture", outcomeSucceeded, 1},
	} {
		if v := telemetrytest.MustMetric(t, reg, "souk_payments_operations_total", "provider", "test", "op", tt.op, "outcome", tt.outcome); v != tt.want {
			t.Errorf("operations{op=%s,outcome=%s} = %v, want %v", tt.op, tt.outcome, v, tt.want)
		}
	}
	if v := telemetrytest.MustMetric(t, reg, "souk_payments_provider_latency_seconds", "provider", "test", "op", "authorize"); v != 2 {
		t.Errorf("authorize latency samples %v, want 2", v)
	}
	if v := telemetrytest.MustMetric(t, reg, "souk_dependency_calls_total", "name", "payments.test", "outcome", "success"); v != 3 {
		t.Errorf("policy successes %v, want 3", v)
	}
}

// TestOperationsReturnThePaymentAsStored: each operation answers with the
// payment its own write returned (no read after it); that is the payment
// as a read of it sees it, field for field.
func TestOperationsReturnThePaymentAsStored(t *testing.T) {
	runStores(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		p := MustAuthorize(t, f, "o1:auth", 1000)
		v := MustAuthorize(t, f, "o2:auth", 1000)
		steps := []struct {
			name string
			do   func() (Payment, error)
		}{
			{"authorize", func() (Payment, error) { return p, nil }},
			{"capture", func() (Payment, error) { return f.Capture(ctx, "o1:capture", p.ID, eur(800)) }},
			{"partial refund", func() (Payment, error) { return f.Refund(ctx, "o1:refund-1", p.ID, eur(300)) }},
			{"full refund", func() (Payment, error) { return f.Refund(ctx, "o1:refund-2", p.ID, eur(500)) }},
			{"void", func() (Payment, error) { return f.Void(ctx, "o2:void", v.ID) }},
		}
		for _, st := range steps {
			got, err := st.do()
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			if stored, err := f.Get(ctx, got.ID); err != nil || !reflect.DeepEqual(got, stored) {
				t.Fatalf("%s returned %+v; stored %+v, %v", st.name, got, stored, err)
			}
		}
	})
}
