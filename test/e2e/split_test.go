package e2e_test

import (
	"net/http"
	"testing"
)

// TestSplitTopology runs identity and catalog as two processes (two Apps),
// the way --services splits the binary: the catalog process authenticates
// admin calls through the identity process, and its gateway forwards
// identity's routes there.
func TestSplitTopology(t *testing.T) {
	id := mustStart(t, "--services", "identity")
	cat := mustStart(t, "--services", "catalog", "--remote", "identity="+id.base)

	// The admin key lives in identity; the catalog process accepts it.
	wantStatus(t, cat.admin(http.MethodGet, "/admin/products", nil), http.StatusOK)
	if r := cat.do(http.MethodGet, "/admin/products", nil, "Authorization", "Bearer sk_not_a_key"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad key through the remote identity: %d", r.StatusCode)
	}

	// A key created through the catalog process's gateway (forwarded to
	// identity) works on both.
	created := cat.admin(http.MethodPost, "/admin/api-keys", map[string]any{"name": "split", "role": "merchandiser"})
	wantStatus(t, created, http.StatusCreated)
	var key struct {
		Secret string `json:"secret"`
	}
	created.decode(t, &key)
	product := cat.do(http.MethodPost, "/admin/products", map[string]any{
		"title": "Split Mug", "status": "published",
		"variants": []map[string]any{{"sku": "SPLIT-1", "options": map[string]string{}}},
	}, "Authorization", "Bearer "+key.Secret)
	wantStatus(t, product, http.StatusCreated)
	wantStatus(t, id.do(http.MethodGet, "/admin/auth/whoami", nil, "Authorization", "Bearer "+key.Secret), http.StatusOK)

	// The identity process does not serve the catalogue.
	if r := id.do(http.MethodGet, "/store/products", nil); r.StatusCode != http.StatusNotFound {
		t.Fatalf("identity process served /store/products: %d", r.StatusCode)
	}
	wantStatus(t, cat.do(http.MethodGet, "/store/products", nil), http.StatusOK)
}
