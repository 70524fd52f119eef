package httpx_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/httpx"
)

func TestChainOrder(t *testing.T) {
	var order []string
	mw := func(name string) httpx.Middleware {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				order = append(order, name+">")
				next.ServeHTTP(w, r)
				order = append(order, "<"+name)
			})
		}
	}
	h := httpx.Chain(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { order = append(order, "h") }),
		mw("a"), nil, mw("b"))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if got, want := strings.Join(order, " "), "a> b> h <b <a"; got != want {
		t.Fatalf("order = %q, want %q", got, want)
	}
}

var generatedID = regexp.MustCompile(`^req_[0-9A-HJKMNP-TV-Z]{26}$`)

func TestRequestID(t *testing.T) {
	tests := []struct {
		name     string
		incoming []string // X-Request-Id values sent
		wantEcho string   // "" means a generated id is expected
	}{
		{"generated when absent", nil, ""},
		{"uuid echoed", []string{"3f2b8c1e-9a4d-4e6f-8b1a-2c3d4e5f6a7b"}, "3f2b8c1e-9a4d-4e6f-8b1a-2c3d4e5f6a7b"},
		{"prefixed id echoed", []string{"req_01JD3Q0000000000000000000"}, "req_01JD3Q0000000000000000000"},
		{"base64 echoed", []string{"YWJj+/=="}, "YWJj+/=="},
		{"128 characters echoed", []string{strings.Repeat("a", 128)}, strings.Repeat("a", 128)},
		{"too long replaced", []string{strings.Repeat("a", 129)}, ""},
		{"spaces replaced", []string{"a b"}, ""},
		{"log injection replaced", []string{`x" level=ERROR msg="forged`}, ""},
		{"non-ASCII replaced", []string{"idé"}, ""},
		{"empty replaced", []string{""}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, logs := MustLogger(t)
			var ctxID, hdrID string
			h := httpx.RequestID()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctxID = httpx.RequestIDFrom(r.Context())
				hdrID = r.Header.Get("X-Request-Id")
				httpx.Logger(r.Context()).Info("inside") // no context passed: the id must be on the logger
			}))
			r := httptest.NewRequest("POST", "/x", nil)
			r = r.WithContext(httpx.WithLogger(r.Context(), logger)) // as http.Server.BaseContext would
			for _, v := range tt.incoming {
				r.Header.Add("X-Request-Id", v)
			}
			res := MustServe(t, h, r)
			got := res.Header.Get("X-Request-Id")
			if tt.wantEcho != "" && got != tt.wantEcho {
				t.Fatalf("X-Request-Id = %q, want the incoming %q", got, tt.wantEcho)
			}
			if tt.wantEcho == "" && !generatedID.MatchString(got) {
				t.Fatalf("X-Request-Id = %q, want a generated req_<ULID>", got)
			}
			if ctxID != got || hdrID != got {
				t.Fatalf("context id %q, request header %q, response %q: want all equal", ctxID, hdrID, got)
			}
			lines := logs.Lines(t)
			if len(lines) != 1 || lines[0]["request_id"] != got {
				t.Fatalf("request logger lines = %v, want one with request_id %s", lines, got)
			}
		})
	}

	// Without a logger in the context, the first middleware given one
	// installs the request-scoped logger.
	for name, mw := range map[string]func(*slog.Logger) httpx.Middleware{"AccessLog": httpx.AccessLog, "Recover": httpx.Recover} {
		t.Run(name+" installs the request logger", func(t *testing.T) {
			logger, logs := MustLogger(t)
			tp, _ := MustTracer(t)
			h := httpx.Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				httpx.Logger(r.Context()).Info("inside")
			}), httpx.Tracing(tp, nil), httpx.RequestID(), mw(logger))
			res := MustServe(t, h, httptest.NewRequest("GET", "/", nil))
			var inside map[string]any
			for _, l := range logs.Lines(t) {
				if l["msg"] == "inside" {
					inside = l
				}
			}
			if inside == nil || inside["request_id"] != res.Header.Get("X-Request-Id") || inside["trace_id"] != res.Header.Get("Traceparent")[3:35] {
				t.Fatalf("handler line = %v, want the request and trace ids", inside)
			}
		})
	}
}

