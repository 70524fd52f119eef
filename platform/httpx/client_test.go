package httpx_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/resilience"
)

// answer is one scripted answer of a scriptServer.
type answer struct {
	status      int
	contentType string
	body        string
}

var (
	ok200       = answer{200, "application/json", `{"name":"mug"}`}
	plain503    = answer{503, "text/plain", "busy"}
	problem503  = answer{503, "application/problem+json", `{"type":"https://souk.dev/problems/unavailable","status":503,"code":"unavailable"}`}
	problem500  = answer{500, "application/problem+json", `{"type":"https://souk.dev/problems/internal","status":500,"code":"internal","detail":"an internal error occurred"}`}
	problem404  = answer{404, "application/problem+json", `{"type":"https://souk.dev/problems/not_found","status":404,"code":"not_found","detail":"no product x"}`}
	inUse409    = answer{409, "application/problem+json", `{"status":409,"code":"idempotency_key_in_use","detail":"still running"}`}
	plain429    = answer{429, "text/plain", "slow down"}
	malformed   = answer{200, "application/json", `{"name":`}
	validation  = answer{400, "application/problem+json; charset=utf-8", `{"status":400,"code":"validation_failed","detail":"limit must be 1 to 100","errors":[{"field":"limit","code":"out_of_range","message":"must be 1 to 100"}]}`}
	noContent   = answer{204, "", ""}
	created201  = answer{201, "application/json", `{"name":"new"}`}
	problemNoCd = answer{409, "application/problem+json", `{"status":409,"title":"Conflict"}`}
)

// scriptServer answers the scripted answers in turn, then its last one
// again, recording every request it got.
type scriptServer struct {
	*httptest.Server
	mu       sync.Mutex
	answers  []answer
	requests []recorded
}

type recorded struct {
	method, uri, body string
	header            http.Header
}

func newScriptServer(t *testing.T, answers ...answer) *scriptServer {
	t.Helper()
	s := &scriptServer{answers: answers}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.requests = append(s.requests, recorded{r.Method, r.URL.RequestURI(), string(b), r.Header.Clone()})
		a := s.answers[0]
		if len(s.answers) > 1 {
			s.answers = s.answers[1:]
		}
		s.mu.Unlock()
		if a.contentType != "" {
			w.Header().Set("Content-Type", a.contentType)
		}
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *scriptServer) calls() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.requests...)
}

// fastPolicy is a policy that retries like ClientPolicy, only faster.
func fastPolicy(failure func(error) bool) *resilience.Policy {
	return resilience.MustNew(resilience.Config{Name: "widgets", Failure: failure,
		Backoff: resilience.Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond}})
}

type widget struct {
	Name string `json:"name"`
}

func TestClientRetries(t *testing.T) {
	for _, tt := range []struct {
		name      string
		method    string
		opts      []httpx.CallOption
		failure   func(error) bool // the policy's; nil: no policy
		answers   []answer
		wantCalls int
		wantCode  apperr.Code // "" for success
	}{
		{"GET retries 503s, then succeeds", "GET", nil, httpx.Transient, []answer{plain503, problem503, ok200}, 3, ""},
		{"GET gives up after 3 attempts", "GET", nil, httpx.Transient, []answer{plain503}, 3, apperr.Unavailable},
		{"PUT and DELETE are idempotent", "PUT", nil, httpx.Transient, []answer{plain503, ok200}, 2, ""},
		{"DELETE", "DELETE", nil, httpx.Transient, []answer{plain503, noContent}, 2, ""},
		{"429 is retried", "GET", nil, httpx.Transient, []answer{plain429, ok200}, 2, ""},
		{"idempotency_key_in_use is retried", "GET", nil, httpx.Transient, []answer{inUse409, ok200}, 2, ""},
		{"a POST is tried once", "POST", nil, httpx.Transient, []answer{plain503, ok200}, 1, apperr.Unavailable},
		{"a POST marked idempotent is retried", "POST", []httpx.CallOption{httpx.Idempotent()}, httpx.Transient, []answer{plain503, created201}, 2, ""},
		{"a POST with a key is retried", "POST", []httpx.CallOption{httpx.IdempotencyKey("k1")}, httpx.Transient, []answer{problem503, ok200}, 2, ""},
		{"an empty key does not make a POST idempotent", "POST", []httpx.CallOption{httpx.IdempotencyKey("")}, httpx.Transient, []answer{problem503, ok200}, 1, apperr.Unavailable},
		{"an answer is not retried", "GET", nil, httpx.Transient, []answer{problem404, ok200}, 1, apperr.NotFound},
		{"a remote internal error is not transient", "GET", nil, httpx.Transient, []answer{problem500, ok200}, 1, apperr.Unavailable},
		{"but resilience.Retryable retries it", "GET", nil, resilience.Retryable, []answer{problem500, ok200}, 2, ""},
		{"a malformed answer is not retried", "GET", nil, httpx.Transient, []answer{malformed, ok200}, 1, apperr.Unavailable},
		{"without a policy, one attempt", "GET", nil, nil, []answer{plain503, ok200}, 1, apperr.Unavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScriptServer(t, tt.answers...)
			var opts []httpx.ClientOption
			if tt.failure != nil {
				opts = append(opts, httpx.WithPolicy(fastPolicy(tt.failure)))
			}
			c := httpx.NewClient("widgets", srv.URL, srv.Client(), opts...)
			var in any
			if tt.method == "POST" {
				in = widget{Name: "mug"}
			}
			var out widget
			err := c.Do(context.Background(), tt.method, "/widgets/1", in, &out, tt.opts...)
			if got := apperr.CodeOf(err); got != tt.wantCode {
				t.Fatalf("err = %v, want code %q", err, tt.wantCode)
			}
			if n := len(srv.calls()); n != tt.wantCalls {
				t.Fatalf("calls = %d, want %d", n, tt.wantCalls)
			}
			if calls := srv.calls(); tt.method == "POST" {
				for _, c := range calls {
					if c.body != `{"name":"mug"}` {
						t.Fatalf("body of a retry = %q", c.body)
					}
				}
			}
		})
	}
}

