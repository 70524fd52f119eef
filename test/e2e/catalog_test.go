package e2e_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

type product struct {
	ID       string `json:"id"`
	Title    string `json:"title"`
	Handle   string `json:"handle"`
	Status   string `json:"status"`
	Version  int64  `json:"version"`
	Variants []struct {
		ID  string `json:"id"`
		SKU string `json:"sku"`
	} `json:"variants"`
}

type productPage struct {
	Data       []product `json:"data"`
	NextCursor *string   `json:"next_cursor"`
}

// topologies are the two ways the binary runs: embedded (SQLite files and an
// in-process NATS) and distributed (PostgreSQL and an external NATS), the
// latter when the test servers are configured.
func topologies(t *testing.T) map[string]func(t *testing.T) []string {
	return map[string]func(t *testing.T) []string{
		"embedded": func(t *testing.T) []string { return nil },
		"postgres_nats": func(t *testing.T) []string {
			pg, nats := os.Getenv("SOUK_TEST_POSTGRES_URL"), os.Getenv("SOUK_TEST_NATS_URL")
			if pg == "" || nats == "" {
				t.Skip("distributed topology skipped: set SOUK_TEST_POSTGRES_URL and SOUK_TEST_NATS_URL to run it")
			}
			stream, prefix := mustIsolatedStream(t, nats)
			return []string{"--database-url", mustFreshDatabase(t, pg), "--nats-url", nats,
				"--bus-stream", stream, "--bus-subject-prefix", prefix}
		},
	}
}

// mustFreshDatabase creates an empty PostgreSQL database for one test and
// drops it afterwards; the services put their schemas in it.
func mustFreshDatabase(t *testing.T, base string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", base, err)
	}
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	name := "souk_e2e_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		conn.Close(context.Background())
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func TestCatalogEndToEnd(t *testing.T) {
	for name, topology := range topologies(t) {
		t.Run(name, func(t *testing.T) {
			args := topology(t)
			s := mustStart(t, args...)
			published := testCatalogFlow(t, s)
			if name == "postgres_nats" {
				// The outbox relay put the events on the external bus, as
				// CloudEvents matching their schemas.
				mustSeeEvent(t, os.Getenv("SOUK_TEST_NATS_URL"), args, "souk.catalog.product_published.v1", published)
				mustSeeEvent(t, os.Getenv("SOUK_TEST_NATS_URL"), args, "souk.catalog.product_archived.v1", published)
			}
		})
	}
}

