package payments

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/apperr/apperrtest"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/resilience"
)

// clientImpls are the implementations of Client the contract suite runs:
// the service in process, and the HTTP client against the service's routes
// on a plain ServeMux.
var clientImpls = []struct {
	name string
	new  func(t *testing.T, s *Service) Client
}{
	{"in-process", func(_ *testing.T, s *Service) Client { return s }},
	{"http", func(t *testing.T, s *Service) Client {
		srv := httptest.NewServer(withPrincipal(apitest.Mount(s.Routes()), auth.Principal{Subject: "key_orders", Kind: auth.KindAPIKey}))
		t.Cleanup(srv.Close)
		return NewHTTPClient(srv.URL, srv.Client(), WithPolicy(resilience.MustNew(resilience.Config{
			Name: "payments", Timeout: 10 * time.Second, Idempotent: true,
			Backoff: resilience.Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond},
		})))
	}},
}

// TestClientContract: every implementation of Client answers alike.
func TestClientContract(t *testing.T) {
	for _, impl := range clientImpls {
		t.Run(impl.name, func(t *testing.T) {
			runStores(t, func(t *testing.T, f fixture) {
				testClientContract(t, f, impl.new(t, f.Service))
			})
		})
	}
}

func testClientContract(t *testing.T, f fixture, c Client) {
	ctx := context.Background()
	var made Payment
	t.Run("Authorize", func(t *testing.T) {
		p, err := c.Authorize(ctx, authReq("ord_1:authorize", TokenVisa, 5000))
		if err != nil {
			t.Fatal(err)
		}
		stored, err := f.Get(ctx, p.ID)
		if err != nil || !reflect.DeepEqual(stored, p) {
			t.Fatalf("stored =\n%+v\nanswered\n%+v (%v)", stored, p, err)
		}
		again, err := c.Authorize(ctx, authReq("ord_1:authorize", TokenVisa, 5000))
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("replay = %+v, %v", again, err)
		}
		if f.tp.Calls(OpAuthorize, "ord_1:authorize") != 1 {
			t.Fatal("the provider was asked twice")
		}
		made = p
	})

	t.Run("Authorize errors", func(t *testing.T) {
		_, err := c.Authorize(ctx, authReq("ord_1:authorize", TokenVisa, 4999))
		apperrtest.Want(t, err, apperr.IdempotencyKeyReused, "key")
		_, err = c.Authorize(ctx, AuthorizeRequest{OrderID: "o", Amount: eur(0), Token: TokenVisa})
		apperrtest.Want(t, err, apperr.ValidationFailed, "key", "amount.amount")
		_, err = c.Authorize(ctx, authReq("ord_2:authorize", TokenDeclined, 100))
		wantDeclined(t, err, "card_declined")
		_, err = c.Authorize(ctx, authReq("ord_3:authorize", TokenInsufficientFunds, 100))
		wantDeclined(t, err, "insufficient_funds")
		_, err = c.Authorize(ctx, authReq("ord_4:authorize", "tok_bogus", 100))
		wantDeclined(t, err, "invalid_token")
		_, err = c.Authorize(ctx, authReq("ord_5:authorize", TokenTimeout, 100))
		apperrtest.Want(t, err, apperr.Unavailable)
	})

	t.Run("ByKey", func(t *testing.T) {
		p, err := c.ByKey(ctx, "ord_1:authorize")
		if err != nil || !reflect.DeepEqual(p, made) {
			t.Fatalf("ByKey = %+v, %v", p, err)
		}
		failed, err := c.ByKey(ctx, "ord_2:authorize")
		if err != nil || failed.Status != StatusFailed || failed.FailureCode != "card_declined" {
			t.Fatalf("ByKey of a decline = %+v, %v", failed, err)
		}
		_, err = c.ByKey(ctx, "ord_5:authorize") // timed out; the provider has no record
		apperrtest.Want(t, err, apperr.NotFound)
		_, err = c.ByKey(ctx, "never")
		apperrtest.Want(t, err, apperr.NotFound)
		_, err = c.ByKey(ctx, "")
		apperrtest.Want(t, err, apperr.NotFound)
	})

	t.Run("Capture", func(t *testing.T) {
		_, err := c.Capture(ctx, "ord_1:capture", made.ID, eur(5001))
		apperrtest.Want(t, err, apperr.ValidationFailed, "amount.amount")
		p, err := c.Capture(ctx, "ord_1:capture", made.ID, eur(4000))
		if err != nil || p.Status != StatusCaptured || p.Captured != eur(4000) {
			t.Fatalf("Capture = %+v, %v", p, err)
		}
		again, err := c.Capture(ctx, "ord_1:capture", made.ID, eur(4000))
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("replay = %+v, %v", again, err)
		}
		_, err = c.Capture(ctx, "ord_1:capture-2", made.ID, eur(1))
		apperrtest.Want(t, err, apperr.Conflict)
		_, err = c.Capture(ctx, "k", "pay_01JD3Q0000000000000000000A", eur(1))
		apperrtest.Want(t, err, apperr.NotFound)
		_, err = c.Capture(ctx, "k", "", eur(1))
		apperrtest.Want(t, err, apperr.NotFound)
	})

	t.Run("Refund", func(t *testing.T) {
		p, err := c.Refund(ctx, "ord_1:refund-1", made.ID, eur(1000))
		if err != nil || p.Status != StatusPartiallyRefunded || p.Refunded != eur(1000) {
			t.Fatalf("Refund = %+v, %v", p, err)
		}
		_, err = c.Refund(ctx, "ord_1:refund-2", made.ID, eur(3001))
		apperrtest.Want(t, err, apperr.ValidationFailed, "amount.amount")
		p, err = c.Refund(ctx, "ord_1:refund-2", made.ID, eur(3000))
		if err != nil || p.Status != StatusRefunded || p.Refunded != eur(4000) {
			t.Fatalf("Refund = %+v, %v", p, err)
		}
		_, err = c.Refund(ctx, "ord_1:refund-1", made.ID, eur(999))
		apperrtest.Want(t, err, apperr.IdempotencyKeyReused, "key")
	})

	t.Run("Void", func(t *testing.T) {
		v, err := c.Authorize(ctx, authReq("ord_6:authorize", TokenVisa, 100))
		if err != nil {
			t.Fatal(err)
		}
		p, err := c.Void(ctx, "ord_6:void", v.ID)
		if err != nil || p.Status != StatusVoided {
			t.Fatalf("Void = %+v, %v", p, err)
		}
		again, err := c.Void(ctx, "ord_6:void-again", v.ID)
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("void again = %+v, %v", again, err)
		}
		_, err = c.Void(ctx, "ord_1:void", made.ID) // captured
		apperrtest.Want(t, err, apperr.Conflict)
		_, err = c.Void(ctx, "", v.ID)
		apperrtest.Want(t, err, apperr.ValidationFailed, "key")
	})

	t.Run("Get", func(t *testing.T) {
		p, err := c.Get(ctx, made.ID)
		stored, _ := f.Get(ctx, made.ID)
		if err != nil || !reflect.DeepEqual(p, stored) {
			t.Fatalf("Get = %+v, %v", p, err)
		}
		for _, ref := range []string{"", "nope", "pay_01JD3Q0000000000000000000A"} {
			_, err := c.Get(ctx, ref)
			apperrtest.Want(t, err, apperr.NotFound)
		}
	})
}

