// Package apitest checks, in tests, that Souk's services keep their
// published contracts: HTTP exchanges against the OpenAPI document
// (Contract), events against their JSON Schemas (EventSchemas), and error
// answers against the problem document every service shares (WantProblem).
// It is meant for _test.go files; every helper takes a testing.TB.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/soukhq/souk/api"
	"github.com/soukhq/souk/platform/httpx"
)

// InvalidRequestHeader marks a request a test sends wrong on purpose: the
// Contract does not validate it (only its answer, which must still be
// documented). Its value is anything but "".
const InvalidRequestHeader = "X-Test-Invalid-Request"

// Contract validates HTTP exchanges against the merged OpenAPI document
// (api.LoadOpenAPI), and remembers which operations they exercised. It is
// safe for concurrent use.
type Contract struct {
	doc    *openapi3.T
	router routers.Router

	mu   sync.Mutex
	seen map[string]bool // "METHOD /path/{template}"
}

// MustContract loads and validates the OpenAPI document and returns a
// Contract over it; it fails the test when the document does not load.
func MustContract(t testing.TB) *Contract {
	t.Helper()
	doc, err := api.LoadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	return &Contract{doc: doc, router: router, seen: map[string]bool{}}
}

// Doc is the OpenAPI document.
func (c *Contract) Doc() *openapi3.T { return c.doc }

// Operation is one documented operation.
type Operation struct {
	Method, Path string // "GET", "/admin/products/{id}"
	*openapi3.Operation
}

// Pattern is the operation as a net/http pattern, like httpx.Route.Pattern.
func (o Operation) Pattern() string { return o.Method + " " + o.Path }

// Permission is the operation's x-permission ("" when it names none).
func (o Operation) Permission() string {
	p, _ := o.Extensions["x-permission"].(string)
	return p
}

// Public reports whether the operation is documented as needing no
// credentials (an empty security requirement).
func (o Operation) Public() bool { return o.Security != nil && len(*o.Security) == 0 }

// Operations lists the operations documented under the path prefix,
// sorted by path and method.
func (c *Contract) Operations(prefix string) []Operation {
	var out []Operation
	for path, item := range c.doc.Paths.Map() {
		if !strings.HasPrefix(path, prefix) {
			continue
		}
		for method, op := range item.Operations() {
			out = append(out, Operation{Method: method, Path: path, Operation: op})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pattern() < out[j].Pattern() })
	return out
}

// MustDocumentRoutes checks that every route is documented — its path and
// method an operation whose x-permission is the route's permission — and
// documented public (no security) exactly when it needs no permission,
// except the tokenRoutes: patterns of routes without a permission whose
// handler checks a token itself (a customer's own profile). It returns the
// documented operation of each route, by pattern, for the service's own
// rules.
func (c *Contract) MustDocumentRoutes(t testing.TB, routes []httpx.Route, tokenRoutes ...string) map[string]Operation {
	t.Helper()
	out := map[string]Operation{}
	for _, r := range routes {
		item := c.doc.Paths.Value(r.Path)
		if item == nil {
			t.Errorf("%s: path not documented", r.Pattern())
			continue
		}
		op := item.GetOperation(r.Method)
		if op == nil {
			t.Errorf("%s: operation not documented", r.Pattern())
			continue
		}
		o := Operation{Method: r.Method, Path: r.Path, Operation: op}
		if o.Permission() != string(r.Permission) {
			t.Errorf("%s: x-permission %q, route permission %q", r.Pattern(), o.Permission(), r.Permission)
		}
		if want := r.Permission == "" && !slices.Contains(tokenRoutes, r.Pattern()); o.Public() != want {
			t.Errorf("%s: documented public=%v, want %v (route permission %q)", r.Pattern(), o.Public(), want, r.Permission)
		}
		out[r.Pattern()] = o
	}
	return out
}

// MustRoute returns the documented operation req is for; it fails the
// test when there is none.
func (c *Contract) MustRoute(t testing.TB, req *http.Request) Operation {
	t.Helper()
	route, _, err := c.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s: no operation in the document: %v", req.Method, req.URL, err)
	}
	return Operation{Method: route.Method, Path: route.Path, Operation: route.Operation}
}

// Exercised reports whether an exchange checked by the Contract was an
// operation of method and path (a template, "/admin/products/{id}").
func (c *Contract) Exercised(method, path string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[method+" "+path]
}

// Serve performs req against h and checks the exchange (see Check),
// failing the test at once when req is no documented operation. It
// returns the response.
func (c *Contract) Serve(t testing.TB, h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	c.MustRoute(t, req)
	body := mustReadBody(t, req)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, withBody(req, body))
	c.Check(t, req, body, w.Result(), w.Body.Bytes())
	return w
}

// Handler wraps h so that every exchange through it is checked (see
// Check); the answers pass through unchanged. For handlers a real client
// calls (an httptest.Server), so it reports with Errorf only.
func (c *Contract) Handler(t testing.TB, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("%s %s: read the request body: %v", r.Method, r.URL, err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, withBody(r, body))
		c.Check(t, r, body, rec.Result(), rec.Body.Bytes())
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// Check validates one exchange: the request with its body reqBody (unless
// it carries InvalidRequestHeader) and the response with its body
// respBody, whose status must be documented too. Mismatches are reported
// with t.Errorf.
func (c *Contract) Check(t testing.TB, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	t.Helper()
	in, ok := c.input(t, req, reqBody)
	if !ok {
		return
	}
	if req.Header.Get(InvalidRequestHeader) == "" {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("%s %s: request does not match the document: %v", req.Method, req.URL, err)
		}
	}
	if err := validateResponse(in, resp.StatusCode, resp.Header, respBody); err != nil {
		t.Errorf("%s %s → %d: response does not match the document: %v\n%s", req.Method, req.URL, resp.StatusCode, err, respBody)
	}
}

// MustRejectDrift proves the document precise: the response w to req
// (valid as served), decoded, changed by mutate (a field lost, added or
// mistyped) and encoded again, must fail validation.
func (c *Contract) MustRejectDrift(t testing.TB, req *http.Request, w *httptest.ResponseRecorder, mutate func(m map[string]any)) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	mutate(m)
	b, _ := json.Marshal(m)
	in, ok := c.input(t, req, nil)
	if !ok {
		t.FailNow()
	}
	if err := validateResponse(in, w.Code, w.Header(), b); err == nil {
		t.Fatalf("a drifted response passed validation:\n%s", bytes.TrimSpace(b))
	}
}

// input finds req's operation, records it as exercised, and returns the
// validation input for req with the body.
func (c *Contract) input(t testing.TB, req *http.Request, body []byte) (*openapi3filter.RequestValidationInput, bool) {
	t.Helper()
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		t.Errorf("%s %s: no operation in the document: %v", req.Method, req.URL, err)
		return nil, false
	}
	c.mu.Lock()
	c.seen[route.Method+" "+route.Path] = true
	c.mu.Unlock()
	return &openapi3filter.RequestValidationInput{
		Request: withBody(req, body), PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}, true
}

func validateResponse(in *openapi3filter.RequestValidationInput, status int, header http.Header, body []byte) error {
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), out)
}

// mustReadBody reads req's body (nil: none).
func mustReadBody(t testing.TB, req *http.Request) []byte {
	t.Helper()
	if req.Body == nil {
		return nil
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatalf("%s %s: read the request body: %v", req.Method, req.URL, err)
	}
	return body
}

// withBody returns a shallow copy of req that reads body.
func withBody(req *http.Request, body []byte) *http.Request {
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return r
}
