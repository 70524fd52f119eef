package payments

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/soukhq/souk/api"
	"github.com/soukhq/souk/platform/auth"
)

// MustLoadOpenAPI loads and validates the merged OpenAPI document and
// returns it with a router over its operations.
func MustLoadOpenAPI(t testing.TB) (*openapi3.T, routers.Router) {
	t.Helper()
	doc, err := api.LoadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	return doc, router
}

// contractChecker validates requests and responses of a handler against
// the OpenAPI document.
type contractChecker struct {
	t       *testing.T
	router  routers.Router
	mux     *http.ServeMux // the routes, to tell which pattern serves a request
	handler http.Handler   // mux, as the gateway would call it
}

// check performs rq against the handler, validates the request and the
// response against the document, and returns the response.
func (c contractChecker) check(rq request) *httptest.ResponseRecorder {
	c.t.Helper()
	req := rq.build()
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Fatalf("%s %s: no operation in the document: %v", rq.method, rq.path, err)
	}
	_, pattern := c.mux.Handler(rq.build())
	if _, path, _ := strings.Cut(pattern, " "); route.Path != path {
		c.t.Fatalf("%s %s: the document routes it to %s", rq.method, rq.path, route.Path)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
	// Requests the tests send on purpose wrong are not checked; their answers are.
	if rq.header["X-Test-Invalid-Request"] == "" {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			c.t.Errorf("%s %s: request does not match the document: %v", rq.method, rq.path, err)
		}
	}
	if rq.body != "" {
		req.Body = io.NopCloser(strings.NewReader(rq.body))
	}
	w := httptest.NewRecorder()
	c.handler.ServeHTTP(w, req)
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 w.Code,
		Header:                 w.Header(),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(w.Body.Bytes())
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.t.Errorf("%s %s → %d: response does not match the document: %v\n%s", rq.method, rq.path, w.Code, err, w.Body)
	}
	return w
}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc, _ := MustLoadOpenAPI(t)
	s := MustNewSQLite(t)
	valid := map[auth.Permission]bool{PermissionRead: true, PermissionWrite: true, PermissionRefund: true, PermissionOpsRead: true, PermissionOpsWrite: true}
	for _, r := range s.Routes() {
		item := doc.Paths.Value(r.Path)
		if item == nil {
			t.Errorf("%s: path not documented", r.Pattern())
			continue
		}
		op := item.GetOperation(r.Method)
		if op == nil {
			t.Errorf("%s: operation not documented", r.Pattern())
			continue
		}
		perm, _ := op.Extensions["x-permission"].(string)
		if perm != string(r.Permission) {
			t.Errorf("%s: x-permission %q, route permission %q", r.Pattern(), perm, r.Permission)
		}
		if !valid[r.Permission] {
			t.Errorf("%s: permission %q", r.Pattern(), r.Permission)
		}
		if r.Method == http.MethodGet && r.Permission != PermissionRead && r.Permission != PermissionOpsRead {
			t.Errorf("%s: a GET needs a read permission", r.Pattern())
		}
	}
	for path, item := range doc.Paths.Map() {
		if !strings.HasPrefix(path, "/admin/payments") {
			continue
		}
		for method := range item.Operations() {
			found := false
			for _, r := range s.Routes() {
				found = found || (r.Path == path && r.Method == method)
			}
			if !found {
				t.Errorf("%s %s documented but not routed", method, path)
			}
		}
	}
}

