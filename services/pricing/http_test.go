package pricing

import (
	"net/http"
	"testing"

	"github.com/soukhq/souk/api/apitest"
)

// TestHTTPErrorsAreProblems: every failure is an RFC 9457 problem with the
// stable code and the request's field names.
func TestHTTPErrorsAreProblems(t *testing.T) {
	s := MustNewSQLiteService(t)
	h := apitest.Mount(s.Routes())
	pl := MustCreatePriceList(t, s, PriceListInput{Name: "Retail", Currency: "EUR", Prices: []Price{{varA, 100}}})
	MustVoucher(t, s, "USED", ptr(int64(1)), nil)
	apitest.MustServe(t, h, http.StatusCreated, request{method: "POST", path: "/admin/pricing/redemptions", body: `{"key": "k", "order_id": "o", "codes": ["USED"]}`})

	for _, tt := range []struct {
		name   string
		rq     request
		status int
		code   string
		fields []string
	}{
		{"unknown field", request{method: "POST", path: "/admin/price-lists", body: `{"name": "x", "currency": "EUR", "bogus": 1}`}, 400, "bad_request", []string{"bogus"}},
		{"mistyped field", request{method: "POST", path: "/admin/price-lists", body: `{"name": "x", "currency": "EUR", "prices": [{"variant_id": "v", "amount": 1.5}]}`}, 400, "bad_request", []string{"prices.amount"}},
		{"float money in a promotion", request{method: "POST", path: "/admin/promotions", body: `{"name": "x", "type": "fixed", "value": {"amount": 9.99, "currency": "EUR"}}`}, 400, "bad_request", nil},
		{"not JSON", request{method: "POST", path: "/admin/tax-rates", body: `{}`, header: map[string]string{"Content-Type": "text/plain"}}, 415, "unsupported_media_type", nil},
		{"validation", request{method: "POST", path: "/admin/price-lists", body: `{"name": "", "currency": "EURO", "prices": [{"variant_id": "", "amount": -5}]}`},
			400, "validation_failed", []string{"name", "currency", "prices[0].variant_id", "prices[0].amount"}},
		{"promotion validation", request{method: "POST", path: "/admin/promotions", body: `{"name": "x", "type": "percentage", "value": 0, "target": "product"}`},
			400, "validation_failed", []string{"value", "target_ids"}},
		{"stale If-Match", request{method: "PATCH", path: "/admin/price-lists/" + pl.ID, body: `{"name": "y"}`, header: map[string]string{"If-Match": `"7"`}}, 409, "version_conflict", nil},
		{"bad If-Match", request{method: "PATCH", path: "/admin/price-lists/" + pl.ID, body: `{"name": "y"}`, header: map[string]string{"If-Match": "soon"}}, 400, "bad_request", []string{"If-Match"}},
		{"not found", request{method: "GET", path: "/admin/promotions/promo_01JD3Q0000000000000000000A"}, 404, "not_found", nil},
		{"bad id is not found", request{method: "GET", path: "/admin/shipping-methods/x"}, 404, "not_found", nil},
		{"bad limit", request{method: "GET", path: "/admin/tax-rates?limit=0"}, 400, "validation_failed", []string{"limit"}},
		{"code invalid", request{method: "GET", path: "/admin/pricing/codes/NOPE"}, 422, "code_invalid", []string{"code"}},
		{"code exhausted", request{method: "POST", path: "/admin/pricing/redemptions", body: `{"key": "k2", "order_id": "o2", "codes": ["used"]}`}, 422, "code_exhausted", []string{"code"}},
		{"key reused", request{method: "POST", path: "/admin/pricing/redemptions", body: `{"key": "k", "order_id": "other", "codes": ["USED"]}`}, 422, "idempotency_key_reused", nil},
		{"quote validation", request{method: "POST", path: "/admin/pricing/quote", body: `{"currency": "EUR", "lines": [{"id": "1", "variant_id": "", "quantity": -1}], "shipping_address": {"country": "XXX"}}`},
			400, "validation_failed", []string{"lines[0].variant_id", "lines[0].quantity", "shipping_address.country"}},
		{"prices without currency", request{method: "GET", path: "/admin/pricing/prices?variant_ids=a"}, 400, "validation_failed", []string{"currency"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			apitest.WantProblem(t, apitest.Serve(h, tt.rq), tt.status, tt.code, tt.fields...)
		})
	}
}

func TestHTTPWritesSetETagAndLocation(t *testing.T) {
	s := MustNewSQLiteService(t)
	h := apitest.Mount(s.Routes())
	w := apitest.MustServe(t, h, http.StatusCreated, request{method: "POST", path: "/admin/shipping-methods", body: `{"name": "Std", "rates": [{"currency": "EUR", "amount": 495}]}`})
	m := apitest.MustDecode[ShippingMethod](t, w)
	if w.Header().Get("Location") != "/admin/shipping-methods/"+m.ID || w.Header().Get("ETag") != `"1"` {
		t.Fatalf("headers = %v", w.Header())
	}
	w = apitest.MustServe(t, h, http.StatusOK, request{method: "PATCH", path: "/admin/shipping-methods/" + m.ID, body: `{"name": "Standard"}`, header: map[string]string{"If-Match": `W/"1"`}})
	if w.Header().Get("ETag") != `"2"` {
		t.Fatalf("ETag = %q", w.Header().Get("ETag"))
	}
	apitest.MustServe(t, h, http.StatusNoContent, request{method: "POST", path: "/admin/pricing/redemptions/unknown/release"})
}

func TestRoutesNameAPermission(t *testing.T) {
	s := MustNewSQLiteService(t)
	for _, r := range s.Routes() {
		switch {
		case r.Permission == "":
			t.Errorf("%s: no permission", r.Pattern())
		case r.Method == http.MethodGet && r.Permission != PermissionRead:
			t.Errorf("%s: a read needs %s", r.Pattern(), PermissionRead)
		}
	}
}
