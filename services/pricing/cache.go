package pricing

import (
	"context"
	"errors"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/revcache"
	"github.com/soukhq/souk/platform/store"
)

// Quotes are pricing's hot path: every cart write, the shipping-options
// listing and checkout quote the cart again. What a quote reads besides use
// counts — prices, promotions, codes, tax rates, shipping methods — changes
// only when the back office writes it, so it is kept in memory here
// (ADR 0017).
//
// Freshness does not depend on time. Every transaction that writes a
// definition bumps pricing_revision (revision.Bump), in whichever process it
// runs. A quote reads the revision first (view) and uses only entries cached
// at that very revision; the rest it loads from SQL, and caches them only
// when the revision is still the same after the load (revcache). A quote
// therefore reflects every write committed before it began.
//
// Use counts (code uses, a customer's uses) and redemptions change with every
// checkout and are never cached; a quote reads them when a code it prices has
// a limit. Time-dependent validity (starts_at, ends_at) is evaluated at the
// quote's instant on the cached rows, never cached as a result.

// revision is pricing's definitions' revision (ADR 0017). Every
// transaction that writes price lists, prices, promotions, codes (not their
// use counts), tax rates or shipping methods bumps it before it commits
// (Service.write and Seed do), so that no process's quote cache serves what
// the transaction replaced, whichever process committed it. Definition
// writes serialise on it on PostgreSQL, which the back office never notices.
var revision = store.Revision{Table: "pricing_revision"}

// cache holds pricing's definitions as of some revision. It is safe for
// concurrent use; the cached values are shared and never modified.
type cache struct {
	// tables are the small tables, cached whole: automatic promotions,
	// tax rates, shipping methods.
	tables revcache.Value[*tables]
	// prices are the price rows of (currency, variant) pairs, weighed by
	// rows; codes the voucher codes' definitions; promotions the code
	// promotions (without use counts), weighed by codes and target ids.
	prices     *revcache.Cache[priceKey, []priceRow]
	codes      *revcache.Cache[string, codeDef]
	promotions *revcache.Cache[string, Promotion]

	lookups *prometheus.CounterVec
}

// Names of the cache's parts, the values of the metric's cache label.
const (
	cacheTables     = "tables"
	cachePrices     = "prices"
	cacheCodes      = "codes"
	cachePromotions = "promotions"
)

func newCache(size int) *cache {
	// An entry weighs 1 and its rows, codes and target ids.
	c := &cache{
		prices:     revcache.New(uint64(size), func(_ priceKey, rows []priceRow) uint32 { return uint32(1 + len(rows)) }),
		codes:      revcache.New(uint64(size), func(string, codeDef) uint32 { return 1 }),
		promotions: revcache.New(uint64(size), func(_ string, p Promotion) uint32 { return uint32(1 + len(p.Codes) + len(p.TargetIDs)) }),
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
	c.tables.Instrument(vec.WithLabelValues(cacheTables, "hit"), vec.WithLabelValues(cacheTables, "miss"))
	c.prices.Instrument(vec.WithLabelValues(cachePrices, "hit"), vec.WithLabelValues(cachePrices, "miss"))
	c.codes.Instrument(vec.WithLabelValues(cacheCodes, "hit"), vec.WithLabelValues(cacheCodes, "miss"))
	c.promotions.Instrument(vec.WithLabelValues(cachePromotions, "hit"), vec.WithLabelValues(cachePromotions, "miss"))
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

// view reads definitions as of one revision, from the cache or from SQL.
// It belongs to one request.
type view struct {
	s  *Service
	at revcache.At
	t  *tables // the tables, once read
}

// view starts reading definitions: it reads the current revision.
func (s *Service) view(ctx context.Context) (*view, error) {
	at, err := revcache.Read(ctx, s.db, revision)
	if err != nil {
		return nil, err
	}
	return &view{s: s, at: at}, nil
}

// tables returns the small tables at the view's revision.
func (v *view) tables(ctx context.Context) (*tables, error) {
	if v.t != nil {
		return v.t, nil
	}
	t, err := v.s.cache.tables.Get(ctx, v.at, func(ctx context.Context) (*tables, error) { return loadTables(ctx, v.s) })
	if err != nil {
		return nil, err
	}
	v.t = t
	return t, nil
}

func loadTables(ctx context.Context, s *Service) (*tables, error) {
	t := &tables{taxRates: map[string][]TaxRate{}, shipping: map[string]ShippingMethod{}}
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
	byKey, err := v.s.cache.prices.GetMany(ctx, v.at, keys, func(ctx context.Context, keys []priceKey) (map[priceKey][]priceRow, error) {
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
	return v.s.cache.codes.GetMany(ctx, v.at, codes, func(ctx context.Context, codes []string) (map[string]codeDef, error) {
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
	byID, err := v.s.cache.promotions.GetMany(ctx, v.at, ids, func(ctx context.Context, ids []string) (map[string]Promotion, error) {
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
