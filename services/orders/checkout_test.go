package orders

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
	"github.com/soukhq/souk/platform/telemetry/telemetrytest"
	"github.com/soukhq/souk/services/cart"
	"github.com/soukhq/souk/services/catalog"
	"github.com/soukhq/souk/services/inventory"
	"github.com/soukhq/souk/services/payments"
	"github.com/soukhq/souk/services/pricing"
)

// engines runs test once per available engine, each with its own env.
func engines(t *testing.T, test func(t *testing.T, engine store.Engine)) {
	t.Helper()
	for _, engine := range []store.Engine{store.SQLite, store.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			if engine == store.Postgres {
				storetest.MustOpen(t, engine) // skips, saying why, without SOUK_TEST_POSTGRES_URL
			}
			test(t, engine)
		})
	}
}

// TestCheckoutConfirms walks the happy path with the real participants: a
// customer's cart with two lines and a voucher is priced, frozen, redeemed,
// reserved, authorized, committed, captured and confirmed; the cart is
// checked out; every step is in the saga's history.
func TestCheckoutConfirms(t *testing.T) {
	engines(t, func(t *testing.T, engine store.Engine) {
		e := newEnv(t, engine)
		e.MustProduct(t, "LIN-S", 2999, 10)
		e.MustProduct(t, "MUG-1", 1250, 5)
		promo := e.MustVoucher(t, "WINTER10", 5)
		sh := e.MustCart(t, cartSpec{customer: "cus_ada", items: map[string]int64{"LIN-S": 2, "MUG-1": 1}, codes: []string{"WINTER10"}})
		quoted, err := e.carts.Get(bg, sh.caller, sh.cartID)
		if err != nil {
			t.Fatal(err)
		}

		o := e.MustCheckout(t, sh, payments.TokenVisa)
		// The answer is the order as stored: the saga that confirmed it
		// here hands it to the waiting request, which does not read it
		// back.
		stored, err := e.s.load(bg, e.db, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := mustJSON(t, o), mustJSON(t, stored); got != want {
			t.Fatalf("checkout answered\n%s\nthe stored order is\n%s", got, want)
		}

		if o.Total != quoted.Total || o.Subtotal != eur(2*2999+1250) || o.DiscountTotal != quoted.DiscountTotal ||
			o.ShippingTotal != eur(495) || o.TaxTotal != quoted.TaxTotal || len(o.Items) != 2 || len(o.Promotions) != 1 {
			t.Fatalf("order totals %+v, the cart showed %+v", o, quoted)
		}
		if o.CustomerID == nil || *o.CustomerID != "cus_ada" || o.Email != "ada@example.com" || o.ConfirmedAt == nil ||
			o.ShippingAddress == nil || o.ShippingAddress.City != "Amsterdam" || o.ShippingMethod.ID != e.method.ID {
			t.Fatalf("order %+v", o)
		}
		if o.Payment.PaymentID == nil || o.Payment.Provider != "test" || o.Payment.Captured != o.Total || o.Payment.Authorized != o.Total ||
			o.Payment.CapturePolicy != CaptureOnConfirmation {
			t.Fatalf("payment %+v", o.Payment)
		}
		wantStock(t, e, "LIN-S", 8, 0)
		wantStock(t, e, "MUG-1", 4, 0)
		if n := e.voucherUsed(t, promo.ID); n != 1 {
			t.Fatalf("voucher used %d times", n)
		}
		p, err := e.pay.Get(bg, *o.Payment.PaymentID)
		if err != nil || p.Status != payments.StatusCaptured || p.Captured != o.Total {
			t.Fatalf("payment = %+v, %v", p, err)
		}
		co, err := e.carts.GetForCheckout(bg, sh.cartID)
		if err != nil || co.Status != cart.StatusCheckedOut || co.OrderID != o.ID {
			t.Fatalf("cart after checkout = %+v, %v", co, err)
		}
		want := []string{"redeem_vouchers/do/ok", "reserve_stock/do/ok", "authorize_payment/do/ok", "commit_stock/do/ok",
			"capture_payment/do/ok", "confirm/do/ok"}
		if got := steps(t, e.db, o.ID); !slices.Equal(got, want) {
			t.Fatalf("saga history %v, want %v", got, want)
		}
		var types []string
		rows, err := e.db.Query(bg, `SELECT event_type FROM souk_outbox WHERE aggregate_id = ? ORDER BY seq`, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var typ string
			_ = rows.Scan(&typ)
			types = append(types, typ)
		}
		rows.Close()
		if !slices.Equal(types, []string{EventOrderPlaced, EventOrderConfirmed}) {
			t.Fatalf("events %v", types)
		}
		// The payment token is not kept once the saga is done.
		if n := countRows(t, e.db, `SELECT COUNT(*) FROM orders_sagas WHERE payment_token <> ''`); n != 0 {
			t.Fatalf("%d sagas still hold a payment token", n)
		}
		if e.authorizations() != 1 || e.captures() != 1 {
			t.Fatalf("%d authorizations, %d captures", e.authorizations(), e.captures())
		}
	})
}

// TestFlashSaleNeverOversells is the promise: 500 shoppers, each with a
// cart of 1 unit of a SKU with 50 in stock, check out at once through the
// HTTP handler against the real services. Exactly 50 orders are confirmed,
// 450 answered out_of_stock, the stock ends at 0 on hand and 0 available,

// TestGuestVoucherPerCustomer: a guest's voucher limited to one use per
// customer is counted against the cart's e-mail, the key the cart quoted it
// with: the guest's order gets the discount (before, orders quoted and
// redeemed it for nobody, and refused the code the cart had shown as
// applied), and the use counts for that e-mail only.
func TestGuestVoucherPerCustomer(t *testing.T) {
	engines(t, func(t *testing.T, engine store.Engine) {
		e := newEnv(t, engine)
		e.MustProduct(t, "SKU-1", 1000, 10)
		total, perCustomer := int64(100), int64(1)
		promo, err := e.pr.CreatePromotion(bg, pricing.PromotionInput{Name: "Welcome", Type: pricing.TypePercentage,
			Value: &pricing.PromotionValue{Percent: 10}, Target: pricing.TargetOrder, Codes: []string{e.code("WELCOME")},
			UsageLimit: &total, UsageLimitPerCustomer: &perCustomer})
		if err != nil {
			t.Fatal(err)
		}
		sh := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 2}, codes: []string{"WELCOME"}})
		o := e.MustCheckout(t, sh, payments.TokenVisa)
		if o.DiscountTotal.Amount != 200 || e.voucherUsed(t, promo.ID) != 1 {
			t.Fatalf("order discount %v, voucher used %d times; want 2.00 off and one use", o.DiscountTotal, e.voucherUsed(t, promo.ID))
		}
		if err := e.pr.CheckCode(bg, e.code("WELCOME"), "EUR", cart.PricingCustomerKey("", "ada@example.com")); !apperr.Is(err, pricing.CodeExhausted) {
			t.Fatalf("the same e-mail may use the code again: %v", err)
		}
		if err := e.pr.CheckCode(bg, e.code("WELCOME"), "EUR", cart.PricingCustomerKey("", "grace@example.com")); err != nil {
			t.Fatalf("another e-mail may not use the code: %v", err)
		}
	})
}