func TestHandlersMatchOpenAPI(t *testing.T) {
	_, router := MustLoadOpenAPI(t)
	cfg := testConfig()
	cfg.Secondary = "backup"
	f := newFixture(t, MustNewSQLite(t).db, cfg, WithProvider(NewTestProvider(0).Named("backup")))
	// The document and the mux must agree on literal vs templated
	// segments (/admin/payments/provider vs /admin/payments/{id}).
	mux := mount(f.Routes())
	h := withPrincipal(mux, auth.Principal{Subject: "key_orders", Kind: auth.KindAPIKey, Role: "admin"})
	c := contractChecker{t: t, router: router, mux: mux, handler: h}
	invalid := map[string]string{"X-Test-Invalid-Request": "1"}

	p := MustDecode[Payment](t, MustStatus(t, http.StatusCreated, c.check(request{method: "POST", path: "/admin/payments/authorize",
		body: `{"key": "ord_1:authorize", "order_id": "ord_1", "amount": {"amount": 5000, "currency": "EUR"}, "token": "tok_visa", "customer_id": "cus_1", "email": "ada@example.com"}`})))
	c.check(request{method: "POST", path: "/admin/payments/authorize", header: map[string]string{"Idempotency-Key": "ord_1:authorize"},
		body: `{"order_id": "ord_1", "amount": {"amount": 5000, "currency": "EUR"}, "token": "tok_visa", "customer_id": "cus_1", "email": "ada@example.com"}`})
	c.check(request{method: "GET", path: "/admin/payments/" + p.ID})
	c.check(request{method: "GET", path: "/admin/payments/by-key/ord_1:authorize"})
	c.check(request{method: "GET", path: "/admin/payments?order_id=ord_1&limit=1"})
	c.check(request{method: "GET", path: "/admin/payments"})
	c.check(request{method: "POST", path: "/admin/payments/" + p.ID + "/capture", body: `{"key": "ord_1:capture", "amount": {"amount": 4000, "currency": "EUR"}}`})
	c.check(request{method: "POST", path: "/admin/payments/" + p.ID + "/refund", body: `{"key": "ord_1:refund", "amount": {"amount": 1000, "currency": "EUR"}}`})
	c.check(request{method: "POST", path: "/admin/payments/" + p.ID + "/refund", header: map[string]string{"Idempotency-Key": "ord_1:refund-2"},
		body: `{"amount": {"amount": 3000, "currency": "EUR"}}`})
	v := MustDecode[Payment](t, c.check(request{method: "POST", path: "/admin/payments/authorize",
		body: `{"key": "ord_2:authorize", "order_id": "ord_2", "amount": {"amount": 100, "currency": "EUR"}, "token": "tok_slow", "provider": "test"}`}))
	c.check(request{method: "POST", path: "/admin/payments/" + v.ID + "/void", body: `{"key": "ord_2:void"}`})
	c.check(request{method: "POST", path: "/admin/payments/" + v.ID + "/void", header: map[string]string{"Idempotency-Key": "ord_2:void-2"}})
	c.check(request{method: "GET", path: "/admin/payments/provider"})
	c.check(request{method: "POST", path: "/admin/payments/provider", body: `{"provider": "backup", "reason": "drill"}`})
	c.check(request{method: "GET", path: "/admin/payments/provider"})

	// Errors are problem documents too.
	wantProblem(t, c.check(request{method: "POST", path: "/admin/payments/authorize",
		body: `{"key": "ord_3:authorize", "order_id": "ord_3", "amount": {"amount": 100, "currency": "EUR"}, "token": "tok_insufficient_funds", "provider": "test"}`}),
		http.StatusPaymentRequired, "payment_declined", "token")
	wantProblem(t, c.check(request{method: "POST", path: "/admin/payments/authorize",
		body: `{"key": "ord_4:authorize", "order_id": "ord_4", "amount": {"amount": 100, "currency": "EUR"}, "token": "tok_timeout", "provider": "test"}`}),
		http.StatusServiceUnavailable, "unavailable")
	wantProblem(t, c.check(request{method: "POST", path: "/admin/payments/authorize", header: invalid,
		body: `{"order_id": "", "amount": {"amount": 0, "currency": "EUR"}, "token": ""}`}), http.StatusBadRequest, "validation_failed", "key", "order_id", "token")
	wantProblem(t, c.check(request{method: "POST", path: "/admin/payments/authorize",
		body: `{"key": "ord_1:authorize", "order_id": "ord_1", "amount": {"amount": 1, "currency": "EUR"}, "token": "tok_visa"}`}),
		http.StatusUnprocessableEntity, "idempotency_key_reused", "key")
	wantProblem(t, c.check(request{method: "POST", path: "/admin/payments/authorize", header: map[string]string{"Idempotency-Key": "other"},
		body: `{"key": "ord_5:authorize", "order_id": "ord_5", "amount": {"amount": 1, "currency": "EUR"}, "token": "tok_visa"}`}),
		http.StatusBadRequest, "validation_failed", "key")
	wantProblem(t, c.check(request{method: "POST", path: "/admin/payments/" + p.ID + "/refund",
		body: `{"key": "ord_1:refund-3", "amount": {"amount": 1, "currency": "EUR"}}`}), http.StatusConflict, "conflict")
	wantProblem(t, c.check(request{method: "POST", path: "/admin/payments/" + v.ID + "/capture", header: invalid,
		body: `{"key": "ord_2:capture"}`}), http.StatusBadRequest, "validation_failed", "amount")
	wantProblem(t, c.check(request{method: "POST", path: "/admin/payments/" + v.ID + "/capture",
		body: `{"key": "ord_2:capture", "amount": {"amount": 100, "currency": "EUR"}}`}), http.StatusConflict, "conflict")
	wantProblem(t, c.check(request{method: "POST", path: "/admin/payments/" + v.ID + "/void", header: invalid,
		body: `{"key": "ord_2:void-3", "amount": {"amount": 100, "currency": "EUR"}}`}), http.StatusBadRequest, "bad_request", "amount")
	wantProblem(t, c.check(request{method: "GET", path: "/admin/payments/pay_01JD3Q0000000000000000000A"}), http.StatusNotFound, "not_found")
	wantProblem(t, c.check(request{method: "GET", path: "/admin/payments/by-key/nope"}), http.StatusNotFound, "not_found")
	wantProblem(t, c.check(request{method: "GET", path: "/admin/payments/by-key/ord_4:authorize"}), http.StatusNotFound, "not_found")
	wantProblem(t, c.check(request{method: "POST", path: "/admin/payments/provider", header: invalid, body: `{"provider": "paypal", "reason": ""}`}),
		http.StatusBadRequest, "validation_failed", "provider", "reason")
	wantProblem(t, c.check(request{method: "GET", path: "/admin/payments?limit=0", header: invalid}), http.StatusBadRequest, "validation_failed", "limit")
}

