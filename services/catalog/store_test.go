package catalog

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/apperr/apperrtest"
	"github.com/soukhq/souk/platform/bus/bustest"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/store"
)

// The store conformance suite: every test here runs on SQLite and, when
// SOUK_TEST_POSTGRES_URL is set, on PostgreSQL.

func TestProductLifecycle(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		shirts := MustCreateCategory(t, s, CategoryInput{Name: "Shirts"})

		in := shirtInput("Linen Shirt", "LIN")
		in.CategoryIDs = []string{shirts.ID}
		created := MustCreateProduct(t, s, in)

		t.Run("create fills in what the server owns", func(t *testing.T) {
			p := created
			if p.Version != 1 || p.Handle != "linen-shirt" || p.Status != StatusPublished || p.PublishedAt == nil {
				t.Fatalf("created = %+v", p)
			}
			if !p.CreatedAt.Equal(p.UpdatedAt) || !p.PublishedAt.Equal(p.CreatedAt) {
				t.Errorf("timestamps: created %v updated %v published %v", p.CreatedAt, p.UpdatedAt, *p.PublishedAt)
			}
			wantTitles := []string{"S / White", "M / White", "S / Blue"}
			for i, v := range p.Variants {
				if v.Position != i || v.Title != wantTitles[i] || v.ID == "" {
					t.Errorf("variants[%d] = %+v, want position %d title %q", i, v, i, wantTitles[i])
				}
			}
			if !slices.Equal(p.CategoryIDs, []string{shirts.ID}) {
				t.Errorf("category_ids = %v", p.CategoryIDs)
			}
		})

		t.Run("admin get returns what create returned", func(t *testing.T) {
			got := MustAdminGetProduct(t, s, created.ID)
			if !reflect.DeepEqual(got, created) {
				t.Fatalf("get =\n%+v\nwant\n%+v", got, created)
			}
		})

		t.Run("store get by id and handle hides internal fields", func(t *testing.T) {
			for _, ref := range []string{created.ID, created.Handle} {
				got, err := s.GetProduct(ctx, ref)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, created.storeView()) || got.Version != 0 || !got.CreatedAt.IsZero() {
					t.Fatalf("GetProduct(%s) = %+v", ref, got)
				}
			}
		})

		t.Run("patch changes the fields given and bumps the version", func(t *testing.T) {
			p := MustUpdateProduct(t, s, created.ID, ProductPatch{Title: ptr("Washed Linen Shirt"), Description: ptr("")})
			if p.Version != 2 || p.Title != "Washed Linen Shirt" || p.Description != "" || p.Handle != "linen-shirt" {
				t.Fatalf("patched = %+v", p)
			}
			if !p.UpdatedAt.After(created.UpdatedAt) && !p.UpdatedAt.Equal(created.UpdatedAt) {
				t.Errorf("updated_at went back: %v", p.UpdatedAt)
			}
			if !p.PublishedAt.Equal(*created.PublishedAt) {
				t.Errorf("published_at moved on an update: %v", p.PublishedAt)
			}
			if !reflect.DeepEqual(p.Variants, created.Variants) {
				t.Errorf("variants changed by a title patch")
			}
		})

		t.Run("a patch that changes nothing keeps the version", func(t *testing.T) {
			p := MustUpdateProduct(t, s, created.ID, ProductPatch{Title: ptr("Washed Linen Shirt")})
			if p.Version != 2 {
				t.Fatalf("version = %d, want 2", p.Version)
			}
		})

		t.Run("variants with an id keep it, new ones get one, omitted ones go", func(t *testing.T) {
			keep := created.Variants[1]
			p := MustUpdateProduct(t, s, created.ID, ProductPatch{Variants: &[]VariantInput{
				{SKU: "LIN-M-BLU", Options: map[string]string{"size": "M", "color": "Blue"}, Position: ptr(5)},
				{ID: keep.ID, SKU: keep.SKU, Options: keep.Options, WeightGrams: 999, Position: ptr(1)},
			}})
			if len(p.Variants) != 2 || p.Variants[0].ID != keep.ID || p.Variants[0].WeightGrams != 999 || p.Variants[0].Position != 0 {
				t.Fatalf("variants = %+v", p.Variants)
			}
			if nv := p.Variants[1]; nv.ID == keep.ID || nv.SKU != "LIN-M-BLU" || nv.Title != "M / Blue" || nv.Position != 1 {
				t.Fatalf("new variant = %+v", nv)
			}
			if _, err := s.GetVariant(ctx, created.Variants[0].ID); !apperr.Is(err, apperr.NotFound) {
				t.Fatalf("removed variant: err = %v, want not_found", err)
			}
			ref, err := s.GetVariant(ctx, keep.ID)
			if err != nil || ref.ProductID != created.ID || ref.ProductHandle != "linen-shirt" || ref.ProductStatus != StatusPublished {
				t.Fatalf("GetVariant = %+v, %v", ref, err)
			}
		})

		t.Run("delete archives a product that was published", func(t *testing.T) {
			before := MustAdminGetProduct(t, s, created.ID)
			if err := s.DeleteProduct(ctx, created.ID, 0); err != nil {
				t.Fatal(err)
			}
			p := MustAdminGetProduct(t, s, created.ID)
			if p.Status != StatusArchived || p.Version != before.Version+1 || len(p.Variants) != len(before.Variants) {
				t.Fatalf("after delete = %+v", p)
			}
			if _, err := s.GetProduct(ctx, created.ID); !apperr.Is(err, apperr.NotFound) {
				t.Fatalf("store get of archived: %v", err)
			}
			if _, err := s.GetVariant(ctx, p.Variants[0].ID); !apperr.Is(err, apperr.NotFound) {
				t.Fatalf("store variant of archived: %v", err)
			}
			// Deleting an archived product again changes nothing.
			if err := s.DeleteProduct(ctx, created.ID, 0); err != nil {
				t.Fatal(err)
			}
			if again := MustAdminGetProduct(t, s, created.ID); again.Version != p.Version {
				t.Fatalf("second delete bumped the version to %d", again.Version)
			}
		})

		t.Run("delete removes a draft never published", func(t *testing.T) {
			d := MustCreateProduct(t, s, simpleInput("Draft Thing", "DRAFT-1", StatusDraft))
			if err := s.DeleteProduct(ctx, d.ID, 1); err != nil {
				t.Fatal(err)
			}
			if _, err := s.AdminGetProduct(ctx, d.ID); !apperr.Is(err, apperr.NotFound) {
				t.Fatalf("get deleted draft: %v", err)
			}
			if n := countRows(t, s, `SELECT COUNT(*) FROM catalog_variants WHERE sku = ?`, "DRAFT-1"); n != 0 {
				t.Fatalf("variants left behind: %d", n)
			}
			// The SKU is free again.
			MustCreateProduct(t, s, simpleInput("Draft Again", "DRAFT-1", StatusDraft))
		})

		t.Run("not found", func(t *testing.T) {
			for _, ref := range []string{"prod_01JD3Q0000000000000000000A", "nope", "", "cat_01JD3Q0000000000000000000A"} {
				if _, err := s.AdminGetProduct(ctx, ref); !apperr.Is(err, apperr.NotFound) {
					t.Errorf("AdminGetProduct(%q) = %v", ref, err)
				}
				if _, err := s.GetProduct(ctx, ref); !apperr.Is(err, apperr.NotFound) {
					t.Errorf("GetProduct(%q) = %v", ref, err)
				}
				if _, err := s.UpdateProduct(ctx, ref, ProductPatch{Title: ptr("x")}, 0); !apperr.Is(err, apperr.NotFound) {
					t.Errorf("UpdateProduct(%q) = %v", ref, err)
				}
				if err := s.DeleteProduct(ctx, ref, 0); !apperr.Is(err, apperr.NotFound) {
					t.Errorf("DeleteProduct(%q) = %v", ref, err)
				}
				if _, err := s.GetVariant(ctx, ref); !apperr.Is(err, apperr.NotFound) {
					t.Errorf("GetVariant(%q) = %v", ref, err)
				}
			}
		})
	})
}