// and money moved exactly 50 times each way (no double charge).
func TestFlashSaleNeverOversells(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 500 concurrent checkouts per engine")
	}
	engines(t, func(t *testing.T, engine store.Engine) {
		// The longest wait budget: under the race detector on a busy
		// machine a checkout may still outlast it and answer 202; its
		// order is then followed to its end.
		e := newEnv(t, engine, withConfig(func(c *Config) { c.WaitBudget = time.Minute }))
		e.MustProduct(t, "FLASH-1", 1999, 50)
		const buyers = 500
		shoppers := make([]shopper, buyers)
		setup := time.Now()
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for i := range shoppers {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				shoppers[i] = e.MustCart(t, cartSpec{items: map[string]int64{"FLASH-1": 1}})
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		t.Logf("%s: %d carts made in %v", engine, buyers, time.Since(setup).Round(time.Millisecond))

		h := mount(e.s.Routes())
		var (
			confirmed, outOfStock atomic.Int64
			accepted              atomic.Int64
			orderIDs              sync.Map
			start                 = make(chan struct{})
		)
		sem = make(chan struct{}, 32)
		for i := range shoppers {
			wg.Go(func() {
				<-start
				sem <- struct{}{}
				defer func() { <-sem }()
				w := serve(h, checkoutRequest(shoppers[i], payments.TokenVisa, ""))
				switch w.Code {
				case http.StatusCreated:
					o := MustDecode[Order](t, w)
					if o.Status != StatusConfirmed {
						t.Errorf("201 with status %s", o.Status)
					}
					orderIDs.Store(o.ID, true)
					confirmed.Add(1)
				case http.StatusConflict:
					p := MustDecode[problem](t, w)
					if p.Code != ReasonOutOfStock || p.OrderID == "" || len(p.Errors) != 1 || p.Errors[0].Code != ReasonOutOfStock {
						t.Errorf("409: %s", w.Body)
					}
					outOfStock.Add(1)
				case http.StatusAccepted:
					accepted.Add(1)
					switch o := e.awaitDone(t, MustDecode[processing](t, w).ID); {
					case o.Status == StatusConfirmed:
						confirmed.Add(1)
					case o.Cancellation != nil && o.Cancellation.Reason == ReasonOutOfStock:
						outOfStock.Add(1)
					default:
						t.Errorf("order %s ended %s %+v", o.ID, o.Status, o.Cancellation)
					}
				default:
					t.Errorf("checkout: %d %s", w.Code, w.Body)
				}
			})
		}
		began := time.Now()
		close(start)
		wg.Wait()
		t.Logf("%s: %d confirmed, %d out_of_stock of %d concurrent checkouts in %v (%d answered 202 first); %d authorizations, %d captures",
			engine, confirmed.Load(), outOfStock.Load(), buyers, time.Since(began).Round(time.Millisecond), accepted.Load(),
			e.authorizations(), e.captures())
		if confirmed.Load() != 50 || outOfStock.Load() != 450 {
			t.Fatalf("%d confirmed and %d out_of_stock, want 50 and 450", confirmed.Load(), outOfStock.Load())
		}
		it := e.stock(t, "FLASH-1")
		if it.OnHand != 0 || it.Reserved != 0 || it.Available != 0 {
			t.Fatalf("stock after the sale: %+v", it)
		}
		if e.authorizations() != 50 || e.captures() != 50 {
			t.Fatalf("%d authorizations and %d captures, want 50 and 50", e.authorizations(), e.captures())
		}
		if n := countRows(t, e.db, `SELECT COUNT(*) FROM orders_orders WHERE status = 'confirmed'`); n != 50 {
			t.Fatalf("%d confirmed orders in the database", n)
		}
		if n := countRows(t, e.db, `SELECT COUNT(*) FROM orders_orders WHERE status = 'cancelled'`); n != 450 {
			t.Fatalf("%d cancelled orders in the database", n)
		}
		// A cancelled order never reached payments.
		if n := countRows(t, e.db, `SELECT COUNT(*) FROM orders_saga_steps WHERE step = 'authorize_payment'`); n != 50 {
			t.Fatalf("%d authorization attempts recorded, want 50", n)
		}
	})
}

