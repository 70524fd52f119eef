package orders

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/telemetry/telemetrytest"
	"github.com/soukhq/souk/services/inventory"
	"github.com/soukhq/souk/services/payments"
)

// crashOnce returns a hook that "kills the process" the first time the
// saga reaches step there.
func crashOnce(step string) (func(orderID, step string) bool, *atomic.Bool) {
	var crashed atomic.Bool
	return func(_, s string) bool {
		return s == step && crashed.CompareAndSwap(false, true)
	}, &crashed
}

// resumeAfterCrash places an order with a first Service whose worker dies
// at the hook, then starts a second Service on the same database once the
// first one's lease has expired, and returns the order it finishes.
func resumeAfterCrash(t *testing.T, engine store.Engine, h hooks, crashed *atomic.Bool, counting *countingPayments) (*env, Order, shopper) {
	t.Helper()
	e := newEnv(t, engine, withFakeClock(), withTestHooks(h), withConfig(func(c *Config) { c.WaitBudget = 50 * time.Millisecond }),
		withDeps(func(d Deps) Deps {
			counting.PaymentsClient = d.Payments
			d.Payments = counting
			return d
		}))
	o, sh := e.checkoutTwoWithVoucher(t)
	if o.Status != StatusPending {
		t.Fatalf("the first process finished the saga (%s); the hook did not fire", o.Status)
	}
	for deadline := time.Now().Add(10 * time.Second); !crashed.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the hook never fired")
		}
	}
	// The first process is gone; its lease holds the saga until it expires.
	e.stops[0]()
	e.hooks = hooks{}
	second := e.newService()
	if _, ok, err := second.claim(bg, o.ID); ok || err != nil {
		t.Fatalf("a live lease was taken over (%v, %v)", ok, err)
	}
	e.clock.Advance(e.cfg.LeaseTTL + time.Second)
	e.start(second) // resumes every unfinished saga on start
	return e, e.awaitDone(t, o.ID), sh
}

// TestResumeAfterCrash: a process that dies after any step commits loses
// nothing. A new Service on the same database resumes the saga (once the
// dead one's lease expired) and finishes it, and no participant acted
// twice: one redemption, one reservation committed once, one
// authorization, one capture.
func TestResumeAfterCrash(t *testing.T) {
	engines(t, func(t *testing.T, engine store.Engine) {
		for _, step := range forwardSteps[:len(forwardSteps)-1] {
			t.Run("after "+step, func(t *testing.T) {
				hook, crashed := crashOnce(step)
				e, o, _ := resumeAfterCrash(t, engine, hooks{afterSave: hook}, crashed, &countingPayments{})
				if !crashed.Load() || o.Status != StatusConfirmed {
					t.Fatalf("crashed %v, order %s", crashed.Load(), o.Status)
				}
				wantActedOnce(t, e, o)
				hist := steps(t, e.db, o.ID)
				for _, st := range forwardSteps {
					if n := countOf(hist, st+"/do/ok"); n != 1 {
						t.Fatalf("%s recorded %d times: %v", st, n, hist)
					}
				}
			})
		}
	})
}

// TestAmbiguousCrash: a process that dies after a participant acted but
// before it recorded that (the ambiguous case) loses nothing either: the
// resumed step repeats the call with the same idempotency key — and for
// the authorization asks payments what the key did (ByKey) first — so
// nothing happens twice. In particular the provider is asked to authorize
// exactly once.
func TestAmbiguousCrash(t *testing.T) {
	engines(t, func(t *testing.T, engine store.Engine) {
		for _, step := range forwardSteps {
			t.Run("after calling "+step, func(t *testing.T) {
				hook, crashed := crashOnce(step)
				counting := &countingPayments{}
				e, o, sh := resumeAfterCrash(t, engine, hooks{afterCall: hook}, crashed, counting)
				if !crashed.Load() || o.Status != StatusConfirmed {
					t.Fatalf("crashed %v, order %s", crashed.Load(), o.Status)
				}
				wantActedOnce(t, e, o)
				if n := e.tp.Calls(payments.OpAuthorize, opKey(o.ID, opAuthorize)); n != 1 {
					t.Fatalf("the provider was asked to authorize %d times", n)
				}
				if step == stepAuthorize && counting.byKey.Load() == 0 {
					t.Fatal("the resumed authorization did not ask payments what its key did (ByKey)")
				}
				co, err := e.carts.GetForCheckout(bg, sh.cartID)
				if err != nil || co.OrderID != o.ID {
					t.Fatalf("cart %+v, %v", co, err)
				}
			})
		}
	})
}