func TestClientDecodesAnswers(t *testing.T) {
	for _, tt := range []struct {
		name       string
		answer     answer
		wantCode   apperr.Code
		wantMsg    string
		wantFields []apperr.FieldError
		wantOut    widget
		wantStatus int // of the ResponseError; 0: none
	}{
		{"200", ok200, "", "", nil, widget{Name: "mug"}, 0},
		{"201", created201, "", "", nil, widget{Name: "new"}, 0},
		{"204 decodes nothing", noContent, "", "", nil, widget{}, 0},
		{"problem keeps code, detail and fields", validation, apperr.ValidationFailed, "limit must be 1 to 100",
			[]apperr.FieldError{{Field: "limit", Code: "out_of_range", Message: "must be 1 to 100"}}, widget{}, 400},
		{"problem not_found", problem404, apperr.NotFound, "no product x", nil, widget{}, 404},
		{"remote internal is unavailable", problem500, apperr.Unavailable, "an internal error occurred", nil, widget{}, 500},
		{"problem without a code goes by status", problemNoCd, apperr.Conflict, "widgets answered 409 Conflict", nil, widget{}, 409},
		{"malformed JSON", malformed, apperr.Unavailable, "widgets answered with malformed JSON", nil, widget{}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScriptServer(t, tt.answer)
			var out widget
			err := httpx.NewClient("widgets", srv.URL, srv.Client()).Do(context.Background(), "GET", "/w", nil, &out)
			if tt.wantCode == "" {
				if err != nil || out != tt.wantOut {
					t.Fatalf("Do = %+v, %v", out, err)
				}
				return
			}
			var e *apperr.Error
			if !errors.As(err, &e) || e.Code != tt.wantCode || e.Message != tt.wantMsg || !reflect.DeepEqual(e.Fields, tt.wantFields) {
				t.Fatalf("err = %#v, want %s %q %v", err, tt.wantCode, tt.wantMsg, tt.wantFields)
			}
			var re *httpx.ResponseError
			if got := errors.As(err, &re); got != (tt.wantStatus != 0) || (got && re.StatusCode != tt.wantStatus) {
				t.Fatalf("ResponseError = %+v, want status %d", re, tt.wantStatus)
			}
		})
	}
}

func TestClientCodesPlainErrorsByStatus(t *testing.T) {
	for status, want := range map[int]apperr.Code{
		400: apperr.BadRequest, 401: apperr.Unauthorized, 402: "payment_declined", 403: apperr.Forbidden,
		404: apperr.NotFound, 409: apperr.Conflict, 418: apperr.Internal, 429: apperr.RateLimited,
		500: apperr.Unavailable, 502: apperr.Unavailable, 504: apperr.Unavailable,
	} {
		srv := newScriptServer(t, answer{status, "text/html", "<h1>oops</h1>"})
		err := httpx.NewClient("widgets", srv.URL, srv.Client()).Do(context.Background(), "GET", "/w", nil, nil)
		var re *httpx.ResponseError
		if apperr.CodeOf(err) != want || !errors.As(err, &re) || re.Body != "<h1>oops</h1>" || re.Code != "" {
			t.Errorf("%d: err = %v, want code %s", status, err, want)
		}
	}
}

