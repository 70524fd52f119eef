package catalog

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/apperr/apperrtest"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/resilience"
)

// clientImpls are the implementations of Client the contract suite runs:
// the service in process, and the HTTP client against the service's routes.
var clientImpls = []struct {
	name string
	new  func(t *testing.T, s *Service) Client
}{
	{"in-process", func(_ *testing.T, s *Service) Client { return s }},
	{"http", func(t *testing.T, s *Service) Client {
		srv := httptest.NewServer(apitest.Mount(s.Routes()))
		t.Cleanup(srv.Close)
		return NewHTTPClient(srv.URL, srv.Client())
	}},
}

// TestClientContract: every implementation of Client answers alike.
func TestClientContract(t *testing.T) {
	for _, impl := range clientImpls {
		t.Run(impl.name, func(t *testing.T) {
			runStores(t, func(t *testing.T, s *Service) {
				testClientContract(t, s, impl.new(t, s))
			})
		})
	}
}

func testClientContract(t *testing.T, s *Service, c Client) {
	ctx := context.Background()
	cat := MustCreateCategory(t, s, CategoryInput{Name: "Shirts"})
	in := shirtInput("Linen Shirt", "LIN")
	in.CategoryIDs = []string{cat.ID}
	shirt := MustCreateProduct(t, s, in)
	mug := MustCreateProduct(t, s, simpleInput("Stoneware Mug", "MUG-1", StatusPublished))
	draft := MustCreateProduct(t, s, simpleInput("Draft Lamp", "LAMP-1", StatusDraft))
	archived := MustCreateProduct(t, s, simpleInput("Old Tote", "TOTE-1", StatusPublished))
	if err := s.DeleteProduct(ctx, archived.ID, 0); err != nil {
		t.Fatal(err)
	}

	t.Run("GetProduct by id and by handle", func(t *testing.T) {
		for _, ref := range []string{shirt.ID, shirt.Handle} {
			got, err := c.GetProduct(ctx, ref)
			if err != nil {
				t.Fatalf("GetProduct(%s): %v", ref, err)
			}
			if want := shirt.storeView(); !reflect.DeepEqual(got, want) {
				t.Fatalf("GetProduct(%s) =\n%+v\nwant\n%+v", ref, got, want)
			}
		}
	})

	t.Run("GetProduct hides what is not published", func(t *testing.T) {
		for _, ref := range []string{draft.ID, draft.Handle, archived.ID, "prod_01JD3Q0000000000000000000A", "no-such-thing", "", "a/../b", "?x=1"} {
			_, err := c.GetProduct(ctx, ref)
			apperrtest.Want(t, err, apperr.NotFound)
		}
	})

	t.Run("GetVariant", func(t *testing.T) {
		v := shirt.Variants[2]
		got, err := c.GetVariant(ctx, v.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := VariantRef{Variant: v, ProductID: shirt.ID, ProductTitle: shirt.Title, ProductHandle: shirt.Handle, ProductStatus: StatusPublished, ProductCategoryIDs: shirt.CategoryIDs}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("GetVariant =\n%+v\nwant\n%+v", got, want)
		}
		for _, ref := range []string{draft.Variants[0].ID, archived.Variants[0].ID, "var_01JD3Q0000000000000000000A", shirt.ID, ""} {
			_, err := c.GetVariant(ctx, ref)
			apperrtest.Want(t, err, apperr.NotFound)
		}
	})

	t.Run("GetVariants", func(t *testing.T) {
		ref := func(p Product, i int) VariantRef {
			return VariantRef{Variant: p.Variants[i], ProductID: p.ID, ProductTitle: p.Title, ProductHandle: p.Handle,
				ProductStatus: StatusPublished, ProductCategoryIDs: p.CategoryIDs}
		}
		unknown := "var_01JD3Q0000000000000000000A"
		for _, tt := range []struct {
			name string
			ids  []string
			want []VariantRef
		}{
			{"found", []string{shirt.Variants[2].ID, mug.Variants[0].ID, shirt.Variants[0].ID},
				[]VariantRef{ref(shirt, 2), ref(mug, 0), ref(shirt, 0)}},
			{"not found", []string{unknown, shirt.ID, "", "a/../b", shirt.Variants[0].ID + "," + mug.Variants[0].ID, mug.Variants[0].ID},
				[]VariantRef{ref(mug, 0)}},
			{"unpublished", []string{draft.Variants[0].ID, archived.Variants[0].ID, shirt.Variants[1].ID},
				[]VariantRef{ref(shirt, 1)}},
			{"duplicates", []string{mug.Variants[0].ID, unknown, mug.Variants[0].ID, unknown, mug.Variants[0].ID},
				[]VariantRef{ref(mug, 0)}},
			{"empty", []string{}, nil},
			{"nil", nil, nil},
			{"only not found", []string{unknown, draft.Variants[0].ID}, nil},
			{"as many as allowed, with repeats", append(slices.Repeat([]string{mug.Variants[0].ID}, 3), distinctVariantIDs(MaxVariantBatch-1)...),
				[]VariantRef{ref(mug, 0)}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				got, err := c.GetVariants(ctx, tt.ids)
				if err != nil {
					t.Fatal(err)
				}
				want := map[string]VariantRef{}
				for _, r := range tt.want {
					want[r.ID] = r
				}
				if got == nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("GetVariants =\n%+v\nwant\n%+v", got, want)
				}
				// Each is what GetVariant answers.
				for _, vid := range tt.ids {
					one, err := c.GetVariant(ctx, vid)
					if r, ok := got[vid]; ok != (err == nil) || ok && !reflect.DeepEqual(r, one) {
						t.Fatalf("GetVariants[%q] = %+v, %v; GetVariant = %+v, %v", vid, r, ok, one, err)
					}
				}
			})
		}
		t.Run("the caller's to modify", func(t *testing.T) {
			got, err := c.GetVariants(ctx, []string{shirt.Variants[0].ID})
			if err != nil {
				t.Fatal(err)
			}
			got[shirt.Variants[0].ID].Options["size"] = "XXL"
			again, err := c.GetVariants(ctx, []string{shirt.Variants[0].ID})
			if err != nil || !reflect.DeepEqual(again[shirt.Variants[0].ID], ref(shirt, 0)) {
				t.Fatalf("GetVariants after a caller's change = %+v, %v", again, err)
			}
		})
		t.Run("too many ids", func(t *testing.T) {
			for _, ids := range [][]string{
				distinctVariantIDs(MaxVariantBatch + 1),
				append(distinctVariantIDs(MaxVariantBatch), "not-a-variant"), // counted as asked
			} {
				_, err := c.GetVariants(ctx, ids)
				apperrtest.Want(t, err, apperr.ValidationFailed, "id")
			}
		})
	})

	t.Run("ListProducts pages through published products", func(t *testing.T) {
		got := pageAll(t, func(cursor string) (httpx.Page[Product], error) {
			return c.ListProducts(ctx, ProductQuery{Limit: 1, Cursor: cursor})
		})
		if want := []string{shirt.ID, mug.ID}; !slices.Equal(got, want) {
			t.Fatalf("ids = %v, want %v", got, want)
		}
		page, err := c.ListProducts(ctx, ProductQuery{Q: "linen", Category: cat.Handle})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Data) != 1 || !reflect.DeepEqual(page.Data[0], shirt.storeView()) || page.NextCursor != nil {
			t.Fatalf("search page = %+v", page)
		}
		empty, err := c.ListProducts(ctx, ProductQuery{Q: "zebra"})
		if err != nil || empty.Data == nil || len(empty.Data) != 0 {
			t.Fatalf("empty page = %#v, %v", empty, err)
		}
	})

	t.Run("ListProducts errors name the field", func(t *testing.T) {
		_, err := c.ListProducts(ctx, ProductQuery{Limit: 101})
		apperrtest.Want(t, err, apperr.ValidationFailed, "limit")
		_, err = c.ListProducts(ctx, ProductQuery{Category: "nope"})
		apperrtest.Want(t, err, apperr.ValidationFailed, "category")
		_, err = c.ListProducts(ctx, ProductQuery{Cursor: "bm90IGEgY3Vyc29y"})
		apperrtest.Want(t, err, apperr.ValidationFailed, "cursor")
	})
}