// TestSaveFailureRetried: when the database fails under a saga's save,
// the process holding the saga retries it from the last recorded step at
// once, instead of leaving it until its own lease expires (an hour here),
// and nothing is done twice. Each case fails the n-th save twice in a row.
func TestSaveFailureRetried(t *testing.T) {
	engines(t, func(t *testing.T, engine store.Engine) {
		for nth := 1; nth <= 5; nth++ {
			t.Run(fmt.Sprintf("save %d", nth), func(t *testing.T) {
				var saves, failed atomic.Int64
				fail := func(string) error {
					if n := saves.Add(1); n == int64(nth) || n == int64(nth)+1 {
						failed.Add(1)
						return errors.New("connection refused (test hook)")
					}
					return nil
				}
				reg := prometheus.NewRegistry()
				e := newEnv(t, engine, withRegistry(reg), withTestHooks(hooks{failSave: fail}),
					withConfig(func(c *Config) { c.LeaseTTL = time.Hour }))
				o, _ := e.checkoutTwoWithVoucher(t)
				if o.Status != StatusConfirmed {
					o = e.awaitDone(t, o.ID)
				}
				if o.Status != StatusConfirmed || failed.Load() != 2 {
					t.Fatalf("order %s after %d failed saves", o.Status, failed.Load())
				}
				wantActedOnce(t, e, o)
				hist := steps(t, e.db, o.ID)
				for _, st := range forwardSteps {
					if n := countOf(hist, st+"/do/ok"); n != 1 {
						t.Fatalf("%s recorded %d times: %v", st, n, hist)
					}
				}
				if got := telemetrytest.MustMetric(t, reg, "souk_orders_saga_save_failures_total"); got != 2 {
					t.Fatalf("souk_orders_saga_save_failures_total = %v, want 2", got)
				}
			})
		}
	})
}

// checkoutTwoWithVoucher stocks SKU-1 (10 at 10.00) and the voucher TEN,
// and checks a guest's cart of two with the voucher out with tok_visa; the
// order is as Checkout answered it (pending when a hook stopped the saga).
func (e *env) checkoutTwoWithVoucher(t testing.TB) (Order, shopper) {
	t.Helper()
	e.MustProduct(t, "SKU-1", 1000, 10)
	e.MustVoucher(t, "TEN", 10)
	sh := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 2}, codes: []string{"TEN"}})
	o, err := e.s.Checkout(bg, sh.cartID, sh.caller, pay(payments.TokenVisa), "")
	if err != nil {
		t.Fatalf("Checkout: %v", err)
	}
	return o, sh
}

// wantActedOnce checks every participant acted once for the order.
func wantActedOnce(t testing.TB, e *env, o Order) {
	t.Helper()
	wantStock(t, e, "SKU-1", 8, 0)
	if e.authorizations() != 1 || e.captures() != 1 {
		t.Fatalf("%d authorizations, %d captures", e.authorizations(), e.captures())
	}
	promos := countRows(t, e.db, `SELECT COUNT(*) FROM orders_orders`)
	if promos != 1 {
		t.Fatalf("%d orders", promos)
	}
	p, err := e.pay.ByKey(bg, opKey(o.ID, opAuthorize))
	if err != nil || p.Status != payments.StatusCaptured || p.Captured != o.Total {
		t.Fatalf("payment %+v, %v", p, err)
	}
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// countingPayments counts the calls orders makes to payments.
type countingPayments struct {
	PaymentsClient
	byKey, authorize atomic.Int64
}

func (c *countingPayments) ByKey(ctx context.Context, key string) (payments.Payment, error) {
	c.byKey.Add(1)
	return c.PaymentsClient.ByKey(ctx, key)
}

func (c *countingPayments) Authorize(ctx context.Context, req payments.AuthorizeRequest) (payments.Payment, error) {
	c.authorize.Add(1)
	return c.PaymentsClient.Authorize(ctx, req)
}

// flakyInventory answers unavailable while down is set.
type flakyInventory struct {
	InventoryClient
	down  atomic.Bool
	calls atomic.Int64
}

func (f *flakyInventory) Reserve(ctx context.Context, req inventory.ReserveRequest) (inventory.Reservation, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return inventory.Reservation{}, apperr.New(apperr.Unavailable, "inventory is down (test)")
	}
	return f.InventoryClient.Reserve(ctx, req)
}