// TestSafeRetries: the same checkout sent twice, one after the other and
// at once, with the gateway's idempotency middleware in front and without
// it (then the one-live-order-per-cart rule decides), makes one order and
// one authorization.
func TestSafeRetries(t *testing.T) {
	engines(t, func(t *testing.T, engine store.Engine) {
		e := newEnv(t, engine)
		e.MustProduct(t, "SKU-1", 1000, 100)
		idem := httpx.NewIdempotency(e.db, httpx.IdempotencyConfig{})
		withIdem := mount(e.s.Routes(), idem.Middleware())
		bare := mount(e.s.Routes())

		t.Run("same key, one after the other", func(t *testing.T) {
			sh := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}})
			before := e.authorizations()
			first := MustDecode[Order](t, MustServe(t, withIdem, http.StatusCreated, checkoutRequest(sh, "tok_visa", "key-1")))
			w := MustServe(t, withIdem, http.StatusCreated, checkoutRequest(sh, "tok_visa", "key-1"))
			if w.Header().Get(httpx.HeaderIdempotentReplayed) != "true" || MustDecode[Order](t, w).ID != first.ID {
				t.Fatalf("replay: %v %s", w.Header(), w.Body)
			}
			// The same key with another body is refused by the middleware.
			wantProblem(t, serve(withIdem, checkoutRequest(sh, "tok_declined", "key-1")), 422, string(apperr.IdempotencyKeyReused))
			wantOneOrder(t, e, sh.cartID)
			if n := e.authorizations() - before; n != 1 {
				t.Fatalf("%d authorizations", n)
			}
		})

		t.Run("same key, at once", func(t *testing.T) {
			sh := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}})
			before := e.authorizations()
			codes := concurrently(8, func() int { return serve(withIdem, checkoutRequest(sh, "tok_visa", "key-2")).Code })
			for _, c := range codes {
				// 201, or 409 idempotency_key_in_use while the first runs.
				if c != http.StatusCreated && c != http.StatusConflict {
					t.Fatalf("statuses %v", codes)
				}
			}
			if !slices.Contains(codes, http.StatusCreated) {
				t.Fatalf("statuses %v", codes)
			}
			wantOneOrder(t, e, sh.cartID)
			if n := e.authorizations() - before; n != 1 {
				t.Fatalf("%d authorizations", n)
			}
		})

		t.Run("no key, at once: one live order per cart", func(t *testing.T) {
			sh := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}})
			before := e.authorizations()
			var (
				mu  sync.Mutex
				ids = map[string]bool{}
			)
			codes := concurrently(8, func() int {
				w := serve(bare, checkoutRequest(sh, "tok_visa", ""))
				if w.Code == http.StatusCreated {
					mu.Lock()
					ids[MustDecode[Order](t, w).ID] = true
					mu.Unlock()
				}
				return w.Code
			})
			for _, c := range codes {
				if c != http.StatusCreated {
					t.Fatalf("statuses %v: the same request must get the same order", codes)
				}
			}
			if len(ids) != 1 {
				t.Fatalf("orders %v", ids)
			}
			wantOneOrder(t, e, sh.cartID)
			// Sent again once confirmed (the cart is checked out): the same order.
			again := MustDecode[Order](t, MustServe(t, bare, http.StatusCreated, checkoutRequest(sh, "tok_visa", "")))
			if !ids[again.ID] {
				t.Fatalf("a retry got order %s", again.ID)
			}
			if n := e.authorizations() - before; n != 1 {
				t.Fatalf("%d authorizations", n)
			}
		})

		t.Run("different requests at once: one wins, the others conflict", func(t *testing.T) {
			sh := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}})
			before := e.authorizations()
			var n atomic.Int64
			codes := concurrently(6, func() int {
				key := fmt.Sprintf("k-%d", n.Add(1))
				w := serve(bare, checkoutRequest(sh, "tok_visa", key))
				if w.Code == http.StatusConflict {
					if p := MustDecode[problem](t, w); p.Code != string(apperr.Conflict) || p.OrderID == "" {
						t.Errorf("409 %s", w.Body)
					}
				}
				return w.Code
			})
			created := 0
			for _, c := range codes {
				switch c {
				case http.StatusCreated:
					created++
				case http.StatusConflict:
				default:
					t.Fatalf("statuses %v", codes)
				}
			}
			if created != 1 {
				t.Fatalf("statuses %v", codes)
			}
			wantOneOrder(t, e, sh.cartID)
			if n := e.authorizations() - before; n != 1 {
				t.Fatalf("%d authorizations", n)
			}
		})
	})
}

