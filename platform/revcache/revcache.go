// Package revcache keeps what a service read from SQL in memory, valid for
// exactly the revision (a store.Revision) it was read at. Freshness does not
// depend on time: every transaction that writes what a revision covers bumps
// it, in whichever process it runs, and a lookup reads the revision first
// (Read: one tiny query) and uses only entries cached at that very revision.
// The rest it loads from SQL, and caches them only when the revision is still
// the same after the load: no write committed in between, so an entry is
// exactly the state of the database at its revision, however many
// statements the load ran. A lookup therefore reflects every write
// committed before it began, by any process on the database (ADRs 17, 19).
//
// A load that overlapped a write is answered all the same (it saw every
// write committed before the lookup began) but not cached. Entries are
// replaced with a plain set, never "keep the higher revision": a database
// made anew starts anywhere, so a higher revision is not a newer state.
//
// Lookups count their hits and misses on the counters given to Instrument.
package revcache

import (
	"context"
	"sync/atomic"

	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/store"
)

// At is a revision as one request read it: the lookups of the request go
// through it, so they all use entries of that one revision. It belongs to
// one request; a later request reads again.
type At struct {
	q   store.Querier
	rev store.Revision
	n   int64
}

// Read reads rev's current value in q, for the lookups of one request.
// Errors: the database's.
func Read(ctx context.Context, q store.Querier, rev store.Revision) (At, error) {
	n, err := rev.Read(ctx, q)
	if err != nil {
		return At{}, err
	}
	return At{q: q, rev: rev, n: n}, nil
}

// Unchanged reports whether the revision is still the one a read: no
// transaction that bumps it committed since (false when that cannot be
// told).
func (a At) Unchanged(ctx context.Context) bool {
	n, err := a.rev.Read(ctx, a.q)
	return err == nil && n == a.n
}

// Cache is a bounded cache of values by key, each valid at the revision it
// was read at. It is safe for concurrent use; cached values are shared, and
// neither the cache nor its callers may modify them.
type Cache[K comparable, V any] struct {
	entries      *otter.Cache[K, entry[V]]
	hits, misses prometheus.Counter
}

// entry is a value as of revision rev, or the fact that there was none
// (found false).
type entry[V any] struct {
	rev   int64
	found bool
	v     V
}

// New returns a cache that holds entries weighing at most maxWeight in all;
// weigh tells an entry's weight (for "no value", of V's zero value).
func New[K comparable, V any](maxWeight uint64, weigh func(K, V) uint32) *Cache[K, V] {
	return &Cache[K, V]{entries: otter.Must(&otter.Options[K, entry[V]]{
		MaximumWeight: maxWeight,
		Weigher:       func(k K, e entry[V]) uint32 { return weigh(k, e.v) },
	})}
}

// Instrument counts the cache's lookups from now on: a hit per key found
// cached at the lookup's revision, a miss per key loaded. Call it before the
// cache is used (or again while nothing uses it).
func (c *Cache[K, V]) Instrument(hits, misses prometheus.Counter) {
	c.hits, c.misses = hits, misses
}

// Get returns key's value at revision at, and whether it has one: cached
// at that revision, or else what load returns, which is cached (value or
// none) when the revision is unchanged after it. Errors: load's.
func (c *Cache[K, V]) Get(ctx context.Context, at At, key K, load func(context.Context) (V, bool, error)) (V, bool, error) {
	if e, ok := c.entries.GetIfPresent(key); ok && e.rev == at.n {
		add(c.hits, 1)
		return e.v, e.found, nil
	}
	add(c.misses, 1)
	v, found, err := load(ctx)
	if err != nil {
		var zero V
		return zero, false, err
	}
	if at.Unchanged(ctx) {
		c.entries.Set(key, entry[V]{rev: at.n, found: found, v: v})
	}
	return v, found, nil
}

// GetMany returns the values of keys at revision at: those cached at that
// revision, and what one call of load returns for the others. A key that
// load leaves out has no value, and that is cached too; what load returned
// is cached only when the revision is unchanged after it. Errors: load's.
func (c *Cache[K, V]) GetMany(ctx context.Context, at At, keys []K, load func(context.Context, []K) (map[K]V, error)) (map[K]V, error) {
	out := make(map[K]V, len(keys))
	var missing []K
	for _, k := range keys {
		e, ok := c.entries.GetIfPresent(k)
		if !ok || e.rev != at.n {
			missing = append(missing, k)
			continue
		}
		if e.found {
			out[k] = e.v
		}
	}
	add(c.hits, len(keys)-len(missing))
	if len(missing) == 0 {
		return out, nil
	}
	add(c.misses, len(missing))
	loaded, err := load(ctx, missing)
	if err != nil {
		return nil, err
	}
	keep := at.Unchanged(ctx)
	for _, k := range missing {
		v, found := loaded[k]
		if found {
			out[k] = v
		}
		if keep {
			c.entries.Set(k, entry[V]{rev: at.n, found: found, v: v})
		}
	}
	return out, nil
}

// Value is one value valid at the revision it was read at: a whole small
// table, say, that every lookup needs. The zero Value is empty and ready to
// use; it must not be copied after first use. It is safe for concurrent use;
// the cached value is shared, and nobody may modify it.
type Value[V any] struct {
	current      atomic.Pointer[entry[V]]
	hits, misses prometheus.Counter
}

// Instrument counts the value's lookups from now on, as Cache.Instrument.
func (c *Value[V]) Instrument(hits, misses prometheus.Counter) {
	c.hits, c.misses = hits, misses
}

// Get returns the value at revision at: the cached one when it was read at
// that revision, or else what load returns, which is kept when the revision
// is unchanged after it. Errors: load's.
func (c *Value[V]) Get(ctx context.Context, at At, load func(context.Context) (V, error)) (V, error) {
	if e := c.current.Load(); e != nil && e.rev == at.n {
		add(c.hits, 1)
		return e.v, nil
	}
	add(c.misses, 1)
	v, err := load(ctx)
	if err != nil {
		var zero V
		return zero, err
	}
	if at.Unchanged(ctx) {
		c.current.Store(&entry[V]{rev: at.n, found: true, v: v})
	}
	return v, nil
}

// add counts n on c, if the cache is instrumented.
func add(c prometheus.Counter, n int) {
	if c != nil {
		c.Add(float64(n))
	}
}