// flakyEnv is an env whose inventory can be taken down, on a fake clock.
func flakyEnv(t *testing.T, engine store.Engine, cfg func(c *Config)) (*env, *flakyInventory) {
	t.Helper()
	flaky := &flakyInventory{}
	e := newEnv(t, engine, withFakeClock(), withConfig(func(c *Config) {
		c.WaitBudget = 50 * time.Millisecond
		c.BreakerFailures = 1000 // the breaker is not what these tests are about
		if cfg != nil {
			cfg(c)
		}
	}), withDeps(func(d Deps) Deps {
		flaky.InventoryClient = d.Inventory
		d.Inventory = flaky
		return d
	}))
	e.MustProduct(t, "SKU-1", 1000, 10)
	e.MustVoucher(t, "TEN", 10)
	return e, flaky
}

// TestStepTimeoutGivesUp: a participant that stays unavailable is retried
// with backoff until the step's time is up; then the saga compensates
// (service_unavailable) and the voucher comes back.
func TestStepTimeoutGivesUp(t *testing.T) {
	engines(t, func(t *testing.T, engine store.Engine) {
		e, flaky := flakyEnv(t, engine, func(c *Config) { c.StepTimeout = 10 * time.Second })
		flaky.down.Store(true)
		sh := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}, codes: []string{"TEN"}})
		o, err := e.s.Checkout(bg, sh.cartID, sh.caller, pay(payments.TokenVisa), "")
		if err != nil || o.Status != StatusPending {
			t.Fatalf("Checkout = %s, %v", o.Status, err)
		}
		o = e.drive(t, e.s, o.ID, 2*time.Second, 50)
		wantCancelled(t, e, o.ID, ReasonServiceUnavailable)
		hist := steps(t, e.db, o.ID)
		if countOf(hist, "reserve_stock/do/retry") < 3 || countOf(hist, "reserve_stock/do/failed") != 1 ||
			hist[len(hist)-1] != "release_vouchers/compensate/ok" {
			t.Fatalf("history %v", hist)
		}
		// Reserve was compensated too (it may have acted): nothing is held.
		wantStock(t, e, "SKU-1", 10, 0)
		if e.authorizations() != 0 {
			t.Fatal("payments was asked")
		}
	})
}

