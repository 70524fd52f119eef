package inventory

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
	"github.com/soukhq/souk/platform/httpx"
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
		srv := httptest.NewServer(apitest.Mount(s.Routes()))
		t.Cleanup(srv.Close)
		return NewHTTPClient(srv.URL, srv.Client())
	}},
}

// TestClientContract: every implementation of Client answers alike.
func TestClientContract(t *testing.T) {
	for _, impl := range clientImpls {
		t.Run(impl.name, func(t *testing.T) {
			runStores(t, func(t *testing.T, s *Service) {
				testClientContract(t, s, impl.new(t, s))
			})
		})
	}
}

func testClientContract(t *testing.T, s *Service, c Client) {
	ctx := context.Background()
	a := MustCreateLocation(t, s, "A", 1)
	b := MustCreateLocation(t, s, "B", 2)
	MustSetLevel(t, s, "SHIRT", a.ID, 3)
	MustSetLevel(t, s, "SHIRT", b.ID, 4)
	MustSetLevel(t, s, "MUG", b.ID, 1)
	MustAllowBackorder(t, s, "PRE")
	MustSetLevel(t, s, "PRE", a.ID, 0)

	var made Reservation
	t.Run("Reserve", func(t *testing.T) {
		r, err := c.Reserve(ctx, ReserveRequest{Key: "ord_1:reserve", OrderID: "ord_1", Lines: []ReserveLine{line("SHIRT", 5), line("PRE", 1)}, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		want := []ReservationLine{
			{SKU: "SHIRT", Quantity: 5, Allocations: []Allocation{{LocationID: a.ID, Quantity: 3}, {LocationID: b.ID, Quantity: 2}}},
			{SKU: "PRE", Quantity: 1, Backordered: 1, Allocations: []Allocation{{LocationID: a.ID, Quantity: 1, Backordered: 1}}},
		}
		if !reflect.DeepEqual(r.Lines, want) || r.State != StatePending || *r.OrderID != "ord_1" || !r.ExpiresAt.Equal(r.CreatedAt.Add(time.Minute)) {
			t.Fatalf("reservation %+v", r)
		}
		stored, err := s.GetReservation(ctx, r.ID)
		if err != nil || !reflect.DeepEqual(stored, r) {
			t.Fatalf("stored =\n%+v\nanswered\n%+v", stored, r)
		}
		again, err := c.Reserve(ctx, ReserveRequest{Key: "ord_1:reserve", OrderID: "ord_1", Lines: []ReserveLine{line("PRE", 1), line("SHIRT", 5)}})
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("replay = %+v, %v", again, err)
		}
		wantLevel(t, s, "SHIRT", b.ID, 4, 2)
		made = r
	})

	t.Run("Reserve errors", func(t *testing.T) {
		_, err := c.Reserve(ctx, ReserveRequest{Key: "ord_1:reserve", OrderID: "ord_1", Lines: []ReserveLine{line("SHIRT", 1)}})
		apperrtest.Want(t, err, apperr.IdempotencyKeyReused, "key")

		_, err = c.Reserve(ctx, ReserveRequest{Key: "ord_2:reserve", Lines: []ReserveLine{line("SHIRT", 1), line("MUG", 2), line("GHOST", 1)}})
		apperrtest.Want(t, err, CodeOutOfStock, "lines[1].quantity", "lines[2].quantity")
		shortages, ok := InsufficientStock(err)
		if want := []Shortage{{Line: 1, SKU: "MUG", Want: 2, Have: 1}, {Line: 2, SKU: "GHOST", Want: 1, Have: 0}}; !ok || !reflect.DeepEqual(shortages, want) {
			t.Fatalf("shortages = %+v, %v", shortages, ok)
		}
		wantLevel(t, s, "SHIRT", a.ID, 3, 3)
		wantLevel(t, s, "MUG", b.ID, 1, 0)

		_, err = c.Reserve(ctx, ReserveRequest{Lines: []ReserveLine{line("SHIRT", 1), line("MUG", 0)}})
		apperrtest.Want(t, err, apperr.ValidationFailed, "key", "lines[1].quantity")
		_, err = c.Reserve(ctx, ReserveRequest{Key: "k", Lines: []ReserveLine{line("SHIRT", 1)}, TTL: 1500 * time.Millisecond})
		apperrtest.Want(t, err, apperr.ValidationFailed, "ttl_seconds")
		_, err = c.Reserve(ctx, ReserveRequest{Key: "k"})
		apperrtest.Want(t, err, apperr.ValidationFailed, "lines")
	})

	t.Run("GetReservation", func(t *testing.T) {
		for _, ref := range []string{made.ID, made.Key} {
			got, err := c.GetReservation(ctx, ref)
			if err != nil || !reflect.DeepEqual(got, made) {
				t.Fatalf("GetReservation(%s) = %+v, %v", ref, got, err)
			}
		}
		for _, ref := range []string{"", "res_01JD3Q0000000000000000000A", "no such key"} {
			_, err := c.GetReservation(ctx, ref)
			apperrtest.Want(t, err, apperr.NotFound)
		}
	})

	t.Run("Release", func(t *testing.T) {
		r := MustReserve(t, c, "rel", line("MUG", 1))
		got, err := c.Release(ctx, r.ID)
		if err != nil || got.State != StateReleased || got.ClosedAt == nil || got.ID != r.ID {
			t.Fatalf("release = %+v, %v", got, err)
		}
		again, err := c.Release(ctx, "rel")
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("second release = %+v, %v", again, err)
		}
		wantLevel(t, s, "MUG", b.ID, 1, 0)
		_, err = c.Commit(ctx, r.ID, "ord_3")
		apperrtest.Want(t, err, apperr.Conflict)
		_, err = c.Release(ctx, "res_01JD3Q0000000000000000000A")
		apperrtest.Want(t, err, apperr.NotFound)
	})

	t.Run("Commit", func(t *testing.T) {
		got, err := c.Commit(ctx, made.ID, "")
		if err != nil || got.State != StateCommitted || *got.OrderID != "ord_1" {
			t.Fatalf("commit = %+v, %v", got, err)
		}
		again, err := c.Commit(ctx, made.Key, "ord_1")
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("second commit = %+v, %v", again, err)
		}
		wantLevel(t, s, "SHIRT", a.ID, 0, 0)
		wantLevel(t, s, "SHIRT", b.ID, 2, 0)
		_, err = c.Commit(ctx, made.ID, "ord_9")
		apperrtest.Want(t, err, apperr.Conflict)
		_, err = c.Release(ctx, made.ID)
		apperrtest.Want(t, err, apperr.Conflict)

		noOrder := MustReserve(t, c, "no-order", line("SHIRT", 1))
		_, err = c.Commit(ctx, noOrder.ID, "")
		apperrtest.Want(t, err, apperr.ValidationFailed, "order_id")
		_, err = c.Commit(ctx, "", "ord_1")
		apperrtest.Want(t, err, apperr.NotFound)
	})

	t.Run("Restock", func(t *testing.T) {
		sold := MustReserve(t, c, "sold", line("MUG", 1))
		_, err := c.Restock(ctx, sold.ID)
		apperrtest.Want(t, err, apperr.Conflict) // pending: release it instead
		if _, err := c.Commit(ctx, sold.ID, "ord_restock"); err != nil {
			t.Fatal(err)
		}
		wantLevel(t, s, "MUG", b.ID, 0, 0)
		got, err := c.Restock(ctx, "sold")
		if err != nil || got.State != StateCommitted || got.ID != sold.ID || *got.OrderID != "ord_restock" {
			t.Fatalf("restock = %+v, %v", got, err)
		}
		again, err := c.Restock(ctx, sold.ID)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("second restock = %+v, %v", again, err)
		}
		wantLevel(t, s, "MUG", b.ID, 1, 0) // back once, not twice
		adjs, err := s.ListAdjustments(ctx, "MUG", b.ID, 1, "")
		if err != nil || len(adjs.Data) != 1 || adjs.Data[0].Reason != ReasonReturned || adjs.Data[0].Delta != 1 ||
			*adjs.Data[0].ReservationID != sold.ID || *adjs.Data[0].OrderID != "ord_restock" {
			t.Fatalf("audit = %+v, %v", adjs.Data, err)
		}
		released := MustReserve(t, c, "released", line("MUG", 1))
		if _, err := c.Release(ctx, released.ID); err != nil {
			t.Fatal(err)
		}
		_, err = c.Restock(ctx, released.ID)
		apperrtest.Want(t, err, apperr.Conflict)
		_, err = c.Restock(ctx, "res_01JD3Q0000000000000000000A")
		apperrtest.Want(t, err, apperr.NotFound)
		_, err = c.Restock(ctx, "")
		apperrtest.Want(t, err, apperr.NotFound)
	})

	t.Run("Availability", func(t *testing.T) {
		got, err := c.Availability(ctx, []string{"SHIRT", "MUG", "PRE", "GHOST"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]Availability{
			"SHIRT": {Available: 1, InStock: true}, // 2 on hand at B, 1 reserved ("no-order")
			"MUG":   {Available: 1, InStock: true},
			"PRE":   {Available: 0, InStock: true, Backorder: true},
			"GHOST": {},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("availability = %+v, want %+v", got, want)
		}
		if empty, err := c.Availability(ctx, nil); err != nil || len(empty) != 0 {
			t.Fatalf("no SKUs = %+v, %v", empty, err)
		}
		_, err = c.Availability(ctx, []string{"SHIRT", "bad sku"})
		apperrtest.Want(t, err, apperr.ValidationFailed, "sku")
	})
}

