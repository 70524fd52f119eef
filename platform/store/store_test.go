package store_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

var widgets = []store.Migrations{{Name: "widgets", FS: os.DirFS("testdata/migrations")}}

func TestStore(t *testing.T) {
	storetest.Run(t, widgets, func(t *testing.T, db *store.DB) {
		ctx := context.Background()

		t.Run("time round trip in UTC", func(t *testing.T) {
			at := time.Date(2026, 11, 21, 23, 1, 2, 345000000, time.FixedZone("CET", 3600))
			if _, err := db.Exec(ctx, `INSERT INTO widgets (id, name, stock, created_at) VALUES (?, ?, ?, ?)`, "w1", "one", 5, at); err != nil {
				t.Fatal(err)
			}
			var got time.Time
			if err := db.QueryRow(ctx, `SELECT created_at FROM widgets WHERE id = ?`, "w1").Scan(&got); err != nil {
				t.Fatal(err)
			}
			if !got.Equal(at) {
				t.Fatalf("created_at = %v, want %v", got, at)
			}
		})

		t.Run("unique violation is classified", func(t *testing.T) {
			_, err := db.Exec(ctx, `INSERT INTO widgets (id, name, stock, created_at) VALUES (?, ?, ?, ?)`, "w2", "one", 1, time.Now())
			if !store.IsUniqueViolation(err) {
				t.Fatalf("err = %v, want a unique violation", err)
			}
		})

		t.Run("rollback leaves nothing", func(t *testing.T) {
			boom := errors.New("boom")
			err := db.InTx(ctx, func(tx *store.Tx) error {
				if _, err := tx.Exec(ctx, `INSERT INTO widgets (id, name, stock, created_at) VALUES (?, ?, ?, ?)`, "w3", "three", 1, time.Now()); err != nil {
					return err
				}
				tx.AfterCommit(func() { t.Error("after-commit hook ran on rollback") })
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("InTx = %v, want boom", err)
			}
			var n int
			if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM widgets WHERE id = ?`, "w3").Scan(&n); err != nil || n != 0 {
				t.Fatalf("count = %d, %v; want 0", n, err)
			}
		})

		t.Run("after commit hook runs", func(t *testing.T) {
			ran := false
			err := db.InTx(ctx, func(tx *store.Tx) error {
				tx.AfterCommit(func() { ran = true })
				_, err := tx.Exec(ctx, `UPDATE widgets SET stock = stock + 1 WHERE id = ?`, "w1")
				return err
			})
			if err != nil || !ran {
				t.Fatalf("InTx = %v, hook ran = %v", err, ran)
			}
		})

		t.Run("conditional decrement never goes below zero under concurrency", func(t *testing.T) {
			if _, err := db.Exec(ctx, `UPDATE widgets SET stock = 20 WHERE id = ?`, "w1"); err != nil {
				t.Fatal(err)
			}
			var ok atomic.Int64
			var wg sync.WaitGroup
			for range 60 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := db.InTx(ctx, func(tx *store.Tx) error {
						res, err := tx.Exec(ctx, `UPDATE widgets SET stock = stock - 1 WHERE id = ? AND stock >= 1`, "w1")
						if err != nil {
							return err
						}
						if n, _ := res.RowsAffected(); n == 1 {
							ok.Add(1)
						}
						return nil
					})
					if err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			var stock int
			if err := db.QueryRow(ctx, `SELECT stock FROM widgets WHERE id = ?`, "w1").Scan(&stock); err != nil {
				t.Fatal(err)
			}
			if ok.Load() != 20 || stock != 0 {
				t.Fatalf("succeeded = %d, stock = %d; want 20 and 0", ok.Load(), stock)
			}
		})

		t.Run("migrate is idempotent", func(t *testing.T) {
			if err := db.Migrate(ctx, widgets...); err != nil {
				t.Fatal(err)
			}
		})
	})
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		cfg store.Config
		ok  bool
	}{
		{store.Config{URL: "sqlite:./data/catalog.db"}, true},
		{store.Config{URL: "data/catalog.db"}, true},
		{store.Config{URL: "postgres://u@127.0.0.1:5432/db", Schema: "catalog"}, true},
		{store.Config{URL: ""}, false},
		{store.Config{URL: "mysql://x"}, false},
		{store.Config{URL: "sqlite:"}, false},
		{store.Config{URL: "postgres://u@127.0.0.1/db", Schema: "Bad-Schema"}, false},
	} {
		if err := tt.cfg.Validate(); (err == nil) != tt.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tt.cfg, err, tt.ok)
		}
	}
}

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

// Both single-row and listing results scan through RowScanner.
var (
	_ store.RowScanner = (*sql.Row)(nil)
	_ store.RowScanner = (*sql.Rows)(nil)
)

func TestValuePieces(t *testing.T) {
	for _, tt := range []struct {
		v    any
		want string
	}{
		{map[string]string{"b": "2", "a": "1"}, `{"a":"1","b":"2"}`},
		{[]string{}, `[]`},
		{[]string(nil), `null`},
		{struct {
			N int64 `json:"n"`
		}{7}, `{"n":7}`},
	} {
		if got := store.JSONText(tt.v); got != tt.want {
			t.Errorf("JSONText(%#v) = %s, want %s", tt.v, got, tt.want)
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("JSONText of a channel did not panic")
			}
		}()
		store.JSONText(make(chan int))
	}()

	if got := store.TimeOrNil(sql.NullTime{}); got != nil {
		t.Errorf("TimeOrNil(NULL) = %v, want nil", got)
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	got := store.TimeOrNil(sql.NullTime{Time: at, Valid: true})
	if got == nil || !got.Equal(at) || got.Location() != time.UTC {
		t.Errorf("TimeOrNil(%v) = %v, want the same instant in UTC", at, got)
	}
}