// distinctVariantIDs returns n variant ids that name no variant.
func distinctVariantIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = id.New(variantPrefix)
	}
	return out
}

// flakyServer answers with the statuses in order, then serves h.
func flakyServer(t *testing.T, h http.Handler, statuses ...int) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if int(n) <= len(statuses) {
			http.Error(w, "flaky", statuses[n-1])
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestHTTPClientResilience(t *testing.T) {
	s := MustNewSQLiteService(t)
	p := MustCreateProduct(t, s, simpleInput("Mug", "MUG-1", StatusPublished))
	h := apitest.Mount(s.Routes())
	ctx := context.Background()

	t.Run("retries 503 and 502, then succeeds", func(t *testing.T) {
		srv, calls := flakyServer(t, h, http.StatusServiceUnavailable, http.StatusBadGateway)
		c := NewHTTPClient(srv.URL, srv.Client())
		if _, err := c.GetProduct(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		if calls.Load() != 3 {
			t.Fatalf("calls = %d, want 3", calls.Load())
		}
	})

	t.Run("gives up after its attempts as unavailable", func(t *testing.T) {
		srv, calls := flakyServer(t, h, 503, 503, 503, 503)
		c := NewHTTPClient(srv.URL, srv.Client())
		_, err := c.GetProduct(ctx, p.ID)
		apperrtest.Want(t, err, apperr.Unavailable)
		if calls.Load() != 3 {
			t.Fatalf("calls = %d, want 3", calls.Load())
		}
	})

	t.Run("does not retry an answer", func(t *testing.T) {
		srv, calls := flakyServer(t, h)
		c := NewHTTPClient(srv.URL, srv.Client())
		_, err := c.GetProduct(ctx, "prod_01JD3Q0000000000000000000A")
		apperrtest.Want(t, err, apperr.NotFound)
		if calls.Load() != 1 {
			t.Fatalf("calls = %d, want 1", calls.Load())
		}
	})

	t.Run("non-problem errors map by status", func(t *testing.T) {
		for status, code := range map[int]apperr.Code{404: apperr.NotFound, 500: apperr.Unavailable, 403: apperr.Forbidden, 418: apperr.Internal} {
			srv, _ := flakyServer(t, h, status)
			_, err := NewHTTPClient(srv.URL, srv.Client()).GetProduct(ctx, p.ID)
			apperrtest.Want(t, err, code)
		}
	})

	t.Run("a remote internal error is unavailable here", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			httpx.Error(w, r, errors.New("disk on fire"))
		}))
		defer srv.Close()
		_, err := NewHTTPClient(srv.URL, srv.Client()).GetVariant(ctx, p.Variants[0].ID)
		apperrtest.Want(t, err, apperr.Unavailable)
	})

	t.Run("GetVariants of a catalogue older than the route", func(t *testing.T) {
		var old []httpx.Route
		for _, r := range s.Routes() {
			if r.Path != "/store/variants" {
				old = append(old, r)
			}
		}
		srv := httptest.NewServer(apitest.Mount(old))
		defer srv.Close()
		unknown := id.New(variantPrefix)
		got, err := NewHTTPClient(srv.URL, srv.Client()).GetVariants(ctx, []string{p.Variants[0].ID, unknown})
		if err != nil || len(got) != 1 || got[p.Variants[0].ID].SKU != "MUG-1" {
			t.Fatalf("GetVariants = %v, %v; want the mug's variant", got, err)
		}
	})

	t.Run("times out a hanging catalogue", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(release)
		c := NewHTTPClient(srv.URL, srv.Client(), httpx.WithPolicy(resilience.MustNew(resilience.Config{
			Name: "catalog", Timeout: 50 * time.Millisecond, Failure: httpx.Transient, Backoff: resilience.Backoff{Initial: time.Millisecond},
		})))
		start := time.Now()
		_, err := c.GetProduct(ctx, p.ID)
		apperrtest.Want(t, err, apperr.Unavailable)
		if time.Since(start) > 5*time.Second {
			t.Fatalf("took %v", time.Since(start))
		}
	})

	t.Run("a cancelled context stops at once", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		srv, calls := flakyServer(t, h)
		_, err := NewHTTPClient(srv.URL, srv.Client()).GetProduct(cctx, p.ID)
		apperrtest.Want(t, err, apperr.Unavailable)
		if calls.Load() != 0 {
			t.Fatalf("calls = %d", calls.Load())
		}
	})

	t.Run("unreachable catalogue", func(t *testing.T) {
		srv := httptest.NewServer(h)
		url := srv.URL
		srv.Close()
		c := NewHTTPClient(url, nil, httpx.WithPolicy(resilience.MustNew(resilience.Config{
			Name: "catalog", Failure: httpx.Transient, Backoff: resilience.Backoff{Initial: time.Millisecond},
		})))
		_, err := c.ListProducts(ctx, ProductQuery{})
		apperrtest.Want(t, err, apperr.Unavailable)
	})
}
