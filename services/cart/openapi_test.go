package cart

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
	"github.com/soukhq/souk/services/pricing"
)

// MustLoadOpenAPI loads and validates the merged OpenAPI document
// (api/openapi.yaml with api/openapi/*.yaml) and returns it with a router
// over its operations.
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
	handler http.Handler
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

// mergeNeedsBearer: the one public route that needs a (customer) token.
const mergePattern = "POST /store/carts/{id}/merge"

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc, _ := MustLoadOpenAPI(t)
	e := MustNewSQLiteEnv(t, Config{})
	for _, r := range e.s.Routes() {
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
		public := op.Security != nil && len(*op.Security) == 0
		if want := r.Permission == "" && r.Pattern() != mergePattern; public != want {
			t.Errorf("%s: documented public=%v, want %v", r.Pattern(), public, want)
		}
		if r.Method != http.MethodGet && r.Path != "/store/carts" && r.Permission == "" && op.Parameters.GetByInAndName("header", "If-Match") == nil {
			t.Errorf("%s: If-Match not documented", r.Pattern())
		}
	}
	for _, path := range []string{"/store/carts/{id}", "/store/carts/{id}/items"} {
		if doc.Paths.Value(path).Parameters.GetByInAndName("header", "X-Cart-Token") == nil {
			t.Errorf("%s: X-Cart-Token not documented", path)
		}
	}
}

func TestHandlersMatchOpenAPI(t *testing.T) {
	_, router := MustLoadOpenAPI(t)
	e := MustNewSQLiteEnv(t, Config{})
	c := contractChecker{t: t, router: router, handler: mount(e.s.Routes())}
	invalid := map[string]string{"X-Test-Invalid-Request": "1"}

	cart := MustDecode[Cart](t, c.check(request{method: "POST", path: "/store/carts", body: `{"currency": "EUR", "email": "ada@example.com"}`,
		header: map[string]string{"Idempotency-Key": "k1"}}))
	p, tok := "/store/carts/"+cart.ID, cart.CartToken
	c.check(request{method: "GET", path: p, token: tok})
	cart = MustDecode[Cart](t, c.check(request{method: "POST", path: p + "/items", token: tok, body: `{"variant_id": "` + e.shirt.ID + `", "quantity": 2}`}))
	c.check(request{method: "POST", path: p + "/items", token: tok, body: `{"variant_id": "` + e.mug.ID + `", "quantity": 1}`, header: map[string]string{"If-Match": `"2"`}})
	c.check(request{method: "PATCH", path: p + "/items/" + cart.Items[0].ID, token: tok, body: `{"quantity": 3}`, header: map[string]string{"If-Match": "3"}})
	c.check(request{method: "POST", path: p + "/discount-codes", token: tok, body: `{"code": "WINTER10"}`})
	c.check(request{method: "PATCH", path: p, token: tok, body: `{"shipping_address": ` + validAddressJSON + `, "billing_address": null, "shipping_method_id": "ship_express"}`})
	c.check(request{method: "GET", path: p + "/shipping-methods", token: tok})
	c.check(request{method: "DELETE", path: p + "/discount-codes/winter10", token: tok})

	// Problems in the cart are part of the document too.
	e.cat.hide(e.mug.ID)
	e.pr.removePrice("EUR", e.shirt.ID)
	e.pr.mu.Lock()
	e.pr.methods["NL"] = e.pr.methods["NL"][:1]
	e.pr.stale["WINTER10"] = string(pricing.CodeExpired)
	e.pr.mu.Unlock()
	c.check(request{method: "POST", path: p + "/discount-codes", token: tok, body: `{"code": "WINTER10"}`})
	got := MustDecode[Cart](t, c.check(request{method: "GET", path: p, token: tok}))
	if len(got.Problems) != 3 || len(got.CodeProblems) != 1 {
		t.Fatalf("problems = %+v, code problems %+v", got.Problems, got.CodeProblems)
	}
	c.check(request{method: "GET", path: "/admin/carts/" + cart.ID})
	c.check(request{method: "DELETE", path: p + "/items/" + cart.Items[0].ID, token: tok})

	// Merge at login.
	src := MustDecode[Cart](t, c.check(request{method: "POST", path: "/store/carts", body: `{"currency": "EUR"}`}))
	c.check(request{method: "POST", path: "/store/carts/" + src.ID + "/items", token: src.CartToken, body: `{"variant_id": "` + e.lamp.ID + `", "quantity": 1}`})
	c.check(request{method: "POST", path: "/store/carts/" + src.ID + "/merge", token: src.CartToken, principal: "customer:cus_ada"})
	own := MustDecode[Cart](t, c.check(request{method: "POST", path: "/store/carts", body: `{"currency": "EUR"}`, principal: "customer:cus_bob"}))
	src = MustDecode[Cart](t, c.check(request{method: "POST", path: "/store/carts", body: `{"currency": "EUR"}`}))
	c.check(request{method: "POST", path: "/store/carts/" + src.ID + "/merge", token: src.CartToken, principal: "customer:cus_bob", body: `{}`})
	c.check(request{method: "GET", path: "/store/carts/" + own.ID, principal: "customer:cus_bob"})

	// The orders service's routes.
	c.check(request{method: "GET", path: "/admin/carts/" + own.ID + "/checkout"})
	c.check(request{method: "GET", path: "/admin/carts/" + own.ID + "/checkout-view?customer_id=cus_bob&customer_group=vip&customer_group=b2b"})
	c.check(request{method: "GET", path: "/admin/carts/" + src.ID + "/checkout-view", token: src.CartToken})
	c.check(request{method: "GET", path: "/admin/carts/" + own.ID + "/checkout-view"})
	c.check(request{method: "GET", path: "/admin/carts/" + own.ID + "/validation"})
	c.check(request{method: "GET", path: "/admin/carts/" + src.ID + "/validation"})
	c.check(request{method: "POST", path: "/admin/carts/" + own.ID + "/checked-out", body: `{"order_id": "` + orderID() + `"}`})
	c.check(request{method: "POST", path: "/admin/carts/" + own.ID + "/checked-out", body: `{"order_id": "` + orderID() + `"}`})

	// Errors are problem documents too.
	c.check(request{method: "GET", path: p})
	c.check(request{method: "GET", path: "/store/carts/cart_01JD3Q0000000000000000000A", token: tok})
	c.check(request{method: "POST", path: "/store/carts", body: `{"currency": "EUR", "total": 1}`, header: invalid})
	c.check(request{method: "POST", path: "/store/carts", body: `{"currency": "ZZZ"}`})
	c.check(request{method: "POST", path: p + "/items", token: tok, body: `{"variant_id": "var_01JD3Q0000000000000000000A", "quantity": 1}`})
	c.check(request{method: "POST", path: p + "/items", token: tok, body: `{"variant_id": "` + e.lamp.ID + `", "quantity": 1}`, header: map[string]string{"If-Match": "1"}})
	c.check(request{method: "POST", path: p + "/discount-codes", token: tok, body: `{"code": "NOPE"}`})
	c.check(request{method: "PATCH", path: p, token: tok, body: `{"shipping_method_id": "ship_drone"}`})
	c.check(request{method: "PATCH", path: p, token: tok, body: `{"shipping_address": {"first_name": "A"}}`, header: invalid})
	c.check(request{method: "PATCH", path: p, token: tok, body: `{"shipping_address": null}`})
	c.check(request{method: "GET", path: p + "/shipping-methods", token: tok})
	c.check(request{method: "POST", path: "/store/carts/" + src.ID + "/merge", token: src.CartToken, header: invalid})
	c.check(request{method: "GET", path: "/admin/carts/cart_01JD3Q0000000000000000000A/checkout"})
}