// TestOneLiveOrderPerCart: the database itself refuses a second live
// order of a cart (the partial unique index), whatever races the
// application-level check; a cancelled order frees the cart.
func TestOneLiveOrderPerCart(t *testing.T) {
	engines(t, func(t *testing.T, engine store.Engine) {
		db := storetest.MustOpen(t, engine, testMigrations...)
		order := func(status Status) record {
			now := time.Now().UTC().Truncate(time.Microsecond)
			return record{Order: Order{ID: newOrderID(), Status: status, CartID: "cart_01JD3Q0000000000000000000A", Email: "a@b.c",
				Currency: "EUR", Items: []Item{}, DiscountCodes: []string{}, Promotions: []Promotion{}, Subtotal: eur(0), DiscountTotal: eur(0),
				ShippingTotal: eur(0), TaxTotal: eur(0), Total: eur(0), Payment: Payment{CapturePolicy: CaptureOnConfirmation},
				Version: 1, CreatedAt: now, UpdatedAt: now}}
		}
		insert := func(r record) error {
			return db.InTx(bg, func(tx *store.Tx) error { return insertOrder(bg, tx, r) })
		}
		if err := insert(order(StatusCancelled)); err != nil {
			t.Fatal(err)
		}
		if err := insert(order(StatusPending)); err != nil {
			t.Fatal(err)
		}
		if err := insert(order(StatusPending)); !store.IsUniqueViolation(err) {
			t.Fatalf("a second live order of the cart: %v", err)
		}
		if err := insert(order(StatusConfirmed)); !store.IsUniqueViolation(err) {
			t.Fatalf("a second live order of the cart: %v", err)
		}
		if err := insert(order(StatusCancelled)); err != nil {
			t.Fatalf("another cancelled order: %v", err)
		}
	})
}

