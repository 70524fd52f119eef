package catalog

import (
	"encoding/json"
	"net/http"
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

const linenShirtJSON = `{"title": "Linen Shirt", "description": "Washed linen.", "status": "published",
	"options": [{"name": "size", "values": ["S", "M"]}],
	"variants": [{"sku": "LIN-S", "options": {"size": "S"}, "weight_grams": 300},
	             {"sku": "LIN-M", "options": {"size": "M"}, "weight_grams": 310, "attributes": {"fit": "relaxed"}}],
	"media": [{"url": "https://example.com/linen.jpg", "alt": "Front"}]}`

func TestHTTPProducts(t *testing.T) {
	s := MustNewSQLiteService(t)
	h := apitest.Mount(s.Routes())

	w := apitest.MustServe(t, h, http.StatusCreated, request{method: "POST", path: "/admin/products", body: linenShirtJSON})
	p := apitest.MustDecode[Product](t, w)
	if w.Header().Get("ETag") != `"1"` || w.Header().Get("Location") != "/admin/products/"+p.ID {
		t.Fatalf("headers = %v", w.Header())
	}
	if p.Version != 1 || p.Handle != "linen-shirt" || len(p.Variants) != 2 || p.Variants[1].Attributes["fit"] != "relaxed" {
		t.Fatalf("created = %+v", p)
	}
	var raw map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &raw)
	for _, f := range []string{"id", "handle", "title", "description", "status", "category_ids", "options", "variants", "media", "version", "created_at", "updated_at", "published_at"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("admin product lacks %q", f)
		}
	}

	t.Run("get", func(t *testing.T) {
		w := apitest.MustServe(t, h, http.StatusOK, request{method: "GET", path: "/admin/products/" + p.ID})
		if w.Header().Get("ETag") != `"1"` || apitest.MustDecode[Product](t, w).ID != p.ID {
			t.Fatalf("get: %v %s", w.Header(), w.Body)
		}
		apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/admin/products/prod_01JD3Q0000000000000000000A"}), 404, "not_found")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/admin/products/linen-shirt"}), 404, "not_found")
	})

	t.Run("create errors", func(t *testing.T) {
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/products", body: `{"title": "X", "bogus": 1}`}), 400, "bad_request", "bogus")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/products", body: `{"title": 5}`}), 400, "bad_request", "title")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/products", body: `{"title": "X"`}), 400, "bad_request")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/products", body: `{"title": "", "variants": [{"sku": "A"}, {"sku": "bad sku"}]}`}),
			400, "validation_failed", "title", "variants[1].sku")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/products", body: `{"title": "Clash", "handle": "linen-shirt"}`}), 409, "conflict", "handle")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/products", body: `{"title": "Clash", "variants": [{"sku": "LIN-M"}]}`}), 409, "conflict", "variants[0].sku")
		r := request{method: "POST", path: "/admin/products", body: `{"title": "X"}`, header: map[string]string{"Content-Type": "text/plain"}}
		apitest.WantProblem(t, apitest.Serve(h, r), 415, "unsupported_media_type")
	})

	t.Run("patch", func(t *testing.T) {
		w := apitest.MustServe(t, h, http.StatusOK, request{method: "PATCH", path: "/admin/products/" + p.ID, body: `{"title": "Linen Shirt II"}`,
			header: map[string]string{"If-Match": `"1"`}})
		if w.Header().Get("ETag") != `"2"` || apitest.MustDecode[Product](t, w).Title != "Linen Shirt II" {
			t.Fatalf("patch: %v %s", w.Header(), w.Body)
		}
		apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: "/admin/products/" + p.ID, body: `{"title": "Stale"}`,
			header: map[string]string{"If-Match": "1"}}), 409, "version_conflict")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: "/admin/products/" + p.ID, body: `{"title": "Bad"}`,
			header: map[string]string{"If-Match": "soon"}}), 400, "bad_request", "If-Match")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: "/admin/products/" + p.ID, body: `{"version": 3}`}), 400, "bad_request", "version")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: "/admin/products/" + p.ID, body: `{"options": [{"name": "size", "values": []}]}`}),
			400, "validation_failed", "options[0].values")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: "/admin/products/prod_01JD3Q0000000000000000000A", body: `{"title": "X"}`}), 404, "not_found")
	})

	t.Run("lists", func(t *testing.T) {
		apitest.MustServe(t, h, http.StatusCreated, request{method: "POST", path: "/admin/products", body: `{"title": "Hidden Draft", "variants": [{"sku": "HD-1"}]}`})
		admin := apitest.MustDecode[httpx.Page[Product]](t, apitest.MustServe(t, h, 200, request{method: "GET", path: "/admin/products?limit=1"}))
		if len(admin.Data) != 1 || admin.NextCursor == nil {
			t.Fatalf("admin page = %+v", admin)
		}
		drafts := apitest.MustDecode[httpx.Page[Product]](t, apitest.MustServe(t, h, 200, request{method: "GET", path: "/admin/products?status=draft"}))
		if len(drafts.Data) != 1 || drafts.Data[0].Title != "Hidden Draft" || drafts.NextCursor != nil {
			t.Fatalf("drafts = %+v", drafts)
		}
		w := apitest.MustServe(t, h, 200, request{method: "GET", path: "/store/products"})
		if !strings.Contains(w.Body.String(), `"next_cursor":null`) {
			t.Fatalf("last page must carry next_cursor null: %s", w.Body)
		}
		store := apitest.MustDecode[httpx.Page[Product]](t, w)
		if len(store.Data) != 1 || store.Data[0].ID != p.ID {
			t.Fatalf("store page = %+v", store)
		}
		found := apitest.MustDecode[httpx.Page[Product]](t, apitest.MustServe(t, h, 200, request{method: "GET", path: "/store/products?q=linen"}))
		if len(found.Data) != 1 {
			t.Fatalf("search = %+v", found)
		}
		apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/store/products?limit=0"}), 400, "validation_failed", "limit")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/store/products?limit=abc"}), 400, "validation_failed", "limit")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/store/products?cursor=%25%25"}), 400, "validation_failed", "cursor")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/store/products?category=nope"}), 400, "validation_failed", "category")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/admin/products?status=live"}), 400, "validation_failed", "status")
	})

	t.Run("store views", func(t *testing.T) {
		w := apitest.MustServe(t, h, 200, request{method: "GET", path: "/store/products/linen-shirt"})
		var raw map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &raw)
		for _, internal := range []string{"version", "created_at"} {
			if _, ok := raw[internal]; ok {
				t.Errorf("store product shows %q", internal)
			}
		}
		sp := apitest.MustDecode[Product](t, w)
		ref := apitest.MustDecode[VariantRef](t, apitest.MustServe(t, h, 200, request{method: "GET", path: "/store/variants/" + sp.Variants[0].ID}))
		if ref.ProductID != p.ID || ref.SKU != "LIN-S" || ref.ProductStatus != StatusPublished || ref.ProductHandle != "linen-shirt" {
			t.Fatalf("variant ref = %+v", ref)
		}
		apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/store/products/hidden-draft"}), 404, "not_found")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/store/variants/var_01JD3Q0000000000000000000A"}), 404, "not_found")
	})

	t.Run("delete", func(t *testing.T) {
		apitest.WantProblem(t, apitest.Serve(h, request{method: "DELETE", path: "/admin/products/" + p.ID, header: map[string]string{"If-Match": "1"}}), 409, "version_conflict")
		w := apitest.MustServe(t, h, http.StatusNoContent, request{method: "DELETE", path: "/admin/products/" + p.ID})
		if w.Body.Len() != 0 {
			t.Fatalf("204 with a body: %s", w.Body)
		}
		got := apitest.MustDecode[Product](t, apitest.MustServe(t, h, 200, request{method: "GET", path: "/admin/products/" + p.ID}))
		if got.Status != StatusArchived {
			t.Fatalf("status after DELETE = %s", got.Status)
		}
		apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/store/products/" + p.ID}), 404, "not_found")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "DELETE", path: "/admin/products/prod_01JD3Q0000000000000000000A"}), 404, "not_found")
	})
}