// MustStatus fails unless the response has the status.
func MustStatus(t testing.TB, want int, w *httptest.ResponseRecorder) *httptest.ResponseRecorder {
	t.Helper()
	if w.Code != want {
		t.Fatalf("status %d, want %d\n%s", w.Code, want, w.Body)
	}
	return w
}

// TestOpenAPICatchesDrift makes sure the schemas are precise: a real
// response that lost or mistyped a field must fail validation.
func TestOpenAPICatchesDrift(t *testing.T) {
	_, router := MustLoadOpenAPI(t)
	f := MustNewSQLite(t)
	h := mount(f.Routes())
	p := MustAuthorize(t, f, "k", 100)
	for _, tt := range []struct {
		name, path string
		mutate     func(m map[string]any)
	}{
		{"payment without status", "/admin/payments/" + p.ID, func(m map[string]any) { delete(m, "status") }},
		{"payment with an unknown status", "/admin/payments/" + p.ID, func(m map[string]any) { m["status"] = "pending" }},
		{"payment with a float amount", "/admin/payments/" + p.ID, func(m map[string]any) { m["amount"].(map[string]any)["amount"] = 1.5 }},
		{"payment with an extra field", "/admin/payments/" + p.ID, func(m map[string]any) { m["token"] = "tok_visa" }},
		{"payment with a bad id", "/admin/payments/" + p.ID, func(m map[string]any) { m["id"] = "p1" }},
		{"status with an unknown breaker state", "/admin/payments/provider", func(m map[string]any) {
			m["breakers"].(map[string]any)["test"] = "broken"
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rq := request{method: "GET", path: tt.path}
			w := MustServe(t, h, http.StatusOK, rq)
			var m map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			tt.mutate(m)
			b, _ := json.Marshal(m)
			req := rq.build()
			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatal(err)
			}
			out := &openapi3filter.ResponseValidationInput{
				RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
				Status:                 w.Code,
				Header:                 w.Header(),
			}
			out.SetBodyBytes(b)
			if err := openapi3filter.ValidateResponse(context.Background(), out); err == nil {
				t.Fatalf("a drifted response passed validation:\n%s", bytes.TrimSpace(b))
			}
		})
	}
}
