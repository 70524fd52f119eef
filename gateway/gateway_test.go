package gateway_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/soukhq/souk/gateway"
	"github.com/soukhq/souk/platform/httpx"
)

func text(s string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, s+" "+r.URL.Path) }
}

func newGateway(t *testing.T) *gateway.Gateway {
	t.Helper()
	return gateway.New(gateway.Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestRoutingTable(t *testing.T) {
	remote := httptest.NewServer(text("remote"))
	defer remote.Close()

	g := newGateway(t)
	g.AddLocal("catalog", text("catalog"))
	g.AddLocal("ops", text("ops"))
	g.AddLocal("cart", text("cart"))
	g.AddLocal("orders", text("orders"))
	err := g.SetTable(gateway.Table{
		Rules: []gateway.Rule{
			{Prefix: "/store/carts", Upstream: "cart"},
			{Prefix: "/store/carts/*/checkout", Upstream: "orders"},
			{Prefix: "/admin/products", Upstream: "catalog"},
			{Prefix: "/admin/products/legacy", Upstream: "monolith"},
			{Prefix: "/healthz", Upstream: "ops"},
		},
		Remote: map[string]string{"monolith": remote.URL},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		code int
		body string
	}{
		{"/admin/products", 200, "catalog /admin/products"},
		{"/admin/products/prod_1", 200, "catalog /admin/products/prod_1"},
		{"/admin/products/legacy/42", 200, "remote /admin/products/legacy/42"},
		{"/admin/productsx", 404, ""},
		{"/healthz", 200, "ops /healthz"},
		{"/store/carts", 200, "cart /store/carts"},
		{"/store/carts/cart_1/items", 200, "cart /store/carts/cart_1/items"},
		{"/store/carts/cart_1/checkout", 200, "orders /store/carts/cart_1/checkout"},
		{"/store/carts/cart_1/checkoutx", 200, "cart /store/carts/cart_1/checkoutx"},
		{"/nowhere", 404, ""},
	} {
		rec := get(t, g, http.MethodGet, tt.path)
		if rec.Code != tt.code || (tt.body != "" && rec.Body.String() != tt.body) {
			t.Errorf("GET %s = %d %q, want %d %q", tt.path, rec.Code, rec.Body.String(), tt.code, tt.body)
		}
		if tt.code == 404 && rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET %s: 404 must be problem+json, got %q", tt.path, rec.Header().Get("Content-Type"))
		}
	}
}

func TestSetTableRefusesUnknownUpstreams(t *testing.T) {
	g := newGateway(t)
	if err := g.SetTable(gateway.Table{Rules: []gateway.Rule{{Prefix: "/x", Upstream: "ghost"}}}); err == nil {
		t.Fatal("a rule naming an unknown upstream must be refused")
	}
	if err := g.SetTable(gateway.Table{Remote: map[string]string{"m": "ftp://x"}}); err == nil {
		t.Fatal("a non-http upstream must be refused")
	}
}

func TestRemoteDownIs503Problem(t *testing.T) {
	dead := httptest.NewServer(text("x"))
	dead.Close()
	g := newGateway(t)
	if err := g.SetTable(gateway.Table{Rules: []gateway.Rule{{Prefix: "/store", Upstream: "cart"}}, Remote: map[string]string{"cart": dead.URL}}); err != nil {
		t.Fatal(err)
	}
	rec := get(t, g, http.MethodGet, "/store/carts/1")
	var p httpx.Problem
	if rec.Code != http.StatusServiceUnavailable || json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Code != "unavailable" {
		t.Fatalf("dead upstream = %d %s", rec.Code, rec.Body.String())
	}
}

func TestMountProblems(t *testing.T) {
	var decorated []string
	h := gateway.Mount([]httpx.Route{
		{Method: http.MethodGet, Path: "/store/products/{id}", Handler: text("get")},
		{Method: http.MethodPost, Path: "/admin/products", Handler: text("create")},
	}, func(rt httpx.Route, next http.Handler) http.Handler {
		decorated = append(decorated, rt.Pattern())
		return next
	})
	if len(decorated) != 2 {
		t.Fatalf("decorated %v", decorated)
	}
	if rec := get(t, h, http.MethodGet, "/store/products/p1"); rec.Code != 200 {
		t.Fatalf("GET = %d", rec.Code)
	}
	rec := get(t, h, http.MethodDelete, "/store/products/p1")
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") == "" || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("DELETE = %d %v %s", rec.Code, rec.Header(), rec.Body.String())
	}
	if rec := get(t, h, http.MethodGet, "/store/nothing"); rec.Code != http.StatusNotFound {
		t.Fatalf("unknown = %d", rec.Code)
	}
}
