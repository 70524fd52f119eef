package inventory

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/httpx"
)

// request is one HTTP exchange of a test.
type request struct {
	method, path, body string
	header             map[string]string
}

// Build implements apitest.Builder.
func (rq request) Build() *http.Request {
	return apitest.Request{Method: rq.method, Path: rq.path, Body: rq.body, Header: rq.header}.Build()
}

func TestHTTPLocations(t *testing.T) {
	s := MustNewSQLiteService(t)
	h := apitest.Mount(s.Routes())

	w := apitest.MustServe(t, h, http.StatusCreated, request{method: "POST", path: "/admin/stock-locations",
		body: `{"code": "rtm-dc", "name": "Rotterdam DC", "country": "NL", "priority": 1}`})
	l := apitest.MustDecode[Location](t, w)
	if w.Header().Get("ETag") != `"1"` || w.Header().Get("Location") != "/admin/stock-locations/"+l.ID || l.Code != "RTM-DC" {
		t.Fatalf("created %+v, headers %v", l, w.Header())
	}
	apitest.MustServe(t, h, http.StatusOK, request{method: "GET", path: "/admin/stock-locations/" + l.ID})
	w = apitest.MustServe(t, h, http.StatusOK, request{method: "PATCH", path: "/admin/stock-locations/" + l.ID, body: `{"active": false}`,
		header: map[string]string{"If-Match": `"1"`}})
	if w.Header().Get("ETag") != `"2"` || apitest.MustDecode[Location](t, w).Active {
		t.Fatalf("patch: %v %s", w.Header(), w.Body)
	}
	page := apitest.MustDecode[httpx.Page[Location]](t, apitest.MustServe(t, h, http.StatusOK, request{method: "GET", path: "/admin/stock-locations?limit=1"}))
	if len(page.Data) != 1 || page.NextCursor != nil {
		t.Fatalf("page %+v", page)
	}

	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/stock-locations", body: `{"code": "X", "name": "Y", "bogus": 1}`}), 400, "bad_request", "bogus")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/stock-locations", body: `{"code": "no spaces", "name": ""}`}), 400, "validation_failed", "code", "name")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/stock-locations", body: `{"code": "RTM-DC", "name": "Again"}`}), 409, "conflict", "code")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: "/admin/stock-locations/" + l.ID, body: `{"name": "Stale"}`,
		header: map[string]string{"If-Match": "1"}}), 409, "version_conflict")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/admin/stock-locations/loc_01JD3Q0000000000000000000A"}), 404, "not_found")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/admin/stock-locations?limit=0"}), 400, "validation_failed", "limit")
}

