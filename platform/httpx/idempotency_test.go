package httpx_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/clocktest"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

// newClock returns a test clock that moves only when told.
func newClock() *clocktest.Clock { return clocktest.New(time.Now().UTC().Truncate(time.Millisecond)) }

// creator is a POST handler that counts its runs and answers 201 with a new
// cart id, a Location and an ETag, echoing the body it read.
type creator struct {
	calls atomic.Int64
	delay time.Duration
	// before, when set, runs first and may answer itself (returning true).
	before func(n int64, w http.ResponseWriter, r *http.Request) bool
}

func (c *creator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := c.calls.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	if c.before != nil && c.before(n, w, r) {
		return
	}
	time.Sleep(c.delay)
	id := fmt.Sprintf("cart_%d", n)
	w.Header().Set("Location", "/store/carts/"+id)
	httpx.SetETag(w, n)
	httpx.JSON(w, http.StatusCreated, map[string]any{"id": id, "echo": string(body)})
}

// MustIdempotentHandler mounts h behind the middleware the gateway puts in
// front of a POST route: request id, panic recovery, authentication (public
// route, so a bearer token is optional) and idempotency.
func MustIdempotentHandler(t testing.TB, db *store.DB, cfg httpx.IdempotencyConfig, h http.Handler) (http.Handler, *httpx.Idempotency, *logBuffer) {
	t.Helper()
	logger, logs := MustLogger(t)
	idem := httpx.NewIdempotency(db, cfg)
	return httpx.Chain(h,
		httpx.RequestID(),
		httpx.Recover(logger),
		httpx.Authorize(testAuthn, testAuthz, ""),
		idem.Middleware(),
	), idem, logs
}

type req struct {
	method, path, key, body string
	token, cartToken        string
	// anonymous sends neither a bearer token nor a cart token; otherwise a
	// request without either gets a default cart token, so it has a scope.
	anonymous bool
}

func (q req) build() *http.Request {
	method := q.method
	if method == "" {
		method = "POST"
	}
	path := q.path
	if path == "" {
		path = "/store/carts"
	}
	r := httptest.NewRequest(method, path, strings.NewReader(q.body))
	r.Header.Set("Content-Type", "application/json")
	if q.key != "" {
		r.Header.Set("Idempotency-Key", q.key)
	}
	if q.token != "" {
		r.Header.Set("Authorization", "Bearer "+q.token)
	}
	switch {
	case q.cartToken != "":
		r.Header.Set("X-Cart-Token", q.cartToken)
	case q.token == "" && !q.anonymous:
		r.Header.Set("X-Cart-Token", "tok-default")
	}
	return r
}

// response is what a test keeps of a response.
type response struct {
	status   int
	body     string
	header   http.Header
	replayed bool
}

func MustDo(t testing.TB, h http.Handler, q req) response {
	t.Helper()
	res := MustServe(t, h, q.build())
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, body: string(b), header: res.Header, replayed: res.Header.Get("Idempotent-Replayed") == "true"}
}

func mustProblemCode(t testing.TB, r response, status int, code apperr.Code) {
	t.Helper()
	if r.status != status || !strings.Contains(r.body, `"code":"`+string(code)+`"`) {
		t.Fatalf("got %d %s, want %d %s", r.status, r.body, status, code)
	}
}

var keySeq atomic.Int64

// newKey returns a key no other test uses (tests share one database).
func newKey() string { return fmt.Sprintf("key-%d-%d", time.Now().UnixNano(), keySeq.Add(1)) }

