package catalog

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

// cacheLookups returns the hits and misses the cache (cacheStore,
// cacheVariants) counted.
func cacheLookups(s *Service, cache string) (hits, misses float64) {
	count := func(result string) float64 {
		var m dto.Metric
		_ = s.lookups.WithLabelValues(cache, result).Write(&m) // a counter's Write cannot fail
		return m.GetCounter().GetValue()
	}
	return count("hit"), count("miss")
}

// variantLookups returns the hits and misses GetVariant's cache counted.
func variantLookups(s *Service) (hits, misses float64) { return cacheLookups(s, cacheVariants) }

// TestGetVariantSeesEveryWrite: after GetVariant has cached a variant, each
// kind of write that changes its answer is seen by the next call, whether
// this process made it or another replica on the same database did.
func TestGetVariantSeesEveryWrite(t *testing.T) {
	storetest.Run(t, testMigrations, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a := New(db, nil, nil)
		writers := []struct {
			name string
			s    *Service
		}{
			{"this process", a},
			{"another replica", New(storetest.MustOpenAgain(t, db), nil, nil)},
		}
		cat := MustCreateCategory(t, a, CategoryInput{Name: "Linen"})

		for _, w := range writers {
			for _, tc := range []struct {
				name  string
				draft bool // the product starts as a draft
				write func(t *testing.T, w *Service, p Product)
				want  func(t *testing.T, p Product, r VariantRef, err error)
			}{
				{
					name: "unpublish",
					write: func(t *testing.T, w *Service, p Product) {
						MustUpdateProduct(t, w, p.ID, ProductPatch{Status: ptr(StatusDraft)})
					},
					want: wantNotFound,
				},
				{
					name: "archive",
					write: func(t *testing.T, w *Service, p Product) {
						MustUpdateProduct(t, w, p.ID, ProductPatch{Status: ptr(StatusArchived)})
					},
					want: wantNotFound,
				},
				{
					name: "delete the product (archives it)",
					write: func(t *testing.T, w *Service, p Product) {
						if err := w.DeleteProduct(ctx, p.ID, 0); err != nil {
							t.Fatal(err)
						}
					},
					want: wantNotFound,
				},
				{
					name: "delete the variant",
					write: func(t *testing.T, w *Service, p Product) {
						MustUpdateProduct(t, w, p.ID, ProductPatch{Variants: ptr(variantInputs(p.Variants[1:]))})
					},
					want: wantNotFound,
				},
				{
					name: "change the SKU",
					write: func(t *testing.T, w *Service, p Product) {
						in := variantInputs(p.Variants)
						in[0].SKU += "-NEW"
						MustUpdateProduct(t, w, p.ID, ProductPatch{Variants: &in})
					},
					want: func(t *testing.T, p Product, r VariantRef, err error) {
						if err != nil || r.SKU != p.Variants[0].SKU+"-NEW" {
							t.Errorf("GetVariant = %+v, %v; want the new SKU", r, err)
						}
					},
				},
				{
					name: "change the product's title",
					write: func(t *testing.T, w *Service, p Product) {
						MustUpdateProduct(t, w, p.ID, ProductPatch{Title: ptr(p.Title + " Renamed")})
					},
					want: func(t *testing.T, p Product, r VariantRef, err error) {
						if err != nil || r.ProductTitle != p.Title+" Renamed" {
							t.Errorf("GetVariant = %+v, %v; want the new title", r, err)
						}
					},
				},
				{
					name: "remove the category",
					write: func(t *testing.T, w *Service, p Product) {
						MustUpdateProduct(t, w, p.ID, ProductPatch{CategoryIDs: &[]string{}})
					},
					want: func(t *testing.T, p Product, r VariantRef, err error) {
						if err != nil || len(r.ProductCategoryIDs) != 0 {
							t.Errorf("GetVariant = %+v, %v; want no categories", r, err)
						}
					},
				},
				{
					name:  "publish a draft",
					draft: true,
					write: func(t *testing.T, w *Service, p Product) {
						MustUpdateProduct(t, w, p.ID, ProductPatch{Status: ptr(StatusPublished)})
					},
					want: func(t *testing.T, p Product, r VariantRef, err error) {
						if err != nil || r.ID != p.Variants[0].ID || r.ProductStatus != StatusPublished {
							t.Errorf("GetVariant = %+v, %v; want the published variant", r, err)
						}
					},
				},
			} {
				t.Run(w.name+"/"+tc.name, func(t *testing.T) {
					in := shirtInput("Shirt "+id.New("x"), "SH-"+id.New("x"))
					in.CategoryIDs = []string{cat.ID}
					if tc.draft {
						in.Status = StatusDraft
					}
					p := MustCreateProduct(t, a, in)
					vid := p.Variants[0].ID
					for range 2 { // cached, then served from the cache
						if _, err := a.GetVariant(ctx, vid); (err == nil) == tc.draft {
							t.Fatalf("GetVariant before the write: %v", err)
						}
					}
					hits, _ := variantLookups(a)
					tc.write(t, w.s, p)
					r, err := a.GetVariant(ctx, vid)
					tc.want(t, p, r, err)
					if again, _ := variantLookups(a); again != hits {
						t.Errorf("the lookup after the write hit the cache")
					}
				})
			}
		}
	})
}