func newOrderID() string { return id.New(orderPrefix) }

// gatedCarts holds every Validate until two have arrived (both checkouts
// are past their live-order check), then lets the first through and holds
// the second until release is closed.
type gatedCarts struct {
	CartClient
	mu      sync.Mutex
	n       int
	both    chan struct{}
	release chan struct{}
}

func (g *gatedCarts) Validate(ctx context.Context, cartID string) error {
	g.mu.Lock()
	g.n++
	n := g.n
	if n == 2 {
		close(g.both)
	}
	g.mu.Unlock()
	<-g.both
	if n == 2 {
		<-g.release
	}
	return g.CartClient.Validate(ctx, cartID)
}

// TestRetryOvertakenByItsTwin: of two copies of one checkout, the one
// still validating the cart when its twin confirmed the order (and so
// checked the cart out) gets that order, not the cart's "not found".
func TestRetryOvertakenByItsTwin(t *testing.T) {
	engines(t, func(t *testing.T, engine store.Engine) {
		gate := &gatedCarts{both: make(chan struct{}), release: make(chan struct{})}
		e := newEnv(t, engine, withDeps(func(d Deps) Deps {
			gate.CartClient = d.Carts
			d.Carts = gate
			return d
		}))
		e.MustProduct(t, "SKU-1", 1000, 10)
		sh := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}})
		type answer struct {
			o   Order
			err error
		}
		answers := make(chan answer, 2)
		for range 2 {
			go func() {
				o, err := e.s.Checkout(bg, sh.cartID, sh.caller, pay(payments.TokenVisa), "")
				answers <- answer{o, err}
			}()
		}
		first := <-answers
		close(gate.release)
		second := <-answers
		if first.err != nil || second.err != nil || first.o.Status != StatusConfirmed || second.o.ID != first.o.ID {
			t.Fatalf("first %s %s %v, second %s %s %v", first.o.ID, first.o.Status, first.err, second.o.ID, second.o.Status, second.err)
		}
		wantOneOrder(t, e, sh.cartID)
		if e.authorizations() != 1 {
			t.Fatalf("%d authorizations", e.authorizations())
		}
	})
}

// concurrently runs f n times at once and returns the results.
func concurrently(n int, f func() int) []int {
	out := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			out[i] = f()
		})
	}
	close(start)
	wg.Wait()
	slices.Sort(out)
	return out
}

func wantOneOrder(t testing.TB, e *env, cartID string) {
	t.Helper()
	if n := countRows(t, e.db, `SELECT COUNT(*) FROM orders_orders WHERE cart_id = ?`, cartID); n != 1 {
		t.Fatalf("%d orders of cart %s, want 1", n, cartID)
	}
}

