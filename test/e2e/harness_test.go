package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/soukhq/souk/api"
	"github.com/soukhq/souk/cmd/souk/app"
)

// adminKey is the SOUK_ADMIN_API_KEY the tests start the server with.
const adminKey = "sk_e2e_admin_0123456789abcdef0123456789abcdef"

// server is a running Souk process under test.
type server struct {
	t      testing.TB
	base   string
	app    *app.App
	router routers.Router
	hc     *http.Client
}

// mustStart starts the real server as main would: flags parsed by the same
// Config, listening on port 0, data in a temporary directory.
func mustStart(t testing.TB, args ...string) *server {
	t.Helper()
	var cfg app.Config
	fs := flag.NewFlagSet("souk serve", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	all := append([]string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--admin-api-key", adminKey, "--log-level", "warn"}, args...)
	if err := fs.Parse(all); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	a, err := app.New(cfg, logger, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	s := &server{t: t, base: "http://" + a.Addr(), app: a, hc: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	doc, err := api.LoadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: s.base}}
	if s.router, err = legacy.NewRouter(doc); err != nil {
		t.Fatal(err)
	}
	return s
}

// response is an HTTP answer, its body read.
type response struct {
	*http.Response
	body []byte
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v\n%s", r.Request.URL, err, r.body)
	}
}

// problemCode returns the code of a problem+json answer.
func (r response) problemCode(t testing.TB) string {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s %s: content type %q, want application/problem+json\n%s", r.Request.Method, r.Request.URL, ct, r.body)
	}
	var p struct {
		Code   string `json:"code"`
		Errors []struct {
			Field string `json:"field"`
		} `json:"errors"`
	}
	r.decode(t, &p)
	return p.Code
}

// do sends a request and checks the response against the OpenAPI document.
// headers come in pairs: name, value.
func (s *server) do(method, path string, body any, headers ...string) response {
	s.t.Helper()
	var rd io.Reader
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			s.t.Fatal(err)
		}
	}
	if raw != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Request = req
	s.checkContract(req, raw, resp, got)
	return response{Response: resp, body: got}
}

// checkContract validates the response against the OpenAPI document when
// the route is documented there (operations endpoints such as /metrics are
// plain text and not part of the JSON contract).
func (s *server) checkContract(req *http.Request, reqBody []byte, resp *http.Response, body []byte) {
	s.t.Helper()
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		if strings.HasPrefix(req.URL.Path, "/admin/") || strings.HasPrefix(req.URL.Path, "/store/") {
			if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
				s.t.Errorf("%s %s is served (%d) but not documented in openapi.yaml: %v", req.Method, req.URL.Path, resp.StatusCode, err)
			}
		}
		return
	}
	if reqBody != nil {
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true},
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		s.t.Errorf("%s %s → %d does not match openapi.yaml: %v\nbody: %s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
}

func (s *server) admin(method, path string, body any, headers ...string) response {
	s.t.Helper()
	return s.do(method, path, body, append([]string{"Authorization", "Bearer " + adminKey}, headers...)...)
}

func wantStatus(t testing.TB, r response, want int) {
	t.Helper()
	if r.StatusCode != want {
		t.Fatalf("%s %s = %d, want %d\n%s", r.Request.Method, r.Request.URL.Path, r.StatusCode, want, r.body)
	}
}
