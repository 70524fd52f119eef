package store_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

func TestQueryPieces(t *testing.T) {
	for n, want := range map[int]string{0: "", 1: "?", 3: "?, ?, ?"} {
		if got := store.Placeholders(n); got != want {
			t.Errorf("Placeholders(%d) = %q, want %q", n, got, want)
		}
	}
	if got := store.Args([]string{"a", "b"}); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("Args = %v", got)
	}
	storetest.Run(t, widgets, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now()
		for _, id := range []string{"w1", "w2"} {
			if _, err := db.Exec(ctx, `INSERT INTO widgets (id, name, stock, created_at) VALUES (?, ?, ?, ?)`, id, "name "+id, 1, now); err != nil {
				t.Fatal(err)
			}
		}
		ids := []string{"w1", "w2", "w9"}
		var n int
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM widgets WHERE id IN (`+store.Placeholders(len(ids))+`)`, store.Args(ids)...).Scan(&n); err != nil || n != 2 {
			t.Fatalf("IN list matched %d (%v)", n, err)
		}

		for _, tt := range []struct {
			name  string
			query string
			want  bool
		}{
			{"one row", `UPDATE widgets SET stock = 2 WHERE id = 'w1'`, true},
			{"no row", `UPDATE widgets SET stock = 2 WHERE id = 'w9'`, false},
			{"two rows", `UPDATE widgets SET stock = 3`, false},
		} {
			if ok, err := store.ChangedOne(db.Exec(ctx, tt.query)); ok != tt.want || err != nil {
				t.Errorf("%s: ChangedOne = %v, %v", tt.name, ok, err)
			}
		}
		boom := errors.New("boom")
		if ok, err := store.ChangedOne(nil, boom); ok || !errors.Is(err, boom) {
			t.Errorf("ChangedOne of a failed statement = %v, %v", ok, err)
		}

		// Of many transactions claiming one key, exactly one wins.
		var (
			wg   sync.WaitGroup
			wins atomic.Int64
		)
		for range 8 {
			wg.Go(func() {
				var won bool
				if err := db.InTx(ctx, func(tx *store.Tx) (err error) {
					won, err = store.Claim(ctx, tx, "widgets_meta", "seeded", "v1", now)
					return err
				}); err != nil {
					t.Error(err)
				} else if won {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("%d transactions claimed the key, want 1", n)
		}
		var value string
		if err := db.QueryRow(ctx, `SELECT value FROM widgets_meta WHERE key = 'seeded'`).Scan(&value); err != nil || value != "v1" {
			t.Fatalf("value = %q, %v", value, err)
		}
	})
}
