package pricing

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/soukhq/souk/api/apitest"
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

// Build implements apitest.Builder.
func (rq request) Build() *http.Request {
	return apitest.Request{Method: rq.method, Path: rq.path, Body: rq.body, Header: rq.header}.Build()
}