func TestProductStatusTransitions(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		p := MustCreateProduct(t, s, simpleInput("Mug", "MUG-1", StatusDraft))
		if p.PublishedAt != nil {
			t.Fatalf("draft has published_at %v", p.PublishedAt)
		}
		if _, err := s.GetProduct(ctx, p.ID); !apperr.Is(err, apperr.NotFound) {
			t.Fatalf("store sees a draft: %v", err)
		}
		pub := MustUpdateProduct(t, s, p.ID, ProductPatch{Status: ptr(StatusPublished)})
		if pub.PublishedAt == nil {
			t.Fatal("publishing did not set published_at")
		}
		if _, err := s.GetProduct(ctx, p.Handle); err != nil {
			t.Fatalf("store get after publish: %v", err)
		}
		back := MustUpdateProduct(t, s, p.ID, ProductPatch{Status: ptr(StatusDraft)})
		if back.PublishedAt == nil || !back.PublishedAt.Equal(*pub.PublishedAt) {
			t.Fatal("unpublishing must keep published_at: the product was published once")
		}
		// Ever published, so DELETE archives instead of deleting.
		if err := s.DeleteProduct(ctx, p.ID, 0); err != nil {
			t.Fatal(err)
		}
		if got := MustAdminGetProduct(t, s, p.ID); got.Status != StatusArchived {
			t.Fatalf("status = %s, want archived", got.Status)
		}
		// A published product needs a variant.
		_, err := s.UpdateProduct(ctx, p.ID, ProductPatch{Status: ptr(StatusPublished), Variants: &[]VariantInput{}}, 0)
		apperrtest.Want(t, err, apperr.ValidationFailed, "variants")
	})
}

