package httpx_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
	"github.com/soukhq/souk/platform/telemetry"
)

// MustProblem decodes a problem+json response, failing unless the response
// is one with the status and code.
func MustProblem(t testing.TB, res *http.Response, status int, code apperr.Code) httpx.Problem {
	t.Helper()
	if res.StatusCode != status {
		t.Fatalf("status = %d, want %d", res.StatusCode, status)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json", ct)
	}
	var p httpx.Problem
	if err := json.NewDecoder(res.Body).Decode(&p); err != nil {
		t.Fatalf("decode problem: %v", err)
	}
	if p.Status != status || p.Code != code {
		t.Fatalf("problem = %+v, want status %d code %s", p, status, code)
	}
	return p
}

// MustServe runs one request through h and returns the response.
func MustServe(t testing.TB, h http.Handler, r *http.Request) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec.Result()
}

// logBuffer collects a logger's output safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Lines parses the JSON lines written so far.
func (b *logBuffer) Lines(t testing.TB) []map[string]any {
	t.Helper()
	b.mu.Lock()
	s := b.buf.String()
	b.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// MustLogger returns a JSON logger at debug level writing into a buffer.
func MustLogger(t testing.TB) (*slog.Logger, *logBuffer) {
	t.Helper()
	buf := &logBuffer{}
	return telemetry.NewLogger(telemetry.Config{ServiceName: "test", LogLevel: "debug"}, buf), buf
}

// okHandler answers 200 "ok".
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = w.Write([]byte("ok"))
})

// fakeAuthn knows a fixed set of tokens.
type fakeAuthn map[string]auth.Principal

func (f fakeAuthn) Authenticate(_ context.Context, token string) (auth.Principal, error) {
	if token == "identity-down" {
		return auth.Principal{}, apperr.New(apperr.Unavailable, "identity service unavailable")
	}
	p, ok := f[token]
	if !ok {
		return auth.Principal{}, apperr.New(apperr.Unauthorized, "unknown token")
	}
	return p, nil
}

// fakeAuthz allows a permission to the roles listed for it.
type fakeAuthz map[auth.Permission][]string

func (f fakeAuthz) Allowed(p auth.Principal, perm auth.Permission) bool {
	for _, role := range f[perm] {
		if role == p.Role {
			return true
		}
	}
	return false
}

var (
	testAuthn = fakeAuthn{
		"admin-token":  {Subject: "usr_admin", Kind: auth.KindStaff, Role: "admin"},
		"viewer-token": {Subject: "usr_viewer", Kind: auth.KindStaff, Role: "viewer"},
		"cus-token":    {Subject: "cus_1", Kind: auth.KindCustomer},
		"cus2-token":   {Subject: "cus_2", Kind: auth.KindCustomer},
	}
	testAuthz = fakeAuthz{"catalog:write": {"admin"}, "catalog:read": {"admin", "viewer"}}
)

// mustSQLite opens a migrated SQLite database for tests that need one store.
func mustSQLite(t testing.TB) *store.DB {
	t.Helper()
	return storetest.MustOpen(t, store.SQLite, httpx.IdempotencyMigrations)
}
