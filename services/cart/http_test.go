package cart

import (
	"net/http"
	"strings"
	"testing"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/httpx"
)

// headerPrincipal is the test stand-in for the gateway's authentication:
// "X-Test-Principal: customer:cus_ada" (or staff:usr_x) puts that principal
// into the request context.
const headerPrincipal = "X-Test-Principal"

// mount serves the routes on a plain ServeMux, without the gateway's
// middleware but with headerPrincipal: what the tests need to reach the
// handlers.
func mount(routes []httpx.Route) http.Handler {
	mux := apitest.Mount(routes)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if kind, subject, ok := strings.Cut(r.Header.Get(headerPrincipal), ":"); ok {
			r = r.WithContext(auth.WithPrincipal(r.Context(), auth.Principal{Subject: subject, Kind: auth.Kind(kind)}))
		}
		mux.ServeHTTP(w, r)
	})
}

// request is one HTTP exchange of a test.
type request struct {
	method, path, body string
	token, principal   string
	header             map[string]string
}

// Build implements apitest.Builder.
func (rq request) Build() *http.Request {
	r := apitest.Request{Method: rq.method, Path: rq.path, Body: rq.body}.Build()
	if rq.token != "" {
		r.Header.Set(httpx.HeaderCartToken, rq.token)
	}
	if rq.principal != "" {
		r.Header.Set(headerPrincipal, rq.principal)
		r.Header.Set("Authorization", "Bearer test") // what the document's security expects
	}
	for k, v := range rq.header {
		r.Header.Set(k, v)
	}
	return r
}

const validAddressJSON = `{"first_name": "Ada", "last_name": "Lovelace", "line1": "Keizersgracht 1", "city": "Amsterdam",
	"postal_code": "1015 CJ", "country": "NL"}`

