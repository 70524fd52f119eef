package inventory

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/soukhq/souk/api/apitest"
)

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	c := apitest.MustContract(t)
	s := MustNewSQLiteService(t)
	c.MustDocumentRoutes(t, s.Routes())
	for _, r := range s.Routes() {
		if strings.HasPrefix(r.Path, "/admin/") && r.Permission != PermissionRead && r.Permission != PermissionWrite {
			t.Errorf("%s: admin route with permission %q", r.Pattern(), r.Permission)
		}
		if r.Method == http.MethodGet && strings.HasPrefix(r.Path, "/admin/") && r.Permission != PermissionRead {
			t.Errorf("%s: a GET needs inventory:read", r.Pattern())
		}
	}
}

func TestHandlersMatchOpenAPI(t *testing.T) {
	c := apitest.MustContract(t)
	s := MustNewSQLiteService(t)
	h := apitest.Mount(s.Routes())
	check := func(rq request) *httptest.ResponseRecorder { t.Helper(); return c.Serve(t, h, rq.Build()) }
	invalid := map[string]string{apitest.InvalidRequestHeader: "1"}

	a := apitest.MustDecode[Location](t, check(request{method: "POST", path: "/admin/stock-locations",
		body: `{"code": "RTM-DC", "name": "Rotterdam DC", "address": "Waalhaven 1", "country": "NL", "priority": 1}`}))
	b := apitest.MustDecode[Location](t, check(request{method: "POST", path: "/admin/stock-locations", body: `{"code": "LDS", "name": "Leeds", "active": true}`,
		header: map[string]string{"Idempotency-Key": "k1"}}))
	check(request{method: "GET", path: "/admin/stock-locations/" + a.ID})
	check(request{method: "GET", path: "/admin/stock-locations?limit=1"})
	check(request{method: "PATCH", path: "/admin/stock-locations/" + b.ID, body: `{"priority": 2}`, header: map[string]string{"If-Match": `"1"`}})

	check(request{method: "PUT", path: "/admin/inventory/LIN-S/levels/" + a.ID, body: `{"on_hand": 4, "reason": "received", "note": "PO 1"}`})
	check(request{method: "PUT", path: "/admin/inventory/LIN-S/levels/" + b.ID, body: `{"on_hand": 2}`})
	check(request{method: "PUT", path: "/admin/inventory/LIN-S/levels/" + b.ID, body: `{"on_hand": 3}`, header: map[string]string{"If-Match": "1"}})
	check(request{method: "PATCH", path: "/admin/inventory/PRE", body: `{"backorder": true, "low_stock_threshold": null}`})
	check(request{method: "PUT", path: "/admin/inventory/PRE/levels/" + a.ID, body: `{"on_hand": 0}`})
	check(request{method: "POST", path: "/admin/inventory/LIN-S/adjustments", body: `{"location_id": "` + b.ID + `", "delta": -1, "reason": "damaged"}`})
	check(request{method: "GET", path: "/admin/inventory/LIN-S"})
	check(request{method: "GET", path: "/admin/inventory?sku=LIN-S,PRE"})
	check(request{method: "GET", path: "/admin/inventory?limit=1"})
	check(request{method: "GET", path: "/admin/inventory/LIN-S/adjustments?limit=1&location_id=" + a.ID})

	r := apitest.MustDecode[Reservation](t, apitest.MustStatus(t, http.StatusCreated, check(request{method: "POST", path: "/admin/reservations",
		body: `{"key": "ord_1:reserve", "order_id": "ord_1", "lines": [{"sku": "LIN-S", "quantity": 5}, {"sku": "PRE", "quantity": 2}], "ttl_seconds": 900}`})))
	check(request{method: "POST", path: "/admin/reservations", body: `{"order_id": "ord_1", "lines": [{"sku": "LIN-S", "quantity": 5}, {"sku": "PRE", "quantity": 2}]}`,
		header: map[string]string{"Idempotency-Key": "ord_1:reserve"}})
	check(request{method: "GET", path: "/admin/reservations/" + r.ID})
	check(request{method: "POST", path: "/admin/reservations/" + r.ID + "/commit"})
	check(request{method: "POST", path: "/admin/reservations/" + r.ID + "/restock"})
	check(request{method: "POST", path: "/admin/reservations/" + r.ID + "/restock"})
	check(request{method: "GET", path: "/admin/inventory/LIN-S/adjustments"})
	rel := apitest.MustDecode[Reservation](t, apitest.MustStatus(t, http.StatusCreated,
		check(request{method: "POST", path: "/admin/reservations", body: `{"key": "k2", "lines": [{"sku": "LIN-S", "quantity": 1}]}`})))
	check(request{method: "POST", path: "/admin/reservations/" + rel.ID + "/release"})
	check(request{method: "POST", path: "/admin/reservations/" + rel.ID + "/release"})
	check(request{method: "GET", path: "/store/inventory/availability?sku=LIN-S,PRE,GHOST"})

	// Errors are problem documents too.
	check(request{method: "POST", path: "/admin/reservations", body: `{"key": "k3", "lines": [{"sku": "LIN-S", "quantity": 50}]}`})
	check(request{method: "POST", path: "/admin/reservations", body: `{"key": "k2", "lines": [{"sku": "LIN-S", "quantity": 2}]}`})
	check(request{method: "POST", path: "/admin/reservations", body: `{"lines": []}`, header: invalid})
	check(request{method: "POST", path: "/admin/reservations/" + rel.ID + "/commit", body: `{"order_id": "ord_2"}`})
	check(request{method: "POST", path: "/admin/reservations/" + r.ID + "/release"})
	check(request{method: "POST", path: "/admin/reservations/" + rel.ID + "/restock"})
	check(request{method: "GET", path: "/admin/reservations/res_01JD3Q0000000000000000000A"})
	check(request{method: "PUT", path: "/admin/inventory/LIN-S/levels/" + a.ID, body: `{"on_hand": -1}`, header: invalid})
	check(request{method: "POST", path: "/admin/stock-locations", body: `{"code": "RTM-DC", "name": "Again"}`})
	check(request{method: "PATCH", path: "/admin/stock-locations/" + a.ID, body: `{"name": "Stale"}`, header: map[string]string{"If-Match": "7"}})
	check(request{method: "GET", path: "/admin/stock-locations/loc_01JD3Q0000000000000000000A"})
	check(request{method: "GET", path: "/admin/inventory/NOPE"})
	check(request{method: "POST", path: "/admin/inventory/LIN-S/adjustments", body: `{"location_id": "` + a.ID + `", "delta": -100, "reason": "lost"}`})
	check(request{method: "GET", path: "/store/inventory/availability?sku=bad%20sku"})
}

