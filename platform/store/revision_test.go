package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

// TestRevision: a bump committed through one handle is what another handle
// on the same database (another process) reads next; a rolled-back one is
// not.
func TestRevision(t *testing.T) {
	storetest.Run(t, widgets, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		rev := store.Revision{Table: "widgets_revision"}
		other := storetest.MustOpenAgain(t, db)
		read := func(q store.Querier) int64 {
			t.Helper()
			n, err := rev.Read(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}

		start := read(db)
		if got := read(other); got != start {
			t.Fatalf("the other handle reads %d, want %d", got, start)
		}
		if err := db.InTx(ctx, func(tx *store.Tx) error { return rev.Bump(ctx, tx) }); err != nil {
			t.Fatal(err)
		}
		bumped := read(other)
		if bumped == start {
			t.Fatalf("the other handle still reads %d after a committed bump", bumped)
		}

		boom := errors.New("boom")
		err := other.InTx(ctx, func(tx *store.Tx) error {
			if err := rev.Bump(ctx, tx); err != nil {
				return err
			}
			if n := read(tx); n == bumped {
				t.Errorf("the bumping transaction reads %d, the revision before its bump", n)
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx = %v, want boom", err)
		}
		if got := read(db); got != bumped {
			t.Fatalf("after a rolled-back bump the revision is %d, want %d", got, bumped)
		}

		if err := other.InTx(ctx, func(tx *store.Tx) error { return rev.Bump(ctx, tx) }); err != nil {
			t.Fatal(err)
		}
		if got := read(db); got == bumped || got == start {
			t.Fatalf("a bump through the other handle is not seen: %d", got)
		}

		if _, err := (store.Revision{Table: "no_such_revision"}).Read(ctx, db); err == nil {
			t.Fatal("reading a missing revision table succeeded")
		}
	})
}