// TestCompensations: every way a checkout fails after its order exists
// undoes exactly what was done, in reverse, and tells the client why.
func TestCompensations(t *testing.T) {
	engines(t, func(t *testing.T, engine store.Engine) {
		e := newEnv(t, engine, withConfig(func(c *Config) {
			// tok_timeout: payments answers unavailable after its 100 ms
			// provider timeout; the step gives up after a few attempts.
			// Generous enough for every other call on a loaded machine
			// under the race detector (a call over it would be retried and
			// could exhaust the step).
			c.StepTimeout, c.CallTimeout = 2*time.Second, 2*time.Second
		}))
		e.MustProduct(t, "SKU-A", 1500, 3)
		e.MustProduct(t, "SKU-B", 700, 1)
		promo := e.MustVoucher(t, "SAVE10", 100)
		h := mount(e.s.Routes())

		t.Run("declined: 402, stock and voucher back", func(t *testing.T) {
			sh := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-A": 2}, codes: []string{"SAVE10"}})
			p := wantProblem(t, serve(h, checkoutRequest(sh, payments.TokenDeclined, "")), http.StatusPaymentRequired, ReasonPaymentDeclined)
			if p.OrderID == "" || len(p.Errors) != 1 || p.Errors[0].Code != "card_declined" {
				t.Fatalf("problem %+v", p)
			}
			wantStock(t, e, "SKU-A", 3, 0)
			if n := e.voucherUsed(t, promo.ID); n != 0 {
				t.Fatalf("voucher used %d times after compensation", n)
			}
			o := wantCancelled(t, e, p.OrderID, ReasonPaymentDeclined)
			want := []string{"redeem_vouchers/do/ok", "reserve_stock/do/ok", "authorize_payment/do/failed",
				"release_stock/compensate/ok", "release_vouchers/compensate/ok"}
			if got := steps(t, e.db, o.ID); !slices.Equal(got, want) {
				t.Fatalf("history %v, want %v", got, want)
			}
			// The cart is free for another try.
			e.MustCheckout(t, sh, payments.TokenVisa)
			if n := e.voucherUsed(t, promo.ID); n != 1 {
				t.Fatalf("voucher used %d times", n)
			}
		})

		t.Run("timeout: 503 after the step's retries, compensated, nothing captured", func(t *testing.T) {
			sh := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-A": 1}, codes: []string{"SAVE10"}})
			usedBefore, captures := e.voucherUsed(t, promo.ID), e.captures()
			before := e.stock(t, "SKU-A")
			p := wantProblem(t, serve(h, checkoutRequest(sh, payments.TokenTimeout, "")), http.StatusServiceUnavailable, ReasonPaymentUnavailable)
			o := wantCancelled(t, e, p.OrderID, ReasonPaymentUnavailable)
			if after := e.stock(t, "SKU-A"); after.Available != before.Available || after.Reserved != before.Reserved {
				t.Fatalf("stock %+v, before %+v", after, before)
			}
			if n := e.voucherUsed(t, promo.ID); n != usedBefore {
				t.Fatalf("voucher used %d times, %d before", n, usedBefore)
			}
			if e.captures() != captures || e.tp.Effects(payments.OpAuthorize, opKey(o.ID, opAuthorize)) != 0 {
				t.Fatal("money moved for a timed-out authorization")
			}
			hist := steps(t, e.db, o.ID)
			if !slices.Contains(hist, "authorize_payment/do/retry") || !slices.Contains(hist, "authorize_payment/do/failed") ||
				!slices.Contains(hist, "void_payment/compensate/skipped") || !slices.Contains(hist, "release_stock/compensate/ok") ||
				!slices.Contains(hist, "release_vouchers/compensate/ok") {
				t.Fatalf("history %v", hist)
			}
		})

		t.Run("shortage: 409 naming the SKU, voucher released, no authorization at all", func(t *testing.T) {
			sh := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-A": 1, "SKU-B": 2}, codes: []string{"SAVE10"}})
			usedBefore := e.voucherUsed(t, promo.ID)
			before := e.stock(t, "SKU-A")
			p := wantProblem(t, serve(h, checkoutRequest(sh, payments.TokenVisa, "")), http.StatusConflict, ReasonOutOfStock)
			if len(p.Errors) != 1 || p.Errors[0].Message != e.sku("SKU-B")+": want 2, have 1" {
				t.Fatalf("problem %+v", p)
			}
			o := wantCancelled(t, e, p.OrderID, ReasonOutOfStock)
			if n := e.voucherUsed(t, promo.ID); n != usedBefore {
				t.Fatalf("voucher used %d, %d before", n, usedBefore)
			}
			if after := e.stock(t, "SKU-A"); after.OnHand != before.OnHand || after.Reserved != before.Reserved {
				t.Fatalf("stock %+v, before %+v", after, before)
			}
			if n := e.tp.Calls(payments.OpAuthorize, opKey(o.ID, opAuthorize)); n != 0 {
				t.Fatalf("payments was asked %d times", n)
			}
			want := []string{"redeem_vouchers/do/ok", "reserve_stock/do/failed", "release_vouchers/compensate/ok"}
			if got := steps(t, e.db, o.ID); !slices.Equal(got, want) {
				t.Fatalf("history %v, want %v", got, want)
			}
		})

		t.Run("an exhausted voucher: 422, nothing reserved", func(t *testing.T) {
			once := e.MustVoucher(t, "ONCE", 1)
			a := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-B": 1}, codes: []string{"ONCE"}})
			b := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-A": 1}, codes: []string{"ONCE"}})
			e.MustCheckout(t, a, payments.TokenVisa)
			_, err := e.s.Checkout(bg, b.cartID, b.caller, pay(payments.TokenVisa), "")
			// The cart (or the quote) already knows: no order is made.
			if !apperr.Is(err, "cart_not_purchasable") && !apperr.Is(err, "code_exhausted") {
				t.Fatalf("err = %v", err)
			}
			if n := e.voucherUsed(t, once.ID); n != 1 {
				t.Fatalf("voucher used %d", n)
			}
		})
	})
}

