package pricing

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"

	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// Quotes are pricing's hot path: every cart write, the shipping-options
// listing and checkout quote the cart again. What a quote reads besides use
// counts — prices, promotions, codes, tax rates, shipping methods — changes
// only when the back office writes it, so it is kept in memory here
// (ADR 0017).
//
// Freshness does not depend on time. Every transaction that writes a
// definition bumps pricing_revision (bumpRevision), in whichever process it
// runs. A quote reads the revision first (one tiny query) and uses only
// entries cached at that very revision; the rest it loads from SQL, and
// caches them only when the revision is still the same after the load, so an
// entry is exactly the state of the database at its revision. A quote
// therefore reflects every write committed before it began.
//
// Use counts (code uses, a customer's uses) and redemptions change with every
// checkout and are never cached; a quote reads them when a code it prices has
// a limit. Time-dependent validity (starts_at, ends_at) is evaluated at the
// quote's instant on the cached rows, never cached as a result.

// cache holds pricing's definitions as of some revision. It is safe for
// concurrent use; the cached values are shared and never modified.
type cache struct {
	// tables are the small tables, cached whole: automatic promotions,
	// tax rates, shipping methods.
	tables atomic.Pointer[tables]
	// prices are the price rows of (currency, variant) pairs, weighed by
	// rows; codes the voucher codes' definitions; promotions the code
	// promotions (without use counts), weighed by codes and target ids.
	prices     *revCache[priceKey, []priceRow]
	codes      *revCache[string, codeDef]
	promotions *revCache[string, Promotion]

	lookups                  *prometheus.CounterVec
	tablesHits, tablesMisses prometheus.Counter
}

// Names of the cache's parts, the values of the metric's cache label.
const (
	cacheTables     = "tables"
	cachePrices     = "prices"
	cacheCodes      = "codes"
	cachePromotions = "promotions"
)

func newCache(size int) *cache {
	c := &cache{
		prices:     newRevCache[priceKey](size, func(rows []priceRow) int { return len(rows) }),
		codes:      newRevCache[string](size, func(codeDef) int { return 0 }),
		promotions: newRevCache[string](size, func(p Promotion) int { return len(p.Codes) + len(p.TargetIDs) }),
	}
	c.instrument(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "souk_pricing_cache_lookups_total",
		Help: "Lookups of the quote cache by part (tables, prices, codes, promotions) and result: hit, or miss (loaded from SQL).",
	}, []string{"cache", "result"}))
	return c
}

// instrument counts lookups with vec from now on.
func (c *cache) instrument(vec *prometheus.CounterVec) {
	c.lookups = vec
	c.tablesHits, c.tablesMisses = vec.WithLabelValues(cacheTables, "hit"), vec.WithLabelValues(cacheTables, "miss")
	c.prices.hits, c.prices.misses = vec.WithLabelValues(cachePrices, "hit"), vec.WithLabelValues(cachePrices, "miss")
	c.codes.hits, c.codes.misses = vec.WithLabelValues(cacheCodes, "hit"), vec.WithLabelValues(cacheCodes, "miss")
	c.promotions.hits, c.promotions.misses = vec.WithLabelValues(cachePromotions, "hit"), vec.WithLabelValues(cachePromotions, "miss")
}

// register registers the lookup counter on reg, sharing the one registered
// already (two services of one registry). Any other failure is a wiring
// mistake.
func (c *cache) register(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	err := reg.Register(c.lookups)
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		c.instrument(are.ExistingCollector.(*prometheus.CounterVec))
	} else if err != nil {
		panic("pricing: register metrics: " + err.Error())
	}
}

// tables are the small definition tables at one revision, cached whole: a
// quote needs all automatic promotions anyway, and tax rates and shipping
// methods are few.
type tables struct {
	rev       int64
	automatic []Promotion               // active promotions without codes, by id
	taxRates  map[string][]TaxRate      // by country
	shipping  map[string]ShippingMethod // every method, by id
	active    []ShippingMethod          // the active methods, by id
}

// taxRate returns the rate of the region when it has one, else the
// country-wide rate; false when the country has neither.
func (t *tables) taxRate(country, region string) (rate TaxRate, found bool) {
	for _, r := range t.taxRates[country] {
		switch {
		case r.Region != nil && *r.Region == region:
			return r, true // region-specific beats country-wide
		case r.Region == nil:
			rate, found = r, true
		}
	}
	return rate, found
}

// priceKey names the price rows of one variant in one currency.
type priceKey struct{ currency, variantID string }

// codeDef is a voucher code's definition: its promotion and usage limit.
type codeDef struct {
	promotionID string
	usageLimit  *int64
}

// revCache is a bounded cache of values tagged with the revision they were
// read at.
type revCache[K comparable, V any] struct {
	entries      *otter.Cache[K, revEntry[V]]
	hits, misses prometheus.Counter
}

// revEntry is a cached value, or the fact that there is none (found false).
type revEntry[V any] struct {
	rev   int64
	found bool
	v     V
}

// newRevCache bounds the cache to size, an entry weighing 1 + weigh(value).
func newRevCache[K comparable, V any](size int, weigh func(V) int) *revCache[K, V] {
	return &revCache[K, V]{entries: otter.Must(&otter.Options[K, revEntry[V]]{
		MaximumWeight: uint64(size),
		Weigher:       func(_ K, e revEntry[V]) uint32 { return uint32(1 + weigh(e.v)) },
	})}
}

