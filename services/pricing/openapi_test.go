package pricing

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/soukhq/souk/api/apitest"
)

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	c := apitest.MustContract(t)
	s := MustNewSQLiteService(t)
	c.MustDocumentRoutes(t, s.Routes()) // none is public
	for _, r := range s.Routes() {
		if r.Permission == "" {
			t.Errorf("%s: no permission", r.Pattern())
		}
	}
}

// TestHandlersMatchOpenAPI calls every operation, answers and errors
// alike, and validates both the requests and the responses.
func TestHandlersMatchOpenAPI(t *testing.T) {
	c := apitest.MustContract(t)
	s := MustNewSQLiteService(t)
	h := apitest.Mount(s.Routes())
	check := func(rq request) *httptest.ResponseRecorder { t.Helper(); return c.Serve(t, h, rq.Build()) }
	invalid := map[string]string{apitest.InvalidRequestHeader: "1"}
	ifMatch := func(v string) map[string]string { return map[string]string{"If-Match": v} }

	pl := apitest.MustDecode[PriceList](t, check(request{method: "POST", path: "/admin/price-lists",
		body:   `{"name": "Retail", "currency": "eur", "prices_include_tax": true, "prices": [{"variant_id": "` + varA + `", "amount": 2500}]}`,
		header: map[string]string{"Idempotency-Key": "k1"}}))
	check(request{method: "POST", path: "/admin/price-lists", body: `{"name": "VIP", "currency": "EUR", "customer_group": "vip", "starts_at": "2026-01-01T00:00:00Z", "priority": 3}`})
	check(request{method: "GET", path: "/admin/price-lists?limit=1"})
	check(request{method: "GET", path: "/admin/price-lists/" + pl.ID})
	check(request{method: "PATCH", path: "/admin/price-lists/" + pl.ID, body: `{"prices": [{"variant_id": "` + varA + `", "amount": 2400}], "ends_at": null}`, header: ifMatch(`"1"`)})
	check(request{method: "PATCH", path: "/admin/price-lists/" + pl.ID, body: `{"name": "stale"}`, header: ifMatch("1")})
	check(request{method: "POST", path: "/admin/price-lists", body: `{"name": "", "currency": "EURO"}`, header: invalid})
	check(request{method: "GET", path: "/admin/price-lists/pl_01JD3Q0000000000000000000A"})

	promo := apitest.MustDecode[Promotion](t, check(request{method: "POST", path: "/admin/promotions",
		body: `{"name": "Winter 10", "type": "percentage", "value": 10, "target": "order", "codes": ["winter10"], "usage_limit": 5,
		"usage_limit_per_customer": 1, "starts_at": null, "ends_at": null, "combinable": false}`}))
	check(request{method: "POST", path: "/admin/promotions", body: `{"name": "5 off shirts", "type": "fixed", "value": {"amount": 500, "currency": "EUR"},
		"target": "category", "target_ids": ["cat_01JD3Q00000000000000000001"], "combinable": true, "priority": 2,
		"conditions": {"min_subtotal": {"amount": 5000, "currency": "EUR"}, "customer_groups": ["vip"]}}`})
	check(request{method: "POST", path: "/admin/promotions", body: `{"name": "3 for 2", "type": "buy_x_get_y", "buy_x_get_y": {"buy_quantity": 2, "get_quantity": 1, "discount_percent": 100}}`})
	check(request{method: "POST", path: "/admin/promotions", body: `{"name": "Ship free", "type": "free_shipping", "codes": ["SHIP"]}`})
	check(request{method: "POST", path: "/admin/promotions", body: `{"name": "Clash", "type": "free_shipping", "codes": ["WINTER10"]}`})
	check(request{method: "POST", path: "/admin/promotions", body: `{"name": "Bad", "type": "percentage", "value": 500}`, header: invalid})
	check(request{method: "GET", path: "/admin/promotions"})
	check(request{method: "GET", path: "/admin/promotions/" + promo.ID})
	check(request{method: "PATCH", path: "/admin/promotions/" + promo.ID, body: `{"active": false}`, header: ifMatch("1")})
	check(request{method: "PATCH", path: "/admin/promotions/" + promo.ID, body: `{"active": true, "usage_limit": null}`})

	tax := apitest.MustDecode[TaxRate](t, check(request{method: "POST", path: "/admin/tax-rates", body: `{"country": "NL", "rate_bps": 2100, "name": "BTW"}`}))
	check(request{method: "POST", path: "/admin/tax-rates", body: `{"country": "US", "region": "CA", "rate_bps": 725, "name": "California"}`})
	check(request{method: "POST", path: "/admin/tax-rates", body: `{"country": "NL", "rate_bps": 900, "name": "dup"}`})
	check(request{method: "GET", path: "/admin/tax-rates"})
	check(request{method: "GET", path: "/admin/tax-rates/" + tax.ID})
	check(request{method: "PATCH", path: "/admin/tax-rates/" + tax.ID, body: `{"rate_bps": 2000}`, header: ifMatch("1")})

	ship := apitest.MustDecode[ShippingMethod](t, check(request{method: "POST", path: "/admin/shipping-methods",
		body: `{"name": "Standard", "rates": [{"currency": "EUR", "amount": 495, "free_over": 5000}], "free_over": {"amount": 4000, "currency": "GBP"}}`}))
	check(request{method: "POST", path: "/admin/shipping-methods", body: `{"name": "DE", "countries": ["DE"], "rates": [{"currency": "EUR", "amount": 100}]}`})
	check(request{method: "GET", path: "/admin/shipping-methods"})
	check(request{method: "GET", path: "/admin/shipping-methods/" + ship.ID})
	check(request{method: "PATCH", path: "/admin/shipping-methods/" + ship.ID, body: `{"free_over": null}`})

	quote := `{"currency": "EUR", "customer_id": "cus_1", "customer_groups": ["vip"], "lines": [{"id": "1", "variant_id": "` + varA + `", "quantity": 2},
		{"id": "2", "variant_id": "var_none", "quantity": 1}], "codes": ["winter10", "nope"], "shipping_address": {"country": "NL"}, "shipping_method_id": "` + ship.ID + `"}`
	q := apitest.MustDecode[Quote](t, check(request{method: "POST", path: "/admin/pricing/quote", body: quote}))
	if q.DiscountTotal.Amount != 480 || q.Lines[1].Problem != ProblemPriceMissing || len(q.CodeProblems) != 1 {
		t.Errorf("quote = %+v", q)
	}
	check(request{method: "POST", path: "/admin/pricing/quote", body: `{"currency": "EUR", "lines": [], "shipping_method_id": "ship_gone"}`})
	check(request{method: "POST", path: "/admin/pricing/quote", body: `{"currency": "XX"}`, header: invalid})
	check(request{method: "POST", path: "/admin/pricing/shipping-options", body: quote})
	check(request{method: "GET", path: "/admin/pricing/codes/winter10?currency=EUR&customer_id=cus_1"})
	check(request{method: "GET", path: "/admin/pricing/codes/NOPE"})
	check(request{method: "GET", path: "/admin/pricing/prices?currency=EUR&groups=vip&variant_ids=" + varA + ",var_none"})
	check(request{method: "GET", path: "/admin/pricing/prices", header: invalid})
	check(request{method: "POST", path: "/admin/pricing/redemptions", body: `{"key": "ord_1:redeem", "order_id": "ord_1", "customer_id": "cus_1", "codes": ["WINTER10"], "currency": "EUR"}`})
	check(request{method: "POST", path: "/admin/pricing/redemptions", body: `{"key": "ord_2:redeem", "order_id": "ord_2", "customer_id": "cus_1", "codes": ["WINTER10"]}`})
	check(request{method: "POST", path: "/admin/pricing/redemptions/ord_1:redeem/release"})
	check(request{method: "POST", path: "/admin/pricing/redemptions/ord_1:redeem/release"})

	for _, r := range s.Routes() {
		if !c.Exercised(r.Method, r.Path) {
			t.Errorf("%s not exercised", r.Pattern())
		}
	}
}

// TestOpenAPICatchesDrift makes sure the schemas are precise: a real
// response that lost or mistyped a field must fail validation.
func TestOpenAPICatchesDrift(t *testing.T) {
	c := apitest.MustContract(t)
	s := MustNewSQLiteService(t)
	h := apitest.Mount(s.Routes())
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
			w := apitest.Serve(h, tt.rq)
			if w.Code != http.StatusOK {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			c.MustRejectDrift(t, tt.rq.Build(), w, tt.mut)
		})
	}
}