// TestOpenAPICatchesDrift makes sure the schemas are precise: a real
// response that lost or mistyped a field must fail validation.
func TestOpenAPICatchesDrift(t *testing.T) {
	_, router := MustLoadOpenAPI(t)
	e := MustNewSQLiteEnv(t, Config{})
	h := mount(e.s.Routes())
	cart, c := e.MustCreate(t, Caller{})
	e.MustAdd(t, c, cart.ID, e.shirt.ID, 1)
	p := "/store/carts/" + cart.ID

	for _, tt := range []struct {
		name, path string
		mutate     func(m map[string]any)
	}{
		{"cart without version", p, func(m map[string]any) { delete(m, "version") }},
		{"cart with a float total", p, func(m map[string]any) { m["total"].(map[string]any)["amount"] = 1.5 }},
		{"cart with an extra field", p, func(m map[string]any) { m["secret"] = "x" }},
		{"cart with an unknown status", p, func(m map[string]any) { m["status"] = "abandoned" }},
		{"item without unit_price", p, func(m map[string]any) { delete(m["items"].([]any)[0].(map[string]any), "unit_price") }},
		{"item with an unknown problem", p, func(m map[string]any) { m["items"].([]any)[0].(map[string]any)["problem"] = "sold_out" }},
		{"checkout cart without items", "/admin/carts/" + cart.ID + "/checkout", func(m map[string]any) { delete(m, "items") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rq := request{method: "GET", path: tt.path, token: c.CartToken}
			w := serve(h, rq)
			if w.Code != http.StatusOK {
				t.Fatalf("GET %s = %d", tt.path, w.Code)
			}
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