func TestHTTPCart(t *testing.T) {
	e := MustNewSQLiteEnv(t, Config{})
	h := mount(e.s.Routes())

	w := apitest.MustServe(t, h, http.StatusCreated, request{method: "POST", path: "/store/carts", body: `{"currency": "EUR", "email": "ada@example.com"}`})
	created := apitest.MustDecode[Cart](t, w)
	if w.Header().Get("ETag") != `"1"` || w.Header().Get("Location") != "/store/carts/"+created.ID ||
		w.Header().Get("Cache-Control") != "no-store" || created.CartToken == "" {
		t.Fatalf("create: headers %v, body %+v", w.Header(), created)
	}
	path, tok := "/store/carts/"+created.ID, created.CartToken

	// Without the token, or with another, the cart does not exist.
	apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: path}), 404, "not_found")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: path, token: "ct_wrong"}), 404, "not_found")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: path, principal: "customer:cus_eve"}), 404, "not_found")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: path + "/items", body: `{"variant_id": "` + e.mug.ID + `", "quantity": 1}`}), 404, "not_found")
	w = apitest.MustServe(t, h, 200, request{method: "GET", path: path, token: tok})
	if w.Header().Get("ETag") != `"1"` || strings.Contains(w.Body.String(), "cart_token") {
		t.Fatalf("get: %v %s", w.Header(), w.Body)
	}

	// Clients cannot send prices: unknown fields are refused.
	for _, body := range []string{
		`{"variant_id": "` + e.mug.ID + `", "quantity": 1, "unit_price": {"amount": 1, "currency": "EUR"}}`,
		`{"variant_id": "` + e.mug.ID + `", "quantity": 1, "price": 1}`,
	} {
		w := apitest.Serve(h, request{method: "POST", path: path + "/items", token: tok, body: body})
		apitest.WantProblem(t, w, 400, "bad_request")
		if p := apitest.MustDecode[httpx.Problem](t, w); len(p.Errors) != 1 || p.Errors[0].Code != "unknown_field" {
			t.Fatalf("problem = %+v", p)
		}
	}
	apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: path, token: tok, body: `{"total": {"amount": 0, "currency": "EUR"}}`}), 400, "bad_request", "total")

	apitest.MustServe(t, h, 200, request{method: "POST", path: path + "/items", token: tok, body: `{"variant_id": "` + e.shirt.ID + `", "quantity": 2}`})
	w = apitest.MustServe(t, h, 200, request{method: "POST", path: path + "/items", token: tok, body: `{"variant_id": "` + e.shirt.ID + `", "quantity": 1}`})
	c := apitest.MustDecode[Cart](t, w)
	if w.Header().Get("ETag") != `"3"` || len(c.Items) != 1 || c.Items[0].Quantity != 3 || c.Total != eur(3*2999) {
		t.Fatalf("after two adds: %s %s", w.Header().Get("ETag"), describe(c))
	}
	item := path + "/items/" + c.Items[0].ID

	// Validation names the field.
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: path + "/items", token: tok, body: `{"variant_id": "var_01JD3Q0000000000000000000A", "quantity": 1}`}), 400, "validation_failed", "variant_id")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: path + "/items", token: tok, body: `{"variant_id": "` + e.mug.ID + `", "quantity": 0}`}), 400, "validation_failed", "quantity")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: path + "/items", token: tok, body: `{"variant_id": "` + e.mug.ID + `", "quantity": "2"}`}), 400, "bad_request", "quantity")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: item, token: tok, body: `{}`}), 400, "validation_failed", "quantity")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: item, token: tok, body: `{"quantity": 1000}`}), 400, "validation_failed", "quantity")
	noPrice := e.cat.add("NOPRICE-2")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: path + "/items", token: tok, body: `{"variant_id": "` + noPrice.ID + `", "quantity": 1}`}), 422, "price_missing", "variant_id")

	// Preconditions.
	apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: item, token: tok, body: `{"quantity": 5}`, header: map[string]string{"If-Match": `"2"`}}), 409, "version_conflict")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: item, token: tok, body: `{"quantity": 5}`, header: map[string]string{"If-Match": "soon"}}), 400, "bad_request", "If-Match")
	w = apitest.MustServe(t, h, 200, request{method: "PATCH", path: item, token: tok, body: `{"quantity": 5}`, header: map[string]string{"If-Match": `"3"`}})
	if w.Header().Get("ETag") != `"4"` || apitest.MustDecode[Cart](t, w).Items[0].Quantity != 5 {
		t.Fatalf("patch item: %v %s", w.Header(), w.Body)
	}

	// Codes.
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: path + "/discount-codes", token: tok, body: `{"code": "NOPE"}`}), 422, "code_invalid", "code")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: path + "/discount-codes", token: tok, body: `{"code": "OLD"}`}), 422, "code_expired", "code")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: path + "/discount-codes", token: tok, body: `{"code": "USEDUP"}`}), 422, "code_exhausted", "code")
	c = apitest.MustDecode[Cart](t, apitest.MustServe(t, h, 200, request{method: "POST", path: path + "/discount-codes", token: tok, body: `{"code": "winter10"}`}))
	if len(c.DiscountCodes) != 1 || c.DiscountTotal != eur(100) {
		t.Fatalf("with a code: %+v", c)
	}
	apitest.WantProblem(t, apitest.Serve(h, request{method: "DELETE", path: path + "/discount-codes/OTHER", token: tok}), 404, "not_found")
	apitest.MustServe(t, h, 200, request{method: "DELETE", path: path + "/discount-codes/Winter10", token: tok})

	// Details.
	apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: path + "/shipping-methods", token: tok}), 422, "shipping_address_required", "shipping_address")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: path, token: tok,
		body: `{"shipping_address": {"first_name": "Ada", "line1": "x", "city": "y", "postal_code": "1", "country": "ZZ"}}`}),
		400, "validation_failed", "shipping_address.last_name", "shipping_address.country")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: path, token: tok,
		body: `{"shipping_address": {"first_name": "Ada", "street": "x"}}`}), 400, "bad_request", "shipping_address.street")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: path, token: tok, body: `{"billing_address": {"first_name": 7}}`}), 400, "bad_request", "billing_address.first_name")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: path, token: tok, body: `{"email": 7}`}), 400, "bad_request", "email")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: path, token: tok, body: `{"email": "not an email"}`}), 400, "validation_failed", "email")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: path, token: tok,
		body: `{"shipping_address": ` + validAddressJSON + `, "shipping_method_id": "ship_drone"}`}), 422, "shipping_method_unavailable", "shipping_method_id")
	c = apitest.MustDecode[Cart](t, apitest.MustServe(t, h, 200, request{method: "PATCH", path: path, token: tok,
		body: `{"shipping_address": ` + validAddressJSON + `, "billing_address": ` + validAddressJSON + `, "shipping_method_id": "ship_standard"}`}))
	if c.ShippingAddress == nil || *c.ShippingMethodID != "ship_standard" || c.ShippingTotal != eur(495) {
		t.Fatalf("with details: %+v", c)
	}
	methods := apitest.MustDecode[shippingMethods](t, apitest.MustServe(t, h, 200, request{method: "GET", path: path + "/shipping-methods", token: tok}))
	if len(methods.Data) != 2 || methods.Data[1].Price != eur(1500) {
		t.Fatalf("methods = %+v", methods)
	}
	c = apitest.MustDecode[Cart](t, apitest.MustServe(t, h, 200, request{method: "PATCH", path: path, token: tok, body: `{"email": null, "shipping_address": null}`}))
	if c.Email != nil || c.ShippingAddress != nil || c.ShippingMethodID != nil || c.BillingAddress == nil {
		t.Fatalf("after clearing: %+v", c)
	}

	// Removing.
	w = apitest.MustServe(t, h, 200, request{method: "DELETE", path: item, token: tok})
	if len(apitest.MustDecode[Cart](t, w).Items) != 0 {
		t.Fatalf("after delete: %s", w.Body)
	}
	apitest.WantProblem(t, apitest.Serve(h, request{method: "DELETE", path: item, token: tok}), 404, "not_found")

	// Support sees it without the token; the Store API without a token does not.
	admin := apitest.MustDecode[Cart](t, apitest.MustServe(t, h, 200, request{method: "GET", path: "/admin/carts/" + created.ID}))
	if admin.ID != created.ID || admin.CartToken != "" {
		t.Fatalf("admin view = %+v", admin)
	}
	apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/admin/carts/cart_01JD3Q0000000000000000000A"}), 404, "not_found")
}