// TestDeadlineCompensates: a saga still short of its point of no return at
// its deadline is compensated (deadline_exceeded) — whether it kept
// retrying, or its process died holding it and the one that took the
// lease over finds it past its deadline.
func TestDeadlineCompensates(t *testing.T) {
	engines(t, func(t *testing.T, engine store.Engine) {
		t.Run("retrying past the deadline", func(t *testing.T) {
			e, flaky := flakyEnv(t, engine, func(c *Config) { c.StepTimeout, c.SagaDeadline = 2*time.Minute, 2*time.Minute })
			flaky.down.Store(true)
			sh := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}, codes: []string{"TEN"}})
			o, _ := e.s.Checkout(bg, sh.cartID, sh.caller, pay(payments.TokenVisa), "")
			o = e.drive(t, e.s, o.ID, 20*time.Second, 50)
			c := wantCancelled(t, e, o.ID, ReasonDeadlineExceeded).Cancellation
			if !strings.Contains(c.Message, "2m0s") {
				t.Fatalf("cancellation %+v", c)
			}
			wantStock(t, e, "SKU-1", 10, 0)
		})

		t.Run("a dead process's saga, found past its deadline", func(t *testing.T) {
			hook, crashed := crashOnce(stepReserve)
			e := newEnv(t, engine, withFakeClock(), withTestHooks(hooks{afterSave: hook}),
				withConfig(func(c *Config) { c.WaitBudget = 50 * time.Millisecond }))
			e.MustProduct(t, "SKU-1", 1000, 10)
			sh := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 3}})
			o, _ := e.s.Checkout(bg, sh.cartID, sh.caller, pay(payments.TokenVisa), "")
			for deadline := time.Now().Add(10 * time.Second); !crashed.Load(); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the hook never fired")
				}
			}
			wantStock(t, e, "SKU-1", 10, 3) // reserved, then the process died
			e.stops[0]()
			e.hooks = hooks{}
			e.clock.Advance(e.cfg.SagaDeadline + time.Second)
			e.start(e.newService())
			o = e.awaitDone(t, o.ID)
			wantCancelled(t, e, o.ID, ReasonDeadlineExceeded)
			wantStock(t, e, "SKU-1", 10, 0)
			if e.authorizations() != 0 {
				t.Fatal("payments was asked after the deadline")
			}
		})
	})
}

// TestLeases: a saga another process holds is not claimed until its lease
// expires; a process whose lease was taken over cannot record anything
// more; and two executors on one database run every saga once.
func TestLeases(t *testing.T) {
	engines(t, func(t *testing.T, engine store.Engine) {
		t.Run("claims exclude each other", func(t *testing.T) {
			e := newEnv(t, engine, withFakeClock(), withConfig(func(c *Config) { c.WaitBudget = time.Millisecond }))
			e.stops[0]() // no executor: the test claims by hand
			e.MustProduct(t, "SKU-1", 1000, 10)
			sh := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}})
			o, _ := e.s.Checkout(bg, sh.cartID, sh.caller, pay(payments.TokenVisa), "")
			a, b := e.s, e.newService()
			exA, ok, err := a.claim(bg, o.ID)
			if !ok || err != nil {
				t.Fatalf("first claim: %v %v", ok, err)
			}
			if _, ok, _ := b.claim(bg, o.ID); ok {
				t.Fatal("a held saga was claimed")
			}
			e.clock.Advance(e.cfg.LeaseTTL + time.Second)
			exB, ok, err := b.claim(bg, o.ID)
			if !ok || err != nil || !exB.resumed {
				t.Fatalf("takeover: %v %v", ok, err)
			}
			// The old holder may still make a call (idempotent by key:
			// harmless) but cannot record it: its first write fails.
			for i := 0; ; i++ {
				_, err := exA.step(bg)
				if errors.Is(err, errLeaseLost) {
					break
				}
				if err != nil || i == 2 {
					t.Fatalf("the old holder recorded a step: %v", err)
				}
			}
			for {
				n, err := exB.step(bg)
				if err != nil {
					t.Fatal(err)
				}
				if n == nextDone {
					break
				}
			}
			o = e.awaitDone(t, o.ID)
			if o.Status != StatusConfirmed || e.authorizations() != 1 {
				t.Fatalf("order %s, %d authorizations", o.Status, e.authorizations())
			}
			// The old holder's steps (nothing to redeem, then the
			// reservation its key already made) were never recorded: the
			// history is the new holder's alone.
			if hist := steps(t, e.db, o.ID); len(hist) != len(forwardSteps) {
				t.Fatalf("history %v", hist)
			}
		})

		t.Run("two executors run every saga once", func(t *testing.T) {
			e := newEnv(t, engine)
			other := e.newService()
			e.start(other)
			e.MustProduct(t, "SKU-1", 1000, 100)
			var (
				wg  sync.WaitGroup
				ids sync.Map
			)
			for i := range 20 {
				sh := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}})
				s := e.s
				if i%2 == 1 {
					s = other
				}
				wg.Go(func() {
					o, err := s.Checkout(bg, sh.cartID, sh.caller, pay(payments.TokenVisa), "")
					if err != nil {
						t.Errorf("Checkout: %v", err)
						return
					}
					ids.Store(o.ID, true)
				})
			}
			wg.Wait()
			n := 0
			ids.Range(func(k, _ any) bool {
				n++
				o := e.awaitDone(t, k.(string))
				hist := steps(t, e.db, o.ID)
				if o.Status != StatusConfirmed || len(hist) != len(forwardSteps) || !slices.Contains(hist, "capture_payment/do/ok") {
					t.Errorf("order %s %s: %v", o.ID, o.Status, hist)
				}
				return true
			})
			if n != 20 || e.authorizations() != 20 || e.captures() != 20 {
				t.Fatalf("%d orders, %d authorizations, %d captures", n, e.authorizations(), e.captures())
			}
			wantStock(t, e, "SKU-1", 80, 0)
		})
	})
}