// wantCancelled loads the order and checks it was cancelled for reason.
func wantCancelled(t testing.TB, e *env, orderID, reason string) Order {
	t.Helper()
	o, err := e.s.load(bg, e.db, orderID)
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != StatusCancelled || o.Cancellation == nil || o.Cancellation.Reason != reason {
		t.Fatalf("order %s: %s %+v, want cancelled for %s", orderID, o.Status, o.Cancellation, reason)
	}
	return o
}

// TestCheckoutRefusals: what is refused before any order exists.
func TestCheckoutRefusals(t *testing.T) {
	e := newEnv(t, store.SQLite)
	e.MustProduct(t, "SKU-1", 1000, 10)
	h := mount(e.s.Routes())
	sh := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}})

	for _, tt := range []struct {
		name   string
		rq     request
		status int
		code   string
		fields []string
	}{
		{"no token", request{method: "POST", path: "/store/carts/" + sh.cartID + "/checkout", token: sh.caller.CartToken,
			body: `{"payment": {"provider": "test"}}`}, 400, "validation_failed", []string{"payment.token"}},
		{"unknown field", request{method: "POST", path: "/store/carts/" + sh.cartID + "/checkout", token: sh.caller.CartToken,
			body: `{"payment": {"token": "tok_visa", "amount": 1}}`}, 400, "bad_request", nil},
		{"bad provider", request{method: "POST", path: "/store/carts/" + sh.cartID + "/checkout", token: sh.caller.CartToken,
			body: `{"payment": {"provider": "Test Provider", "token": "tok_visa"}}`}, 400, "validation_failed", []string{"payment.provider"}},
		{"no cart token", request{method: "POST", path: "/store/carts/" + sh.cartID + "/checkout",
			body: `{"payment": {"token": "tok_visa"}}`}, 404, "not_found", nil},
		{"another customer", request{method: "POST", path: "/store/carts/" + sh.cartID + "/checkout", principal: "customer:cus_eve",
			body: `{"payment": {"token": "tok_visa"}}`}, 404, "not_found", nil},
		{"unknown cart", request{method: "POST", path: "/store/carts/cart_01JD3Q0000000000000000000A/checkout", token: sh.caller.CartToken,
			body: `{"payment": {"token": "tok_visa"}}`}, 404, "not_found", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(h, tt.rq)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			p := MustDecode[problem](t, w)
			if p.Code != tt.code {
				t.Fatalf("code %s, want %s", p.Code, tt.code)
			}
			for _, f := range tt.fields {
				if !slices.ContainsFunc(p.Errors, func(fe apperr.FieldError) bool { return fe.Field == f }) {
					t.Errorf("errors %+v lack %s", p.Errors, f)
				}
			}
		})
	}

	t.Run("incomplete cart", func(t *testing.T) {
		bare := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}, noEmail: true, noShip: true})
		_, err := e.s.Checkout(bg, bare.cartID, bare.caller, pay("tok_visa"), "")
		wantErr(t, err, CodeCheckoutIncomplete, "email", "shipping_address", "shipping_method_id")
		p := wantProblem(t, serve(h, checkoutRequest(bare, "tok_visa", "")), 422, string(CodeCheckoutIncomplete))
		if p.OrderID != "" {
			t.Fatalf("an order was made: %+v", p)
		}
	})

	t.Run("empty cart", func(t *testing.T) {
		empty := e.MustCart(t, cartSpec{})
		_, err := e.s.Checkout(bg, empty.cartID, empty.caller, pay("tok_visa"), "")
		wantErr(t, err, cart.CodeCartEmpty, "items")
	})

	t.Run("a line that is no longer sold", func(t *testing.T) {
		e.MustProduct(t, "GONE", 500, 10)
		gone := e.MustCart(t, cartSpec{items: map[string]int64{"GONE": 1}})
		e.mu.Lock()
		variant := e.variants["GONE"]
		e.mu.Unlock()
		ref, err := e.cat.GetVariant(bg, variant)
		if err != nil {
			t.Fatal(err)
		}
		draft := catalog.StatusDraft
		if _, err := e.cat.UpdateProduct(bg, ref.ProductID, catalog.ProductPatch{Status: &draft}, 0); err != nil {
			t.Fatal(err)
		}
		_, err = e.s.Checkout(bg, gone.cartID, gone.caller, pay("tok_visa"), "")
		wantErr(t, err, cart.CodeNotPurchasable, "items[0]")
	})

	if n := countRows(t, e.db, `SELECT COUNT(*) FROM orders_orders`); n != 0 {
		t.Fatalf("%d orders made by refused checkouts", n)
	}
}