// testCatalogFlow walks the catalogue API and returns the id of the product
// it published and then archived.
func testCatalogFlow(t *testing.T, s *server) string {
	// Operations endpoints answer.
	wantStatus(t, s.do(http.MethodGet, "/healthz", nil), http.StatusOK)
	wantStatus(t, s.do(http.MethodGet, "/readyz", nil), http.StatusOK)
	spec := s.do(http.MethodGet, "/openapi.json", nil)
	wantStatus(t, spec, http.StatusOK)
	if !strings.Contains(string(spec.body), `"openapi"`) {
		t.Fatalf("/openapi.json is not an OpenAPI document: %.200s", spec.body)
	}

	// Without a key the Admin API is closed; a viewer may read, not write.
	if r := s.do(http.MethodGet, "/admin/products", nil); r.StatusCode != http.StatusUnauthorized || r.problemCode(t) != "unauthorized" {
		t.Fatalf("no key: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(http.MethodGet, "/admin/products", nil, "Authorization", "Bearer sk_wrong"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong key: %d", r.StatusCode)
	}
	keyResp := s.admin(http.MethodPost, "/admin/api-keys", map[string]any{"name": "read only", "role": "viewer"})
	wantStatus(t, keyResp, http.StatusCreated)
	var viewer struct {
		Secret string `json:"secret"`
	}
	keyResp.decode(t, &viewer)
	wantStatus(t, s.do(http.MethodGet, "/admin/products", nil, "Authorization", "Bearer "+viewer.Secret), http.StatusOK)
	if r := s.do(http.MethodPost, "/admin/products", map[string]any{"title": "Nope"}, "Authorization", "Bearer "+viewer.Secret); r.StatusCode != http.StatusForbidden || r.problemCode(t) != "forbidden" {
		t.Fatalf("viewer write: %d %s", r.StatusCode, r.body)
	}

	// Create a category and a draft product in it, then publish it.
	cat := s.admin(http.MethodPost, "/admin/categories", map[string]any{"name": "Shirts", "handle": "shirts"})
	wantStatus(t, cat, http.StatusCreated)
	var category struct {
		ID string `json:"id"`
	}
	cat.decode(t, &category)

	create := s.admin(http.MethodPost, "/admin/products", map[string]any{
		"title":        "Zanzibar Linen Shirt",
		"handle":       "zanzibar-linen-shirt",
		"description":  "A breezy shirt woven from Belgian flax.",
		"status":       "draft",
		"category_ids": []string{category.ID},
		"options":      []map[string]any{{"name": "size", "values": []string{"S", "M"}}},
		"variants": []map[string]any{
			{"sku": "ZAN-S", "options": map[string]string{"size": "S"}, "weight_grams": 300},
			{"sku": "ZAN-M", "options": map[string]string{"size": "M"}, "weight_grams": 320},
		},
	}, "Idempotency-Key", "create-zanzibar")
	wantStatus(t, create, http.StatusCreated)
	var p product
	create.decode(t, &p)
	if !strings.HasPrefix(p.ID, "prod_") || p.Version != 1 || len(p.Variants) != 2 || !strings.HasPrefix(p.Variants[0].ID, "var_") {
		t.Fatalf("created product = %+v", p)
	}
	if create.Header.Get("ETag") != `"1"` {
		t.Errorf("ETag = %q, want \"1\"", create.Header.Get("ETag"))
	}

	// The same Idempotency-Key replays the first answer; another body under it is refused.
	replay := s.admin(http.MethodPost, "/admin/products", map[string]any{
		"title": "Zanzibar Linen Shirt", "handle": "zanzibar-linen-shirt", "description": "A breezy shirt woven from Belgian flax.",
		"status": "draft", "category_ids": []string{category.ID},
		"options": []map[string]any{{"name": "size", "values": []string{"S", "M"}}},
		"variants": []map[string]any{
			{"sku": "ZAN-S", "options": map[string]string{"size": "S"}, "weight_grams": 300},
			{"sku": "ZAN-M", "options": map[string]string{"size": "M"}, "weight_grams": 320},
		},
	}, "Idempotency-Key", "create-zanzibar")
	wantStatus(t, replay, http.StatusCreated)
	var again product
	replay.decode(t, &again)
	if again.ID != p.ID {
		t.Fatalf("idempotent replay created a second product: %s vs %s", again.ID, p.ID)
	}
	if r := s.admin(http.MethodPost, "/admin/products", map[string]any{"title": "Other"}, "Idempotency-Key", "create-zanzibar"); r.StatusCode != http.StatusUnprocessableEntity || r.problemCode(t) != "idempotency_key_reused" {
		t.Fatalf("reused key: %d %s", r.StatusCode, r.body)
	}

	// A draft is not in the store.
	wantStatus(t, s.do(http.MethodGet, "/store/products/"+p.ID, nil), http.StatusNotFound)

	publish := s.admin(http.MethodPatch, "/admin/products/"+p.ID, map[string]any{"status": "published"}, "If-Match", `"1"`)
	wantStatus(t, publish, http.StatusOK)
	publish.decode(t, &p)
	if p.Status != "published" || p.Version != 2 {
		t.Fatalf("published product = %+v", p)
	}

	// Publish a few more so there is something to page through.
	for i := range 5 {
		r := s.admin(http.MethodPost, "/admin/products", map[string]any{
			"title": fmt.Sprintf("Harbour Tee %d", i), "status": "published",
			"variants": []map[string]any{{"sku": fmt.Sprintf("HTEE-%d", i), "options": map[string]string{}}},
		})
		wantStatus(t, r, http.StatusCreated)
	}

	// Search finds it by title word and by SKU; the store shows it by handle too.
	for _, q := range []string{"zanzibar", "flax", "ZAN-M"} {
		var page productPage
		r := s.do(http.MethodGet, "/store/products?q="+url.QueryEscape(q), nil)
		wantStatus(t, r, http.StatusOK)
		r.decode(t, &page)
		if len(page.Data) == 0 || page.Data[0].ID != p.ID {
			t.Errorf("search %q: got %+v, want %s first", q, page.Data, p.ID)
		}
	}
	wantStatus(t, s.do(http.MethodGet, "/store/products/zanzibar-linen-shirt", nil), http.StatusOK)
	var inCategory productPage
	r := s.do(http.MethodGet, "/store/products?category=shirts", nil)
	wantStatus(t, r, http.StatusOK)
	r.decode(t, &inCategory)
	if len(inCategory.Data) != 1 || inCategory.Data[0].ID != p.ID {
		t.Errorf("category filter: %+v", inCategory.Data)
	}

	// Page through the store two at a time: every product once, in a stable order.
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		path := "/store/products?limit=2"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var page productPage
		r := s.do(http.MethodGet, path, nil)
		wantStatus(t, r, http.StatusOK)
		r.decode(t, &page)
		for _, item := range page.Data {
			if seen[item.ID] {
				t.Fatalf("product %s on two pages", item.ID)
			}
			seen[item.ID] = true
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	if len(seen) != 6 {
		t.Fatalf("paged through %d products, want 6", len(seen))
	}

	// A stale version is refused and changes nothing.
	stale := s.admin(http.MethodPatch, "/admin/products/"+p.ID, map[string]any{"title": "Stale"}, "If-Match", `"1"`)
	if stale.StatusCode != http.StatusConflict || stale.problemCode(t) != "version_conflict" {
		t.Fatalf("stale update: %d %s", stale.StatusCode, stale.body)
	}
	var current product
	got := s.admin(http.MethodGet, "/admin/products/"+p.ID, nil)
	wantStatus(t, got, http.StatusOK)
	got.decode(t, &current)
	if current.Title != "Zanzibar Linen Shirt" || current.Version != 2 {
		t.Fatalf("after a refused update: %+v", current)
	}

	// Bad input: malformed JSON, unknown fields, invalid values, oversized bodies.
	if r := s.admin(http.MethodPost, "/admin/products", `{"title": `); r.StatusCode != http.StatusBadRequest || r.problemCode(t) != "bad_request" {
		t.Fatalf("bad JSON: %d %s", r.StatusCode, r.body)
	}
	if r := s.admin(http.MethodPost, "/admin/products", map[string]any{"title": "X", "colour": "red"}); r.StatusCode != http.StatusBadRequest || !strings.Contains(string(r.body), `"colour"`) {
		t.Fatalf("unknown field: %d %s", r.StatusCode, r.body)
	}
	if r := s.admin(http.MethodPost, "/admin/products", map[string]any{"title": "", "variants": []map[string]any{{"sku": "ZAN-S"}}}); r.StatusCode != http.StatusBadRequest || r.problemCode(t) != "validation_failed" {
		t.Fatalf("invalid product: %d %s", r.StatusCode, r.body)
	}
	big := `{"title": "` + strings.Repeat("x", 2<<20) + `"}`
	if r := s.admin(http.MethodPost, "/admin/products", big); r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("2 MiB body: %d", r.StatusCode)
	}
	if r := s.do(http.MethodGet, "/store/products?limit=500", nil); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("limit=500: %d", r.StatusCode)
	}

	// Every response carries a request id and a trace context.
	h := s.do(http.MethodGet, "/store/products", nil)
	if h.Header.Get("X-Request-Id") == "" || h.Header.Get("Traceparent") == "" {
		t.Errorf("missing X-Request-Id or traceparent: %v", h.Header)
	}

	// Archiving takes it out of the store.
	wantStatus(t, s.admin(http.MethodDelete, "/admin/products/"+p.ID, nil), http.StatusNoContent)
	wantStatus(t, s.do(http.MethodGet, "/store/products/"+p.ID, nil), http.StatusNotFound)
	return p.ID
}