// TestOpenAPICatchesDrift makes sure the schemas are precise: a real
// response that lost or mistyped a field must fail validation.
func TestOpenAPICatchesDrift(t *testing.T) {
	c := apitest.MustContract(t)
	s := MustNewSQLiteService(t)
	h := apitest.Mount(s.Routes())
	loc := MustCreateLocation(t, s, "A", 1)
	MustSetLevel(t, s, "SKU", loc.ID, 3)
	r := MustReserve(t, s, "k", line("SKU", 1))

	for _, tt := range []struct {
		name, path string
		mutate     func(m map[string]any)
	}{
		{"stock without available", "/admin/inventory/SKU", func(m map[string]any) { delete(m, "available") }},
		{"stock with string on_hand", "/admin/inventory/SKU", func(m map[string]any) { m["on_hand"] = "3" }},
		{"level without location_id", "/admin/inventory/SKU", func(m map[string]any) { delete(m["levels"].([]any)[0].(map[string]any), "location_id") }},
		{"stock with an extra field", "/admin/inventory/SKU", func(m map[string]any) { m["price"] = 10 }},
		{"location with a bad id", "/admin/stock-locations/" + loc.ID, func(m map[string]any) { m["id"] = "A" }},
		{"reservation with an unknown state", "/admin/reservations/" + r.ID, func(m map[string]any) { m["state"] = "held" }},
		{"reservation line without allocations", "/admin/reservations/" + r.ID, func(m map[string]any) {
			m["lines"].([]any)[0].(map[string]any)["allocations"] = []any{}
		}},
		{"public availability over the cap", "/store/inventory/availability?sku=SKU", func(m map[string]any) {
			m["data"].([]any)[0].(map[string]any)["available"] = 11
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rq := request{method: "GET", path: tt.path}
			c.MustRejectDrift(t, rq.Build(), apitest.MustServe(t, h, http.StatusOK, rq), tt.mutate)
		})
	}
}
