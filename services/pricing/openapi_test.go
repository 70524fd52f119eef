package pricing

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
	handler http.Handler
	seen    map[string]bool // operation ids exercised
}

func (c contractChecker) check(rq request) *httptest.ResponseRecorder {
	c.t.Helper()
	req := rq.build()
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Fatalf("%s %s: no operation in the document: %v", rq.method, rq.path, err)
	}
	c.seen[route.Operation.OperationID] = true
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
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
		RequestValidationInput: in, Status: w.Code, Header: w.Header(),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(w.Body.Bytes())
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.t.Errorf("%s %s → %d: response does not match the document: %v\n%s", rq.method, rq.path, w.Code, err, w.Body)
	}
	return w
}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc, _ := MustLoadOpenAPI(t)
	s := MustNewSQLiteService(t)
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
		if perm != string(r.Permission) || r.Permission == "" {
			t.Errorf("%s: x-permission %q, route permission %q", r.Pattern(), perm, r.Permission)
		}
		if op.Security != nil && len(*op.Security) == 0 {
			t.Errorf("%s: documented as public", r.Pattern())
		}
	}
}

// TestHandlersMatchOpenAPI calls every operation, answers and errors
// alike, and validates both the requests and the responses.
func TestHandlersMatchOpenAPI(t *testing.T) {
	doc, router := MustLoadOpenAPI(t)
	s := MustNewSQLiteService(t)
	c := contractChecker{t: t, router: router, handler: mount(s.Routes()), seen: map[string]bool{}}
	invalid := map[string]string{"X-Test-Invalid-Request": "1"}
	ifMatch := func(v string) map[string]string { return map[string]string{"If-Match": v} }

	pl := MustDecode[PriceList](t, c.check(request{method: "POST", path: "/admin/price-lists",
		body:   `{"name": "Retail", "currency": "eur", "prices_include_tax": true, "prices": [{"variant_id": "` + varA + `", "amount": 2500}]}`,
		header: map[string]string{"Idempotency-Key": "k1"}}))
	c.check(request{method: "POST", path: "/admin/price-lists", body: `{"name": "VIP", "currency": "EUR", "customer_group": "vip", "starts_at": "2026-01-01T00:00:00Z", "priority": 3}`})
	c.check(request{method: "GET", path: "/admin/price-lists?limit=1"})
	c.check(request{method: "GET", path: "/admin/price-lists/" + pl.ID})
	c.check(request{method: "PATCH", path: "/admin/price-lists/" + pl.ID, body: `{"prices": [{"variant_id": "` + varA + `", "amount": 2400}], "ends_at": null}`, header: ifMatch(`"1"`)})
	c.check(request{method: "PATCH", path: "/admin/price-lists/" + pl.ID, body: `{"name": "stale"}`, header: ifMatch("1")})
	c.check(request{method: "POST", path: "/admin/price-lists", body: `{"name": "", "currency": "EURO"}`, header: invalid})
	c.check(request{method: "GET", path: "/admin/price-lists/pl_01JD3Q0000000000000000000A"})

	promo := MustDecode[Promotion](t, c.check(request{method: "POST", path: "/admin/promotions",
		body: `{"name": "Winter 10", "type": "percentage", "value": 10, "target": "order", "codes": ["winter10"], "usage_limit": 5,
		"usage_limit_per_customer": 1, "starts_at": null, "ends_at": null, "combinable": false}`}))
	c.check(request{method: "POST", path: "/admin/promotions", body: `{"name": "5 off shirts", "type": "fixed", "value": {"amount": 500, "currency": "EUR"},
		"target": "category", "target_ids": ["cat_01JD3Q00000000000000000001"], "combinable": true, "priority": 2,
		"conditions": {"min_subtotal": {"amount": 5000, "currency": "EUR"}, "customer_groups": ["vip"]}}`})
	c.check(request{method: "POST", path: "/admin/promotions", body: `{"name": "3 for 2", "type": "buy_x_get_y", "buy_x_get_y": {"buy_quantity": 2, "get_quantity": 1, "discount_percent": 100}}`})
	c.check(request{method: "POST", path: "/admin/promotions", body: `{"name": "Ship free", "type": "free_shipping", "codes": ["SHIP"]}`})
	c.check(request{method: "POST", path: "/admin/promotions", body: `{"name": "Clash", "type": "free_shipping", "codes": ["WINTER10"]}`})
	c.check(request{method: "POST", path: "/admin/promotions", body: `{"name": "Bad", "type": "percentage", "value": 500}`, header: invalid})
	c.check(request{method: "GET", path: "/admin/promotions"})
	c.check(request{method: "GET", path: "/admin/promotions/" + promo.ID})
	c.check(request{method: "PATCH", path: "/admin/promotions/" + promo.ID, body: `{"active": false}`, header: ifMatch("1")})
	c.check(request{method: "PATCH", path: "/admin/promotions/" + promo.ID, body: `{"active": true, "usage_limit": null}`})

	tax := MustDecode[TaxRate](t, c.check(request{method: "POST", path: "/admin/tax-rates", body: `{"country": "NL", "rate_bps": 2100, "name": "BTW"}`}))
	c.check(request{method: "POST", path: "/admin/tax-rates", body: `{"country": "US", "region": "CA", "rate_bps": 725, "name": "California"}`})
	c.check(request{method: "POST", path: "/admin/tax-rates", body: `{"country": "NL", "rate_bps": 900, "name": "dup"}`})
	c.check(request{method: "GET", path: "/admin/tax-rates"})
	c.check(request{method: "GET", path: "/admin/tax-rates/" + tax.ID})
	c.check(request{method: "PATCH", path: "/admin/tax-rates/" + tax.ID, body: `{"rate_bps": 2000}`, header: ifMatch("1")})

	ship := MustDecode[ShippingMethod](t, c.check(request{method: "POST", path: "/admin/shipping-methods",
		body: `{"name": "Standard", "rates": [{"currency": "EUR", "amount": 495, "free_over": 5000}], "free_over": {"amount": 4000, "currency": "GBP"}}`}))
	c.check(request{method: "POST", path: "/admin/shipping-methods", body: `{"name": "DE", "countries": ["DE"], "rates": [{"currency": "EUR", "amount": 100}]}`})
	c.check(request{method: "GET", path: "/admin/shipping-methods"})
	c.check(request{method: "GET", path: "/admin/shipping-methods/" + ship.ID})
	c.check(request{method: "PATCH", path: "/admin/shipping-methods/" + ship.ID, body: `{"free_over": null}`})

	quote := `{"currency": "EUR", "customer_id": "cus_1", "customer_groups": ["vip"], "lines": [{"id": "1", "variant_id": "` + varA + `", "quantity": 2},
		{"id": "2", "variant_id": "var_none", "quantity": 1}], "codes": ["winter10", "nope"], "shipping_address": {"country": "NL"}, "shipping_method_id": "` + ship.ID + `"}`
	q := MustDecode[Quote](t, c.check(request{method: "POST", path: "/admin/pricing/quote", body: quote}))
	if q.DiscountTotal.Amount != 480 || q.Lines[1].Problem != ProblemPriceMissing || len(q.CodeProblems) != 1 {
		t.Errorf("quote = %+v", q)
	}
	c.check(request{method: "POST", path: "/admin/pricing/quote", body: `{"currency": "EUR", "lines": [], "shipping_method_id": "ship_gone"}`})
	c.check(request{method: "POST", path: "/admin/pricing/quote", body: `{"currency": "XX"}`, header: invalid})
	c.check(request{method: "POST", path: "/admin/pricing/shipping-options", body: quote})
	c.check(request{method: "GET", path: "/admin/pricing/codes/winter10?currency=EUR&customer_id=cus_1"})
	c.check(request{method: "GET", path: "/admin/pricing/codes/NOPE"})
	c.check(request{method: "GET", path: "/admin/pricing/prices?currency=EUR&groups=vip&variant_ids=" + varA + ",var_none"})
	c.check(request{method: "GET", path: "/admin/pricing/prices", header: invalid})
	c.check(request{method: "POST", path: "/admin/pricing/redemptions", body: `{"key": "ord_1:redeem", "order_id": "ord_1", "customer_id": "cus_1", "codes": ["WINTER10"], "currency": "EUR"}`})
	c.check(request{method: "POST", path: "/admin/pricing/redemptions", body: `{"key": "ord_2:redeem", "order_id": "ord_2", "customer_id": "cus_1", "codes": ["WINTER10"]}`})
	c.check(request{method: "POST", path: "/admin/pricing/redemptions/ord_1:redeem/release"})
	c.check(request{method: "POST", path: "/admin/pricing/redemptions/ord_1:redeem/release"})

	for _, r := range s.Routes() {
		op := doc.Paths.Value(r.Path).GetOperation(r.Method)
		if !c.seen[op.OperationID] {
			t.Errorf("%s (%s) not exercised", r.Pattern(), op.OperationID)
		}
	}
}

