package identity

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/clocktest"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

// testMigrations is what identity's database carries in production.
var testMigrations = []store.Migrations{bus.Migrations, Migrations}

// testPassword passes the password policy.
const testPassword = "correct-horse-battery"

// newTestClock returns a test clock that moves only when told.
func newTestClock() *clocktest.Clock {
	return clocktest.New(time.Date(2026, 11, 21, 21, 48, 0, 0, time.UTC))
}

// logBuffer collects log output; it is safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testEnv is a service on a fresh database with a hand-moved clock.
type testEnv struct {
	s     *Service
	clock *clocktest.Clock
	logs  *logBuffer
}

// newTestEnv returns a service on db with cheap argon2 parameters (unless
// cfg names others) and a test clock.
func newTestEnv(t testing.TB, db *store.DB, cfg Config) testEnv {
	t.Helper()
	if cfg.Argon2 == (Argon2Params{}) {
		cfg.Argon2 = testArgon2
	}
	logs := &logBuffer{}
	s := New(db, bus.NewOutbox(nil), slog.New(slog.NewJSONHandler(logs, nil)), cfg)
	clock := newTestClock()
	s.now = clock.Now
	return testEnv{s: s, clock: clock, logs: logs}
}

// runEnvs runs test against a fresh service on every engine.
func runEnvs(t *testing.T, cfg Config, test func(t *testing.T, e testEnv)) {
	t.Helper()
	storetest.Run(t, testMigrations, func(t *testing.T, db *store.DB) {
		test(t, newTestEnv(t, db, cfg))
	})
}

// MustNewSQLiteEnv returns an environment on a fresh SQLite database.
func MustNewSQLiteEnv(t testing.TB, cfg Config) testEnv {
	t.Helper()
	return newTestEnv(t, storetest.MustOpen(t, store.SQLite, testMigrations...), cfg)
}

func MustRegister(t testing.TB, s *Service, email, name string) Customer {
	t.Helper()
	c, err := s.RegisterCustomer(context.Background(), RegisterParams{Email: email, Password: testPassword, Name: name})
	if err != nil {
		t.Fatalf("RegisterCustomer(%s): %v", email, err)
	}
	return c
}

func MustCreateStaff(t testing.TB, s *Service, email string, role Role) Staff {
	t.Helper()
	u, err := s.CreateStaff(context.Background(), CreateStaffParams{Email: email, Name: "Staff " + string(role), Role: role, Password: testPassword})
	if err != nil {
		t.Fatalf("CreateStaff(%s): %v", email, err)
	}
	return u
}

func MustLogin(t testing.TB, s *Service, kind auth.Kind, email string) TokenPair {
	t.Helper()
	p, err := s.Login(context.Background(), kind, LoginParams{Email: email, Password: testPassword})
	if err != nil {
		t.Fatalf("Login(%s %s): %v", kind, email, err)
	}
	return p
}

func MustRefresh(t testing.TB, s *Service, kind auth.Kind, token string) TokenPair {
	t.Helper()
	p, err := s.Refresh(context.Background(), kind, token)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	return p
}

func MustAdminKey(t testing.TB, s *Service, role Role) string {
	t.Helper()
	k, err := s.CreateAPIKey(context.Background(), CreateAPIKeyParams{Name: "test " + string(role), Role: role})
	if err != nil {
		t.Fatal(err)
	}
	return k.Secret
}

func ptr[T any](v T) *T { return &v }

// mount serves the routes as the gateway does: each behind
// httpx.Authorize with the route's permission, on a plain ServeMux.
func mount(s *Service, authn auth.Authenticator) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.Routes() {
		mux.Handle(rt.Pattern(), httpx.Chain(rt.Handler, httpx.Authorize(authn, Policy{}, rt.Permission)))
	}
	return mux
}

// request is one HTTP exchange of a test.
type request struct {
	method, path, body string
	token              string // bearer token, if any
	header             map[string]string
	remoteAddr         string // default httptest's 192.0.2.1:1234
}

// Build implements apitest.Builder.
func (rq request) Build() *http.Request {
	r := apitest.Request{Method: rq.method, Path: rq.path, Body: rq.body}.Build()
	if rq.token != "" {
		r.Header.Set("Authorization", "Bearer "+rq.token)
	}
	for k, v := range rq.header {
		r.Header.Set(k, v)
	}
	if rq.remoteAddr != "" {
		r.RemoteAddr = rq.remoteAddr
	}
	return r
}

// countRows counts rows matching a query.
func countRows(t testing.TB, s *Service, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}