// get returns the values of keys at the view's revision: those cached at
// that revision, and what load returns for the others. A key that load
// leaves out has no value, and that is cached too. Loaded values are cached
// only when the revision is unchanged after the load: then they are the
// state at that revision. (A load that overlapped a write is used for this
// request all the same: it saw at least every write before the view.)
func (c *revCache[K, V]) get(ctx context.Context, v *view, keys []K, load func(ctx context.Context, keys []K) (map[K]V, error)) (map[K]V, error) {
	out := make(map[K]V, len(keys))
	var missing []K
	for _, k := range keys {
		e, ok := c.entries.GetIfPresent(k)
		if !ok || e.rev != v.rev {
			missing = append(missing, k)
			continue
		}
		if e.found {
			out[k] = e.v
		}
	}
	c.hits.Add(float64(len(keys) - len(missing)))
	if len(missing) == 0 {
		return out, nil
	}
	c.misses.Add(float64(len(missing)))
	loaded, err := load(ctx, missing)
	if err != nil {
		return nil, err
	}
	keep := v.unchanged(ctx)
	for _, k := range missing {
		val, found := loaded[k]
		if found {
			out[k] = val
		}
		if keep {
			c.entries.Set(k, revEntry[V]{rev: v.rev, found: found, v: val})
		}
	}
	return out, nil
}

// view reads definitions as of one revision, from the cache or from SQL.
// It belongs to one request.
type view struct {
	s   *Service
	rev int64
	t   *tables // the tables, once read
}

// view starts reading definitions: it reads the current revision.
func (s *Service) view(ctx context.Context) (*view, error) {
	rev, err := readRevision(ctx, s.db)
	if err != nil {
		return nil, err
	}
	return &view{s: s, rev: rev}, nil
}

// unchanged reports whether no definition write committed since the view's
// revision was read (false when that cannot be told).
func (v *view) unchanged(ctx context.Context) bool {
	rev, err := readRevision(ctx, v.s.db)
	return err == nil && rev == v.rev
}

// tables returns the small tables at the view's revision.
func (v *view) tables(ctx context.Context) (*tables, error) {
	if v.t != nil {
		return v.t, nil
	}
	c := v.s.cache
	if t := c.tables.Load(); t != nil && t.rev == v.rev {
		c.tablesHits.Inc()
		v.t = t
		return t, nil
	}
	c.tablesMisses.Inc()
	t, err := loadTables(ctx, v.s, v.rev)
	if err != nil {
		return nil, err
	}
	if v.unchanged(ctx) {
		c.tables.Store(t)
	}
	v.t = t
	return t, nil
}

func loadTables(ctx context.Context, s *Service, rev int64) (*tables, error) {
	t := &tables{rev: rev, taxRates: map[string][]TaxRate{}, shipping: map[string]ShippingMethod{}}
	var err error
	if t.automatic, err = automaticPromotions(ctx, s.db); err != nil {
		return nil, err
	}
	// Clipped: a quote appends the codes' promotions to a copy of the
	// slice header, which must never write into the shared array.
	t.automatic = slices.Clip(t.automatic)
	rates, err := allTaxRates(ctx, s.db)
	if err != nil {
		return nil, err
	}
	for _, r := range rates {
		t.taxRates[r.Country] = append(t.taxRates[r.Country], r)
	}
	methods, err := allShippingMethods(ctx, s.db)
	if err != nil {
		return nil, err
	}
	for _, m := range methods {
		t.shipping[m.ID] = m
		if m.Active {
			t.active = append(t.active, m)
		}
	}
	return t, nil
}

// priceRows returns every price of the variants in lists of the currency,
// with the list, at the view's revision; resolvePrices picks among them.
func (v *view) priceRows(ctx context.Context, currency string, variantIDs []string) ([]priceRow, error) {
	keys := make([]priceKey, len(variantIDs))
	for i, vid := range variantIDs {
		keys[i] = priceKey{currency, vid}
	}
	byKey, err := v.s.cache.prices.get(ctx, v, keys, func(ctx context.Context, keys []priceKey) (map[priceKey][]priceRow, error) {
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = k.variantID
		}
		rows, err := priceRows(ctx, v.s.db, currency, ids)
		if err != nil {
			return nil, err
		}
		out := map[priceKey][]priceRow{}
		for _, r := range rows {
			k := priceKey{currency, r.variantID}
			out[k] = append(out[k], r)
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	var out []priceRow
	for _, k := range keys {
		out = append(out, byKey[k]...)
	}
	return out, nil
}

// codes returns the definitions of the codes that exist, by code, at the
// view's revision.
func (v *view) codes(ctx context.Context, codes []string) (map[string]codeDef, error) {
	return v.s.cache.codes.get(ctx, v, codes, func(ctx context.Context, codes []string) (map[string]codeDef, error) {
		rows, err := codeRows(ctx, v.s.db, codes)
		if err != nil {
			return nil, err
		}
		out := make(map[string]codeDef, len(rows))
		for c, r := range rows {
			out[c] = codeDef{promotionID: r.promotionID, usageLimit: r.usageLimit}
		}
		return out, nil
	})
}

// promotions returns the promotions of the ids that exist, in ids' order,
// at the view's revision, without use counts (Usage is nil).
func (v *view) promotions(ctx context.Context, ids []string) ([]Promotion, error) {
	byID, err := v.s.cache.promotions.get(ctx, v, ids, func(ctx context.Context, ids []string) (map[string]Promotion, error) {
		ps, err := promotionsByID(ctx, v.s.db, ids)
		if err != nil {
			return nil, err
		}
		out := make(map[string]Promotion, len(ps))
		for _, p := range ps {
			p.Usage = nil // counts are never cached
			out[p.ID] = p
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]Promotion, 0, len(ids))
	for _, id := range ids {
		if p, ok := byID[id]; ok {
			out = append(out, p)
		}
	}
	return out, nil
}
