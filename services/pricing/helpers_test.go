package pricing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

// testMigrations is what pricing's database carries in production.
var testMigrations = []store.Migrations{bus.Migrations, Migrations}

// testNow is the tests' clock: never the wall clock.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newTestService(db *store.DB) *Service {
	s := New(db, bus.NewOutbox(nil), nil, Config{DefaultCountry: "NL"})
	s.now = func() time.Time { return testNow }
	return s
}

// runStores runs test against a fresh pricing service on every engine.
func runStores(t *testing.T, test func(t *testing.T, s *Service)) {
	t.Helper()
	storetest.Run(t, testMigrations, func(t *testing.T, db *store.DB) {
		test(t, newTestService(db))
	})
}

// MustNewSQLiteService returns a service on a fresh SQLite database.
func MustNewSQLiteService(t testing.TB) *Service {
	t.Helper()
	return newTestService(storetest.MustOpen(t, store.SQLite, testMigrations...))
}

func MustCreatePriceList(t testing.TB, s *Service, in PriceListInput) PriceList {
	t.Helper()
	pl, err := s.CreatePriceList(context.Background(), in)
	if err != nil {
		t.Fatalf("CreatePriceList(%q): %v", in.Name, err)
	}
	return pl
}

func MustCreatePromotion(t testing.TB, s *Service, in PromotionInput) Promotion {
	t.Helper()
	p, err := s.CreatePromotion(context.Background(), in)
	if err != nil {
		t.Fatalf("CreatePromotion(%q): %v", in.Name, err)
	}
	return p
}

func MustCreateTaxRate(t testing.TB, s *Service, in TaxRateInput) TaxRate {
	t.Helper()
	r, err := s.CreateTaxRate(context.Background(), in)
	if err != nil {
		t.Fatalf("CreateTaxRate(%s): %v", in.Country, err)
	}
	return r
}

func MustCreateShippingMethod(t testing.TB, s *Service, in ShippingMethodInput) ShippingMethod {
	t.Helper()
	m, err := s.CreateShippingMethod(context.Background(), in)
	if err != nil {
		t.Fatalf("CreateShippingMethod(%q): %v", in.Name, err)
	}
	return m
}

func MustQuote(t testing.TB, c Client, req QuoteRequest) Quote {
	t.Helper()
	q, err := c.Quote(context.Background(), req)
	if err != nil {
		t.Fatalf("Quote: %v", err)
	}
	return q
}

func ptr[T any](v T) *T { return &v }

// countRows counts rows of a query.
func countRows(t testing.TB, s *Service, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// request is one HTTP exchange of a test.
type request struct {
	method, path, body string
	header             map[string]string
}

func (rq request) build() *http.Request {
	var r *http.Request
	if rq.body != "" {
		r = httptest.NewRequest(rq.method, rq.path, strings.NewReader(rq.body))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(rq.method, rq.path, nil)
	}
	for k, v := range rq.header {
		r.Header.Set(k, v)
	}
	return r
}

func serve(h http.Handler, rq request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, rq.build())
	return w
}

// MustServe performs the request and fails unless the status is want.
func MustServe(t testing.TB, h http.Handler, want int, rq request) *httptest.ResponseRecorder {
	t.Helper()
	w := serve(h, rq)
	if w.Code != want {
		t.Fatalf("%s %s = %d, want %d\n%s", rq.method, rq.path, w.Code, want, w.Body)
	}
	return w
}