func wantNotFound(t *testing.T, _ Product, r VariantRef, err error) {
	t.Helper()
	if !apperr.Is(err, apperr.NotFound) {
		t.Errorf("GetVariant = %+v, %v; want not_found", r, err)
	}
}

// variantInputs gives variants back as they are, for a patch.
func variantInputs(vs []Variant) []VariantInput {
	out := make([]VariantInput, len(vs))
	for i, v := range vs {
		out[i] = VariantInput{ID: v.ID, SKU: v.SKU, Options: v.Options, WeightGrams: v.WeightGrams, Attributes: v.Attributes}
	}
	return out
}

// TestGetVariantFromMemory: repeated lookups of a variant, found or not,
// cost one load; the counts reach the registry given to WithMetrics, shared
// by two services on it; callers get copies.
func TestGetVariantFromMemory(t *testing.T) {
	storetest.Run(t, testMigrations, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		reg := prometheus.NewRegistry()
		s := New(db, bus.NewOutbox(nil), nil, WithMetrics(reg))
		p := MustCreateProduct(t, s, shirtInput("Memory Shirt", "MEM"))
		v := p.Variants[0]
		want := func(wantHits, wantMisses float64) {
			t.Helper()
			if hits, misses := variantLookups(s); hits != wantHits || misses != wantMisses {
				t.Fatalf("hits, misses = %v, %v; want %v, %v", hits, misses, wantHits, wantMisses)
			}
		}

		for range 4 {
			r, err := s.GetVariant(ctx, v.ID)
			if err != nil || r.SKU != v.SKU {
				t.Fatalf("GetVariant = %+v, %v", r, err)
			}
		}
		want(3, 1)

		// Served from memory: a row changed behind the service's back,
		// without bumping the revision, is not seen.
		if _, err := db.Exec(ctx, `UPDATE catalog_variants SET sku = ? WHERE id = ?`, "BEHIND", v.ID); err != nil {
			t.Fatal(err)
		}
		r, err := s.GetVariant(ctx, v.ID)
		if err != nil || r.SKU != v.SKU {
			t.Fatalf("GetVariant = %+v, %v; want the cached SKU", r, err)
		}
		want(4, 1)

		// The caller's copy is the caller's.
		r.Options["size"], r.ProductCategoryIDs = "XXL", append(r.ProductCategoryIDs, "cat_x")
		if again, _ := s.GetVariant(ctx, v.ID); again.Options["size"] != v.Options["size"] || len(again.ProductCategoryIDs) != 0 {
			t.Fatalf("a caller's change reached the cache: %+v", again)
		}
		want(5, 1)

		// Not found is cached too.
		unknown := id.New(variantPrefix)
		for range 2 {
			if _, err := s.GetVariant(ctx, unknown); !apperr.Is(err, apperr.NotFound) {
				t.Fatalf("GetVariant(unknown) = %v", err)
			}
		}
		want(6, 2)

		// A write reloads once.
		MustUpdateProduct(t, s, p.ID, ProductPatch{Title: ptr("Memory Shirt II")})
		for range 2 {
			if r, err := s.GetVariant(ctx, v.ID); err != nil || r.ProductTitle != "Memory Shirt II" {
				t.Fatalf("GetVariant after a write = %+v, %v", r, err)
			}
		}
		want(7, 3)

		// Exported on the registry, shared by a second service on it.
		_, _ = New(db, nil, nil, WithMetrics(reg)).GetVariant(ctx, v.ID)
		families, err := reg.Gather()
		if err != nil || len(families) != 1 || families[0].GetName() != "souk_catalog_cache_lookups_total" {
			t.Fatalf("gathered %v, %v; want souk_catalog_cache_lookups_total", families, err)
		}
		exported := map[string]float64{}
		for _, m := range families[0].GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetValue())
			}
			exported[strings.Join(labels, " ")] = m.GetCounter().GetValue()
		}
		if want := map[string]float64{"store hit": 0, "store miss": 0, "variants hit": 7, "variants miss": 4}; !maps.Equal(exported, want) {
			t.Fatalf("exported %v, want %v", exported, want)
		}
	})
}