// TestHTTPClientRetriesUnavailable: the HTTP client retries a 503 (the
// calls are idempotent) and maps an internal error to unavailable.
func TestHTTPClientRetriesUnavailable(t *testing.T) {
	f := MustNewSQLite(t)
	var calls atomic.Int64
	routes := apitest.Mount(f.Routes())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"type":"https://souk.dev/problems/unavailable","title":"Service Unavailable","status":503,"code":"unavailable"}`))
			return
		}
		routes.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c := NewHTTPClient(srv.URL, srv.Client(), WithPolicy(resilience.MustNew(resilience.Config{
		Name: "payments", Idempotent: true, Backoff: resilience.Backoff{Initial: time.Millisecond, Max: time.Millisecond},
	})))
	p, err := c.Authorize(context.Background(), authReq("k", TokenVisa, 100))
	if err != nil || p.Status != StatusAuthorized || calls.Load() != 2 {
		t.Fatalf("Authorize = %+v, %v after %d calls", p, err, calls.Load())
	}
	if f.tp.Calls(OpAuthorize, "k") != 1 {
		t.Fatal("charged twice")
	}

	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"type":"https://souk.dev/problems/internal","title":"Internal Server Error","status":500,"code":"internal"}`))
	}))
	defer broken.Close()
	_, err = NewHTTPClient(broken.URL, nil).Get(context.Background(), p.ID)
	apperrtest.Want(t, err, apperr.Unavailable)
	var e *apperr.Error
	if !errors.As(err, &e) {
		t.Fatal(err)
	}
}
