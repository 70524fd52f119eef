package cart

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/services/pricing"
)

// mergePattern is the one route without a permission that needs a
// (customer) token: not public.
const mergePattern = "POST /store/carts/{id}/merge"

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	c := apitest.MustContract(t)
	doc := c.Doc()
	e := MustNewSQLiteEnv(t, Config{})
	ops := c.MustDocumentRoutes(t, e.s.Routes(), mergePattern)
	for _, r := range e.s.Routes() {
		op, ok := ops[r.Pattern()]
		if !ok {
			continue
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
	c := apitest.MustContract(t)
	e := MustNewSQLiteEnv(t, Config{})
	h := mount(e.s.Routes())
	check := func(rq request) *httptest.ResponseRecorder { t.Helper(); return c.Serve(t, h, rq.Build()) }
	invalid := map[string]string{apitest.InvalidRequestHeader: "1"}

	cart := apitest.MustDecode[Cart](t, check(request{method: "POST", path: "/store/carts", body: `{"currency": "EUR", "email": "ada@example.com"}`,
		header: map[string]string{"Idempotency-Key": "k1"}}))
	p, tok := "/store/carts/"+cart.ID, cart.CartToken
	check(request{method: "GET", path: p, token: tok})
	cart = apitest.MustDecode[Cart](t, check(request{method: "POST", path: p + "/items", token: tok, body: `{"variant_id": "` + e.shirt.ID + `", "quantity": 2}`}))
	check(request{method: "POST", path: p + "/items", token: tok, body: `{"variant_id": "` + e.mug.ID + `", "quantity": 1}`, header: map[string]string{"If-Match": `"2"`}})
	check(request{method: "PATCH", path: p + "/items/" + cart.Items[0].ID, token: tok, body: `{"quantity": 3}`, header: map[string]string{"If-Match": "3"}})
	check(request{method: "POST", path: p + "/discount-codes", token: tok, body: `{"code": "WINTER10"}`})
	check(request{method: "PATCH", path: p, token: tok, body: `{"shipping_address": ` + validAddressJSON + `, "billing_address": null, "shipping_method_id": "ship_express"}`})
	check(request{method: "GET", path: p + "/shipping-methods", token: tok})
	check(request{method: "DELETE", path: p + "/discount-codes/winter10", token: tok})

	// Problems in the cart are part of the document too.
	e.cat.hide(e.mug.ID)
	e.pr.removePrice("EUR", e.shirt.ID)
	e.pr.mu.Lock()
	e.pr.methods["NL"] = e.pr.methods["NL"][:1]
	e.pr.stale["WINTER10"] = string(pricing.CodeExpired)
	e.pr.mu.Unlock()
	check(request{method: "POST", path: p + "/discount-codes", token: tok, body: `{"code": "WINTER10"}`})
	got := apitest.MustDecode[Cart](t, check(request{method: "GET", path: p, token: tok}))
	if len(got.Problems) != 3 || len(got.CodeProblems) != 1 {
		t.Fatalf("problems = %+v, code problems %+v", got.Problems, got.CodeProblems)
	}
	check(request{method: "GET", path: "/admin/carts/" + cart.ID})
	check(request{method: "DELETE", path: p + "/items/" + cart.Items[0].ID, token: tok})

	// Merge at login.
	src := apitest.MustDecode[Cart](t, check(request{method: "POST", path: "/store/carts", body: `{"currency": "EUR"}`}))
	check(request{method: "POST", path: "/store/carts/" + src.ID + "/items", token: src.CartToken, body: `{"variant_id": "` + e.lamp.ID + `", "quantity": 1}`})
	check(request{method: "POST", path: "/store/carts/" + src.ID + "/merge", token: src.CartToken, principal: "customer:cus_ada"})
	own := apitest.MustDecode[Cart](t, check(request{method: "POST", path: "/store/carts", body: `{"currency": "EUR"}`, principal: "customer:cus_bob"}))
	src = apitest.MustDecode[Cart](t, check(request{method: "POST", path: "/store/carts", body: `{"currency": "EUR"}`}))
	check(request{method: "POST", path: "/store/carts/" + src.ID + "/merge", token: src.CartToken, principal: "customer:cus_bob", body: `{}`})
	check(request{method: "GET", path: "/store/carts/" + own.ID, principal: "customer:cus_bob"})

	// The orders service's routes.
	check(request{method: "GET", path: "/admin/carts/" + own.ID + "/checkout"})
	check(request{method: "GET", path: "/admin/carts/" + own.ID + "/checkout-view?customer_id=cus_bob&customer_group=vip&customer_group=b2b"})
	check(request{method: "GET", path: "/admin/carts/" + src.ID + "/checkout-view", token: src.CartToken})
	check(request{method: "GET", path: "/admin/carts/" + own.ID + "/checkout-view"})
	check(request{method: "GET", path: "/admin/carts/" + own.ID + "/validation"})
	check(request{method: "GET", path: "/admin/carts/" + src.ID + "/validation"})
	check(request{method: "POST", path: "/admin/carts/" + own.ID + "/checked-out", body: `{"order_id": "` + orderID() + `"}`})
	check(request{method: "POST", path: "/admin/carts/" + own.ID + "/checked-out", body: `{"order_id": "` + orderID() + `"}`})

	// Errors are problem documents too.
	check(request{method: "GET", path: p})
	check(request{method: "GET", path: "/store/carts/cart_01JD3Q0000000000000000000A", token: tok})
	check(request{method: "POST", path: "/store/carts", body: `{"currency": "EUR", "total": 1}`, header: invalid})
	check(request{method: "POST", path: "/store/carts", body: `{"currency": "ZZZ"}`})
	check(request{method: "POST", path: p + "/items", token: tok, body: `{"variant_id": "var_01JD3Q0000000000000000000A", "quantity": 1}`})
	check(request{method: "POST", path: p + "/items", token: tok, body: `{"variant_id": "` + e.lamp.ID + `", "quantity": 1}`, header: map[string]string{"If-Match": "1"}})
	check(request{method: "POST", path: p + "/discount-codes", token: tok, body: `{"code": "NOPE"}`})
	check(request{method: "PATCH", path: p, token: tok, body: `{"shipping_method_id": "ship_drone"}`})
	check(request{method: "PATCH", path: p, token: tok, body: `{"shipping_address": {"first_name": "A"}}`, header: invalid})
	check(request{method: "PATCH", path: p, token: tok, body: `{"shipping_address": null}`})
	check(request{method: "GET", path: p + "/shipping-methods", token: tok})
	check(request{method: "POST", path: "/store/carts/" + src.ID + "/merge", token: src.CartToken, header: invalid})
	check(request{method: "GET", path: "/admin/carts/cart_01JD3Q0000000000000000000A/checkout"})
}

// TestOpenAPICatchesDrift makes sure the schemas are precise: a real
// response that lost or mistyped a field must fail validation.
func TestOpenAPICatchesDrift(t *testing.T) {
	c := apitest.MustContract(t)
	e := MustNewSQLiteEnv(t, Config{})
	h := mount(e.s.Routes())
	cart, shopper := e.MustCreate(t, Caller{})
	e.MustAdd(t, shopper, cart.ID, e.shirt.ID, 1)
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
			rq := request{method: "GET", path: tt.path, token: shopper.CartToken}
			w := apitest.Serve(h, rq)
			if w.Code != http.StatusOK {
				t.Fatalf("GET %s = %d", tt.path, w.Code)
			}
			c.MustRejectDrift(t, rq.Build(), w, tt.mutate)
		})
	}
}