func TestHTTPStock(t *testing.T) {
	s := MustNewSQLiteService(t)
	h := apitest.Mount(s.Routes())
	a := MustCreateLocation(t, s, "A", 1)
	b := MustCreateLocation(t, s, "B", 2)

	apitest.MustServe(t, h, http.StatusOK, request{method: "PUT", path: "/admin/inventory/LIN-S/levels/" + a.ID, body: `{"on_hand": 40}`})
	apitest.MustServe(t, h, http.StatusOK, request{method: "PUT", path: "/admin/inventory/LIN-S/levels/" + b.ID, body: `{"on_hand": 2, "reason": "received", "note": "PO 9"}`})
	MustReserve(t, s, "r", line("LIN-S", 2))

	w := apitest.MustServe(t, h, http.StatusOK, request{method: "GET", path: "/admin/inventory/LIN-S"})
	var raw map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"sku", "on_hand", "reserved", "available", "backorder", "low_stock_threshold", "levels"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("stock item lacks %q: %s", f, w.Body)
		}
	}
	level := raw["levels"].([]any)[0].(map[string]any)
	for _, f := range []string{"location_id", "on_hand", "reserved", "available"} {
		if _, ok := level[f]; !ok {
			t.Errorf("level lacks %q", f)
		}
	}
	it := apitest.MustDecode[StockItem](t, w)
	if it.OnHand != 42 || it.Reserved != 2 || it.Available != 40 || it.Levels[0].LocationID != a.ID || it.Levels[0].Available != 38 || w.Header().Get("ETag") != `"1"` {
		t.Fatalf("stock %+v, %v", it, w.Header())
	}

	t.Run("settings", func(t *testing.T) {
		w := apitest.MustServe(t, h, http.StatusOK, request{method: "PATCH", path: "/admin/inventory/LIN-S", body: `{"backorder": true, "low_stock_threshold": 3}`,
			header: map[string]string{"If-Match": "1"}})
		if it := apitest.MustDecode[StockItem](t, w); !it.Backorder || it.LowStockThreshold != 3 || w.Header().Get("ETag") != `"2"` {
			t.Fatalf("patch %+v %v", it, w.Header())
		}
		w = apitest.MustServe(t, h, http.StatusOK, request{method: "PATCH", path: "/admin/inventory/LIN-S", body: `{"backorder": false, "low_stock_threshold": null}`})
		if it := apitest.MustDecode[StockItem](t, w); it.Backorder || it.LowStockThreshold != DefaultLowStockThreshold {
			t.Fatalf("patch %+v", it)
		}
		apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: "/admin/inventory/LIN-S", body: `{"low_stock_threshold": -1}`}), 400, "validation_failed", "low_stock_threshold")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: "/admin/inventory/LIN-S", body: `{"low_stock_threshold": "x"}`}), 400, "bad_request")
	})

	t.Run("levels and adjustments", func(t *testing.T) {
		apitest.WantProblem(t, apitest.Serve(h, request{method: "PUT", path: "/admin/inventory/LIN-S/levels/" + a.ID, body: `{"on_hand": 1}`}), 409, "conflict")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "PUT", path: "/admin/inventory/LIN-S/levels/" + a.ID, body: `{"on_hand": -1, "reason": "sale"}`}), 400, "validation_failed", "on_hand", "reason")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "PUT", path: "/admin/inventory/LIN-S/levels/" + a.ID, body: `{"on_hand": 5}`,
			header: map[string]string{"If-Match": "99"}}), 409, "version_conflict")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "PUT", path: "/admin/inventory/LIN-S/levels/loc_01JD3Q0000000000000000000A", body: `{"on_hand": 5}`}), 404, "not_found")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "PUT", path: "/admin/inventory/LIN-S/levels/" + a.ID, body: `{}`, header: map[string]string{"Content-Type": "text/plain"}}),
			415, "unsupported_media_type")

		w := apitest.MustServe(t, h, http.StatusCreated, request{method: "POST", path: "/admin/inventory/LIN-S/adjustments",
			body: `{"location_id": "` + a.ID + `", "delta": -3, "reason": "damaged", "note": "water"}`})
		adj := apitest.MustDecode[Adjustment](t, w)
		if adj.Delta != -3 || adj.OnHandBefore != 40 || adj.OnHandAfter != 37 || adj.Note != "water" {
			t.Fatalf("adjustment %+v", adj)
		}
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/inventory/LIN-S/adjustments",
			body: `{"location_id": "nope", "delta": 0, "reason": "stolen"}`}), 400, "validation_failed", "location_id", "delta", "reason")
		page := apitest.MustDecode[httpx.Page[Adjustment]](t, apitest.MustServe(t, h, http.StatusOK, request{method: "GET", path: "/admin/inventory/LIN-S/adjustments?limit=2"}))
		if len(page.Data) != 2 || page.Data[0].ID != adj.ID || page.NextCursor == nil {
			t.Fatalf("adjustments %+v", page)
		}
		next := apitest.MustDecode[httpx.Page[Adjustment]](t, apitest.MustServe(t, h, http.StatusOK, request{method: "GET",
			path: "/admin/inventory/LIN-S/adjustments?limit=2&cursor=" + *page.NextCursor}))
		if len(next.Data) != 1 || next.NextCursor != nil {
			t.Fatalf("second page %+v", next)
		}
		apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/admin/inventory/NOPE/adjustments"}), 404, "not_found")
	})

	t.Run("lists", func(t *testing.T) {
		MustSetLevel(t, s, "MUG", a.ID, 1)
		page := apitest.MustDecode[httpx.Page[StockItem]](t, apitest.MustServe(t, h, http.StatusOK, request{method: "GET", path: "/admin/inventory?sku=MUG,NOPE&sku=LIN-S"}))
		if len(page.Data) != 2 || page.Data[0].SKU != "MUG" || page.Data[1].SKU != "LIN-S" {
			t.Fatalf("by sku %+v", page)
		}
		all := apitest.MustDecode[httpx.Page[StockItem]](t, apitest.MustServe(t, h, http.StatusOK, request{method: "GET", path: "/admin/inventory?limit=1"}))
		if len(all.Data) != 1 || all.Data[0].SKU != "LIN-S" || all.NextCursor == nil {
			t.Fatalf("all %+v", all)
		}
		apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/admin/inventory?sku="}), 400, "validation_failed", "sku")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/admin/inventory?sku=a%20b"}), 400, "validation_failed", "sku")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/admin/inventory/NOPE"}), 404, "not_found")
	})
}