func TestHTTPMerge(t *testing.T) {
	e := MustNewSQLiteEnv(t, Config{})
	h := mount(e.s.Routes())
	src := apitest.MustDecode[Cart](t, apitest.MustServe(t, h, 201, request{method: "POST", path: "/store/carts", body: `{"currency": "EUR"}`}))
	apitest.MustServe(t, h, 200, request{method: "POST", path: "/store/carts/" + src.ID + "/items", token: src.CartToken, body: `{"variant_id": "` + e.mug.ID + `", "quantity": 2}`})
	into := apitest.MustDecode[Cart](t, apitest.MustServe(t, h, 201, request{method: "POST", path: "/store/carts", body: `{"currency": "EUR"}`, principal: "customer:cus_ada"}))
	if into.CustomerID == nil || *into.CustomerID != "cus_ada" {
		t.Fatalf("customer cart = %+v", into)
	}
	apitest.MustServe(t, h, 200, request{method: "POST", path: "/store/carts/" + into.ID + "/items", principal: "customer:cus_ada", body: `{"variant_id": "` + e.mug.ID + `", "quantity": 1}`})

	merge := "/store/carts/" + src.ID + "/merge"
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: merge, token: src.CartToken}), 401, "unauthorized")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: merge, token: src.CartToken, principal: "staff:usr_1"}), 403, "forbidden")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: merge, principal: "customer:cus_ada"}), 404, "not_found")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: merge, token: src.CartToken, principal: "customer:cus_ada", body: `{"into": "x"}`}), 400, "bad_request")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: merge, token: src.CartToken, principal: "customer:cus_ada", header: map[string]string{"If-Match": "9"}}), 409, "version_conflict")

	w := apitest.MustServe(t, h, 200, request{method: "POST", path: merge, token: src.CartToken, principal: "customer:cus_ada", body: `{}`})
	got := apitest.MustDecode[Cart](t, w)
	if got.ID != into.ID || quantities(got)[e.mug.ID] != 3 || w.Header().Get("ETag") != `"3"` {
		t.Fatalf("merged = %s (ETag %s)", describe(got), w.Header().Get("ETag"))
	}
	// The customer's token alone opens the survivor; the old token opens nothing.
	apitest.MustServe(t, h, 200, request{method: "GET", path: "/store/carts/" + into.ID, principal: "customer:cus_ada"})
	apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/store/carts/" + src.ID, token: src.CartToken}), 404, "not_found")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/store/carts/" + into.ID, principal: "customer:cus_bob"}), 404, "not_found")
}

func TestHTTPCheckoutRoutes(t *testing.T) {
	e := MustNewSQLiteEnv(t, Config{})
	h := mount(e.s.Routes())
	cart, c := e.MustCreate(t, Caller{})
	e.MustAdd(t, c, cart.ID, e.lamp.ID, 1)
	base := "/admin/carts/" + cart.ID

	got := apitest.MustDecode[CheckoutCart](t, apitest.MustServe(t, h, 200, request{method: "GET", path: base + "/checkout"}))
	if got.ID != cart.ID || len(got.Items) != 1 || got.Items[0].SKU != "LAMP-1" || got.Status != StatusActive {
		t.Fatalf("checkout cart = %+v", got)
	}
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: base + "/checked-out", body: `{"order_id": "nope"}`}), 400, "validation_failed", "order_id")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: base + "/checked-out", body: `{}`}), 400, "validation_failed", "order_id")
	ord := orderID()
	for range 2 { // idempotent
		w := apitest.MustServe(t, h, 200, request{method: "POST", path: base + "/checked-out", body: `{"order_id": "` + ord + `"}`})
		if got := apitest.MustDecode[CheckoutCart](t, w); got.Status != StatusCheckedOut || got.OrderID != ord {
			t.Fatalf("marked = %+v", got)
		}
	}
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: base + "/checked-out", body: `{"order_id": "` + orderID() + `"}`}), 409, "conflict")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/store/carts/" + cart.ID, token: c.CartToken}), 404, "not_found")
}

func TestRoutesDeclarePermissions(t *testing.T) {
	e := MustNewSQLiteEnv(t, Config{})
	for _, r := range e.s.Routes() {
		admin := strings.HasPrefix(r.Path, "/admin/")
		if admin != (r.Permission != "") {
			t.Errorf("%s: permission %q", r.Pattern(), r.Permission)
		}
		if admin && r.Permission != PermissionRead && r.Permission != PermissionWrite {
			t.Errorf("%s: unknown permission %q", r.Pattern(), r.Permission)
		}
		if admin && r.Method != http.MethodGet && r.Permission != PermissionWrite {
			t.Errorf("%s: a write needs %s", r.Pattern(), PermissionWrite)
		}
	}
}
