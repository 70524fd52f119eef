package catalog

import (
	"context"
	"sync"
	"testing"

	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

func TestSeed(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		seeded, err := Seed(ctx, s)
		if err != nil || !seeded {
			t.Fatalf("first Seed = %v, %v", seeded, err)
		}
		products := countRows(t, s, `SELECT COUNT(*) FROM catalog_products WHERE status = 'published'`)
		categories := countRows(t, s, `SELECT COUNT(*) FROM catalog_categories`)
		if products != len(demoProducts) || products < 20 || categories != len(demoCategories) {
			t.Fatalf("seeded %d products, %d categories", products, categories)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM souk_outbox WHERE event_type = ?`, EventProductPublished); n != products {
			t.Fatalf("%d product_published events for %d products", n, products)
		}

		t.Run("twice loads nothing more", func(t *testing.T) {
			seeded, err := Seed(ctx, s)
			if err != nil || seeded {
				t.Fatalf("second Seed = %v, %v", seeded, err)
			}
			if n := countRows(t, s, `SELECT COUNT(*) FROM catalog_products`); n != products {
				t.Fatalf("%d products after the second seed, want %d", n, products)
			}
		})

		t.Run("deleting demo products does not bring them back", func(t *testing.T) {
			page, err := s.ListProducts(ctx, ProductQuery{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteProduct(ctx, page.Data[len(page.Data)-1].ID, 0); err != nil {
				t.Fatal(err)
			}
			if seeded, err := Seed(ctx, s); err != nil || seeded {
				t.Fatalf("Seed after delete = %v, %v", seeded, err)
			}
			if n := countRows(t, s, `SELECT COUNT(*) FROM catalog_products WHERE status = 'published'`); n != products-1 {
				t.Fatalf("%d published, want %d", n, products-1)
			}
		})

		t.Run("the demo catalogue is browsable", func(t *testing.T) {
			got, err := s.GetProduct(ctx, "linen-shirt")
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Variants) != 8 || got.Variants[0].SKU != "LIN-SHIRT-S-WHT" || got.Variants[0].Title != "S / White" || len(got.Media) != 2 {
				t.Fatalf("linen shirt = %+v", got)
			}
			page, err := s.ListProducts(ctx, ProductQuery{Category: "apparel", Limit: 100})
			if err != nil || len(page.Data) < 10 {
				t.Fatalf("apparel: %d products, %v", len(page.Data), err)
			}
			page, err = s.ListProducts(ctx, ProductQuery{Q: "merino"})
			if err != nil || len(page.Data) != 1 {
				t.Fatalf("merino: %d products, %v", len(page.Data), err)
			}
			tree, err := s.CategoryTree(ctx)
			if err != nil || len(tree) != 3 || tree[0].Handle != "apparel" || len(tree[0].Children) != 2 {
				t.Fatalf("tree = %+v, %v", tree, err)
			}
		})
	})
}

// TestSeedRace: two processes seeding one database at once load it once.
func TestSeedRace(t *testing.T) {
	for _, engine := range []store.Engine{store.SQLite, store.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			db := storetest.MustOpen(t, engine, testMigrations...)
			// Two services over one database, as two processes would be.
			a, b := New(db, bus.NewOutbox(nil), nil), New(db, bus.NewOutbox(nil), nil)
			var wg sync.WaitGroup
			results := make([]bool, 2)
			for i, s := range []*Service{a, b} {
				wg.Go(func() {
					seeded, err := Seed(context.Background(), s)
					if err != nil {
						t.Errorf("Seed %d: %v", i, err)
					}
					results[i] = seeded
				})
			}
			wg.Wait()
			if results[0] == results[1] {
				t.Fatalf("seeded = %v: want exactly one true", results)
			}
			if n := countRows(t, a, `SELECT COUNT(*) FROM catalog_products`); n != len(demoProducts) {
				t.Fatalf("%d products, want %d", n, len(demoProducts))
			}
		})
	}
}