func TestProductValidation(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		long := func(n int) string { return string(slices.Repeat([]byte("a"), n)) }
		many := func(n int, f func(i int) VariantInput) []VariantInput {
			out := make([]VariantInput, n)
			for i := range out {
				out[i] = f(i)
			}
			return out
		}
		base := func(mod func(*ProductInput)) ProductInput {
			in := shirtInput("Valid Shirt", "VAL")
			mod(&in)
			return in
		}
		for _, tt := range []struct {
			name   string
			in     ProductInput
			fields []string
		}{
			{"missing title", base(func(in *ProductInput) { in.Title = "  " }), []string{"title"}},
			{"long title", base(func(in *ProductInput) { in.Title = long(201) }), []string{"title"}},
			{"bad handle", base(func(in *ProductInput) { in.Handle = "Linen Shirt" }), []string{"handle"}},
			{"double hyphen handle", base(func(in *ProductInput) { in.Handle = "linen--shirt" }), []string{"handle"}},
			{"long handle", base(func(in *ProductInput) { in.Handle = long(101) }), []string{"handle"}},
			{"long description", base(func(in *ProductInput) { in.Description = long(10001) }), []string{"description"}},
			{"bad status", base(func(in *ProductInput) { in.Status = "live" }), []string{"status"}},
			{"duplicate option", base(func(in *ProductInput) { in.Options[1].Name = "Size" }), []string{"options[1].name"}},
			{"empty option values", base(func(in *ProductInput) { in.Options[0].Values = nil }), []string{"options[0].values"}},
			{"empty option value", base(func(in *ProductInput) { in.Options[0].Values = []string{"S", "M", " "} }), []string{"options[0].values[2]"}},
			{"duplicate option value", base(func(in *ProductInput) { in.Options[0].Values = []string{"S", "M", "S"} }), []string{"options[0].values[2]"}},
			{"missing sku", base(func(in *ProductInput) { in.Variants[2].SKU = "" }), []string{"variants[2].sku"}},
			{"sku with space", base(func(in *ProductInput) { in.Variants[1].SKU = "LIN S" }), []string{"variants[1].sku"}},
			{"long sku", base(func(in *ProductInput) { in.Variants[1].SKU = long(65) }), []string{"variants[1].sku"}},
			{"duplicate sku", base(func(in *ProductInput) { in.Variants[2].SKU = in.Variants[0].SKU }), []string{"variants[2].sku"}},
			{"missing option value", base(func(in *ProductInput) { delete(in.Variants[1].Options, "color") }), []string{"variants[1].options.color"}},
			{"unknown option", base(func(in *ProductInput) { in.Variants[1].Options["fit"] = "slim" }), []string{"variants[1].options.fit"}},
			{"value not in option", base(func(in *ProductInput) { in.Variants[0].Options["size"] = "XXL" }), []string{"variants[0].options.size"}},
			{"same combination", base(func(in *ProductInput) { in.Variants[2].Options = map[string]string{"size": "S", "color": "White"} }), []string{"variants[2].options"}},
			{"negative weight", base(func(in *ProductInput) { in.Variants[0].WeightGrams = -1 }), []string{"variants[0].weight_grams"}},
			{"negative position", base(func(in *ProductInput) { in.Variants[0].Position = ptr(-1) }), []string{"variants[0].position"}},
			{"variant id on create", base(func(in *ProductInput) { in.Variants[0].ID = "var_01JD3Q0000000000000000000A" }), []string{"variants[0].id"}},
			{"too many attributes", base(func(in *ProductInput) {
				in.Variants[0].Attributes = map[string]string{}
				for i := range 51 {
					in.Variants[0].Attributes[fmt.Sprint("k", i)] = "v"
				}
			}), []string{"variants[0].attributes"}},
			{"bad media url", base(func(in *ProductInput) { in.Media = []Media{{URL: "javascript:alert(1)"}} }), []string{"media[0].url"}},
			{"relative media url", base(func(in *ProductInput) { in.Media = []Media{{URL: "https://ok.example/a.jpg"}, {URL: "/a.jpg"}} }), []string{"media[1].url"}},
			{"too many media", base(func(in *ProductInput) { in.Media = slices.Repeat([]Media{{URL: "https://e.example/a.jpg"}}, 21) }), []string{"media"}},
			{"too many options", base(func(in *ProductInput) {
				in.Options = nil
				for i := range 11 {
					in.Options = append(in.Options, Option{Name: fmt.Sprint("o", i), Values: []string{"x"}})
				}
			}), []string{"options"}},
			{"too many values", base(func(in *ProductInput) {
				in.Options[0].Values = nil
				for i := range 51 {
					in.Options[0].Values = append(in.Options[0].Values, fmt.Sprint(i))
				}
			}), []string{"options[0].values"}},
			{"too many variants", base(func(in *ProductInput) {
				in.Options = []Option{{Name: "n", Values: []string{}}}
				for i := range 101 {
					in.Options[0].Values = append(in.Options[0].Values, fmt.Sprint(i))
				}
				in.Options[0].Values = in.Options[0].Values[:50]
				in.Variants = many(101, func(i int) VariantInput { return VariantInput{SKU: fmt.Sprint("S-", i)} })
			}), []string{"variants"}},
			{"published without variants", base(func(in *ProductInput) { in.Variants = nil }), []string{"variants"}},
			{"malformed category", base(func(in *ProductInput) { in.CategoryIDs = []string{"shirts"} }), []string{"category_ids[0]"}},
			{"unknown category", base(func(in *ProductInput) {
				in.CategoryIDs = []string{"cat_01JD3Q0000000000000000000A"}
			}), []string{"category_ids[0]"}},
			{"too many categories", base(func(in *ProductInput) {
				for range 51 {
					in.CategoryIDs = append(in.CategoryIDs, "cat_01JD3Q0000000000000000000A")
				}
			}), []string{"category_ids"}},
			{"several at once", base(func(in *ProductInput) { in.Title = ""; in.Variants[1].SKU = "" }), []string{"title", "variants[1].sku"}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.CreateProduct(ctx, tt.in)
				apperrtest.Want(t, err, apperr.ValidationFailed, tt.fields...)
			})
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM catalog_products`); n != 0 {
			t.Fatalf("%d products stored by failed creates", n)
		}

		t.Run("unknown category among known ones names its index", func(t *testing.T) {
			c := MustCreateCategory(t, s, CategoryInput{Name: "Known"})
			in := shirtInput("Categorised", "CAT")
			in.CategoryIDs = []string{c.ID, "cat_01JD3Q0000000000000000000A"}
			_, err := s.CreateProduct(ctx, in)
			apperrtest.Want(t, err, apperr.ValidationFailed, "category_ids[1]")
		})

		t.Run("patch validates the merged product", func(t *testing.T) {
			p := MustCreateProduct(t, s, shirtInput("Patchable", "PAT"))
			// Dropping a value that a variant uses makes that variant invalid.
			_, err := s.UpdateProduct(ctx, p.ID, ProductPatch{Options: &[]Option{{Name: "size", Values: []string{"S"}}, {Name: "color", Values: []string{"White", "Blue"}}}}, 0)
			apperrtest.Want(t, err, apperr.ValidationFailed, "variants[1].options.size")
			_, err = s.UpdateProduct(ctx, p.ID, ProductPatch{Handle: ptr("")}, 0)
			apperrtest.Want(t, err, apperr.ValidationFailed, "handle")
			_, err = s.UpdateProduct(ctx, p.ID, ProductPatch{Variants: &[]VariantInput{{ID: "var_01JD3Q0000000000000000000A", SKU: "X"}}}, 0)
			apperrtest.Want(t, err, apperr.ValidationFailed, "variants[0].id")
			dup := p.Variants[0]
			_, err = s.UpdateProduct(ctx, p.ID, ProductPatch{Variants: &[]VariantInput{
				{ID: dup.ID, SKU: dup.SKU, Options: dup.Options},
				{ID: dup.ID, SKU: "OTHER", Options: map[string]string{"size": "M", "color": "Blue"}},
			}}, 0)
			apperrtest.Want(t, err, apperr.ValidationFailed, "variants[1].id")
			if got := MustAdminGetProduct(t, s, p.ID); got.Version != 1 {
				t.Fatalf("failed patches changed the product: version %d", got.Version)
			}
		})
	})
}

func TestUniqueConflicts(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		first := MustCreateProduct(t, s, shirtInput("Linen Shirt", "LIN"))

		t.Run("derived handles get a suffix", func(t *testing.T) {
			second := MustCreateProduct(t, s, shirtInput("Linen Shirt", "LIN2"))
			third := MustCreateProduct(t, s, shirtInput("Linen  Shirt!", "LIN3"))
			if second.Handle != "linen-shirt-2" || third.Handle != "linen-shirt-3" {
				t.Fatalf("handles = %q, %q", second.Handle, third.Handle)
			}
		})

		t.Run("explicit handle taken", func(t *testing.T) {
			in := shirtInput("Other", "OTH")
			in.Handle = first.Handle
			_, err := s.CreateProduct(ctx, in)
			apperrtest.Want(t, err, apperr.Conflict, "handle")
			if n := countRows(t, s, `SELECT COUNT(*) FROM catalog_variants WHERE sku LIKE ?`, "OTH-%"); n != 0 {
				t.Fatalf("conflicting create left %d variants", n)
			}
		})

		t.Run("sku taken by another product", func(t *testing.T) {
			in := shirtInput("Another Shirt", "ANO")
			in.Variants[2].SKU = first.Variants[1].SKU
			_, err := s.CreateProduct(ctx, in)
			apperrtest.Want(t, err, apperr.Conflict, "variants[2].sku")
			if n := countRows(t, s, `SELECT COUNT(*) FROM catalog_products WHERE title = ?`, "Another Shirt"); n != 0 {
				t.Fatal("conflicting create left its product row")
			}
		})

		t.Run("patch into a taken sku or handle changes nothing", func(t *testing.T) {
			other := MustCreateProduct(t, s, simpleInput("Tote", "TOTE-1", StatusPublished))
			_, err := s.UpdateProduct(ctx, other.ID, ProductPatch{Title: ptr("Renamed Tote"), Variants: &[]VariantInput{{SKU: first.Variants[0].SKU}}}, 0)
			apperrtest.Want(t, err, apperr.Conflict, "variants[0].sku")
			_, err = s.UpdateProduct(ctx, other.ID, ProductPatch{Title: ptr("Renamed Tote"), Handle: ptr(first.Handle)}, 0)
			apperrtest.Want(t, err, apperr.Conflict, "handle")
			got := MustAdminGetProduct(t, s, other.ID)
			if !reflect.DeepEqual(got, other) {
				t.Fatalf("after failed patches:\n%+v\nwant\n%+v", got, other)
			}
			if indexMatches(t, s, "renamed") != 0 {
				t.Fatal("search index saw a rolled-back title")
			}
		})

		t.Run("two variants can swap skus in one patch", func(t *testing.T) {
			a, b := first.Variants[0], first.Variants[1]
			p := MustUpdateProduct(t, s, first.ID, ProductPatch{Variants: &[]VariantInput{
				{ID: a.ID, SKU: b.SKU, Options: a.Options},
				{ID: b.ID, SKU: a.SKU, Options: b.Options},
			}})
			if p.Variants[0].SKU != b.SKU || p.Variants[1].SKU != a.SKU {
				t.Fatalf("variants = %+v", p.Variants)
			}
		})

		t.Run("category handle taken", func(t *testing.T) {
			MustCreateCategory(t, s, CategoryInput{Name: "Shirts"})
			_, err := s.CreateCategory(ctx, CategoryInput{Name: "Shirts again", Handle: "shirts"})
			apperrtest.Want(t, err, apperr.Conflict, "handle")
			c := MustCreateCategory(t, s, CategoryInput{Name: "Shirts"}) // derived: shirts-2
			if c.Handle != "shirts-2" {
				t.Fatalf("handle = %q", c.Handle)
			}
			_, err = s.UpdateCategory(ctx, c.ID, CategoryPatch{Handle: ptr("shirts")}, 0)
			apperrtest.Want(t, err, apperr.Conflict, "handle")
		})
	})
}

func TestVersionConflict(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		p := MustCreateProduct(t, s, shirtInput("Versioned Shirt", "VER"))
		p2 := MustUpdateProduct(t, s, p.ID, ProductPatch{Title: ptr("Versioned Shirt Two")})
		events := len(bustest.MustTypes(t, s.db, p.ID))

		_, err := s.UpdateProduct(ctx, p.ID, ProductPatch{Title: ptr("Stale Write")}, 1)
		apperrtest.Want(t, err, apperr.VersionConflict)
		err = s.DeleteProduct(ctx, p.ID, 1)
		apperrtest.Want(t, err, apperr.VersionConflict)

		got := MustAdminGetProduct(t, s, p.ID)
		if !reflect.DeepEqual(got, p2) {
			t.Fatalf("stale writes changed the product:\n%+v\nwant\n%+v", got, p2)
		}
		if n := len(bustest.MustTypes(t, s.db, p.ID)); n != events {
			t.Fatalf("stale writes added %d events", n-events)
		}
		if indexMatches(t, s, "stale") != 0 {
			t.Fatal("stale write reached the search index")
		}
		// The current version works.
		if _, err := s.UpdateProduct(ctx, p.ID, ProductPatch{Title: ptr("Fresh Write")}, 2); err != nil {
			t.Fatal(err)
		}

		c := MustCreateCategory(t, s, CategoryInput{Name: "Versioned"})
		if _, err := s.UpdateCategory(ctx, c.ID, CategoryPatch{Name: ptr("V2")}, 1); err != nil {
			t.Fatal(err)
		}
		_, err = s.UpdateCategory(ctx, c.ID, CategoryPatch{Name: ptr("V3")}, 1)
		apperrtest.Want(t, err, apperr.VersionConflict)
		apperrtest.Want(t, s.DeleteCategory(ctx, c.ID, 1), apperr.VersionConflict)
	})
}

func TestConcurrentPatches(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		const writers = 8

		t.Run("same If-Match: exactly one wins", func(t *testing.T) {
			p := MustCreateProduct(t, s, shirtInput("Contested Shirt", "CON"))
			var won, conflicted atomic.Int64
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range writers {
				wg.Go(func() {
					<-start
					_, err := s.UpdateProduct(ctx, p.ID, ProductPatch{Title: ptr(fmt.Sprintf("Writer %d", i))}, p.Version)
					switch {
					case err == nil:
						won.Add(1)
					case apperr.Is(err, apperr.VersionConflict):
						conflicted.Add(1)
					default:
						t.Errorf("writer %d: %v", i, err)
					}
				})
			}
			close(start)
			wg.Wait()
			if won.Load() != 1 || conflicted.Load() != writers-1 {
				t.Fatalf("won %d, conflicted %d; want 1 and %d", won.Load(), conflicted.Load(), writers-1)
			}
			if got := MustAdminGetProduct(t, s, p.ID); got.Version != 2 {
				t.Fatalf("version = %d, want 2", got.Version)
			}
			if n := len(bustest.MustTypes(t, s.db, p.ID)); n != 2 { // published + one updated
				t.Fatalf("%d events, want 2", n)
			}
		})

		t.Run("without If-Match every write lands", func(t *testing.T) {
			p := MustCreateProduct(t, s, shirtInput("Busy Shirt", "BUSY"))
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range writers {
				wg.Go(func() {
					<-start
					if _, err := s.UpdateProduct(ctx, p.ID, ProductPatch{Description: ptr(fmt.Sprintf("edit %d", i))}, 0); err != nil {
						t.Errorf("writer %d: %v", i, err)
					}
				})
			}
			close(start)
			wg.Wait()
			if got := MustAdminGetProduct(t, s, p.ID); got.Version != 1+writers {
				t.Fatalf("version = %d, want %d", got.Version, 1+writers)
			}
		})
	})
}

// pageAll pages through a listing with the limit and returns the ids in order.
func pageAll(t testing.TB, list func(cursor string) (httpx.Page[Product], error)) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for range 100 {
		page, err := list(cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Data {
			ids = append(ids, p.ID)
		}
		if page.NextCursor == nil {
			return ids
		}
		cursor = *page.NextCursor
	}
	t.Fatal("pagination did not end")
	return nil
}

func TestSearch(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		mk := func(title, desc, sku string, status Status) Product {
			in := simpleInput(title, sku, status)
			in.Description = desc
			return MustCreateProduct(t, s, in)
		}
		shirt := mk("Linen Shirt", "Breathable shirt for summer.", "LIN-SHIRT-S-WHT", StatusPublished)
		towel := mk("Tea Towel", "Stonewashed linen, very absorbent.", "LTT-NAT", StatusPublished)
		trousers := mk("Linen Trousers", "Wide trousers in heavy linen linen linen.", "LIN-TRS-M", StatusPublished)
		mug := mk("Stoneware Mug", "A mug for coffee.", "MUG-350-SND", StatusPublished)
		draft := mk("Linen Draft Shirt", "Not yet for sale.", "LIN-DRAFT", StatusDraft)
		// Filler so that pages have something to page through.
		var fillers []Product
		for i := range 7 {
			fillers = append(fillers, mk(fmt.Sprintf("Cotton Shirt %d", i), "Everyday cotton shirt.", fmt.Sprintf("COT-%d", i), StatusPublished))
		}

		ids := func(ps []Product) []string {
			out := make([]string, len(ps))
			for i, p := range ps {
				out[i] = p.ID
			}
			return out
		}
		search := func(q string, limit int) []string {
			t.Helper()
			page, err := s.ListProducts(ctx, ProductQuery{Q: q, Limit: limit})
			if err != nil {
				t.Fatalf("search %q: %v", q, err)
			}
			return ids(page.Data)
		}

		t.Run("title matches rank above description matches", func(t *testing.T) {
			got := search("linen", 10)
			if len(got) != 3 || got[2] != towel.ID || !slices.Contains(got[:2], shirt.ID) || !slices.Contains(got[:2], trousers.ID) {
				t.Fatalf("linen → %v; want shirt and trousers, then towel", got)
			}
			if slices.Contains(got, draft.ID) {
				t.Fatal("store search returned a draft")
			}
		})

		t.Run("every term must match", func(t *testing.T) {
			if got := search("linen shirt", 10); !slices.Equal(got, []string{shirt.ID}) {
				t.Fatalf("linen shirt → %v", got)
			}
		})

		t.Run("sku", func(t *testing.T) {
			if got := search("LIN-SHIRT-S-WHT", 10); !slices.Equal(got, []string{shirt.ID}) {
				t.Fatalf("sku → %v", got)
			}
			if got := search("mug-350", 10); !slices.Equal(got, []string{mug.ID}) {
				t.Fatalf("sku prefix → %v", got)
			}
		})

		t.Run("last term is a prefix", func(t *testing.T) {
			if got := search("stonewa", 10); len(got) != 2 || !slices.Contains(got, mug.ID) || !slices.Contains(got, towel.ID) {
				t.Fatalf("stonewa → %v", got)
			}
			if got := search("stoneware mu", 10); !slices.Equal(got, []string{mug.ID}) {
				t.Fatalf("stoneware mu → %v", got)
			}
		})

		t.Run("stemming finds plurals", func(t *testing.T) {
			if got := search("mugs", 10); !slices.Equal(got, []string{mug.ID}) {
				t.Fatalf("mugs → %v", got)
			}
		})

		t.Run("admin search sees every status", func(t *testing.T) {
			page, err := s.AdminListProducts(ctx, ProductQuery{Q: "draft"}, "")
			if err != nil || !slices.Equal(ids(page.Data), []string{draft.ID}) {
				t.Fatalf("admin draft → %v, %v", ids(page.Data), err)
			}
			page, err = s.AdminListProducts(ctx, ProductQuery{Q: "linen"}, StatusDraft)
			if err != nil || !slices.Equal(ids(page.Data), []string{draft.ID}) {
				t.Fatalf("admin linen status=draft → %v, %v", ids(page.Data), err)
			}
		})

		t.Run("query syntax is never syntax", func(t *testing.T) {
			for _, q := range []string{`"`, `linen"`, `*`, `NEAR(linen shirt)`, `title:linen`, `linen OR mug`, `'`, `\`, `linen & !mug`,
				`linen | mug`, `(`, `-linen`, `^linen`, `linen:*`, `AND`, `{title}: linen`, `');DROP TABLE catalog_products;--`, `ü`, `🛒`} {
				if _, err := s.ListProducts(ctx, ProductQuery{Q: q}); err != nil {
					t.Errorf("q=%q: %v", q, err)
				}
				if _, err := s.AdminListProducts(ctx, ProductQuery{Q: q}, ""); err != nil {
					t.Errorf("admin q=%q: %v", q, err)
				}
			}
			if got := search(`"linen" OR "mug"`, 10); len(got) != 0 {
				t.Fatalf("OR is a word, not an operator: got %v", got)
			}
			// Unquoted, FTS5 would read "shirt:" as a column filter and fail.
			if got := search(`shirt:linen`, 10); !slices.Equal(got, []string{shirt.ID}) {
				t.Fatalf("shirt:linen is two words: got %v", got)
			}
		})

		t.Run("query too long", func(t *testing.T) {
			_, err := s.ListProducts(ctx, ProductQuery{Q: string(slices.Repeat([]byte("a"), MaxQueryLen+1))})
			apperrtest.Want(t, err, apperr.ValidationFailed, "q")
		})

		t.Run("paging through search results with limit 2 is complete and stable", func(t *testing.T) {
			list := func(cursor string) (httpx.Page[Product], error) {
				return s.ListProducts(ctx, ProductQuery{Q: "shirt", Limit: 2, Cursor: cursor})
			}
			all := search("shirt", 100)
			if len(all) != 1+len(fillers) {
				t.Fatalf("shirt → %d hits, want %d", len(all), 1+len(fillers))
			}
			paged := pageAll(t, list)
			if !slices.Equal(paged, all) {
				t.Fatalf("paged = %v\nall   = %v", paged, all)
			}
			if again := pageAll(t, list); !slices.Equal(again, paged) {
				t.Fatal("second walk differs")
			}
		})

		t.Run("without q: published products in id order, paged", func(t *testing.T) {
			paged := pageAll(t, func(cursor string) (httpx.Page[Product], error) {
				return s.ListProducts(ctx, ProductQuery{Limit: 2, Cursor: cursor})
			})
			want := []string{shirt.ID, towel.ID, trousers.ID, mug.ID}
			want = append(want, ids(fillers)...)
			if !slices.Equal(paged, want) {
				t.Fatalf("paged = %v\nwant    %v", paged, want)
			}
			admin := pageAll(t, func(cursor string) (httpx.Page[Product], error) {
				return s.AdminListProducts(ctx, ProductQuery{Limit: 3, Cursor: cursor}, "")
			})
			if len(admin) != len(want)+1 || !slices.Contains(admin, draft.ID) || !slices.IsSorted(admin) {
				t.Fatalf("admin paged = %v", admin)
			}
		})

		t.Run("bad list parameters", func(t *testing.T) {
			_, err := s.ListProducts(ctx, ProductQuery{Limit: 101})
			apperrtest.Want(t, err, apperr.ValidationFailed, "limit")
			_, err = s.ListProducts(ctx, ProductQuery{Cursor: "!!"})
			apperrtest.Want(t, err, apperr.ValidationFailed, "cursor")
			page, err := s.ListProducts(ctx, ProductQuery{Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			// An id-order cursor is no search cursor.
			_, err = s.ListProducts(ctx, ProductQuery{Q: "linen", Cursor: *page.NextCursor})
			apperrtest.Want(t, err, apperr.ValidationFailed, "cursor")
			_, err = s.AdminListProducts(ctx, ProductQuery{}, "live")
			apperrtest.Want(t, err, apperr.ValidationFailed, "status")
		})

		t.Run("no searchable words gives an empty page", func(t *testing.T) {
			page, err := s.ListProducts(ctx, ProductQuery{Q: "!!! ???"})
			if err != nil || len(page.Data) != 0 || page.NextCursor != nil {
				t.Fatalf("page = %+v, %v", page, err)
			}
		})
	})
}