func TestIdempotency(t *testing.T) {
	storetest.Run(t, []store.Migrations{httpx.IdempotencyMigrations}, func(t *testing.T, db *store.DB) {
		t.Run("concurrent identical requests run the handler once", func(t *testing.T) {
			c := &creator{delay: 150 * time.Millisecond}
			h, _, _ := MustIdempotentHandler(t, db, httpx.IdempotencyConfig{}, c)
			srv := httptest.NewServer(h)
			defer srv.Close()

			const n = 16
			key, body := newKey(), `{"currency":"EUR"}`
			start := make(chan struct{})
			results := make([]response, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					r, _ := http.NewRequest("POST", srv.URL+"/store/carts", strings.NewReader(body))
					r.Header.Set("Idempotency-Key", key)
					r.Header.Set("X-Cart-Token", "tok-concurrent")
					res, err := srv.Client().Do(r)
					if err != nil {
						t.Error(err)
						return
					}
					defer res.Body.Close()
					b, _ := io.ReadAll(res.Body)
					results[i] = response{status: res.StatusCode, body: string(b), header: res.Header,
						replayed: res.Header.Get("Idempotent-Replayed") == "true"}
				})
			}
			close(start)
			wg.Wait()
			if t.Failed() {
				return
			}
			if got := c.calls.Load(); got != 1 {
				t.Fatalf("handler ran %d times, want exactly 1", got)
			}
			var first string
			originals, inFlight := 0, 0
			for _, r := range results {
				switch r.status {
				case http.StatusCreated:
					if !r.replayed {
						originals++
					}
					if first == "" {
						first = r.body
					}
					if r.body != first {
						t.Fatalf("201 bodies differ: %s vs %s", r.body, first)
					}
				case http.StatusConflict:
					inFlight++
					mustProblemCode(t, r, 409, apperr.IdempotencyInFlight)
					if r.header.Get("Retry-After") == "" {
						t.Fatal("409 in progress without Retry-After")
					}
				default:
					t.Fatalf("unexpected response %d %s", r.status, r.body)
				}
			}
			if originals != 1 {
				t.Fatalf("%d original (non-replayed) 201s, want 1", originals)
			}
			if inFlight == 0 {
				t.Fatal("no request saw the key in progress: the race was not exercised")
			}

			// Afterwards every retry replays the one stored response.
			for range 3 {
				r := MustDo(t, h, req{key: key, body: body, cartToken: "tok-concurrent"})
				if r.status != 201 || r.body != first || !r.replayed {
					t.Fatalf("retry got %d %q replayed=%v, want the stored 201 %q", r.status, r.body, r.replayed, first)
				}
			}
			if got := c.calls.Load(); got != 1 {
				t.Fatalf("handler ran %d times after retries, want 1", got)
			}
		})

		t.Run("concurrent requests in different scopes do not collide", func(t *testing.T) {
			c := &creator{delay: 50 * time.Millisecond}
			h, _, _ := MustIdempotentHandler(t, db, httpx.IdempotencyConfig{}, c)
			key := newKey()
			const n = 8
			var wg sync.WaitGroup
			statuses := make([]int, n)
			for i := range n {
				wg.Go(func() {
					statuses[i] = MustDo(t, h, req{key: key, body: `{}`, cartToken: fmt.Sprintf("cart-token-%d", i)}).status
				})
			}
			wg.Wait()
			for i, s := range statuses {
				if s != 201 {
					t.Fatalf("scope %d got %d, want 201", i, s)
				}
			}
			if got := c.calls.Load(); got != n {
				t.Fatalf("handler ran %d times, want %d (one per scope)", got, n)
			}
		})

		t.Run("sequential replay is identical", func(t *testing.T) {
			c := &creator{}
			h, _, _ := MustIdempotentHandler(t, db, httpx.IdempotencyConfig{}, c)
			q := req{key: newKey(), body: `{"currency":"EUR","email":"a@example.com"}`, token: "cus-token"}
			first := MustDo(t, h, q)
			if first.status != 201 || first.replayed {
				t.Fatalf("first = %d replayed=%v", first.status, first.replayed)
			}
			second := MustDo(t, h, q)
			if second.status != 201 || !second.replayed || second.body != first.body {
				t.Fatalf("replay = %d %q replayed=%v, want %q", second.status, second.body, second.replayed, first.body)
			}
			for _, k := range []string{"Content-Type", "Location", "ETag"} {
				if second.header.Get(k) != first.header.Get(k) || first.header.Get(k) == "" {
					t.Errorf("replayed %s = %q, first %q", k, second.header.Get(k), first.header.Get(k))
				}
			}
			if second.header.Get("X-Request-Id") == first.header.Get("X-Request-Id") {
				t.Error("the replay reused the first request's X-Request-Id")
			}
			if c.calls.Load() != 1 {
				t.Fatalf("handler ran %d times", c.calls.Load())
			}
		})

		t.Run("anonymous requests are never replayed", func(t *testing.T) {
			// Nobody to scope the key to: a replay could hand one anonymous
			// caller another's answer (a new cart's secret token).
			c := &creator{}
			h, _, _ := MustIdempotentHandler(t, db, httpx.IdempotencyConfig{}, c)
			key := newKey()
			first := MustDo(t, h, req{key: key, body: `{"currency":"EUR"}`, anonymous: true})
			second := MustDo(t, h, req{key: key, body: `{"currency":"EUR"}`, anonymous: true})
			if first.status != 201 || second.status != 201 || second.replayed || first.body == second.body {
				t.Fatalf("anonymous first %d %q, second %d %q replayed=%v", first.status, first.body, second.status, second.body, second.replayed)
			}
			if c.calls.Load() != 2 {
				t.Fatalf("handler ran %d times, want 2", c.calls.Load())
			}
		})

		t.Run("a different request with the same key is 422", func(t *testing.T) {
			c := &creator{}
			h, _, _ := MustIdempotentHandler(t, db, httpx.IdempotencyConfig{}, c)
			key := newKey()
			if r := MustDo(t, h, req{key: key, body: `{"currency":"EUR"}`}); r.status != 201 {
				t.Fatalf("first = %d", r.status)
			}
			for _, q := range []req{
				{key: key, body: `{"currency":"USD"}`},
				{key: key, body: `{"currency":"EUR"}`, path: "/store/carts/cart_1/items"},
				{key: key, body: `{"currency":"EUR"}`, path: "/store/carts?x=1"},
				{key: key, body: `{"currency":"EUR"}`, method: "PUT"},
			} {
				mustProblemCode(t, MustDo(t, h, q), 422, apperr.IdempotencyKeyReused)
			}
			if c.calls.Load() != 1 {
				t.Fatalf("handler ran %d times", c.calls.Load())
			}
		})

		t.Run("failures release the key so a retry runs again", func(t *testing.T) {
			tests := []struct {
				name string
				fail func(w http.ResponseWriter, r *http.Request)
			}{
				{"500", func(w http.ResponseWriter, r *http.Request) { httpx.Error(w, r, fmt.Errorf("db down")) }},
				{"503", func(w http.ResponseWriter, r *http.Request) {
					httpx.Error(w, r, apperr.New(apperr.Unavailable, "payments unavailable"))
				}},
				{"panic", func(http.ResponseWriter, *http.Request) { panic("boom") }},
				{"400 malformed request", func(w http.ResponseWriter, r *http.Request) {
					httpx.Error(w, r, apperr.New(apperr.BadRequest, "bad"))
				}},
				{"429", func(w http.ResponseWriter, r *http.Request) {
					httpx.Error(w, r, apperr.New(apperr.RateLimited, "slow down"))
				}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					c := &creator{before: func(n int64, w http.ResponseWriter, r *http.Request) bool {
						if n == 1 {
							tt.fail(w, r)
							return true
						}
						return false
					}}
					h, _, _ := MustIdempotentHandler(t, db, httpx.IdempotencyConfig{}, c)
					q := req{key: newKey(), body: `{}`, token: "cus-token"}
					if r := MustDo(t, h, q); r.status < 400 {
						t.Fatalf("first = %d, want the failure", r.status)
					}
					r := MustDo(t, h, q)
					if r.status != 201 || r.replayed || c.calls.Load() != 2 {
						t.Fatalf("retry = %d replayed=%v after %d runs; want a fresh 201 from a second run", r.status, r.replayed, c.calls.Load())
					}
					if r := MustDo(t, h, q); r.status != 201 || !r.replayed || c.calls.Load() != 2 {
						t.Fatalf("third = %d replayed=%v: the success must be stored", r.status, r.replayed)
					}
				})
			}
		})

		t.Run("a domain refusal is the result and is replayed", func(t *testing.T) {
			c := &creator{before: func(n int64, w http.ResponseWriter, r *http.Request) bool {
				httpx.Error(w, r, apperr.New("out_of_stock", "LIN-S is out of stock"))
				return true
			}}
			h, _, _ := MustIdempotentHandler(t, db, httpx.IdempotencyConfig{}, c)
			q := req{key: newKey(), body: `{}`, cartToken: "t1"}
			first := MustDo(t, h, q)
			mustProblemCode(t, first, 409, "out_of_stock")
			second := MustDo(t, h, q)
			if second.body != first.body || !second.replayed || second.header.Get("Content-Type") != "application/problem+json" || c.calls.Load() != 1 {
				t.Fatalf("second = %d %s replayed=%v, runs %d", second.status, second.body, second.replayed, c.calls.Load())
			}
		})

		t.Run("scopes keep callers apart", func(t *testing.T) {
			c := &creator{}
			h, _, _ := MustIdempotentHandler(t, db, httpx.IdempotencyConfig{}, c)
			key := newKey()
			scopes := []req{
				{key: key, body: `{}`, token: "cus-token"},
				{key: key, body: `{}`, token: "cus2-token"},
				{key: key, body: `{}`, cartToken: "cart-a"},
				{key: key, body: `{}`, cartToken: "cart-b"},
				{key: key, body: `{}`},
			}
			bodies := map[string]bool{}
			for _, q := range scopes {
				r := MustDo(t, h, q)
				if r.status != 201 || r.replayed || bodies[r.body] {
					t.Fatalf("%+v got %d replayed=%v %s: want its own fresh response", q, r.status, r.replayed, r.body)
				}
				bodies[r.body] = true
			}
			// The principal wins over the cart token: same subject, same scope.
			r := MustDo(t, h, req{key: key, body: `{}`, token: "cus-token", cartToken: "cart-z"})
			if !r.replayed {
				t.Fatalf("same principal with a cart token was not replayed: %d %s", r.status, r.body)
			}
			if got := c.calls.Load(); got != int64(len(scopes)) {
				t.Fatalf("handler ran %d times, want %d", got, len(scopes))
			}
		})

		t.Run("invalid keys are 400 naming Idempotency-Key", func(t *testing.T) {
			c := &creator{}
			h, _, _ := MustIdempotentHandler(t, db, httpx.IdempotencyConfig{}, c)
			for name, values := range map[string][]string{
				"empty":             {""},
				"256 characters":    {strings.Repeat("k", 256)},
				"control character": {"key\x01"},
				"non-ASCII":         {"clé-1"},
				"two headers":       {"a", "b"},
			} {
				t.Run(name, func(t *testing.T) {
					r := req{body: `{}`}.build()
					r.Header["Idempotency-Key"] = values
					res := MustServe(t, h, r)
					p := MustProblem(t, res, 400, apperr.BadRequest)
					if len(p.Errors) != 1 || p.Errors[0].Field != "Idempotency-Key" {
						t.Fatalf("problem %+v does not name Idempotency-Key", p)
					}
				})
			}
			if r := MustDo(t, h, req{key: strings.Repeat("k", 255), body: `{}`}); r.status != 201 {
				t.Fatalf("a 255-character key got %d", r.status)
			}
			if c.calls.Load() != 1 {
				t.Fatalf("handler ran %d times, want only for the valid key", c.calls.Load())
			}
		})

		t.Run("no key or a safe method passes through", func(t *testing.T) {
			c := &creator{}
			h, _, _ := MustIdempotentHandler(t, db, httpx.IdempotencyConfig{}, c)
			for _, q := range []req{{body: `{}`}, {body: `{}`}, {method: "GET", key: "k"}, {method: "GET", key: "k"}} {
				if r := MustDo(t, h, q); r.status != 201 || r.replayed {
					t.Fatalf("%+v got %d replayed=%v", q, r.status, r.replayed)
				}
			}
			if c.calls.Load() != 4 {
				t.Fatalf("handler ran %d times, want 4", c.calls.Load())
			}
		})

		t.Run("body over the limit is 413", func(t *testing.T) {
			c := &creator{}
			h, _, _ := MustIdempotentHandler(t, db, httpx.IdempotencyConfig{MaxBodyBytes: 16}, c)
			mustProblemCode(t, MustDo(t, h, req{key: newKey(), body: `{"currency":"EUR","x":1}`}), 413, apperr.PayloadTooLarge)
			r := req{key: newKey(), body: `{"currency":"EUR","x":1}`}.build()
			r.ContentLength = -1 // as if chunked
			MustProblem(t, MustServe(t, h, r), 413, apperr.PayloadTooLarge)
			if c.calls.Load() != 0 {
				t.Fatal("handler ran")
			}
		})

		t.Run("the response is stored even when the client went away", func(t *testing.T) {
			c := &creator{}
			h, _, _ := MustIdempotentHandler(t, db, httpx.IdempotencyConfig{}, c)
			q := req{key: newKey(), body: `{}`, cartToken: "gone"}
			ctx, cancel := context.WithCancel(context.Background())
			c.before = func(n int64, w http.ResponseWriter, r *http.Request) bool {
				cancel() // the client disconnects while the work is done
				return false
			}
			first := MustServe(t, h, q.build().WithContext(ctx))
			if first.StatusCode != 201 {
				t.Fatalf("first = %d", first.StatusCode)
			}
			c.before = nil
			if r := MustDo(t, h, q); !r.replayed || c.calls.Load() != 1 {
				t.Fatalf("retry = %d replayed=%v runs=%d, want the stored response", r.status, r.replayed, c.calls.Load())
			}
		})

		t.Run("expired keys are absent and Cleanup deletes them", func(t *testing.T) {
			clock := newClock()
			c := &creator{}
			h, idem, _ := MustIdempotentHandler(t, db, httpx.IdempotencyConfig{TTL: time.Hour, Now: clock.Now}, c)
			q := req{key: newKey(), body: `{}`, cartToken: "expiry"}
			MustDo(t, h, q)
			clock.Advance(59 * time.Minute)
			if r := MustDo(t, h, q); !r.replayed {
				t.Fatal("not replayed within the TTL")
			}
			clock.Advance(2 * time.Minute)
			if r := MustDo(t, h, q); r.status != 201 || r.replayed || c.calls.Load() != 2 {
				t.Fatalf("after the TTL: %d replayed=%v runs=%d, want a fresh run", r.status, r.replayed, c.calls.Load())
			}
			// A different body is fine on an expired key too.
			old := req{key: newKey(), body: `{"v":1}`, cartToken: "expiry"}
			MustDo(t, h, old)
			clock.Advance(61 * time.Minute)
			fresh := req{key: newKey(), body: `{}`, cartToken: "expiry"}
			MustDo(t, h, fresh)
			if err := idem.Cleanup(context.Background()); err != nil {
				t.Fatalf("Cleanup: %v", err)
			}
			var left int
			if err := db.QueryRow(context.Background(), `SELECT COUNT(*) FROM souk_idempotency_keys WHERE idempotency_key IN (?, ?, ?)`,
				q.key, old.key, fresh.key).Scan(&left); err != nil || left != 1 {
				t.Fatalf("rows left = %d, %v; want only the fresh key", left, err)
			}
			old.body = `{"v":2}`
			if r := MustDo(t, h, old); r.status != 201 || r.replayed {
				t.Fatalf("reusing a cleaned-up key: %d replayed=%v", r.status, r.replayed)
			}
		})

		t.Run("a request still running keeps its claim past LockTimeout", func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			c := &creator{}
			c.before = func(n int64, w http.ResponseWriter, r *http.Request) bool {
				if n == 1 {
					entered <- struct{}{}
					<-release
				}
				return false
			}
			const lock = 150 * time.Millisecond
			h, _, _ := MustIdempotentHandler(t, db, httpx.IdempotencyConfig{LockTimeout: lock}, c)
			q := req{key: newKey(), body: `{}`, cartToken: "slow"}
			done := make(chan response)
			go func() { done <- MustDo(t, h, q) }()
			<-entered
			time.Sleep(5 * lock) // well past LockTimeout: only renewal keeps the claim
			mustProblemCode(t, MustDo(t, h, q), 409, apperr.IdempotencyInFlight)
			close(release)
			if first := <-done; first.status != 201 || c.calls.Load() != 1 {
				t.Fatalf("first = %d, runs = %d; want 201 and one run", first.status, c.calls.Load())
			}
		})

		t.Run("a claim abandoned past LockTimeout is taken over", func(t *testing.T) {
			clock := newClock()
			entered, release := make(chan struct{}), make(chan struct{})
			c := &creator{}
			c.before = func(n int64, w http.ResponseWriter, r *http.Request) bool {
				if n == 1 {
					entered <- struct{}{}
					<-release // the first request hangs
				}
				return false
			}
			h, _, logs := MustIdempotentHandler(t, db, httpx.IdempotencyConfig{LockTimeout: time.Minute, Now: clock.Now}, c)
			q := req{key: newKey(), body: `{}`, cartToken: "stuck"}
			done := make(chan response)
			go func() { done <- MustDo(t, h, q) }()
			<-entered
			mustProblemCode(t, MustDo(t, h, q), 409, apperr.IdempotencyInFlight)
			clock.Advance(61 * time.Second)
			second := MustDo(t, h, q)
			if second.status != 201 || second.replayed || c.calls.Load() != 2 {
				t.Fatalf("takeover = %d replayed=%v runs=%d", second.status, second.replayed, c.calls.Load())
			}
			close(release)
			if first := <-done; first.status != 201 {
				t.Fatalf("the hung request finally got %d", first.status)
			}
			if r := MustDo(t, h, q); !r.replayed || r.body != second.body {
				t.Fatalf("replay = %s, want the takeover's response %s", r.body, second.body)
			}
			found := false
			for _, l := range logs.Lines(t) {
				found = found || strings.Contains(fmt.Sprint(l["msg"]), "response not recorded")
			}
			if !found {
				t.Fatal("the overtaken request's lost recording was not logged")
			}
		})
	})
}
