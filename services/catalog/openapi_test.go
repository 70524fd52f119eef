package catalog

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
	doc := c.Doc()
	for _, name := range []string{"Problem", "FieldError", "Page"} {
		if doc.Components.Schemas[name] == nil {
			t.Errorf("component schema %s missing", name)
		}
	}
	for _, name := range []string{"Limit", "Cursor", "IfMatch", "IdempotencyKey"} {
		if doc.Components.Parameters[name] == nil {
			t.Errorf("component parameter %s missing", name)
		}
	}
	if doc.Components.SecuritySchemes["bearerAuth"] == nil {
		t.Error("security scheme bearerAuth missing")
	}
}

func TestHandlersMatchOpenAPI(t *testing.T) {
	c := apitest.MustContract(t)
	s := MustNewSQLiteService(t)
	h := apitest.Mount(s.Routes())
	check := func(rq request) *httptest.ResponseRecorder { t.Helper(); return c.Serve(t, h, rq.Build()) }
	invalid := map[string]string{apitest.InvalidRequestHeader: "1"}

	cat := apitest.MustDecode[Category](t, check(request{method: "POST", path: "/admin/categories", body: `{"name": "Apparel", "description": "Clothes"}`}))
	sub := apitest.MustDecode[Category](t, check(request{method: "POST", path: "/admin/categories",
		body: `{"name": "Shirts", "parent_id": "` + cat.ID + `"}`, header: map[string]string{"Idempotency-Key": "k1"}}))
	check(request{method: "GET", path: "/admin/categories/" + sub.ID})
	check(request{method: "GET", path: "/admin/categories?limit=1"})
	check(request{method: "PATCH", path: "/admin/categories/" + sub.ID, body: `{"position": 3, "parent_id": null}`, header: map[string]string{"If-Match": `"1"`}})
	check(request{method: "GET", path: "/store/categories"})

	body := strings.Replace(linenShirtJSON, `"status"`, `"category_ids": ["`+cat.ID+`"], "status"`, 1)
	p := apitest.MustDecode[Product](t, check(request{method: "POST", path: "/admin/products", body: body}))
	check(request{method: "POST", path: "/admin/products", body: `{"title": "Draft Mug", "variants": [{"sku": "MUG-1"}]}`})
	check(request{method: "GET", path: "/admin/products/" + p.ID})
	check(request{method: "GET", path: "/admin/products?status=published&q=linen&limit=5"})
	check(request{method: "GET", path: "/admin/products?limit=1"})
	check(request{method: "PATCH", path: "/admin/products/" + p.ID, body: `{"title": "Linen Shirt II", "variants": [{"id": "` + p.Variants[0].ID + `", "sku": "LIN-S"}, {"sku": "LIN-M", "options": {"size": "M"}}]}`,
		header: map[string]string{"If-Match": "1"}})
	check(request{method: "GET", path: "/store/products?category=apparel"})
	check(request{method: "GET", path: "/store/products?q=linen&limit=1"})
	check(request{method: "GET", path: "/store/products/linen-shirt"})
	check(request{method: "GET", path: "/store/products/" + p.ID})
	check(request{method: "GET", path: "/store/variants/" + p.Variants[0].ID})
	check(request{method: "GET", path: "/store/variants?id=" + p.Variants[0].ID + ",var_01JD3Q0000000000000000000A&id=" + p.Variants[1].ID})
	check(request{method: "GET", path: "/store/variants"})

	// Errors are problem documents too.
	check(request{method: "GET", path: "/store/products/missing"})
	check(request{method: "GET", path: "/store/variants/var_01JD3Q0000000000000000000A"})
	check(request{method: "GET", path: "/admin/products/prod_01JD3Q0000000000000000000A"})
	check(request{method: "POST", path: "/admin/products", body: `{"title": "Linen", "bogus": true}`, header: invalid})
	check(request{method: "POST", path: "/admin/products", body: `{"title": "Clash", "handle": "linen-shirt"}`})
	check(request{method: "PATCH", path: "/admin/products/" + p.ID, body: `{"title": "Stale"}`, header: map[string]string{"If-Match": "1"}})
	check(request{method: "GET", path: "/store/products?limit=500", header: invalid})
	tooMany := strings.Join(distinctVariantIDs(MaxVariantBatch+1), ",")
	if res := check(request{method: "GET", path: "/store/variants?id=" + tooMany}); res.Code != http.StatusBadRequest || !strings.Contains(res.Body.String(), `"field":"id"`) {
		t.Errorf("GET /store/variants with %d ids = %d %s; want 400 naming id", MaxVariantBatch+1, res.Code, res.Body)
	}
	check(request{method: "DELETE", path: "/admin/categories/" + cat.ID, header: map[string]string{"If-Match": "9"}})

	check(request{method: "DELETE", path: "/admin/products/" + p.ID})
	check(request{method: "DELETE", path: "/admin/categories/" + sub.ID})
}

// TestOpenAPICatchesDrift makes sure the schemas are precise: a real
// response that lost or mistyped a field must fail validation.
func TestOpenAPICatchesDrift(t *testing.T) {
	c := apitest.MustContract(t)
	s := MustNewSQLiteService(t)
	h := apitest.Mount(s.Routes())
	p := apitest.MustDecode[Product](t, apitest.MustServe(t, h, http.StatusCreated, request{method: "POST", path: "/admin/products", body: linenShirtJSON}))

	for _, tt := range []struct {
		name, path string
		mutate     func(m map[string]any)
	}{
		{"admin product without version", "/admin/products/" + p.ID, func(m map[string]any) { delete(m, "version") }},
		{"admin product with string version", "/admin/products/" + p.ID, func(m map[string]any) { m["version"] = "1" }},
		{"admin product with unknown status", "/admin/products/" + p.ID, func(m map[string]any) { m["status"] = "live" }},
		{"admin product with an extra field", "/admin/products/" + p.ID, func(m map[string]any) { m["price"] = 10 }},
		{"variant without sku", "/admin/products/" + p.ID, func(m map[string]any) {
			delete(m["variants"].([]any)[0].(map[string]any), "sku")
		}},
		{"store product showing version", "/store/products/" + p.ID, func(m map[string]any) { m["version"] = 1 }},
		{"page without next_cursor", "/store/products", func(m map[string]any) { delete(m, "next_cursor") }},
		{"variant ref without product_id", "/store/variants/" + p.Variants[0].ID, func(m map[string]any) { delete(m, "product_id") }},
		{"variant list without data", "/store/variants?id=" + p.Variants[0].ID, func(m map[string]any) { delete(m, "data") }},
		{"variant list entry without sku", "/store/variants?id=" + p.Variants[0].ID, func(m map[string]any) {
			delete(m["data"].([]any)[0].(map[string]any), "sku")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rq := request{method: "GET", path: tt.path}
			c.MustRejectDrift(t, rq.Build(), apitest.MustServe(t, h, http.StatusOK, rq), tt.mutate)
		})
	}
}
