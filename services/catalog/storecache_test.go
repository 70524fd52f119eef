package catalog

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

// TestStoreCache: repeated Store reads come from memory, a write by this
// process is visible at once, and a write by another process (a second
// Service on the same database) within the TTL.
func TestStoreCache(t *testing.T) {
	storetest.Run(t, []store.Migrations{bus.Migrations, Migrations}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		const ttl = 300 * time.Millisecond
		a := New(db, nil, nil, WithStoreCache(ttl, 1<<20))
		b := New(db, nil, nil, WithStoreCache(ttl, 1<<20)) // "another replica"
		handler := apitest.Mount(a.Routes())
		get := func(path string) (int, []string) {
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			var page struct {
				Data []struct {
					Title string `json:"title"`
				} `json:"data"`
			}
			_ = json.Unmarshal(rec.Body.Bytes(), &page)
			titles := []string{}
			for _, p := range page.Data {
				titles = append(titles, p.Title)
			}
			return rec.Code, titles
		}

		p, err := a.CreateProduct(ctx, ProductInput{Title: "Cached Mug", Status: StatusPublished,
			Variants: []VariantInput{{SKU: "CM-1", Options: map[string]string{}}}})
		if err != nil {
			t.Fatal(err)
		}
		if code, titles := get("/store/products"); code != 200 || len(titles) != 1 {
			t.Fatalf("first read = %d %v", code, titles)
		}

		// Served from memory: a row changed behind the service's back is not seen...
		if _, err := db.Exec(ctx, `UPDATE catalog_products SET title = ? WHERE id = ?`, "Changed Behind", p.ID); err != nil {
			t.Fatal(err)
		}
		if _, titles := get("/store/products"); titles[0] != "Cached Mug" {
			t.Fatalf("second read bypassed the cache: %v", titles)
		}
		if hits, misses := cacheLookups(a, cacheStore); hits != 1 || misses != 1 {
			t.Fatalf("store cache counted %v hits, %v misses; want 1, 1", hits, misses)
		}

		// ...but this process's own write is visible at once.
		if _, err := a.UpdateProduct(ctx, p.ID, ProductPatch{Title: ptr("Own Write")}, 0); err != nil {
			t.Fatal(err)
		}
		if _, titles := get("/store/products"); titles[0] != "Own Write" {
			t.Fatalf("own write not visible: %v", titles)
		}

		// Another process's write is visible once the TTL has passed.
		if _, err := b.UpdateProduct(ctx, p.ID, ProductPatch{Title: ptr("Replica Write")}, 0); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * ttl)
		for {
			if _, titles := get("/store/products"); titles[0] == "Replica Write" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("another process's write never became visible")
			}
			time.Sleep(ttl / 4)
		}
	})
}
