package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

func TestAllAndEach(t *testing.T) {
	storetest.Run(t, widgets, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		for i, id := range []string{"w1", "w2", "w3"} {
			if _, err := db.Exec(ctx, `INSERT INTO widgets (id, name, stock, created_at) VALUES (?, ?, ?, ?)`, id, "name "+id, i, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		scanID := func(r store.RowScanner) (string, error) {
			var id string
			err := r.Scan(&id)
			return id, err
		}

		t.Run("All reads every row in order", func(t *testing.T) {
			got, err := store.All(ctx, db, "list widgets", scanID, `SELECT id FROM widgets WHERE id > ? ORDER BY id LIMIT ?`, "w1", 5)
			if err != nil || !slices.Equal(got, []string{"w2", "w3"}) {
				t.Fatalf("All = %v, %v; want [w2 w3]", got, err)
			}
		})

		t.Run("All of no rows is nil", func(t *testing.T) {
			got, err := store.All(ctx, db, "list widgets", scanID, `SELECT id FROM widgets WHERE id > ?`, "w9")
			if err != nil || got != nil {
				t.Fatalf("All = %#v, %v; want nil, nil", got, err)
			}
		})

		t.Run("Each calls fn per row", func(t *testing.T) {
			stock := map[string]int{}
			err := store.Each(ctx, db, "read stock", func(r store.RowScanner) error {
				var (
					id string
					n  int
				)
				if err := r.Scan(&id, &n); err != nil {
					return err
				}
				stock[id] = n
				return nil
			}, `SELECT id, stock FROM widgets`)
			if err != nil || len(stock) != 3 || stock["w3"] != 2 {
				t.Fatalf("Each = %v, %v", stock, err)
			}
		})

		t.Run("errors name what was done", func(t *testing.T) {
			boom := errors.New("boom")
			calls := 0
			err := store.Each(ctx, db, "read widgets", func(store.RowScanner) error { calls++; return boom }, `SELECT id FROM widgets`)
			if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "read widgets: ") || calls != 1 {
				t.Fatalf("Each = %v after %d calls; want boom, wrapped, after 1", err, calls)
			}
			_, err = store.All(ctx, db, "list gadgets", scanID, `SELECT id FROM gadgets`)
			if err == nil || !strings.HasPrefix(err.Error(), "list gadgets: ") {
				t.Fatalf("All of a bad query = %v, want an error wrapped with what", err)
			}
		})

		t.Run("rows are closed for the next query in a transaction", func(t *testing.T) {
			err := db.InTx(ctx, func(tx *store.Tx) error {
				ids, err := store.All(ctx, tx, "list widgets", scanID, `SELECT id FROM widgets ORDER BY id`)
				if err != nil {
					return err
				}
				_, err = tx.Exec(ctx, `UPDATE widgets SET stock = stock + 1 WHERE id = ?`, ids[0])
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	})
}