func TestSearchIndexFollowsWrites(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		storeHits := func(q string) int {
			page, err := s.ListProducts(ctx, ProductQuery{Q: q})
			if err != nil {
				t.Fatal(err)
			}
			return len(page.Data)
		}
		p := MustCreateProduct(t, s, simpleInput("Quokka Lamp", "QKA-1", StatusPublished))
		if indexMatches(t, s, "quokka") != 1 || storeHits("quokka") != 1 {
			t.Fatal("new product not searchable")
		}

		MustUpdateProduct(t, s, p.ID, ProductPatch{Title: ptr("Wombat Lamp"), Variants: &[]VariantInput{{ID: p.Variants[0].ID, SKU: "WMB-1"}}})
		if indexMatches(t, s, "quokka") != 0 || indexMatches(t, s, "qka") != 0 {
			t.Fatal("old title or sku still in the index")
		}
		if storeHits("wombat") != 1 || storeHits("wmb") != 1 {
			t.Fatal("new title or sku not searchable")
		}

		if err := s.DeleteProduct(ctx, p.ID, 0); err != nil { // archives
			t.Fatal(err)
		}
		if storeHits("wombat") != 0 {
			t.Fatal("archived product in store search")
		}
		page, err := s.AdminListProducts(ctx, ProductQuery{Q: "wombat"}, StatusArchived)
		if err != nil || len(page.Data) != 1 {
			t.Fatalf("admin search of archived: %v, %v", page.Data, err)
		}

		d := MustCreateProduct(t, s, simpleInput("Platypus Rug", "PLT-1", StatusDraft))
		if indexMatches(t, s, "platypus") != 1 {
			t.Fatal("draft not indexed for admin search")
		}
		if err := s.DeleteProduct(ctx, d.ID, 0); err != nil { // deletes
			t.Fatal(err)
		}
		if indexMatches(t, s, "platypus") != 0 || indexMatches(t, s, "plt") != 0 {
			t.Fatal("deleted product still in the index")
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM catalog_search WHERE product_id = ?`, d.ID); n != 0 {
			t.Fatal("deleted product's search document left behind")
		}
	})
}

func TestRollbackLeavesNothing(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		boom := errors.New("boom")
		var created Product
		err := s.db.InTx(ctx, func(tx *store.Tx) error {
			p, err := s.createProduct(ctx, tx, simpleInput("Axolotl Vase", "AXO-1", StatusPublished))
			if err != nil {
				return err
			}
			created = p
			return boom // fails after the product, variants, search document and outbox row were written
		})
		if !errors.Is(err, boom) || created.ID == "" {
			t.Fatalf("InTx = %v (created %q)", err, created.ID)
		}
		for _, q := range []string{
			`SELECT COUNT(*) FROM catalog_products`,
			`SELECT COUNT(*) FROM catalog_variants`,
			`SELECT COUNT(*) FROM catalog_search`,
			`SELECT COUNT(*) FROM souk_outbox`,
		} {
			if n := countRows(t, s, q); n != 0 {
				t.Errorf("%s = %d after rollback", q, n)
			}
		}
		if indexMatches(t, s, "axolotl") != 0 {
			t.Error("full-text index kept a rolled-back product")
		}
		// And the SKU is still free.
		MustCreateProduct(t, s, simpleInput("Axolotl Vase", "AXO-1", StatusPublished))
	})
}

func TestCategories(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		apparel := MustCreateCategory(t, s, CategoryInput{Name: "Apparel", Position: 1})
		home := MustCreateCategory(t, s, CategoryInput{Name: "Home & Living", Position: 0})
		shirts := MustCreateCategory(t, s, CategoryInput{Name: "Shirts", ParentID: &apparel.ID, Description: "Tops"})
		knit := MustCreateCategory(t, s, CategoryInput{Name: "Knitwear", ParentID: &apparel.ID, Position: -0})
		oxford := MustCreateCategory(t, s, CategoryInput{Name: "Oxford", ParentID: &shirts.ID})

		if home.Handle != "home-and-living" || shirts.Version != 1 || *shirts.ParentID != apparel.ID {
			t.Fatalf("created: %+v %+v", home, shirts)
		}

		t.Run("tree nests children in sibling order", func(t *testing.T) {
			tree, err := s.CategoryTree(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(tree) != 2 || tree[0].ID != home.ID || tree[1].ID != apparel.ID {
				t.Fatalf("roots = %+v", tree)
			}
			kids := tree[1].Children
			if len(kids) != 2 || kids[0].ID != knit.ID || kids[1].ID != shirts.ID || kids[1].Children[0].ID != oxford.ID {
				t.Fatalf("apparel children = %+v", kids)
			}
			if tree[0].Children == nil || len(tree[0].Children) != 0 {
				t.Fatalf("leaf children = %#v, want empty", tree[0].Children)
			}
		})

		t.Run("list pages in id order", func(t *testing.T) {
			var got []string
			cursor := ""
			for {
				page, err := s.AdminListCategories(ctx, 2, cursor)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range page.Data {
					got = append(got, c.ID)
				}
				if page.NextCursor == nil {
					break
				}
				cursor = *page.NextCursor
			}
			if want := []string{apparel.ID, home.ID, shirts.ID, knit.ID, oxford.ID}; !slices.Equal(got, want) {
				t.Fatalf("got %v want %v", got, want)
			}
		})

		t.Run("field validation", func(t *testing.T) {
			long := func(n int) string { return string(slices.Repeat([]byte("x"), n)) }
			for _, tt := range []struct {
				in    CategoryInput
				field string
			}{
				{CategoryInput{Name: " "}, "name"},
				{CategoryInput{Name: long(101)}, "name"},
				{CategoryInput{Name: "Ok", Handle: "Not OK"}, "handle"},
				{CategoryInput{Name: "Ok", Description: long(2001)}, "description"},
				{CategoryInput{Name: "Ok", Position: -1}, "position"},
				{CategoryInput{Name: "Ok", ParentID: ptr("apparel")}, "parent_id"},
			} {
				_, err := s.CreateCategory(ctx, tt.in)
				apperrtest.Want(t, err, apperr.ValidationFailed, tt.field)
			}
			_, err := s.UpdateCategory(ctx, home.ID, CategoryPatch{Handle: ptr(" ")}, 0)
			apperrtest.Want(t, err, apperr.ValidationFailed, "handle")
			_, err = s.UpdateCategory(ctx, home.ID, CategoryPatch{Name: ptr("")}, 0)
			apperrtest.Want(t, err, apperr.ValidationFailed, "name")
		})

		t.Run("parent must exist and the tree must stay a tree", func(t *testing.T) {
			_, err := s.CreateCategory(ctx, CategoryInput{Name: "Orphan", ParentID: ptr("cat_01JD3Q0000000000000000000A")})
			apperrtest.Want(t, err, apperr.ValidationFailed, "parent_id")
			_, err = s.CreateCategory(ctx, CategoryInput{Name: ""})
			apperrtest.Want(t, err, apperr.ValidationFailed, "name")
			_, err = s.UpdateCategory(ctx, apparel.ID, CategoryPatch{ParentID: NullableString{Set: true, Value: &oxford.ID}}, 0)
			apperrtest.Want(t, err, apperr.ValidationFailed, "parent_id")
			_, err = s.UpdateCategory(ctx, apparel.ID, CategoryPatch{ParentID: NullableString{Set: true, Value: &apparel.ID}}, 0)
			apperrtest.Want(t, err, apperr.ValidationFailed, "parent_id")
		})

		t.Run("too deep", func(t *testing.T) {
			parent := oxford.ID // level 3
			var deepest Category
			for i := 4; i <= MaxCategoryDepth; i++ {
				deepest = MustCreateCategory(t, s, CategoryInput{Name: fmt.Sprint("Level ", i), ParentID: &parent})
				parent = deepest.ID
			}
			_, err := s.CreateCategory(ctx, CategoryInput{Name: "Too deep", ParentID: &parent})
			apperrtest.Want(t, err, apperr.ValidationFailed, "parent_id")
			// Moving the whole oxford subtree one level down is too deep as well.
			_, err = s.UpdateCategory(ctx, oxford.ID, CategoryPatch{ParentID: NullableString{Set: true, Value: &knit.ID}}, 0)
			if err != nil {
				t.Fatalf("same depth move: %v", err)
			}
			_, err = s.UpdateCategory(ctx, shirts.ID, CategoryPatch{ParentID: NullableString{Set: true, Value: &knit.ID}}, 0)
			if err != nil {
				t.Fatalf("moving an emptied category: %v", err)
			}
			_, err = s.UpdateCategory(ctx, oxford.ID, CategoryPatch{ParentID: NullableString{Set: true, Value: &shirts.ID}}, 0)
			apperrtest.Want(t, err, apperr.ValidationFailed, "parent_id")
			// Put things back.
			for _, mv := range []struct{ id, parent string }{{shirts.ID, apparel.ID}} {
				if _, err := s.UpdateCategory(ctx, mv.id, CategoryPatch{ParentID: NullableString{Set: true, Value: &mv.parent}}, 0); err != nil {
					t.Fatal(err)
				}
			}
		})

		t.Run("patch moves to the root with null", func(t *testing.T) {
			c, err := s.UpdateCategory(ctx, knit.ID, CategoryPatch{ParentID: NullableString{Set: true}, Name: ptr("Knits")}, 0)
			if err != nil || c.ParentID != nil || c.Name != "Knits" || c.Version != knit.Version+1 {
				t.Fatalf("moved = %+v, %v", c, err)
			}
			same, err := s.UpdateCategory(ctx, knit.ID, CategoryPatch{Name: ptr("Knits")}, 0)
			if err != nil || same.Version != c.Version {
				t.Fatalf("no-op patch: %+v, %v", same, err)
			}
		})

		t.Run("a category with children cannot be deleted", func(t *testing.T) {
			apperrtest.Want(t, s.DeleteCategory(ctx, apparel.ID, 0), apperr.Conflict)
		})

		t.Run("products lose a deleted category", func(t *testing.T) {
			leaf := MustCreateCategory(t, s, CategoryInput{Name: "Sale", ParentID: &home.ID})
			in := simpleInput("Sale Lamp", "SALE-1", StatusPublished)
			in.CategoryIDs = []string{home.ID, leaf.ID}
			p := MustCreateProduct(t, s, in)
			dIn := simpleInput("Sale Draft", "SALE-2", StatusDraft)
			dIn.CategoryIDs = []string{leaf.ID}
			d := MustCreateProduct(t, s, dIn)

			if err := s.DeleteCategory(ctx, leaf.ID, leaf.Version); err != nil {
				t.Fatal(err)
			}
			if _, err := s.AdminGetCategory(ctx, leaf.ID); !apperr.Is(err, apperr.NotFound) {
				t.Fatalf("deleted category: %v", err)
			}
			got := MustAdminGetProduct(t, s, p.ID)
			if !slices.Equal(got.CategoryIDs, []string{home.ID}) || got.Version != 2 {
				t.Fatalf("product after delete: %v v%d", got.CategoryIDs, got.Version)
			}
			if types := bustest.MustTypes(t, s.db, p.ID); !slices.Equal(types, []string{EventProductPublished, EventProductUpdated}) {
				t.Fatalf("events = %v", types)
			}
			if got := MustAdminGetProduct(t, s, d.ID); len(got.CategoryIDs) != 0 {
				t.Fatalf("draft keeps %v", got.CategoryIDs)
			}
			if types := bustest.MustTypes(t, s.db, d.ID); len(types) != 0 {
				t.Fatalf("never-published draft announced: %v", types)
			}
		})

		t.Run("not found", func(t *testing.T) {
			for _, ref := range []string{"cat_01JD3Q0000000000000000000A", "shirts", ""} {
				if _, err := s.AdminGetCategory(ctx, ref); !apperr.Is(err, apperr.NotFound) {
					t.Errorf("get %q: %v", ref, err)
				}
				if _, err := s.UpdateCategory(ctx, ref, CategoryPatch{Name: ptr("x")}, 0); !apperr.Is(err, apperr.NotFound) {
					t.Errorf("update %q: %v", ref, err)
				}
				if err := s.DeleteCategory(ctx, ref, 0); !apperr.Is(err, apperr.NotFound) {
					t.Errorf("delete %q: %v", ref, err)
				}
			}
		})
	})
}

func TestCategoryFilter(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		apparel := MustCreateCategory(t, s, CategoryInput{Name: "Apparel"})
		shirts := MustCreateCategory(t, s, CategoryInput{Name: "Shirts", ParentID: &apparel.ID})
		oxford := MustCreateCategory(t, s, CategoryInput{Name: "Oxford", ParentID: &shirts.ID})
		home := MustCreateCategory(t, s, CategoryInput{Name: "Home"})

		in := func(title, sku string, cats ...string) ProductInput {
			p := simpleInput(title, sku, StatusPublished)
			p.CategoryIDs = cats
			return p
		}
		jacket := MustCreateProduct(t, s, in("Jacket", "J-1", apparel.ID))
		shirt := MustCreateProduct(t, s, in("Shirt", "S-1", shirts.ID))
		ox := MustCreateProduct(t, s, in("Oxford Shirt", "O-1", oxford.ID, home.ID))
		lamp := MustCreateProduct(t, s, in("Lamp", "L-1", home.ID))
		draftIn := in("Draft Shirt", "D-1", shirts.ID)
		draftIn.Status = StatusDraft
		MustCreateProduct(t, s, draftIn)

		for _, tt := range []struct {
			category, q string
			want        []string
		}{
			{apparel.ID, "", []string{jacket.ID, shirt.ID, ox.ID}},
			{"apparel", "", []string{jacket.ID, shirt.ID, ox.ID}},
			{"shirts", "", []string{shirt.ID, ox.ID}},
			{oxford.Handle, "", []string{ox.ID}},
			{"home", "", []string{ox.ID, lamp.ID}},
			{"shirts", "oxford", []string{ox.ID}},
			{"home", "shirt", []string{ox.ID}},
		} {
			page, err := s.ListProducts(ctx, ProductQuery{Category: tt.category, Q: tt.q})
			if err != nil {
				t.Fatalf("category=%s q=%s: %v", tt.category, tt.q, err)
			}
			var got []string
			for _, p := range page.Data {
				got = append(got, p.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("category=%s q=%s → %v, want %v", tt.category, tt.q, got, tt.want)
			}
		}
		_, err := s.ListProducts(ctx, ProductQuery{Category: "nope"})
		apperrtest.Want(t, err, apperr.ValidationFailed, "category")
	})
}

// Products and categories follow one If-Match protocol (kind.readForWrite
// and kind.lostRace): a malformed or unknown id is not_found, a stale
// If-Match a version conflict, a patch that changes nothing keeps the
// version, a change without If-Match moves it on by one, and a delete at a
// stale If-Match changes nothing.
func TestIfMatchProtocol(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		p := MustCreateProduct(t, s, simpleInput("Stoneware Mug", "MUG-1", StatusDraft))
		c := MustCreateCategory(t, s, CategoryInput{Name: "Mugs"})
		tests := []struct {
			name    string
			id      string
			unknown string // a well-formed id of no row
			rename  func(rowID, name string, ifMatch int64) (int64, error)
			remove  func(rowID string, ifMatch int64) error
		}{
			{"product", p.ID, productPrefix + "_01JD3Q0000000000000000000Z", func(rowID, name string, ifMatch int64) (int64, error) {
				v, err := s.UpdateProduct(ctx, rowID, ProductPatch{Title: &name}, ifMatch)
				return v.Version, err
			}, func(rowID string, ifMatch int64) error { return s.DeleteProduct(ctx, rowID, ifMatch) }},
			{"category", c.ID, categoryPrefix + "_01JD3Q0000000000000000000Z", func(rowID, name string, ifMatch int64) (int64, error) {
				v, err := s.UpdateCategory(ctx, rowID, CategoryPatch{Name: &name}, ifMatch)
				return v.Version, err
			}, func(rowID string, ifMatch int64) error { return s.DeleteCategory(ctx, rowID, ifMatch) }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				apperrtest.WantIfMatchUpdates(t, tt.id, tt.unknown, tt.rename)
				apperrtest.Want(t, tt.remove("nope", 0), apperr.NotFound)
				apperrtest.Want(t, tt.remove(tt.unknown, 0), apperr.NotFound)
				apperrtest.Want(t, tt.remove(tt.id, 2), apperr.VersionConflict)
				if err := tt.remove(tt.id, 3); err != nil {
					t.Fatalf("delete at If-Match 3: %v", err)
				}
				_, err := tt.rename(tt.id, "Gone", 0)
				apperrtest.Want(t, err, apperr.NotFound)
			})
		}
	})
}