func TestHTTPReservations(t *testing.T) {
	s := MustNewSQLiteService(t)
	h := apitest.Mount(s.Routes())
	a := MustCreateLocation(t, s, "A", 1)
	MustSetLevel(t, s, "LIN-S", a.ID, 5)
	MustSetLevel(t, s, "MUG", a.ID, 1)
	body := `{"order_id": "ord_1", "lines": [{"sku": "LIN-S", "quantity": 2}], "ttl_seconds": 600}`
	key := map[string]string{"Idempotency-Key": "ord_1:reserve"}

	w := apitest.MustServe(t, h, http.StatusCreated, request{method: "POST", path: "/admin/reservations", body: body, header: key})
	r := apitest.MustDecode[Reservation](t, w)
	if r.Key != "ord_1:reserve" || r.State != StatePending || w.Header().Get("Location") != "/admin/reservations/"+r.ID ||
		!r.ExpiresAt.Equal(r.CreatedAt.Add(600e9)) {
		t.Fatalf("reservation %+v, headers %v", r, w.Header())
	}
	w = apitest.MustServe(t, h, http.StatusOK, request{method: "POST", path: "/admin/reservations", body: body, header: key})
	if apitest.MustDecode[Reservation](t, w).ID != r.ID || w.Header().Get(httpx.HeaderIdempotentReplayed) != "true" {
		t.Fatalf("replay %v %s", w.Header(), w.Body)
	}
	w = apitest.MustServe(t, h, http.StatusOK, request{method: "POST", path: "/admin/reservations",
		body: `{"key": "ord_1:reserve", "order_id": "ord_1", "lines": [{"sku": "LIN-S", "quantity": 2}]}`})
	if apitest.MustDecode[Reservation](t, w).ID != r.ID {
		t.Fatal("key in the body is the same key")
	}
	wantLevel(t, s, "LIN-S", a.ID, 5, 2)

	t.Run("errors", func(t *testing.T) {
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/reservations", body: `{"order_id": "ord_1", "lines": [{"sku": "LIN-S", "quantity": 3}]}`, header: key}),
			422, "idempotency_key_reused", "key")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/reservations", body: `{"key": "a", "lines": [{"sku": "LIN-S", "quantity": 1}]}`,
			header: map[string]string{"Idempotency-Key": "b"}}), 400, "validation_failed", "key")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/reservations", body: `{"lines": [{"sku": "LIN-S", "quantity": 1}, {"sku": "MUG", "quantity": 0}]}`}),
			400, "validation_failed", "key", "lines[1].quantity")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/reservations", body: `{"key": "t", "lines": [{"sku": "MUG", "quantity": 1}], "ttl_seconds": 100000}`}),
			400, "validation_failed", "ttl_seconds")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/reservations", body: `{"key": "t", "lines": [{"sku": "MUG", "quantity": "1"}]}`}),
			400, "bad_request")
		p := apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/reservations", body: `{"key": "x", "lines": [{"sku": "LIN-S", "quantity": 1}, {"sku": "MUG", "quantity": 2}]}`}),
			409, "out_of_stock", "lines[1].quantity")
		if len(p.Errors) != 1 || p.Errors[0].Message != "MUG: want 2, have 1" || p.Errors[0].Code != "out_of_stock" {
			t.Fatalf("out_of_stock errors %+v", p.Errors)
		}
		wantLevel(t, s, "LIN-S", a.ID, 5, 2)
	})

	t.Run("get, release, commit", func(t *testing.T) {
		for _, ref := range []string{r.ID, "ord_1:reserve"} {
			if got := apitest.MustDecode[Reservation](t, apitest.MustServe(t, h, http.StatusOK, request{method: "GET", path: "/admin/reservations/" + ref})); got.ID != r.ID {
				t.Fatalf("GET %s = %+v", ref, got)
			}
		}
		apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/admin/reservations/res_01JD3Q0000000000000000000A"}), 404, "not_found")

		c := apitest.MustDecode[Reservation](t, apitest.MustServe(t, h, http.StatusOK, request{method: "POST", path: "/admin/reservations/" + r.ID + "/commit"}))
		if c.State != StateCommitted || *c.OrderID != "ord_1" {
			t.Fatalf("commit %+v", c)
		}
		apitest.MustServe(t, h, http.StatusOK, request{method: "POST", path: "/admin/reservations/" + r.ID + "/commit", body: `{"order_id": "ord_1"}`})
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/reservations/" + r.ID + "/commit", body: `{"order_id": "ord_2"}`}), 409, "conflict")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/reservations/" + r.ID + "/commit", body: `{"order": "ord_2"}`}), 400, "bad_request", "order")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/reservations/" + r.ID + "/release"}), 409, "conflict")
		wantLevel(t, s, "LIN-S", a.ID, 3, 0)

		other := MustReserve(t, s, "k/with slash", line("LIN-S", 1))
		path := "/admin/reservations/" + strings.ReplaceAll("k/with slash", "/", "%2F") + "/release"
		got := apitest.MustDecode[Reservation](t, apitest.MustServe(t, h, http.StatusOK, request{method: "POST", path: strings.ReplaceAll(path, " ", "%20")}))
		if got.ID != other.ID || got.State != StateReleased {
			t.Fatalf("release by key %+v", got)
		}
		apitest.MustServe(t, h, http.StatusOK, request{method: "POST", path: "/admin/reservations/" + other.ID + "/release"})
	})
}

