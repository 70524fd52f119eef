package payments

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/auth"
)

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	c := apitest.MustContract(t)
	s := MustNewSQLite(t)
	valid := map[auth.Permission]bool{PermissionRead: true, PermissionWrite: true, PermissionRefund: true, PermissionOpsRead: true, PermissionOpsWrite: true}
	c.MustDocumentRoutes(t, s.Routes())
	routed := map[string]bool{}
	for _, r := range s.Routes() {
		routed[r.Pattern()] = true
		if !valid[r.Permission] {
			t.Errorf("%s: permission %q", r.Pattern(), r.Permission)
		}
		if r.Method == http.MethodGet && r.Permission != PermissionRead && r.Permission != PermissionOpsRead {
			t.Errorf("%s: a GET needs a read permission", r.Pattern())
		}
	}
	for _, op := range c.Operations("/admin/payments") {
		if !routed[op.Pattern()] {
			t.Errorf("%s documented but not routed", op.Pattern())
		}
	}
}

func TestHandlersMatchOpenAPI(t *testing.T) {
	c := apitest.MustContract(t)
	cfg := testConfig()
	cfg.Secondary = "backup"
	f := newFixture(t, MustNewSQLite(t).db, cfg, WithProvider(NewTestProvider(0).Named("backup")))
	// The document and the mux must agree on literal vs templated
	// segments (/admin/payments/provider vs /admin/payments/{id}).
	mux := apitest.Mount(f.Routes())
	h := withPrincipal(mux, auth.Principal{Subject: "key_orders", Kind: auth.KindAPIKey, Role: "admin"})
	check := func(rq request) *httptest.ResponseRecorder {
		t.Helper()
		req := rq.Build()
		_, pattern := mux.Handler(req)
		if _, path, _ := strings.Cut(pattern, " "); c.MustRoute(t, req).Path != path {
			t.Fatalf("%s %s: the document routes it to %s, the mux to %s", rq.method, rq.path, c.MustRoute(t, req).Path, path)
		}
		return c.Serve(t, h, req)
	}
	invalid := map[string]string{apitest.InvalidRequestHeader: "1"}

	p := apitest.MustDecode[Payment](t, apitest.MustStatus(t, http.StatusCreated, check(request{method: "POST", path: "/admin/payments/authorize",
		body: `{"key": "ord_1:authorize", "order_id": "ord_1", "amount": {"amount": 5000, "currency": "EUR"}, "token": "tok_visa", "customer_id": "cus_1", "email": "ada@example.com"}`})))
	check(request{method: "POST", path: "/admin/payments/authorize", header: map[string]string{"Idempotency-Key": "ord_1:authorize"},
		body: `{"order_id": "ord_1", "amount": {"amount": 5000, "currency": "EUR"}, "token": "tok_visa", "customer_id": "cus_1", "email": "ada@example.com"}`})
	check(request{method: "GET", path: "/admin/payments/" + p.ID})
	check(request{method: "GET", path: "/admin/payments/by-key/ord_1:authorize"})
	check(request{method: "GET", path: "/admin/payments?order_id=ord_1&limit=1"})
	check(request{method: "GET", path: "/admin/payments"})
	check(request{method: "POST", path: "/admin/payments/" + p.ID + "/capture", body: `{"key": "ord_1:capture", "amount": {"amount": 4000, "currency": "EUR"}}`})
	check(request{method: "POST", path: "/admin/payments/" + p.ID + "/refund", body: `{"key": "ord_1:refund", "amount": {"amount": 1000, "currency": "EUR"}}`})
	check(request{method: "POST", path: "/admin/payments/" + p.ID + "/refund", header: map[string]string{"Idempotency-Key": "ord_1:refund-2"},
		body: `{"amount": {"amount": 3000, "currency": "EUR"}}`})
	v := apitest.MustDecode[Payment](t, check(request{method: "POST", path: "/admin/payments/authorize",
		body: `{"key": "ord_2:authorize", "order_id": "ord_2", "amount": {"amount": 100, "currency": "EUR"}, "token": "tok_slow", "provider": "test"}`}))
	check(request{method: "POST", path: "/admin/payments/" + v.ID + "/void", body: `{"key": "ord_2:void"}`})
	check(request{method: "POST", path: "/admin/payments/" + v.ID + "/void", header: map[string]string{"Idempotency-Key": "ord_2:void-2"}})
	check(request{method: "GET", path: "/admin/payments/provider"})
	check(request{method: "POST", path: "/admin/payments/provider", body: `{"provider": "backup", "reason": "drill"}`})
	check(request{method: "GET", path: "/admin/payments/provider"})

	// Errors are problem documents too.
	apitest.WantProblem(t, check(request{method: "POST", path: "/admin/payments/authorize",
		body: `{"key": "ord_3:authorize", "order_id": "ord_3", "amount": {"amount": 100, "currency": "EUR"}, "token": "tok_insufficient_funds", "provider": "test"}`}),
		http.StatusPaymentRequired, "payment_declined", "token")
	apitest.WantProblem(t, check(request{method: "POST", path: "/admin/payments/authorize",
		body: `{"key": "ord_4:authorize", "order_id": "ord_4", "amount": {"amount": 100, "currency": "EUR"}, "token": "tok_timeout", "provider": "test"}`}),
		http.StatusServiceUnavailable, "unavailable")
	apitest.WantProblem(t, check(request{method: "POST", path: "/admin/payments/authorize", header: invalid,
		body: `{"order_id": "", "amount": {"amount": 0, "currency": "EUR"}, "token": ""}`}), http.StatusBadRequest, "validation_failed", "key", "order_id", "token")
	apitest.WantProblem(t, check(request{method: "POST", path: "/admin/payments/authorize",
		body: `{"key": "ord_1:authorize", "order_id": "ord_1", "amount": {"amount": 1, "currency": "EUR"}, "token": "tok_visa"}`}),
		http.StatusUnprocessableEntity, "idempotency_key_reused", "key")
	apitest.WantProblem(t, check(request{method: "POST", path: "/admin/payments/authorize", header: map[string]string{"Idempotency-Key": "other"},
		body: `{"key": "ord_5:authorize", "order_id": "ord_5", "amount": {"amount": 1, "currency": "EUR"}, "token": "tok_visa"}`}),
		http.StatusBadRequest, "validation_failed", "key")
	apitest.WantProblem(t, check(request{method: "POST", path: "/admin/payments/" + p.ID + "/refund",
		body: `{"key": "ord_1:refund-3", "amount": {"amount": 1, "currency": "EUR"}}`}), http.StatusConflict, "conflict")
	apitest.WantProblem(t, check(request{method: "POST", path: "/admin/payments/" + v.ID + "/capture", header: invalid,
		body: `{"key": "ord_2:capture"}`}), http.StatusBadRequest, "validation_failed", "amount")
	apitest.WantProblem(t, check(request{method: "POST", path: "/admin/payments/" + v.ID + "/capture",
		body: `{"key": "ord_2:capture", "amount": {"amount": 100, "currency": "EUR"}}`}), http.StatusConflict, "conflict")
	apitest.WantProblem(t, check(request{method: "POST", path: "/admin/payments/" + v.ID + "/void", header: invalid,
		body: `{"key": "ord_2:void-3", "amount": {"amount": 100, "currency": "EUR"}}`}), http.StatusBadRequest, "bad_request", "amount")
	apitest.WantProblem(t, check(request{method: "GET", path: "/admin/payments/pay_01JD3Q0000000000000000000A"}), http.StatusNotFound, "not_found")
	apitest.WantProblem(t, check(request{method: "GET", path: "/admin/payments/by-key/nope"}), http.StatusNotFound, "not_found")
	apitest.WantProblem(t, check(request{method: "GET", path: "/admin/payments/by-key/ord_4:authorize"}), http.StatusNotFound, "not_found")
	apitest.WantProblem(t, check(request{method: "POST", path: "/admin/payments/provider", header: invalid, body: `{"provider": "paypal", "reason": ""}`}),
		http.StatusBadRequest, "validation_failed", "provider", "reason")
	apitest.WantProblem(t, check(request{method: "GET", path: "/admin/payments?limit=0", header: invalid}), http.StatusBadRequest, "validation_failed", "limit")
}

// TestOpenAPICatchesDrift makes sure the schemas are precise: a real
// response that lost or mistyped a field must fail validation.
func TestOpenAPICatchesDrift(t *testing.T) {
	c := apitest.MustContract(t)
	f := MustNewSQLite(t)
	h := apitest.Mount(f.Routes())
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
			c.MustRejectDrift(t, rq.Build(), apitest.MustServe(t, h, http.StatusOK, rq), tt.mutate)
		})
	}
}
