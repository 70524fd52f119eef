package inventory

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
		if perm != string(r.Permission) {
			t.Errorf("%s: x-permission %q, route permission %q", r.Pattern(), perm, r.Permission)
		}
		public := op.Security != nil && len(*op.Security) == 0
		if public != (r.Permission == "") {
			t.Errorf("%s: documented public=%v, route permission %q", r.Pattern(), public, r.Permission)
		}
		if strings.HasPrefix(r.Path, "/admin/") && r.Permission != PermissionRead && r.Permission != PermissionWrite {
			t.Errorf("%s: admin route with permission %q", r.Pattern(), r.Permission)
		}
		if r.Method == http.MethodGet && strings.HasPrefix(r.Path, "/admin/") && r.Permission != PermissionRead {
			t.Errorf("%s: a GET needs inventory:read", r.Pattern())
		}
	}
}

func TestHandlersMatchOpenAPI(t *testing.T) {
	_, router := MustLoadOpenAPI(t)
	s := MustNewSQLiteService(t)
	c := contractChecker{t: t, router: router, handler: mount(s.Routes())}
	invalid := map[string]string{"X-Test-Invalid-Request": "1"}

	a := MustDecode[Location](t, c.check(request{method: "POST", path: "/admin/stock-locations",
		body: `{"code": "RTM-DC", "name": "Rotterdam DC", "address": "Waalhaven 1", "country": "NL", "priority": 1}`}))
	b := MustDecode[Location](t, c.check(request{method: "POST", path: "/admin/stock-locations", body: `{"code": "LDS", "name": "Leeds", "active": true}`,
		header: map[string]string{"Idempotency-Key": "k1"}}))
	c.check(request{method: "GET", path: "/admin/stock-locations/" + a.ID})
	c.check(request{method: "GET", path: "/admin/stock-locations?limit=1"})
	c.check(request{method: "PATCH", path: "/admin/stock-locations/" + b.ID, body: `{"priority": 2}`, header: map[string]string{"If-Match": `"1"`}})

	c.check(request{method: "PUT", path: "/admin/inventory/LIN-S/levels/" + a.ID, body: `{"on_hand": 4, "reason": "received", "note": "PO 1"}`})
	c.check(request{method: "PUT", path: "/admin/inventory/LIN-S/levels/" + b.ID, body: `{"on_hand": 2}`})
	c.check(request{method: "PUT", path: "/admin/inventory/LIN-S/levels/" + b.ID, body: `{"on_hand": 3}`, header: map[string]string{"If-Match": "1"}})
	c.check(request{method: "PATCH", path: "/admin/inventory/PRE", body: `{"backorder": true, "low_stock_threshold": null}`})
	c.check(request{method: "PUT", path: "/admin/inventory/PRE/levels/" + a.ID, body: `{"on_hand": 0}`})
	c.check(request{method: "POST", path: "/admin/inventory/LIN-S/adjustments", body: `{"location_id": "` + b.ID + `", "delta": -1, "reason": "damaged"}`})
	c.check(request{method: "GET", path: "/admin/inventory/LIN-S"})
	c.check(request{method: "GET", path: "/admin/inventory?sku=LIN-S,PRE"})
	c.check(request{method: "GET", path: "/admin/inventory?limit=1"})
	c.check(request{method: "GET", path: "/admin/inventory/LIN-S/adjustments?limit=1&location_id=" + a.ID})

	r := MustDecode[Reservation](t, MustStatus(t, http.StatusCreated, c.check(request{method: "POST", path: "/admin/reservations",
		body: `{"key": "ord_1:reserve", "order_id": "ord_1", "lines": [{"sku": "LIN-S", "quantity": 5}, {"sku": "PRE", "quantity": 2}], "ttl_seconds": 900}`})))
	c.check(request{method: "POST", path: "/admin/reservations", body: `{"order_id": "ord_1", "lines": [{"sku": "LIN-S", "quantity": 5}, {"sku": "PRE", "quantity": 2}]}`,
		header: map[string]string{"Idempotency-Key": "ord_1:reserve"}})
	c.check(request{method: "GET", path: "/admin/reservations/" + r.ID})
	c.check(request{method: "POST", path: "/admin/reservations/" + r.ID + "/commit"})
	c.check(request{method: "POST", path: "/admin/reservations/" + r.ID + "/restock"})
	c.check(request{method: "POST", path: "/admin/reservations/" + r.ID + "/restock"})
	c.check(request{method: "GET", path: "/admin/inventory/LIN-S/adjustments"})
	rel := MustDecode[Reservation](t, MustStatus(t, http.StatusCreated,
		c.check(request{method: "POST", path: "/admin/reservations", body: `{"key": "k2", "lines": [{"sku": "LIN-S", "quantity": 1}]}`})))
	c.check(request{method: "POST", path: "/admin/reservations/" + rel.ID + "/release"})
	c.check(request{method: "POST", path: "/admin/reservations/" + rel.ID + "/release"})
	c.check(request{method: "GET", path: "/store/inventory/availability?sku=LIN-S,PRE,GHOST"})

	// Errors are problem documents too.
	c.check(request{method: "POST", path: "/admin/reservations", body: `{"key": "k3", "lines": [{"sku": "LIN-S", "quantity": 50}]}`})
	c.check(request{method: "POST", path: "/admin/reservations", body: `{"key": "k2", "lines": [{"sku": "LIN-S", "quantity": 2}]}`})
	c.check(request{method: "POST", path: "/admin/reservations", body: `{"lines": []}`, header: invalid})
	c.check(request{method: "POST", path: "/admin/reservations/" + rel.ID + "/commit", body: `{"order_id": "ord_2"}`})
	c.check(request{method: "POST", path: "/admin/reservations/" + r.ID + "/release"})
	c.check(request{method: "POST", path: "/admin/reservations/" + rel.ID + "/restock"})
	c.check(request{method: "GET", path: "/admin/reservations/res_01JD3Q0000000000000000000A"})
	c.check(request{method: "PUT", path: "/admin/inventory/LIN-S/levels/" + a.ID, body: `{"on_hand": -1}`, header: invalid})
	c.check(request{method: "POST", path: "/admin/stock-locations", body: `{"code": "RTM-DC", "name": "Again"}`})
	c.check(request{method: "PATCH", path: "/admin/stock-locations/" + a.ID, body: `{"name": "Stale"}`, header: map[string]string{"If-Match": "7"}})
	c.check(request{method: "GET", path: "/admin/stock-locations/loc_01JD3Q0000000000000000000A"})
	c.check(request{method: "GET", path: "/admin/inventory/NOPE"})
	c.check(request{method: "POST", path: "/admin/inventory/LIN-S/adjustments", body: `{"location_id": "` + a.ID + `", "delta": -100, "reason": "lost"}`})
	c.check(request{method: "GET", path: "/store/inventory/availability?sku=bad%20sku"})
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
	s := MustNewSQLiteService(t)
	h := mount(s.Routes())
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