func TestHTTPStoreAvailability(t *testing.T) {
	s := MustNewSQLiteService(t)
	h := apitest.Mount(s.Routes())
	a := MustCreateLocation(t, s, "A", 1)
	MustSetLevel(t, s, "MANY", a.ID, 500)
	MustSetLevel(t, s, "FEW", a.ID, 3)
	MustSetLevel(t, s, "NONE", a.ID, 0)
	MustAllowBackorder(t, s, "PRE")
	MustSetLevel(t, s, "PRE", a.ID, 0)

	got := apitest.MustDecode[struct{ Data []PublicAvailability }](t, apitest.MustServe(t, h, http.StatusOK,
		request{method: "GET", path: "/store/inventory/availability?sku=MANY,FEW&sku=NONE,PRE,GHOST,FEW"}))
	want := []PublicAvailability{
		{SKU: "MANY", InStock: true, Available: PublicAvailabilityCap},
		{SKU: "FEW", InStock: true, Available: 3},
		{SKU: "NONE"},
		{SKU: "PRE", InStock: true, Backorder: true},
		{SKU: "GHOST"},
	}
	if !slices.Equal(got.Data, want) {
		t.Fatalf("availability =\n%+v\nwant\n%+v", got.Data, want)
	}
	apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/store/inventory/availability"}), 400, "validation_failed", "sku")
	many := make([]string, MaxSKUsPerRequest+1)
	for i := range many {
		many[i] = fmt.Sprintf("S%d", i)
	}
	apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/store/inventory/availability?sku=" + strings.Join(many, ",")}), 400, "validation_failed", "sku")
}