// flakyServer answers with the statuses in order, then serves h. With
// process set, the first answers are given after h did the work (the
// answer was lost on the way back).
func flakyServer(t *testing.T, h http.Handler, process bool, statuses ...int) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if int(n) <= len(statuses) {
			if process {
				h.ServeHTTP(httptest.NewRecorder(), r)
			}
			http.Error(w, "flaky", statuses[n-1])
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestHTTPClientResilience(t *testing.T) {
	s := MustNewSQLiteService(t)
	loc := MustCreateLocation(t, s, "A", 1)
	MustSetLevel(t, s, "SKU", loc.ID, 100)
	h := apitest.Mount(s.Routes())
	ctx := context.Background()
	// fast is the client's default policy with 1 ms between attempts (and
	// attempts bounded by timeout, or 5 s).
	fast := func(timeout time.Duration) httpx.ClientOption {
		return httpx.WithPolicy(resilience.MustNew(resilience.Config{
			Name: "inventory", Timeout: timeout, Failure: httpx.Transient, Backoff: resilience.Backoff{Initial: time.Millisecond},
		}))
	}

	t.Run("a reserve whose answer was lost is retried and reserves once", func(t *testing.T) {
		srv, calls := flakyServer(t, h, true, http.StatusBadGateway, http.StatusServiceUnavailable)
		c := NewHTTPClient(srv.URL, srv.Client(), fast(0))
		r, err := c.Reserve(ctx, ReserveRequest{Key: "lost", Lines: []ReserveLine{line("SKU", 2)}})
		if err != nil || r.Key != "lost" {
			t.Fatalf("reserve = %+v, %v", r, err)
		}
		if calls.Load() != 3 {
			t.Fatalf("calls = %d, want 3", calls.Load())
		}
		wantLevel(t, s, "SKU", loc.ID, 100, 2)
	})

	t.Run("gives up after its attempts as unavailable", func(t *testing.T) {
		srv, calls := flakyServer(t, h, false, 503, 503, 503, 503)
		_, err := NewHTTPClient(srv.URL, srv.Client(), fast(0)).GetReservation(ctx, "lost")
		apperrtest.Want(t, err, apperr.Unavailable)
		if calls.Load() != 3 {
			t.Fatalf("calls = %d, want 3", calls.Load())
		}
	})

	t.Run("does not retry an answer", func(t *testing.T) {
		srv, calls := flakyServer(t, h, false)
		_, err := NewHTTPClient(srv.URL, srv.Client()).Reserve(ctx, ReserveRequest{Key: "big", Lines: []ReserveLine{line("SKU", 1000)}})
		apperrtest.Want(t, err, CodeOutOfStock)
		if calls.Load() != 1 {
			t.Fatalf("calls = %d, want 1", calls.Load())
		}
	})

	t.Run("retries a key still in use", func(t *testing.T) {
		var calls atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 {
				httpx.Error(w, r, apperr.New(apperr.IdempotencyInFlight, "first request still running"))
				return
			}
			h.ServeHTTP(w, r)
		}))
		defer srv.Close()
		r, err := NewHTTPClient(srv.URL, srv.Client(), fast(0)).Reserve(ctx, ReserveRequest{Key: "busy", Lines: []ReserveLine{line("SKU", 1)}})
		if err != nil || calls.Load() != 2 || r.Key != "busy" {
			t.Fatalf("reserve = %+v, %v after %d calls", r, err, calls.Load())
		}
	})

	t.Run("non-problem errors map by status", func(t *testing.T) {
		for status, code := range map[int]apperr.Code{404: apperr.NotFound, 500: apperr.Unavailable, 403: apperr.Forbidden,
			401: apperr.Unauthorized, 400: apperr.BadRequest, 409: apperr.Conflict, 418: apperr.Internal} {
			srv, _ := flakyServer(t, h, false, status)
			_, err := NewHTTPClient(srv.URL, srv.Client()).GetReservation(ctx, "lost")
			apperrtest.Want(t, err, code)
		}
	})

	t.Run("a remote internal error is unavailable here", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			httpx.Error(w, r, errors.New("disk on fire"))
		}))
		defer srv.Close()
		_, err := NewHTTPClient(srv.URL, srv.Client()).Availability(ctx, []string{"SKU"})
		apperrtest.Want(t, err, apperr.Unavailable)
	})

	t.Run("times out a hanging inventory", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(release)
		c := NewHTTPClient(srv.URL, srv.Client(), fast(50*time.Millisecond))
		_, err := c.Commit(ctx, "res_01JD3Q0000000000000000000A", "ord_1")
		apperrtest.Want(t, err, apperr.Unavailable)
	})

	t.Run("a cancelled context stops at once", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		srv, calls := flakyServer(t, h, false)
		_, err := NewHTTPClient(srv.URL, srv.Client()).Release(cctx, "lost")
		apperrtest.Want(t, err, apperr.Unavailable)
		if calls.Load() != 0 {
			t.Fatalf("calls = %d", calls.Load())
		}
	})

	t.Run("unreachable inventory", func(t *testing.T) {
		srv := httptest.NewServer(h)
		url := srv.URL
		srv.Close()
		_, err := NewHTTPClient(url, nil, fast(0)).Availability(ctx, []string{"SKU"})
		apperrtest.Want(t, err, apperr.Unavailable)
	})
}
