package cart

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/apperr/apperrtest"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/resilience"
)

// clientImpls are the implementations of Client the contract suite runs:
// the service in process, and the HTTP client against the service's routes.
var clientImpls = []struct {
	name string
	new  func(t *testing.T, s *Service) Client
}{
	{"in-process", func(_ *testing.T, s *Service) Client { return s }},
	{"http", func(t *testing.T, s *Service) Client {
		h := mount(s.Routes())
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer sk_orders" {
				t.Errorf("%s %s: Authorization %q", r.Method, r.URL, r.Header.Get("Authorization"))
			}
			h.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		return NewHTTPClient(srv.URL, srv.Client(), "sk_orders")
	}},
}

// TestClientContract: every implementation of Client answers alike.
func TestClientContract(t *testing.T) {
	for _, impl := range clientImpls {
		t.Run(impl.name, func(t *testing.T) {
			runStores(t, func(t *testing.T, e *env) {
				testClientContract(t, e, impl.new(t, e.s))
			})
		})
	}
}

func testClientContract(t *testing.T, e *env, c Client) {
	cart, ada := e.MustCreate(t, customer("cus_contract"))
	e.MustAdd(t, ada, cart.ID, e.shirt.ID, 2)
	got := e.MustAdd(t, ada, cart.ID, e.mug.ID, 1)
	if _, err := e.s.AddCode(bg, ada, cart.ID, "WINTER10", 0); err != nil {
		t.Fatal(err)
	}
	addr := validAddress()
	if _, err := e.s.Update(bg, ada, cart.ID, Patch{Email: Value("ada@example.com"), ShippingAddress: Value(addr),
		BillingAddress: Value(addr), ShippingMethodID: Value("ship_standard")}, 0); err != nil {
		t.Fatal(err)
	}

	t.Run("GetForCheckout", func(t *testing.T) {
		co, err := c.GetForCheckout(bg, cart.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := CheckoutCart{
			ID: cart.ID, Status: StatusActive, Currency: "EUR", CustomerID: "cus_contract", Email: "ada@example.com",
			Items: []CheckoutItem{
				{ID: got.Items[0].ID, VariantID: e.shirt.ID, ProductID: e.shirt.ProductID, SKU: "LIN-M", Title: "Product LIN-M",
					VariantTitle: "Size M", CategoryIDs: e.shirt.ProductCategoryIDs, Quantity: 2},
				{ID: got.Items[1].ID, VariantID: e.mug.ID, ProductID: e.mug.ProductID, SKU: "MUG-1", Title: "Product MUG-1",
					VariantTitle: "Size M", CategoryIDs: e.mug.ProductCategoryIDs, Quantity: 1},
			},
			DiscountCodes: []string{"WINTER10"}, ShippingAddress: &addr, BillingAddress: &addr,
			ShippingMethodID: "ship_standard", Version: 5,
		}
		if !reflect.DeepEqual(co, want) {
			t.Fatalf("GetForCheckout =\n%+v\nwant\n%+v", co, want)
		}
		for _, ref := range []string{"cart_01JD3Q0000000000000000000A", "nope", "", "a/../b"} {
			_, err := c.GetForCheckout(bg, ref)
			apperrtest.Want(t, err, apperr.NotFound)
		}
	})

	t.Run("CheckoutView decides access as the Store API does", func(t *testing.T) {
		co, err := c.CheckoutView(bg, cart.ID, Caller{Principal: customer("cus_contract").Principal})
		if err != nil || co.ID != cart.ID || co.CustomerID != "cus_contract" || len(co.Items) != 2 {
			t.Fatalf("CheckoutView by the customer = %+v, %v", co, err)
		}
		grouped := customer("cus_contract")
		grouped.Principal.Groups = []string{"vip"}
		co, err = c.CheckoutView(bg, cart.ID, grouped)
		if err != nil || !reflect.DeepEqual(co.CustomerGroups, []string{"vip"}) {
			t.Fatalf("CheckoutView with groups = %+v, %v", co.CustomerGroups, err)
		}
		anonCart, shopper := e.MustCreate(t, Caller{})
		e.MustAdd(t, shopper, anonCart.ID, e.mug.ID, 1)
		co, err = c.CheckoutView(bg, anonCart.ID, shopper)
		if err != nil || co.ID != anonCart.ID || co.CustomerID != "" || co.CustomerGroups != nil {
			t.Fatalf("CheckoutView by the token holder = %+v, %v", co, err)
		}
		// A customer may check out an anonymous cart whose token they hold.
		withToken := customer("cus_other")
		withToken.CartToken = shopper.CartToken
		if _, err := c.CheckoutView(bg, anonCart.ID, withToken); err != nil {
			t.Fatalf("CheckoutView by a customer with the token: %v", err)
		}
		for name, tt := range map[string]struct {
			cartID string
			caller Caller
		}{
			"another customer":               {cart.ID, customer("cus_other")},
			"the customer cart's token only": {cart.ID, anon(shopper.CartToken)},
			"no token":                       {anonCart.ID, Caller{}},
			"a wrong token":                  {anonCart.ID, anon("ct_wrong")},
			"a staff member":                 {anonCart.ID, staff()},
			"an unknown cart":                {"cart_01JD3Q0000000000000000000A", shopper},
			"a malformed id":                 {"a/../b", shopper},
		} {
			_, err := c.CheckoutView(bg, tt.cartID, tt.caller)
			if !apperr.Is(err, apperr.NotFound) {
				t.Errorf("%s: err = %v, want not_found", name, err)
			}
		}
	})

	t.Run("Validate", func(t *testing.T) {
		if err := c.Validate(bg, cart.ID); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		empty, _ := e.MustCreate(t, Caller{})
		apperrtest.Want(t, c.Validate(bg, empty.ID), CodeCartEmpty, "items")
		broken, shopper := e.MustCreate(t, Caller{})
		e.MustAdd(t, shopper, broken.ID, e.lamp.ID, 1)
		e.MustAdd(t, shopper, broken.ID, e.mug.ID, 1)
		e.cat.hide(e.lamp.ID)
		defer func() {
			e.cat.mu.Lock()
			delete(e.cat.hidden, e.lamp.ID)
			e.cat.mu.Unlock()
		}()
		apperrtest.Want(t, c.Validate(bg, broken.ID), CodeNotPurchasable, "items[0]")
		apperrtest.Want(t, c.Validate(bg, "cart_01JD3Q0000000000000000000A"), apperr.NotFound)
	})

	t.Run("expired and merged carts are not found", func(t *testing.T) {
		e.MustCreate(t, customer("cus_merger"))
		src, shopper := e.MustCreate(t, Caller{})
		if _, err := e.s.Merge(bg, Caller{CartToken: shopper.CartToken, Principal: customer("cus_merger").Principal}, src.ID, 0); err != nil {
			t.Fatal(err)
		}
		_, err := c.GetForCheckout(bg, src.ID)
		apperrtest.Want(t, err, apperr.NotFound)
		_, err = c.CheckoutView(bg, src.ID, shopper)
		apperrtest.Want(t, err, apperr.NotFound)
		err = c.MarkCheckedOut(bg, src.ID, orderID())
		apperrtest.Want(t, err, apperr.NotFound)

		idle, idleShopper := e.MustCreate(t, Caller{})
		e.clock.Advance(DefaultAnonymousIdleTTL)
		defer e.clock.Advance(-DefaultAnonymousIdleTTL)
		_, err = c.GetForCheckout(bg, idle.ID)
		apperrtest.Want(t, err, apperr.NotFound)
		_, err = c.CheckoutView(bg, idle.ID, idleShopper)
		apperrtest.Want(t, err, apperr.NotFound)
	})

	t.Run("MarkCheckedOut", func(t *testing.T) {
		for _, bad := range []string{"", "nope", "cart_01JD3Q0000000000000000000A"} {
			err := c.MarkCheckedOut(bg, cart.ID, bad)
			apperrtest.Want(t, err, apperr.ValidationFailed, "order_id")
		}
		err := c.MarkCheckedOut(bg, "cart_01JD3Q0000000000000000000A", orderID())
		apperrtest.Want(t, err, apperr.NotFound)

		ord := orderID()
		if err := c.MarkCheckedOut(bg, cart.ID, ord); err != nil {
			t.Fatal(err)
		}
		if err := c.MarkCheckedOut(bg, cart.ID, ord); err != nil {
			t.Fatalf("marking again for the same order: %v", err)
		}
		err = c.MarkCheckedOut(bg, cart.ID, orderID())
		apperrtest.Want(t, err, apperr.Conflict)
		co, err := c.GetForCheckout(bg, cart.ID)
		if err != nil || co.Status != StatusCheckedOut || co.OrderID != ord || co.Version != 6 {
			t.Fatalf("after checkout = %+v, %v", co, err)
		}
		// A retried checkout still finds the cart, and the order it became.
		co, err = c.CheckoutView(bg, cart.ID, ada)
		if err != nil || co.Status != StatusCheckedOut || co.OrderID != ord {
			t.Fatalf("CheckoutView after checkout = %+v, %v", co, err)
		}
		apperrtest.Want(t, c.Validate(bg, cart.ID), apperr.NotFound)
		_, err = e.s.Get(bg, ada, cart.ID)
		apperrtest.Want(t, err, apperr.NotFound)
		_, err = e.s.AddItem(bg, ada, cart.ID, ItemInput{VariantID: e.lamp.ID, Quantity: 1}, 0)
		apperrtest.Want(t, err, apperr.NotFound)
		if n := countRows(t, e.db, `SELECT COUNT(*) FROM souk_outbox WHERE aggregate_id = ?`, cart.ID); n != 1 {
			t.Fatalf("%d events for one checkout", n)
		}
	})

	t.Run("racing orders: one wins", func(t *testing.T) {
		race, shopper := e.MustCreate(t, Caller{})
		e.MustAdd(t, shopper, race.ID, e.lamp.ID, 1)
		var (
			wg   sync.WaitGroup
			wins atomic.Int64
		)
		for range 4 {
			wg.Go(func() {
				switch err := c.MarkCheckedOut(bg, race.ID, orderID()); {
				case err == nil:
					wins.Add(1)
				case !apperr.Is(err, apperr.Conflict):
					t.Errorf("MarkCheckedOut: %v", err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d orders took the cart", wins.Load())
		}
	})
}

// flakyServer answers with the statuses in order, then serves h.
func flakyServer(t *testing.T, h http.Handler, statuses ...int) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if int(n) <= len(statuses) {
			http.Error(w, "flaky", statuses[n-1])
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// fastRetries is the client's default policy with 1 ms between attempts.
func fastRetries() httpx.ClientOption {
	return httpx.WithPolicy(resilience.MustNew(resilience.Config{
		Name: "cart", Failure: httpx.Transient, Backoff: resilience.Backoff{Initial: time.Millisecond},
	}))
}

func TestHTTPClientResilience(t *testing.T) {
	e := MustNewSQLiteEnv(t, Config{})
	cart, _ := e.MustCreate(t, Caller{})
	h := mount(e.s.Routes())

	t.Run("retries 503 and 502, then succeeds", func(t *testing.T) {
		srv, calls := flakyServer(t, h, http.StatusServiceUnavailable, http.StatusBadGateway)
		c := NewHTTPClient(srv.URL, srv.Client(), "", fastRetries())
		if _, err := c.GetForCheckout(bg, cart.ID); err != nil {
			t.Fatal(err)
		}
		if calls.Load() != 3 {
			t.Fatalf("calls = %d, want 3", calls.Load())
		}
	})

	t.Run("gives up after its attempts as unavailable", func(t *testing.T) {
		srv, calls := flakyServer(t, h, 503, 503, 503, 503)
		c := NewHTTPClient(srv.URL, srv.Client(), "", fastRetries())
		err := c.MarkCheckedOut(bg, cart.ID, orderID())
		apperrtest.Want(t, err, apperr.Unavailable)
		if calls.Load() != 3 {
			t.Fatalf("calls = %d, want 3", calls.Load())
		}
	})

	t.Run("does not retry an answer", func(t *testing.T) {
		srv, calls := flakyServer(t, h)
		_, err := NewHTTPClient(srv.URL, srv.Client(), "").GetForCheckout(bg, "cart_01JD3Q0000000000000000000A")
		apperrtest.Want(t, err, apperr.NotFound)
		if calls.Load() != 1 {
			t.Fatalf("calls = %d, want 1", calls.Load())
		}
	})

	t.Run("non-problem errors map by status", func(t *testing.T) {
		for status, code := range map[int]apperr.Code{404: apperr.NotFound, 500: apperr.Unavailable, 401: apperr.Unauthorized, 403: apperr.Forbidden, 418: apperr.Internal} {
			srv, _ := flakyServer(t, h, status)
			_, err := NewHTTPClient(srv.URL, srv.Client(), "").GetForCheckout(bg, cart.ID)
			apperrtest.Want(t, err, code)
		}
	})

	t.Run("a remote internal error is unavailable here", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			httpx.Error(w, r, errors.New("disk on fire"))
		}))
		defer srv.Close()
		c := NewHTTPClient(srv.URL, srv.Client(), "", fastRetries())
		_, err := c.GetForCheckout(bg, cart.ID)
		apperrtest.Want(t, err, apperr.Unavailable)
	})

	t.Run("a cancelled context stops at once", func(t *testing.T) {
		cctx, cancel := context.WithCancel(bg)
		cancel()
		srv, calls := flakyServer(t, h)
		_, err := NewHTTPClient(srv.URL, srv.Client(), "").GetForCheckout(cctx, cart.ID)
		apperrtest.Want(t, err, apperr.Unavailable)
		if calls.Load() != 0 {
			t.Fatalf("calls = %d", calls.Load())
		}
	})
}
