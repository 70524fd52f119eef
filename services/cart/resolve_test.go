package cart

import (
	"fmt"
	"testing"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/services/catalog"
)

// TestResolveAsksOnceForAllLines: reading a cart asks the catalogue about
// all its lines in one GetVariants call (one read of the catalogue's
// revision), never line by line; a line the catalogue no longer sells is
// flagged all the same, and a failure is unavailable.
func TestResolveAsksOnceForAllLines(t *testing.T) {
	runStores(t, func(t *testing.T, e *env) {
		created, c := e.MustCreate(t, anon(""))
		for _, v := range []catalog.VariantRef{e.shirt, e.mug, e.lamp} {
			e.MustAdd(t, c, created.ID, v.ID, 1)
		}
		e.cat.hide(e.mug.ID)

		singles, batches := e.cat.calls()
		got := e.MustGet(t, c, created.ID)
		s, b := e.cat.calls()
		if s != singles || b != batches+1 {
			t.Fatalf("Get asked GetVariant %d times and GetVariants %d times; want 0 and 1", s-singles, b-batches)
		}
		for _, it := range got.Items {
			if want := map[bool]string{true: ProblemUnpublished}[it.VariantID == e.mug.ID]; it.Problem != want {
				t.Errorf("line %s: problem %q, want %q", it.SKU, it.Problem, want)
			}
		}

		if _, err := e.s.Update(bg, c, created.ID, Patch{ShippingAddress: Value(validAddress())}, 0); err != nil {
			t.Fatal(err)
		}
		singles, batches = e.cat.calls()
		if _, err := e.s.ShippingMethods(bg, c, created.ID); err != nil {
			t.Fatalf("ShippingMethods: %v", err)
		}
		if s, b := e.cat.calls(); s != singles || b != batches+1 {
			t.Fatalf("ShippingMethods asked GetVariant %d times and GetVariants %d times; want 0 and 1", s-singles, b-batches)
		}

		e.cat.fail(apperr.New(apperr.Unavailable, "catalogue down"))
		if _, err := e.s.Get(bg, c, created.ID); !apperr.Is(err, apperr.Unavailable) {
			t.Fatalf("Get with the catalogue down: %v; want unavailable", err)
		}
	})
}

// TestResolveBatchesBeyondTheCatalogueLimit: a cart with more lines than
// the catalogue answers at once is asked about in batches of at most
// catalog.MaxVariantBatch, and every line is resolved.
func TestResolveBatchesBeyondTheCatalogueLimit(t *testing.T) {
	const n = catalog.MaxVariantBatch + catalog.MaxVariantBatch/2
	e := MustNewSQLiteEnv(t, Config{MaxLines: n})
	created, c := e.MustCreate(t, anon(""))
	var last catalog.VariantRef
	for i := range n {
		last = e.cat.add(fmt.Sprintf("BULK-%d", i))
		e.pr.setPrice("EUR", last.ID, 100)
		e.MustAdd(t, c, created.ID, last.ID, 1)
	}
	e.cat.hide(last.ID)

	_, batches := e.cat.calls()
	got := e.MustGet(t, c, created.ID)
	if _, b := e.cat.calls(); b != batches+2 {
		t.Fatalf("Get made %d GetVariants calls; want 2", b-batches)
	}
	if len(got.Items) != n {
		t.Fatalf("%d lines, want %d", len(got.Items), n)
	}
	for _, it := range got.Items {
		if want := map[bool]string{true: ProblemUnpublished}[it.VariantID == last.ID]; it.Problem != want {
			t.Errorf("line %s: problem %q, want %q", it.SKU, it.Problem, want)
		}
	}
}
