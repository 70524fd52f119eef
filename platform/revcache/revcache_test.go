package revcache_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/soukhq/souk/platform/revcache"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

var rev = store.Revision{Table: "things_revision"}

// MustCreateThings makes a revision table and a table of things (id, value)
// covered by it, as a service's migrations would.
func MustCreateThings(t testing.TB, db *store.DB) {
	t.Helper()
	for _, stmt := range []string{
		`CREATE TABLE things_revision (id INTEGER PRIMARY KEY CHECK (id = 1), n BIGINT NOT NULL)`,
		`INSERT INTO things_revision (id, n) VALUES (1, 42)`,
		`CREATE TABLE things (id TEXT PRIMARY KEY, value BIGINT NOT NULL)`,
		`INSERT INTO things (id, value) VALUES ('a', 1), ('b', 1)`,
	} {
		if _, err := db.Exec(context.Background(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

// MustSet writes a thing's value and bumps the revision, in one transaction.
func MustSet(t testing.TB, db *store.DB, id string, value int64) {
	t.Helper()
	ctx := context.Background()
	err := db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE things SET value = ? WHERE id = ?`, value, id); err != nil {
			return err
		}
		return rev.Bump(ctx, tx)
	})
	if err != nil {
		t.Fatalf("set %s: %v", id, err)
	}
}

// MustRead reads the revision for one lookup.
func MustRead(t testing.TB, db *store.DB) revcache.At {
	t.Helper()
	at, err := revcache.Read(context.Background(), db, rev)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// value reads a thing's value; false when there is no such thing.
func value(ctx context.Context, q store.Querier, id string) (int64, bool, error) {
	var v int64
	err := q.QueryRow(ctx, `SELECT value FROM things WHERE id = ?`, id).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return v, err == nil, err
}

// counters are a cache's hits and misses.
type counters struct{ hits, misses prometheus.Counter }

func newCounters() counters {
	return counters{
		hits:   prometheus.NewCounter(prometheus.CounterOpts{Name: "hits"}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{Name: "misses"}),
	}
}

// MustCount fails the test unless the counters are at hits and misses.
func (c counters) MustCount(t testing.TB, hits, misses float64) {
	t.Helper()
	get := func(c prometheus.Counter) float64 {
		var m dto.Metric
		_ = c.Write(&m) // a counter's Write cannot fail
		return m.GetCounter().GetValue()
	}
	if h, m := get(c.hits), get(c.misses); h != hits || m != misses {
		t.Fatalf("hits, misses = %v, %v; want %v, %v", h, m, hits, misses)
	}
}

func newCache() *revcache.Cache[string, int64] {
	return revcache.New(1000, func(string, int64) uint32 { return 1 })
}

// TestCacheCountsAndReusesAtOneRevision: at one revision a key, found or
// not, loads once and hits after; every lookup is counted.
func TestCacheCountsAndReusesAtOneRevision(t *testing.T) {
	storetest.Run(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		MustCreateThings(t, db)
		c, n := newCache(), newCounters()
		c.Instrument(n.hits, n.misses)
		loads := 0
		get := func(at revcache.At, id string) (int64, bool) {
			t.Helper()
			v, found, err := c.Get(ctx, at, id, func(ctx context.Context) (int64, bool, error) {
				loads++
				return value(ctx, db, id)
			})
			if err != nil {
				t.Fatal(err)
			}
			return v, found
		}

		at := MustRead(t, db)
		for range 3 {
			if v, found := get(at, "a"); v != 1 || !found {
				t.Fatalf("a = %v, %v; want 1", v, found)
			}
			if _, found := get(at, "zz"); found {
				t.Fatal("zz found")
			}
		}
		if loads != 2 {
			t.Fatalf("%d loads, want 2 (once per key)", loads)
		}
		n.MustCount(t, 4, 2)

		many, err := c.GetMany(ctx, MustRead(t, db), []string{"a", "b", "zz"}, func(ctx context.Context, ids []string) (map[string]int64, error) {
			if len(ids) != 1 || ids[0] != "b" {
				t.Errorf("GetMany loads %v, want only b", ids)
			}
			out := map[string]int64{}
			for _, id := range ids {
				if v, found, err := value(ctx, db, id); err != nil {
					return nil, err
				} else if found {
					out[id] = v
				}
			}
			return out, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(many) != 2 || many["a"] != 1 || many["b"] != 1 {
			t.Fatalf("GetMany = %v", many)
		}
		n.MustCount(t, 6, 3)

		boom := errors.New("boom")
		if _, err := c.GetMany(ctx, at, []string{"c"}, func(context.Context, []string) (map[string]int64, error) { return nil, boom }); !errors.Is(err, boom) {
			t.Fatalf("GetMany with a failing load = %v, want boom", err)
		}
		if _, _, err := c.Get(ctx, at, "c", func(context.Context) (int64, bool, error) { return 0, false, boom }); !errors.Is(err, boom) {
			t.Fatalf("Get with a failing load = %v, want boom", err)
		}

		// Uninstrumented, it caches all the same.
		u := newCache()
		for range 2 {
			if _, _, err := u.Get(ctx, at, "a", func(context.Context) (int64, bool, error) { return 1, true, nil }); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestWriteOfAnotherProcessIsSeen: a value changed and bumped through
// another handle on the database is what the next lookup answers.
func TestWriteOfAnotherProcessIsSeen(t *testing.T) {
	storetest.Run(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		MustCreateThings(t, db)
		other := storetest.MustOpenAgain(t, db)
		c, n := newCache(), newCounters()
		c.Instrument(n.hits, n.misses)
		var all revcache.Value[int64]
		get := func() (int64, int64) {
			t.Helper()
			at := MustRead(t, db)
			v, _, err := c.Get(ctx, at, "a", func(ctx context.Context) (int64, bool, error) { return value(ctx, db, "a") })
			if err != nil {
				t.Fatal(err)
			}
			sum, err := all.Get(ctx, at, func(ctx context.Context) (int64, error) {
				var s int64
				return s, db.QueryRow(ctx, `SELECT SUM(value) FROM things`).Scan(&s)
			})
			if err != nil {
				t.Fatal(err)
			}
			return v, sum
		}

		if v, sum := get(); v != 1 || sum != 2 {
			t.Fatalf("a, sum = %d, %d; want 1, 2", v, sum)
		}
		MustSet(t, other, "a", 5)
		if v, sum := get(); v != 5 || sum != 6 {
			t.Fatalf("after another process's write: a, sum = %d, %d; want 5, 6", v, sum)
		}
		get()
		n.MustCount(t, 1, 2)
	})
}

// TestLoadOverlappingABumpIsNotCached: a load during which a write
// committed is answered, but not kept for its revision, which it may not
// be the state of.
func TestLoadOverlappingABumpIsNotCached(t *testing.T) {
	storetest.Run(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		MustCreateThings(t, db)
		other := storetest.MustOpenAgain(t, db)
		c := newCache()
		var all revcache.Value[int64]
		loads := 0
		// overlapping loads what is there, then another process writes.
		overlapping := func(ctx context.Context) (int64, bool, error) {
			loads++
			v, found, err := value(ctx, db, "a")
			MustSet(t, other, "b", int64(loads))
			return v, found, err
		}

		at := MustRead(t, db)
		for want := 1; want <= 2; want++ {
			if v, _, err := c.Get(ctx, at, "a", overlapping); err != nil || v != 1 {
				t.Fatalf("Get = %d, %v", v, err)
			}
			if loads != want {
				t.Fatalf("%d loads, want %d: a load that overlapped a bump was cached", loads, want)
			}
		}
		for want := 3; want <= 4; want++ {
			_, err := c.GetMany(ctx, at, []string{"a"}, func(ctx context.Context, _ []string) (map[string]int64, error) {
				v, _, err := overlapping(ctx)
				return map[string]int64{"a": v}, err
			})
			if err != nil || loads != want {
				t.Fatalf("GetMany: %v, %d loads, want %d", err, loads, want)
			}
		}
		for want := 5; want <= 6; want++ {
			_, err := all.Get(ctx, at, func(ctx context.Context) (int64, error) {
				v, _, err := overlapping(ctx)
				return v, err
			})
			if err != nil || loads != want {
				t.Fatalf("Value.Get: %v, %d loads, want %d", err, loads, want)
			}
		}

		// Without a write in between, the next load is kept.
		at = MustRead(t, db)
		for range 2 {
			if _, _, err := c.Get(ctx, at, "a", func(ctx context.Context) (int64, bool, error) { loads++; return value(ctx, db, "a") }); err != nil {
				t.Fatal(err)
			}
		}
		if loads != 7 {
			t.Fatalf("%d loads, want 7", loads)
		}
	})
}

// TestLookupsRacingWritesAreNeverStale: while another process keeps
// raising a value, a lookup never answers less than what was committed
// before it began.
func TestLookupsRacingWritesAreNeverStale(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	storetest.Run(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		MustCreateThings(t, db)
		other := storetest.MustOpenAgain(t, db)
		c := newCache()
		var committed atomic.Int64
		committed.Store(1)
		const writes = 40
		var wg sync.WaitGroup
		wg.Go(func() {
			defer committed.Store(writes) // the readers stop, also after a failure
			for v := int64(2); v <= writes; v++ {
				err := other.InTx(ctx, func(tx *store.Tx) error {
					if _, err := tx.Exec(ctx, `UPDATE things SET value = ? WHERE id = 'a'`, v); err != nil {
						return err
					}
					return rev.Bump(ctx, tx)
				})
				if err != nil {
					t.Error(err)
					return
				}
				committed.Store(v)
			}
		})
		for range 2 {
			wg.Go(func() {
				for committed.Load() < writes {
					floor := committed.Load()
					at, err := revcache.Read(ctx, db, rev)
					if err != nil {
						t.Error(err)
						return
					}
					v, _, err := c.Get(ctx, at, "a", func(ctx context.Context) (int64, bool, error) { return value(ctx, db, "a") })
					if err != nil {
						t.Error(err)
						return
					}
					if v < floor {
						t.Errorf("a lookup answered %d after %d was committed", v, floor)
						return
					}
				}
			})
		}
		wg.Wait()
	})
}