func TestHTTPCategories(t *testing.T) {
	s := MustNewSQLiteService(t)
	h := apitest.Mount(s.Routes())

	w := apitest.MustServe(t, h, http.StatusCreated, request{method: "POST", path: "/admin/categories", body: `{"name": "Apparel"}`})
	apparel := apitest.MustDecode[Category](t, w)
	if w.Header().Get("ETag") != `"1"` || apparel.Handle != "apparel" || apparel.ParentID != nil {
		t.Fatalf("created = %+v %v", apparel, w.Header())
	}
	shirts := apitest.MustDecode[Category](t, apitest.MustServe(t, h, http.StatusCreated, request{method: "POST", path: "/admin/categories",
		body: `{"name": "Shirts", "parent_id": "` + apparel.ID + `", "position": 2}`}))

	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/categories", body: `{"name": "X", "parent_id": "cat_01JD3Q0000000000000000000A"}`}),
		400, "validation_failed", "parent_id")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/categories", body: `{"name": "Apparel", "handle": "apparel"}`}), 409, "conflict", "handle")
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/categories", body: `{"title": "Apparel"}`}), 400, "bad_request", "title")

	tree := apitest.MustDecode[categoryTree](t, apitest.MustServe(t, h, 200, request{method: "GET", path: "/store/categories"}))
	if len(tree.Data) != 1 || len(tree.Data[0].Children) != 1 || tree.Data[0].Children[0].ID != shirts.ID {
		t.Fatalf("tree = %+v", tree)
	}

	apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: "/admin/categories/" + apparel.ID, body: `{"parent_id": "` + shirts.ID + `"}`}),
		400, "validation_failed", "parent_id")
	w = apitest.MustServe(t, h, 200, request{method: "PATCH", path: "/admin/categories/" + shirts.ID, body: `{"parent_id": null}`,
		header: map[string]string{"If-Match": `W/"1"`}})
	if c := apitest.MustDecode[Category](t, w); c.ParentID != nil || c.Version != 2 || w.Header().Get("ETag") != `"2"` {
		t.Fatalf("moved = %+v", c)
	}
	apitest.MustServe(t, h, 200, request{method: "PATCH", path: "/admin/categories/" + shirts.ID, body: `{"parent_id": "` + apparel.ID + `"}`})
	apitest.WantProblem(t, apitest.Serve(h, request{method: "DELETE", path: "/admin/categories/" + apparel.ID}), 409, "conflict")

	page := apitest.MustDecode[httpx.Page[Category]](t, apitest.MustServe(t, h, 200, request{method: "GET", path: "/admin/categories?limit=1"}))
	if len(page.Data) != 1 || page.NextCursor == nil {
		t.Fatalf("page = %+v", page)
	}
	apitest.MustServe(t, h, 200, request{method: "GET", path: "/admin/categories/" + shirts.ID})
	apitest.MustServe(t, h, http.StatusNoContent, request{method: "DELETE", path: "/admin/categories/" + shirts.ID})
	apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/admin/categories/" + shirts.ID}), 404, "not_found")
}

func TestRoutesDeclarePermissions(t *testing.T) {
	s := MustNewSQLiteService(t)
	seen := map[string]bool{}
	for _, r := range s.Routes() {
		if seen[r.Pattern()] {
			t.Errorf("route %s twice", r.Pattern())
		}
		seen[r.Pattern()] = true
		switch {
		case strings.HasPrefix(r.Path, "/admin/") && r.Method == http.MethodGet:
			if r.Permission != PermissionRead {
				t.Errorf("%s: permission %q, want %q", r.Pattern(), r.Permission, PermissionRead)
			}
		case strings.HasPrefix(r.Path, "/admin/"):
			if r.Permission != PermissionWrite {
				t.Errorf("%s: permission %q, want %q", r.Pattern(), r.Permission, PermissionWrite)
			}
		case strings.HasPrefix(r.Path, "/store/"):
			if r.Permission != "" || r.Method != http.MethodGet {
				t.Errorf("%s: store routes are public reads", r.Pattern())
			}
		default:
			t.Errorf("%s: outside /admin and /store", r.Pattern())
		}
		if r.Handler == nil {
			t.Errorf("%s: no handler", r.Pattern())
		}
	}
}