// TestShutdownReleasesSagas: an executor stopped between two steps hands
// the saga back at once (the next process need not wait for the lease to
// expire), and the next one finishes it.
func TestShutdownReleasesSagas(t *testing.T) {
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e := newEnv(t, store.SQLite, withFakeClock(), withConfig(func(c *Config) { c.WaitBudget = time.Millisecond }),
		withTestHooks(hooks{afterSave: func(_, step string) bool {
			if step == stepReserve {
				once.Do(func() { close(reached); <-release })
			}
			return false
		}}))
	e.stops[0]() // the test runs the executor itself
	e.MustProduct(t, "SKU-1", 1000, 10)
	sh := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}})
	o, _ := e.s.Checkout(bg, sh.cartID, sh.caller, pay(payments.TokenVisa), "")

	ctx, cancel := context.WithCancel(bg)
	done := make(chan error)
	go func() { done <- e.s.Run(ctx) }()
	<-reached // the worker is between reserve and authorize
	cancel()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	g, err := getSaga(bg, e.db, o.ID)
	if err != nil || g.leaseOwner != "" || g.status != sagaRunning || g.step != stepAuthorize {
		t.Fatalf("after shutdown: owner %q status %s step %s, %v", g.leaseOwner, g.status, g.step, err)
	}
	e.hooks = hooks{}
	e.start(e.newService()) // no clock advance: nothing to wait for
	if o = e.awaitDone(t, o.ID); o.Status != StatusConfirmed || e.authorizations() != 1 {
		t.Fatalf("order %s, %d authorizations", o.Status, e.authorizations())
	}
}

// refusingPricing refuses every voucher release, for good.
type refusingPricing struct{ PricingClient }

func (refusingPricing) Release(context.Context, string) error {
	return apperr.New(apperr.Conflict, "pricing refuses (test)")
}

// TestRefusedCompensation: a compensation a participant keeps refusing is
// asked again a few times, then recorded as failed for a person to settle;
// the other compensations still run and the order still ends cancelled.
func TestRefusedCompensation(t *testing.T) {
	e := newEnv(t, store.SQLite, withDeps(func(d Deps) Deps {
		d.Pricing = refusingPricing{d.Pricing}
		return d
	}))
	e.MustProduct(t, "SKU-1", 1000, 5)
	e.MustVoucher(t, "TEN", 10)
	sh := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 2}, codes: []string{"TEN"}})
	_, err := e.s.Checkout(bg, sh.cartID, sh.caller, pay(payments.TokenDeclined), "")
	var c *CancelledError
	if !errors.As(err, &c) {
		t.Fatalf("err = %v", err)
	}
	o := wantCancelled(t, e, c.OrderID, ReasonPaymentDeclined)
	wantStock(t, e, "SKU-1", 5, 0)
	hist := steps(t, e.db, o.ID)
	if countOf(hist, "release_vouchers/compensate/retry") != compensationRefusals-1 || countOf(hist, "release_vouchers/compensate/failed") != 1 ||
		!slices.Contains(hist, "release_stock/compensate/ok") {
		t.Fatalf("history %v", hist)
	}
}