func TestRequestIDsAreUnique(t *testing.T) {
	h := httpx.RequestID()(okHandler)
	seen := map[string]bool{}
	for range 1000 {
		id := MustServe(t, h, httptest.NewRequest("GET", "/", nil)).Header.Get("X-Request-Id")
		if seen[id] {
			t.Fatalf("id %s generated twice", id)
		}
		seen[id] = true
	}
}

func TestRecover(t *testing.T) {
	t.Run("panic becomes a 500 problem without the panic text", func(t *testing.T) {
		logger, logs := MustLogger(t)
		h := httpx.Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "999")
			w.Header().Set("Location", "/half-made")
			panic("db password is hunter2")
		}), httpx.RequestID(), httpx.Recover(logger))
		res := MustServe(t, h, httptest.NewRequest("POST", "/admin/products", nil))
		body, _ := io.ReadAll(res.Body)
		if strings.Contains(string(body), "hunter2") || strings.Contains(string(body), "goroutine") {
			t.Fatalf("response leaks the panic: %s", body)
		}
		if res.Header.Get("Location") != "" || res.Header.Get("Content-Length") == "999" {
			t.Fatalf("stale headers survived: %v", res.Header)
		}
		res.Body = io.NopCloser(bytes.NewReader(body))
		p := MustProblem(t, res, 500, apperr.Internal)
		if p.RequestID == "" || p.RequestID != res.Header.Get("X-Request-Id") {
			t.Fatalf("problem request_id = %q, header %q", p.RequestID, res.Header.Get("X-Request-Id"))
		}
		lines := logs.Lines(t)
		if len(lines) != 1 {
			t.Fatalf("log lines = %v, want 1", lines)
		}
		l := lines[0]
		if l["level"] != "ERROR" || l["panic"] != "db password is hunter2" || !strings.Contains(l["stack"].(string), "goroutine") ||
			l["request_id"] != p.RequestID {
			t.Fatalf("panic log line = %v", l)
		}
	})

	t.Run("ErrAbortHandler is re-panicked untouched", func(t *testing.T) {
		logger, logs := MustLogger(t)
		h := httpx.Recover(logger)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
		got := catchPanic(func() { h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)) })
		if got != http.ErrAbortHandler {
			t.Fatalf("panic = %v, want http.ErrAbortHandler", got)
		}
		if lines := logs.Lines(t); len(lines) != 0 {
			t.Fatalf("logged %v, want nothing", lines)
		}
	})

	t.Run("panic after the response started aborts the connection", func(t *testing.T) {
		logger, logs := MustLogger(t)
		h := httpx.Recover(logger)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{"partial":`))
			panic(errors.New("boom"))
		}))
		rec := httptest.NewRecorder()
		got := catchPanic(func() { h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil)) })
		if got != http.ErrAbortHandler {
			t.Fatalf("panic = %v, want http.ErrAbortHandler", got)
		}
		if rec.Code != 200 || rec.Body.String() != `{"partial":` {
			t.Fatalf("response = %d %q: nothing must be appended", rec.Code, rec.Body.String())
		}
		if lines := logs.Lines(t); len(lines) != 1 || lines[0]["panic"] != "boom" {
			t.Fatalf("log = %v", lines)
		}
	})

	t.Run("no panic, no change", func(t *testing.T) {
		res := MustServe(t, httpx.Recover(nil)(okHandler), httptest.NewRequest("GET", "/", nil))
		if body, _ := io.ReadAll(res.Body); res.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("got %d %q", res.StatusCode, body)
		}
	})
}

func catchPanic(f func()) (p any) {
	defer func() { p = recover() }()
	f()
	return nil
}

type product struct {
	Title    string `json:"title"`
	Quantity int    `json:"quantity"`
}

func TestBodyLimitAndDecode(t *testing.T) {
	var calls int
	decodeHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		var p product
		if err := httpx.Decode(r, &p); err != nil {
			httpx.Error(w, r, err)
			return
		}
		httpx.JSON(w, http.StatusCreated, p)
	})
	// AccessLog wraps the writer, as in production: the limit must still
	// reach the connection and close it.
	srv := httptest.NewServer(httpx.Chain(decodeHandler, httpx.AccessLog(nil), httpx.BodyLimit(0)))
	defer srv.Close()

	big := `{"title":"` + strings.Repeat("x", 2<<20) + `"}`
	tests := []struct {
		name       string
		body       io.Reader
		length     int64 // -1: unknown, sent chunked
		status     int
		code       apperr.Code
		field      string // the field the problem must name
		wantCalled bool
	}{
		{"2 MiB by Content-Length refused before the handler", strings.NewReader(big), int64(len(big)), 413, apperr.PayloadTooLarge, "", false},
		{"2 MiB chunked stopped while decoding", io.MultiReader(strings.NewReader(big)), -1, 413, apperr.PayloadTooLarge, "", true},
		{"small body accepted", strings.NewReader(`{"title":"Linen Shirt","quantity":2}`), -1, 201, "", "", true},
		{"unknown field named", strings.NewReader(`{"title":"x","colour":"red"}`), -1, 400, apperr.BadRequest, "colour", true},
		{"wrong type named", strings.NewReader(`{"title":"x","quantity":"two"}`), -1, 400, apperr.BadRequest, "quantity", true},
		{"malformed JSON", strings.NewReader(`{"title":`), -1, 400, apperr.BadRequest, "", true},
		{"syntax error", strings.NewReader(`{"title" "x"}`), -1, 400, apperr.BadRequest, "", true},
		{"trailing data", strings.NewReader(`{"title":"x"} {}`), -1, 400, apperr.BadRequest, "", true},
		{"empty body", strings.NewReader(``), 0, 400, apperr.BadRequest, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls = 0
			req, err := http.NewRequest("POST", srv.URL+"/admin/products", tt.body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = tt.length
			req.Header.Set("Content-Type", "application/json")
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if tt.status == 201 {
				var got product
				if res.StatusCode != 201 || json.NewDecoder(res.Body).Decode(&got) != nil || got.Title != "Linen Shirt" {
					t.Fatalf("got %d %+v, want 201 with the product", res.StatusCode, got)
				}
			} else {
				p := MustProblem(t, res, tt.status, tt.code)

				if tt.field != "" && (len(p.Errors) != 1 || p.Errors[0].Field != tt.field || !strings.Contains(p.Detail, tt.field)) {
					t.Fatalf("problem %+v does not name field %q", p, tt.field)
				}
			}
			if (calls == 1) != tt.wantCalled {
				t.Fatalf("handler called %d times, want called=%v", calls, tt.wantCalled)
			}
		})
	}

	t.Run("a body over the limit closes the connection under wrapped writers", func(t *testing.T) {
		// A small overflow the server could drain: only the limit reaching
		// the connection's own writer makes it close.
		srv := httptest.NewServer(httpx.Chain(decodeHandler, httpx.AccessLog(nil), httpx.Recover(nil), httpx.BodyLimit(1024)))
		defer srv.Close()
		body := `{"title":"` + strings.Repeat("x", 2048) + `"}`
		req, _ := http.NewRequest("POST", srv.URL, io.MultiReader(strings.NewReader(body)))
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		MustProblem(t, res, 413, apperr.PayloadTooLarge)
		if !res.Close {
			t.Fatal("the connection stays open after a body over the limit")
		}
	})

	t.Run("custom limit", func(t *testing.T) {
		h := httpx.BodyLimit(10)(decodeHandler)
		r := httptest.NewRequest("POST", "/", strings.NewReader(`{"title":"eleven chars"}`))
		MustProblem(t, MustServe(t, h, r), 413, apperr.PayloadTooLarge)
	})
}

func TestAuthorize(t *testing.T) {
	tests := []struct {
		name      string
		perm      auth.Permission
		header    []string // Authorization values
		status    int
		code      apperr.Code
		subject   string // principal the handler must see ("" = none)
		challenge string // WWW-Authenticate must contain this ("" = absent)
	}{
		{"public, anonymous", "", nil, 200, "", "", ""},
		{"public, valid token recognised", "", []string{"Bearer cus-token"}, 200, "", "cus_1", ""},
		{"public, invalid token refused", "", []string{"Bearer nope"}, 401, apperr.Unauthorized, "", `error="invalid_token"`},
		{"public, non-bearer scheme refused", "", []string{"Basic dXNlcjpwYXNz"}, 401, apperr.Unauthorized, "", `error="invalid_request"`},
		{"missing token", "catalog:write", nil, 401, apperr.Unauthorized, "", `Bearer realm="souk"`},
		{"empty bearer", "catalog:write", []string{"Bearer "}, 401, apperr.Unauthorized, "", "Bearer"},
		{"scheme only", "catalog:write", []string{"Bearer"}, 401, apperr.Unauthorized, "", "Bearer"},
		{"bad token characters", "catalog:write", []string{"Bearer a,b"}, 401, apperr.Unauthorized, "", "Bearer"},
		{"two headers", "catalog:write", []string{"Bearer admin-token", "Bearer admin-token"}, 401, apperr.Unauthorized, "", "Bearer"},
		{"unknown token", "catalog:write", []string{"Bearer nope"}, 401, apperr.Unauthorized, "", `error="invalid_token"`},
		{"valid but not allowed", "catalog:write", []string{"Bearer viewer-token"}, 403, apperr.Forbidden, "", ""},
		{"customer on admin route", "catalog:read", []string{"Bearer cus-token"}, 403, apperr.Forbidden, "", ""},
		{"allowed", "catalog:write", []string{"Bearer admin-token"}, 200, "", "usr_admin", ""},
		{"scheme is case-insensitive", "catalog:read", []string{"bearer viewer-token"}, 200, "", "usr_viewer", ""},
		{"identity down is not a 401", "catalog:read", []string{"Bearer identity-down"}, 503, apperr.Unavailable, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var called bool
			var subject string
			h := httpx.Authorize(testAuthn, testAuthz, tt.perm)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				called = true
				if p, ok := auth.FromContext(r.Context()); ok {
					subject = p.Subject
				}
			}))
			r := httptest.NewRequest("GET", "/admin/products", nil)
			for _, v := range tt.header {
				r.Header.Add("Authorization", v)
			}
			res := MustServe(t, h, r)
			if tt.status == 200 {
				if res.StatusCode != 200 || !called || subject != tt.subject {
					t.Fatalf("status %d called %v subject %q; want 200 with subject %q", res.StatusCode, called, subject, tt.subject)
				}
			} else {
				MustProblem(t, res, tt.status, tt.code)
				if called {
					t.Fatal("handler ran")
				}
			}
			got := res.Header.Get("WWW-Authenticate")
			if (tt.challenge == "") != (got == "") || !strings.Contains(got, tt.challenge) {
				t.Fatalf("WWW-Authenticate = %q, want %q", got, tt.challenge)
			}
		})
	}

	t.Run("nil dependencies panic at wiring", func(t *testing.T) {
		if catchPanic(func() { httpx.Authorize(nil, testAuthz, "") }) == nil {
			t.Error("nil Authenticator accepted")
		}
		if catchPanic(func() { httpx.Authorize(testAuthn, nil, "catalog:read") }) == nil {
			t.Error("nil Authorizer accepted for a permission")
		}
		if catchPanic(func() { httpx.Authorize(testAuthn, nil, "") }) != nil {
			t.Error("nil Authorizer refused for a public route")
		}
	})
}

func TestProblemForAndError(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		code   apperr.Code
		detail string
	}{
		{"plain error is internal and hidden", errors.New("pq: connection refused to 10.0.0.7"), 500, apperr.Internal, "an internal error occurred; it has been logged"},
		{"wrapped coded error", errors.Join(errors.New("ctx"), apperr.New(apperr.NotFound, "no product prod_1")), 404, apperr.NotFound, "no product prod_1"},
		{"internal message hidden", apperr.New(apperr.Internal, "secret detail"), 500, apperr.Internal, "an internal error occurred; it has been logged"},
		{"domain code", apperr.New("out_of_stock", "LIN-S is out of stock"), 409, "out_of_stock", "LIN-S is out of stock"},
		{"unknown code is 422", apperr.New("something_new", "refused"), 422, "something_new", "refused"},
		{"rate limited gets Retry-After", apperr.New(apperr.RateLimited, "slow down"), 429, apperr.RateLimited, "slow down"},
		{"in flight", apperr.New(apperr.IdempotencyInFlight, "wait"), 409, apperr.IdempotencyInFlight, "wait"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, logs := MustLogger(t)
			r := httptest.NewRequest("GET", "/store/products/1", nil)
			ctx := httpx.WithLogger(httpx.WithRequestID(r.Context(), "req_abc"), logger)
			rec := httptest.NewRecorder()
			httpx.Error(rec, r.WithContext(ctx), tt.err)
			p := MustProblem(t, rec.Result(), tt.status, tt.code)
			if p.Detail != tt.detail || p.RequestID != "req_abc" || p.Instance != "/store/products/1" ||
				p.Type != httpx.ProblemTypeBase+string(tt.code) {
				t.Fatalf("problem = %+v", p)
			}
			if (tt.status == 429) != (rec.Header().Get("Retry-After") != "") {
				t.Fatalf("Retry-After = %q", rec.Header().Get("Retry-After"))
			}
			lines := logs.Lines(t)
			if (tt.status >= 500) != (len(lines) == 1) {
				t.Fatalf("logged %v; want one line exactly for 5xx", lines)
			}
			if tt.status >= 500 && lines[0]["request_id"] != "req_abc" {
				t.Fatalf("5xx log line lacks request_id: %v", lines[0])
			}
		})
	}
}

func TestDecodeContentType(t *testing.T) {
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "application/merge-patch+json", ""} {
		r := httptest.NewRequest("POST", "/", strings.NewReader(`{"title":"x"}`))
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		var p product
		if err := httpx.Decode(r, &p); err != nil {
			t.Errorf("Content-Type %q: %v", ct, err)
		}
	}
	r := httptest.NewRequest("POST", "/", strings.NewReader(`title=x`))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var p product
	if err := httpx.Decode(r, &p); !apperr.Is(err, apperr.UnsupportedMedia) {
		t.Fatalf("form body: %v, want unsupported_media_type", err)
	}
	if got := httpx.StatusOf(apperr.UnsupportedMedia); got != 415 {
		t.Fatalf("status of unsupported media = %d", got)
	}
	if err := httpx.Decode(httptest.NewRequest("POST", "/", strings.NewReader(`{}`)), p); err == nil || apperr.CodeOf(err) != apperr.Internal {
		t.Fatalf("decoding into a non-pointer = %v, want an internal (programming) error", err)
	}
}

func TestParseList(t *testing.T) {
	tests := []struct {
		query     string
		limit     int
		after     string
		wantField string
	}{
		{"", 20, "", ""},
		{"limit=1", 1, "", ""},
		{"limit=100&cursor=" + httpx.EncodeCursor("prod_9"), 100, "prod_9", ""},
		{"limit=0", 0, "", "limit"},
		{"limit=101", 0, "", "limit"},
		{"limit=ten", 0, "", "limit"},
		{"cursor=***", 0, "", "cursor"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			p, err := httpx.ParseList(httptest.NewRequest("GET", "/x?"+tt.query, nil))
			if tt.wantField != "" {
				var e *apperr.Error
				if !errors.As(err, &e) || e.Code != apperr.ValidationFailed || e.Fields[0].Field != tt.wantField {
					t.Fatalf("err = %v, want validation_failed naming %s", err, tt.wantField)
				}
				return
			}
			if err != nil || p.Limit != tt.limit || p.After != tt.after {
				t.Fatalf("ParseList = %+v, %v", p, err)
			}
		})
	}
	page := httpx.NewPage[int](nil, "")
	if b, _ := json.Marshal(page); string(b) != `{"data":[],"next_cursor":null}` {
		t.Fatalf("empty page = %s", b)
	}
	page = httpx.NewPage([]int{1}, "k")
	if after, err := httpx.DecodeCursor(*page.NextCursor); err != nil || after != "k" {
		t.Fatalf("cursor round trip = %q, %v", after, err)
	}
}

func TestCheckLimit(t *testing.T) {
	tests := []struct {
		limit, want int
		bad         bool
	}{
		{0, httpx.DefaultLimit, false},
		{1, 1, false},
		{httpx.MaxLimit, httpx.MaxLimit, false},
		{-1, -1, true},
		{httpx.MaxLimit + 1, httpx.MaxLimit + 1, true},
	}
	for _, tt := range tests {
		var v apperr.Validation
		got := httpx.CheckLimit(&v, tt.limit)
		var e *apperr.Error
		bad := errors.As(v.Err(), &e)
		if got != tt.want || bad != tt.bad {
			t.Errorf("CheckLimit(%d) = %d, error %v; want %d, error %v", tt.limit, got, v.Err(), tt.want, tt.bad)
			continue
		}
		if bad && (e.Code != apperr.ValidationFailed || len(e.Fields) != 1 || e.Fields[0].Field != "limit" ||
			e.Fields[0].Code != "out_of_range" || e.Fields[0].Message != "limit must be an integer from 1 to 100") {
			t.Errorf("CheckLimit(%d) error = %+v", tt.limit, e)
		}
	}
}

func TestIfMatchAndETag(t *testing.T) {
	tests := []struct {
		header  string
		version int64
		ok      bool
		bad     bool
	}{
		{"", 0, false, false},
		{"3", 3, true, false},
		{`"3"`, 3, true, false},
		{`W/"12"`, 12, true, false},
		{"0", 0, false, true},
		{"abc", 0, false, true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("PATCH", "/", nil)
		if tt.header != "" {
			r.Header.Set("If-Match", tt.header)
		}
		v, ok, err := httpx.IfMatch(r)
		if v != tt.version || ok != tt.ok || (err != nil) != tt.bad {
			t.Errorf("IfMatch(%q) = %d, %v, %v", tt.header, v, ok, err)
		}
		if tt.bad && (apperr.CodeOf(err) != apperr.BadRequest) {
			t.Errorf("IfMatch(%q) error code = %s", tt.header, apperr.CodeOf(err))
		}
	}
	rec := httptest.NewRecorder()
	httpx.SetETag(rec, 7)
	if rec.Header().Get("ETag") != `"7"` {
		t.Fatalf("ETag = %q", rec.Header().Get("ETag"))
	}
}

func TestLoggerDefaultsToDiscard(t *testing.T) {
	httpx.Logger(context.Background()).Error("goes nowhere") // must not panic
	if httpx.RequestIDFrom(context.Background()) != "" {
		t.Fatal("request id from an empty context")
	}
}

// TestWrappersKeepStreaming checks that the response wrappers of the
// middleware stay transparent: a handler can still flush (http.Flusher) and
// reach the connection through http.ResponseController.
func TestWrappersKeepStreaming(t *testing.T) {
	db := mustSQLite(t)
	tp, _ := MustTracer(t)
	logger, _ := MustLogger(t)
	idem := httpx.NewIdempotency(db, httpx.IdempotencyConfig{})
	reg := prometheus.NewRegistry()
	h := httpx.Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := w.(http.Flusher)
		if !ok {
			t.Error("the wrapped writer is not an http.Flusher")
			return
		}
		if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("ResponseController cannot reach the connection: %v", err)
		}
		_, _ = w.Write([]byte("one,"))
		f.Flush()
		_, _ = w.Write([]byte("two"))
	}),
		httpx.Tracing(tp, nil), httpx.RequestID(), httpx.AccessLog(logger), httpx.Recover(logger),
		httpx.BodyLimit(0), httpx.NewHTTPMetrics(reg).Middleware("s", "POST /stream"), idem.Middleware())
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, key := range []string{"", "stream-key"} {
		r, _ := http.NewRequest("POST", srv.URL+"/stream", strings.NewReader(`{}`))
		if key != "" {
			r.Header.Set("Idempotency-Key", key)
		}
		res, err := srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(b) != "one,two" {
			t.Fatalf("body = %q", b)
		}
	}
}

func TestJSONEncodeFailureIsA500Problem(t *testing.T) {
	rec := httptest.NewRecorder()
	httpx.JSON(rec, 200, map[string]any{"ch": make(chan int)})
	MustProblem(t, rec.Result(), 500, apperr.Internal)
}

func TestDecodeTypeErrorsNameTheKind(t *testing.T) {
	type target struct {
		S   string            `json:"s"`
		B   bool              `json:"b"`
		L   []int             `json:"l"`
		O   map[string]string `json:"o"`
		F   float64           `json:"f"`
		Sub struct{ N int }   `json:"sub"`
	}
	tests := []struct{ body, want string }{
		{`{"s":1}`, "a string"},
		{`{"b":"yes"}`, "a boolean"},
		{`{"l":{}}`, "an array"},
		{`{"o":[]}`, "an object"},
		{`{"f":"1.5"}`, "a number"},
		{`{"sub":3}`, "an object"},
		{`[]`, "request body must be a JSON struct"},
	}
	for _, tt := range tests {
		var v target
		err := httpx.Decode(httptest.NewRequest("POST", "/", strings.NewReader(tt.body)), &v)
		if !apperr.Is(err, apperr.BadRequest) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Decode(%s) = %v, want a bad_request saying %q", tt.body, err, tt.want)
		}
	}
}