// TestMetrics: what an operator sees of checkouts, saga steps,
// compensations, orders and revenue, and of the participants' policies.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, store.SQLite, withRegistry(reg))
	e.MustProduct(t, "SKU-1", 1000, 1)
	o := e.MustCheckout(t, e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}}), payments.TokenVisa)
	for _, token := range []string{payments.TokenVisa, payments.TokenDeclined} { // out of stock, then (restocked) declined
		sh := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}})
		if token == payments.TokenDeclined {
			if _, err := e.inv.SetLevel(bg, e.sku("SKU-1"), e.loc.ID, inventory.LevelInput{OnHand: 5}, 0); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.s.Checkout(bg, sh.cartID, sh.caller, pay(token), ""); err == nil {
			t.Fatal("checkout succeeded")
		}
	}
	m := func(family string, labels ...string) float64 {
		return telemetrytest.MustMetric(t, reg, family, labels...)
	}
	for _, tt := range []struct {
		name string
		got  float64
		want float64
	}{
		{"confirmed checkouts", m("souk_orders_checkouts_total", "outcome", "confirmed"), 1},
		{"out-of-stock checkouts", m("souk_orders_checkouts_total", "outcome", "out_of_stock"), 1},
		{"declined checkouts", m("souk_orders_checkouts_total", "outcome", "declined"), 1},
		{"authorizations", m("souk_orders_saga_steps_total", "step", stepAuthorize, "action", "do", "outcome", "ok"), 1},
		{"declines", m("souk_orders_saga_steps_total", "step", stepAuthorize, "action", "do", "outcome", "failed"), 1},
		{"stock released", m("souk_orders_saga_steps_total", "step", stepReleaseStock, "action", "compensate", "outcome", "ok"), 1},
		{"step durations", m("souk_orders_saga_step_duration_seconds", "step", stepReserve), 3},
		{"compensations", m("souk_orders_compensations_total", "reason", ReasonOutOfStock) + m("souk_orders_compensations_total", "reason", ReasonPaymentDeclined), 2},
		{"orders placed", m("souk_orders_placed_total"), 3},
		{"orders confirmed", m("souk_orders_confirmed_total"), 1},
		{"orders cancelled", m("souk_orders_cancelled_total"), 2},
		{"revenue", m("souk_orders_revenue_minor_total", "currency", "EUR"), float64(o.Total.Amount)},
		{"calls to payments", m("souk_dependency_calls_total", "name", "orders.payments", "outcome", "success"), 2},  // authorize, capture
		{"refusals by payments", m("souk_dependency_calls_total", "name", "orders.payments", "outcome", "error"), 1}, // the decline: not a failure
	} {
		if tt.got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

// mustJSON is v as the API encodes it.
func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