func TestClientSendsTheRequest(t *testing.T) {
	srv := newScriptServer(t, ok200)
	c := httpx.NewClient("widgets", srv.URL+"/", srv.Client(), httpx.WithBearerToken("sk_svc"))
	ctx := context.Background()
	if err := c.Do(ctx, "POST", "/widgets?sort=name", widget{Name: "mug"}, nil,
		httpx.IdempotencyKey("ord_1:reserve"), httpx.Query(url.Values{"q": {"a b"}}), httpx.Header("X-Cart-Token", "ct_1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, "GET", "/widgets/1", nil, nil, httpx.Header("Authorization", "Bearer caller")); err != nil {
		t.Fatal(err)
	}
	calls := srv.calls()
	post, get := calls[0], calls[1]
	for _, tt := range []struct{ name, got, want string }{
		{"POST URI", post.uri, "/widgets?sort=name&q=a+b"},
		{"POST body", post.body, `{"name":"mug"}`},
		{"POST Content-Type", post.header.Get("Content-Type"), "application/json"},
		{"POST Accept", post.header.Get("Accept"), "application/json, application/problem+json"},
		{"POST Authorization", post.header.Get("Authorization"), "Bearer sk_svc"},
		{"POST Idempotency-Key", post.header.Get("Idempotency-Key"), "ord_1:reserve"},
		{"POST X-Cart-Token", post.header.Get("X-Cart-Token"), "ct_1"},
		{"GET URI", get.uri, "/widgets/1"},
		{"GET body", get.body, ""},
		{"GET Content-Type", get.header.Get("Content-Type"), ""},
		{"GET Idempotency-Key", get.header.Get("Idempotency-Key"), ""},
		{"GET Authorization (the call's own)", get.header.Get("Authorization"), "Bearer caller"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

// TestClientTimesOut: an attempt that outlasts the policy's timeout is
// unavailable (resilience.ErrTimeout), and retried when idempotent.
func TestClientTimesOut(t *testing.T) {
	release := make(chan struct{})
	var (
		mu    sync.Mutex
		calls int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	p := resilience.MustNew(resilience.Config{Name: "widgets", Timeout: 10 * time.Millisecond, Failure: httpx.Transient,
		Backoff: resilience.Backoff{Initial: time.Millisecond}})
	c := httpx.NewClient("widgets", srv.URL, srv.Client(), httpx.WithPolicy(p))
	err := c.Do(context.Background(), "GET", "/slow", nil, nil)
	if !apperr.Is(err, apperr.Unavailable) || !errors.Is(err, resilience.ErrTimeout) || !httpx.Transient(err) {
		t.Fatalf("err = %v, want an unavailable timeout", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 3 {
		t.Fatalf("calls = %d, want 3", calls)
	}
}

func TestClientCallerGivesUp(t *testing.T) {
	srv := newScriptServer(t, ok200)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, opts := range [][]httpx.ClientOption{nil, {httpx.WithPolicy(fastPolicy(httpx.Transient))}} {
		err := httpx.NewClient("widgets", srv.URL, srv.Client(), opts...).Do(ctx, "GET", "/w", nil, nil)
		if !apperr.Is(err, apperr.Unavailable) || !errors.Is(err, context.Canceled) || httpx.Transient(err) {
			t.Fatalf("err = %v, want unavailable, abandoned", err)
		}
	}
	if n := len(srv.calls()); n != 0 {
		t.Fatalf("calls = %d", n)
	}
}

func TestClientUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	err := httpx.NewClient("widgets", srv.URL, nil, httpx.WithPolicy(fastPolicy(httpx.Transient))).Do(context.Background(), "GET", "/w", nil, nil)
	var e *apperr.Error
	if !errors.As(err, &e) || e.Code != apperr.Unavailable || e.Message != "widgets is unreachable" || !httpx.Transient(err) {
		t.Fatalf("err = %v", err)
	}
}

func TestClientPolicy(t *testing.T) {
	p := httpx.ClientPolicy("catalog")
	cfg := p.Config()
	if cfg.Name != "catalog" || cfg.Timeout != 5*time.Second || cfg.MaxAttempts != 3 || cfg.Backoff.Initial != 50*time.Millisecond ||
		cfg.Backoff.Jitter != 0.5 || cfg.Idempotent {
		t.Fatalf("ClientPolicy config = %+v", cfg)
	}
	// No breaker: failures never open it.
	for range 20 {
		_ = p.Do(context.Background(), func(context.Context) error { return fmt.Errorf("down: %w", resilience.ErrTimeout) })
	}
	if p.State() != resilience.BreakerClosed {
		t.Fatalf("breaker %s after failures", p.State())
	}
}

func TestNewServiceClient(t *testing.T) {
	srv := newScriptServer(t, plain503, ok200)
	// The default policy (ClientPolicy) retries the 503.
	if err := httpx.NewServiceClient("widgets", srv.URL, srv.Client()).Do(context.Background(), "GET", "/w", nil, nil); err != nil {
		t.Fatal(err)
	}
	// A policy given replaces it.
	srv = newScriptServer(t, plain503, ok200)
	one := resilience.MustNew(resilience.Config{Name: "widgets", MaxAttempts: 1})
	err := httpx.NewServiceClient("widgets", srv.URL, nil, httpx.WithPolicy(one)).Do(context.Background(), "GET", "/w", nil, nil)
	if !apperr.Is(err, apperr.Unavailable) || len(srv.calls()) != 1 {
		t.Fatalf("err = %v after %d calls", err, len(srv.calls()))
	}
}
