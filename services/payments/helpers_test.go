package payments

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/apperr/apperrtest"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/bus/bustest"
	"github.com/soukhq/souk/platform/clocktest"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

// testMigrations is what the payments database carries in production.
var testMigrations = []store.Migrations{bus.Migrations, Migrations}

// testConfig is a configuration whose waits are short: a provider call
// attempt times out after 50 ms, tok_slow takes 10 ms.
func testConfig() Config {
	return Config{Timeout: 50 * time.Millisecond, TestProviderSlowDelay: 10 * time.Millisecond}
}

// fixture is a service on a fresh database with its test provider and
// clock at hand.
type fixture struct {
	*Service
	tp    *TestProvider
	clock *clocktest.Clock
}

// newFixture returns payments on db with the test provider as primary.
func newFixture(t testing.TB, db *store.DB, cfg Config, opts ...Option) fixture {
	t.Helper()
	clk := newClock()
	tp := NewTestProvider(cfg.TestProviderSlowDelay)
	if cfg.TestProviderSlowDelay == 0 {
		tp = NewTestProvider(DefaultTestProviderSlowDelay)
	}
	s, err := New(db, bus.NewOutbox(nil), nil, cfg, append([]Option{WithProvider(tp), WithClock(clk.Now)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return fixture{Service: s, tp: tp, clock: clk}
}

// runStores runs test against fresh payments on every engine.
func runStores(t *testing.T, test func(t *testing.T, f fixture), opts ...Option) {
	t.Helper()
	storetest.Run(t, testMigrations, func(t *testing.T, db *store.DB) {
		test(t, newFixture(t, db, testConfig(), opts...))
	})
}

// MustNewSQLite returns a fixture on a fresh SQLite database.
func MustNewSQLite(t testing.TB, opts ...Option) fixture {
	t.Helper()
	return newFixture(t, storetest.MustOpen(t, store.SQLite, testMigrations...), testConfig(), opts...)
}

// MustNewSQLiteWith returns a fixture with cfg on a fresh SQLite database.
func MustNewSQLiteWith(t testing.TB, cfg Config, opts ...Option) fixture {
	t.Helper()
	return newFixture(t, storetest.MustOpen(t, store.SQLite, testMigrations...), cfg, opts...)
}

// newClock returns a test clock that moves only when told.
func newClock() *clocktest.Clock {
	return clocktest.New(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
}

func eur(amount int64) money.Money { return money.New(amount, "EUR") }

func authReq(key, token string, amount int64) AuthorizeRequest {
	return AuthorizeRequest{Key: key, OrderID: "ord_" + key, Amount: eur(amount), Token: token, CustomerID: "cus_1", Email: "ada@example.com"}
}

func MustAuthorize(t testing.TB, c Client, key string, amount int64) Payment {
	t.Helper()
	p, err := c.Authorize(context.Background(), authReq(key, TokenVisa, amount))
	if err != nil {
		t.Fatalf("Authorize(%s): %v", key, err)
	}
	return p
}

func MustCapture(t testing.TB, c Client, key, paymentID string, amount int64) Payment {
	t.Helper()
	p, err := c.Capture(context.Background(), key, paymentID, eur(amount))
	if err != nil {
		t.Fatalf("Capture(%s): %v", key, err)
	}
	return p
}

// wantDeclined fails unless err is payment_declined with the decline code.
func wantDeclined(t testing.TB, err error, code string) {
	t.Helper()
	e := apperrtest.Want(t, err, CodeDeclined)
	if len(e.Fields) == 0 || e.Fields[0].Code != code {
		t.Fatalf("decline fields = %+v, want Fields[0].Code %q", e.Fields, code)
	}
}

// opState reads an operation's state as it is in the database.
func opState(t testing.TB, s *Service, key string) OpState {
	t.Helper()
	o, found, err := getOp(context.Background(), s.db, key)
	if err != nil || !found {
		t.Fatalf("operation %s: found %v, %v", key, found, err)
	}
	return o.State
}

func countRows(t testing.TB, s *Service, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// outboxTypes lists the event types in the outbox for an aggregate, in
// order, without their "souk.payments." prefix and ".v1" suffix.
func outboxTypes(t testing.TB, s *Service, aggregateID string) []string {
	t.Helper()
	var out []string
	for _, typ := range bustest.MustTypes(t, s.db, aggregateID) {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(typ, "souk.payments."), ".v1"))
	}
	return out
}

// --- HTTP ---

// request is one HTTP exchange of a test.
type request struct {
	method, path, body string
	header             map[string]string
}

// Build implements apitest.Builder.
func (rq request) Build() *http.Request {
	return apitest.Request{Method: rq.method, Path: rq.path, Body: rq.body, Header: rq.header}.Build()
}
