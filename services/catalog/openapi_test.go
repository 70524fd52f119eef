package catalog

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

// MustLoadOpenAPI loads and validates the merged OpenAPI document
// (api/openapi.yaml with api/openapi/*.yaml) and returns it with a router
// over its operations.
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
	c.validateResponse(in, w.Code, w.Header(), w.Body.Bytes())
	return w
}

func (c contractChecker) validateResponse(in *openapi3filter.RequestValidationInput, status int, header http.Header, body []byte) {
	c.t.Helper()
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.t.Errorf("%s %s → %d: response does not match the document: %v\n%s", in.Request.Method, in.Request.URL, status, err, body)
	}
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
	}
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
	_, router := MustLoadOpenAPI(t)
	s := MustNewSQLiteService(t)
	c := contractChecker{t: t, router: router, handler: mount(s.Routes())}
	invalid := map[string]string{"X-Test-Invalid-Request": "1"}

	cat := MustDecode[Category](t, c.check(request{method: "POST", path: "/admin/categories", body: `{"name": "Apparel", "description": "Clothes"}`}))
	sub := MustDecode[Category](t, c.check(request{method: "POST", path: "/admin/categories",
		body: `{"name": "Shirts", "parent_id": "` + cat.ID + `"}`, header: map[string]string{"Idempotency-Key": "k1"}}))
	c.check(request{method: "GET", path: "/admin/categories/" + sub.ID})
	c.check(request{method: "GET", path: "/admin/categories?limit=1"})
	c.check(request{method: "PATCH", path: "/admin/categories/" + sub.ID, body: `{"position": 3, "parent_id": null}`, header: map[string]string{"If-Match": `"1"`}})
	c.check(request{method: "GET", path: "/store/categories"})

	body := strings.Replace(linenShirtJSON, `"status"`, `"category_ids": ["`+cat.ID+`"], "status"`, 1)
	p := MustDecode[Product](t, c.check(request{method: "POST", path: "/admin/products", body: body}))
	c.check(request{method: "POST", path: "/admin/products", body: `{"title": "Draft Mug", "variants": [{"sku": "MUG-1"}]}`})
	c.check(request{method: "GET", path: "/admin/products/" + p.ID})
	c.check(request{method: "GET", path: "/admin/products?status=published&q=linen&limit=5"})
	c.check(request{method: "GET", path: "/admin/products?limit=1"})
	c.check(request{method: "PATCH", path: "/admin/products/" + p.ID, body: `{"title": "Linen Shirt II", "variants": [{"id": "` + p.Variants[0].ID + `", "sku": "LIN-S"}, {"sku": "LIN-M", "options": {"size": "M"}}]}`,
		header: map[string]string{"If-Match": "1"}})
	c.check(request{method: "GET", path: "/store/products?category=apparel"})
	c.check(request{method: "GET", path: "/store/products?q=linen&limit=1"})
	c.check(request{method: "GET", path: "/store/products/linen-shirt"})
	c.check(request{method: "GET", path: "/store/products/" + p.ID})
	c.check(request{method: "GET", path: "/store/variants/" + p.Variants[0].ID})

	// Errors are problem documents too.
	c.check(request{method: "GET", path: "/store/products/missing"})
	c.check(request{method: "GET", path: "/store/variants/var_01JD3Q0000000000000000000A"})
	c.check(request{method: "GET", path: "/admin/products/prod_01JD3Q0000000000000000000A"})
	c.check(request{method: "POST", path: "/admin/products", body: `{"title": "Linen", "bogus": true}`, header: invalid})
	c.check(request{method: "POST", path: "/admin/products", body: `{"title": "Clash", "handle": "linen-shirt"}`})
	c.check(request{method: "PATCH", path: "/admin/products/" + p.ID, body: `{"title": "Stale"}`, header: map[string]string{"If-Match": "1"}})
	c.check(request{method: "GET", path: "/store/products?limit=500", header: invalid})
	c.check(request{method: "DELETE", path: "/admin/categories/" + cat.ID, header: map[string]string{"If-Match": "9"}})

	c.check(request{method: "DELETE", path: "/admin/products/" + p.ID})
	c.check(request{method: "DELETE", path: "/admin/categories/" + sub.ID})
}

// TestOpenAPICatchesDrift makes sure the schemas are precise: a real
// response that lost or mistyped a field must fail validation.
func TestOpenAPICatchesDrift(t *testing.T) {
	_, router := MustLoadOpenAPI(t)
	s := MustNewSQLiteService(t)
	h := mount(s.Routes())
	p := MustDecode[Product](t, MustServe(t, h, http.StatusCreated, request{method: "POST", path: "/admin/products", body: linenShirtJSON}))

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