// TestOpenAPICatchesDrift makes sure the schemas are precise: a real
// response that lost or mistyped a field must fail validation.
func TestOpenAPICatchesDrift(t *testing.T) {
	_, router := MustLoadOpenAPI(t)
	s := MustNewSQLiteService(t)
	h := mount(s.Routes())
	pl := MustCreatePriceList(t, s, PriceListInput{Name: "Retail", Currency: "EUR", Prices: []Price{{varA, 100}}})
	promo := MustVoucher(t, s, "SAVE", nil, nil)
	quote := `{"currency": "EUR", "lines": [{"id": "1", "variant_id": "` + varA + `", "quantity": 1}], "codes": ["SAVE"]}`
	for _, tt := range []struct {
		name string
		rq   request
		mut  func(m map[string]any)
	}{
		{"price list without version", request{method: "GET", path: "/admin/price-lists/" + pl.ID}, func(m map[string]any) { delete(m, "version") }},
		{"price as a float", request{method: "GET", path: "/admin/price-lists/" + pl.ID}, func(m map[string]any) {
			m["prices"].([]any)[0].(map[string]any)["amount"] = 1.5
		}},
		{"promotion with an extra field", request{method: "GET", path: "/admin/promotions/" + promo.ID}, func(m map[string]any) { m["discount"] = 1 }},
		{"promotion value out of range", request{method: "GET", path: "/admin/promotions/" + promo.ID}, func(m map[string]any) { m["value"] = 150 }},
		{"quote without total", request{method: "POST", path: "/admin/pricing/quote", body: quote}, func(m map[string]any) { delete(m, "total") }},
		{"quote total as a string", request{method: "POST", path: "/admin/pricing/quote", body: quote}, func(m map[string]any) {
			m["total"].(map[string]any)["amount"] = "10"
		}},
		{"quote with an unknown code problem", request{method: "POST", path: "/admin/pricing/quote", body: quote}, func(m map[string]any) {
			m["code_problems"] = []any{map[string]any{"code": "X", "problem": "bad"}}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(h, tt.rq)
			if w.Code != http.StatusOK {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			var m map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			tt.mut(m)
			b, _ := json.Marshal(m)
			req := tt.rq.build()
			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatal(err)
			}
			out := &openapi3filter.ResponseValidationInput{
				RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
				Status:                 w.Code, Header: w.Header(),
			}
			out.SetBodyBytes(b)
			if err := openapi3filter.ValidateResponse(context.Background(), out); err == nil {
				t.Fatalf("a drifted response passed validation:\n%s", bytes.TrimSpace(b))
			}
		})
	}
}