// TestGetVariantWithoutCache: WithVariantCache(0) reads SQL every time.
func TestGetVariantWithoutCache(t *testing.T) {
	s := New(storetest.MustOpen(t, store.SQLite, testMigrations...), nil, nil, WithVariantCache(0))
	p := MustCreateProduct(t, s, simpleInput("Uncached Mug", "UM-1", StatusPublished))
	ctx := context.Background()
	if _, err := s.db.Exec(ctx, `UPDATE catalog_variants SET sku = ? WHERE id = ?`, "UM-2", p.Variants[0].ID); err != nil {
		t.Fatal(err)
	}
	if r, err := s.GetVariant(ctx, p.Variants[0].ID); err != nil || r.SKU != "UM-2" {
		t.Fatalf("GetVariant = %+v, %v; want the row as it is", r, err)
	}
	if hits, misses := variantLookups(s); hits+misses != 0 {
		t.Fatalf("lookups counted without a cache: %v hits, %v misses", hits, misses)
	}
}

// TestGetVariantRacingReplicaWrites: lookups in one process racing writes
// of another replica never answer older than the last write committed
// before the lookup began, and never mix two states of the product.
func TestGetVariantRacingReplicaWrites(t *testing.T) {
	storetest.Run(t, testMigrations, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		reader := New(db, nil, nil)
		writer := New(storetest.MustOpenAgain(t, db), nil, nil)
		p := MustCreateProduct(t, reader, simpleInput("Race 0", "RACE-0", StatusPublished))
		vid := p.Variants[0].ID

		const writes = 20
		var (
			committed atomic.Int64 // the last write known committed
			done      atomic.Bool  // the writer stopped
			wg        sync.WaitGroup
		)
		defer wg.Wait()
		defer done.Store(true) // also when the writer fails
		for range 4 {
			wg.Go(func() {
				for {
					stop := done.Load()
					floor := committed.Load()
					r, err := reader.GetVariant(ctx, vid)
					if err != nil {
						t.Errorf("GetVariant: %v", err)
						return
					}
					n, err := strconv.ParseInt(strings.TrimPrefix(r.SKU, "RACE-"), 10, 64)
					if err != nil || r.ProductTitle != fmt.Sprintf("Race %d", n) {
						t.Errorf("GetVariant mixed states: SKU %q, title %q", r.SKU, r.ProductTitle)
						return
					}
					if n < floor {
						t.Errorf("GetVariant answered write %d after write %d committed", n, floor)
						return
					}
					if stop {
						return
					}
				}
			})
		}
		for i := int64(1); i <= writes; i++ {
			MustUpdateProduct(t, writer, p.ID, ProductPatch{
				Title:    ptr(fmt.Sprintf("Race %d", i)),
				Variants: &[]VariantInput{{ID: vid, SKU: fmt.Sprintf("RACE-%d", i)}},
			})
			committed.Store(i)
		}
		done.Store(true)
		wg.Wait()
		if hits, _ := variantLookups(reader); hits == 0 {
			t.Log("no lookup hit the cache; the race tested loads only")
		}
	})
}

// TestGetVariantsFromMemory: GetVariants shares GetVariant's cache, a
// lookup per distinct id: the ids cached at the current revision hit, the
// others load together; a write reloads them; without a cache it reads
// SQL every time.
func TestGetVariantsFromMemory(t *testing.T) {
	storetest.Run(t, testMigrations, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := New(db, bus.NewOutbox(nil), nil)
		p := MustCreateProduct(t, s, shirtInput("Batch Shirt", "BAT"))
		draft := MustCreateProduct(t, s, simpleInput("Batch Lamp", "BAT-L", StatusDraft))
		unknown := id.New(variantPrefix)
		want := func(wantHits, wantMisses float64) {
			t.Helper()
			if hits, misses := variantLookups(s); hits != wantHits || misses != wantMisses {
				t.Fatalf("hits, misses = %v, %v; want %v, %v", hits, misses, wantHits, wantMisses)
			}
		}
		get := func(ids ...string) map[string]VariantRef {
			t.Helper()
			refs, err := s.GetVariants(ctx, ids)
			if err != nil {
				t.Fatal(err)
			}
			return refs
		}

		if _, err := s.GetVariant(ctx, p.Variants[0].ID); err != nil { // cached by GetVariant
			t.Fatal(err)
		}
		want(0, 1)
		ids := []string{p.Variants[0].ID, p.Variants[1].ID, p.Variants[1].ID, draft.Variants[0].ID, unknown}
		if refs := get(ids...); len(refs) != 2 {
			t.Fatalf("GetVariants = %v; want the shirt's two variants", refs)
		}
		want(1, 4) // distinct ids: one hit, three loaded together
		get(ids...)
		want(5, 4) // not found and unpublished are cached too

		// Served from memory: a row changed without bumping the revision
		// is not seen.
		if _, err := db.Exec(ctx, `UPDATE catalog_variants SET sku = ? WHERE id = ?`, "BEHIND", p.Variants[1].ID); err != nil {
			t.Fatal(err)
		}
		if r := get(p.Variants[1].ID)[p.Variants[1].ID]; r.SKU != p.Variants[1].SKU {
			t.Fatalf("GetVariants = %+v; want the cached SKU", r)
		}
		want(6, 4)

		// A write is seen at once, by GetVariant too.
		MustUpdateProduct(t, s, draft.ID, ProductPatch{Status: ptr(StatusPublished)})
		if refs := get(ids...); len(refs) != 3 || refs[draft.Variants[0].ID].ProductStatus != StatusPublished {
			t.Fatalf("GetVariants after publishing = %v", refs)
		}
		want(6, 8)
		if _, err := s.GetVariant(ctx, draft.Variants[0].ID); err != nil {
			t.Fatal(err)
		}
		want(7, 8)

		// Without a cache: the rows as they are, nothing counted.
		u := New(db, nil, nil, WithVariantCache(0))
		refs, err := u.GetVariants(ctx, ids)
		if err != nil || len(refs) != 3 || refs[p.Variants[1].ID].SKU != "BEHIND" {
			t.Fatalf("GetVariants without a cache = %v, %v", refs, err)
		}
		if hits, misses := variantLookups(u); hits+misses != 0 {
			t.Fatalf("lookups counted without a cache: %v hits, %v misses", hits, misses)
		}
	})
}

// TestVariantRefsReadsCategoriesInOrder: the one-statement read of many
// variants gives each its product's categories in the product's order,
// none as an empty list, and leaves out what does not exist.
func TestVariantRefsReadsCategoriesInOrder(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		var cats []string
		for _, name := range []string{"Zeta", "Alpha", "Mid"} {
			cats = append(cats, MustCreateCategory(t, s, CategoryInput{Name: name}).ID)
		}
		in := shirtInput("Categorised Shirt", "CAT")
		in.CategoryIDs = []string{cats[2], cats[0], cats[1]}
		shirt := MustCreateProduct(t, s, in)
		mug := MustCreateProduct(t, s, simpleInput("Plain Mug", "PM-1", StatusPublished))
		refs, err := variantRefs(ctx, s.db, []string{shirt.Variants[0].ID, shirt.Variants[1].ID, mug.Variants[0].ID, id.New(variantPrefix)})
		if err != nil {
			t.Fatal(err)
		}
		if len(refs) != 3 {
			t.Fatalf("variantRefs = %v; want 3", refs)
		}
		for _, v := range shirt.Variants[:2] {
			if got := refs[v.ID].ProductCategoryIDs; !slices.Equal(got, in.CategoryIDs) {
				t.Errorf("categories of %s = %v, want %v", v.SKU, got, in.CategoryIDs)
			}
		}
		if got := refs[mug.Variants[0].ID].ProductCategoryIDs; got == nil || len(got) != 0 {
			t.Errorf("categories of the mug = %#v, want []", got)
		}
	})
}
