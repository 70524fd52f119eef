package catalog

import (
	"context"

	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/store"
)

// GetVariant is on the purchase path: the cart resolves every line through
// it on every cart change, the shipping-options listing and checkout. The
// answer changes only when the back office writes the catalogue, so the
// variants read are kept in memory here (ADR 0019).
//
// Freshness does not depend on time. Every transaction that writes the
// catalogue bumps catalog_revision (bumpRevision, through Service.inTx), in
// whichever replica it runs. A lookup reads the revision first (one tiny
// query) and uses an entry only when it was cached at that very revision;
// otherwise it loads the variant from SQL and caches it only when the
// revision is still the same after the load, so an entry is exactly the
// state of the database at its revision. A lookup therefore reflects every
// write committed before it began. Variants that do not exist are cached
// the same way.

// DefaultVariantCacheBytes bounds the variant cache unless WithVariantCache
// says otherwise: some 50 000 variants of usual size.
const DefaultVariantCacheBytes = 32 << 20

// variantCache holds variants, with their products, as of some revision.
// It is safe for concurrent use; cached values are shared and never
// modified (GetVariant hands out copies). A nil cache reads SQL every time.
type variantCache struct {
	entries      *otter.Cache[string, variantEntry]
	hits, misses prometheus.Counter
}

// variantEntry is a variant as of revision rev, or the fact that there was
// none (found false).
type variantEntry struct {
	rev   int64
	found bool
	ref   VariantRef
}

func newVariantCache(maxBytes uint64) *variantCache {
	if maxBytes == 0 {
		return nil
	}
	return &variantCache{entries: otter.Must(&otter.Options[string, variantEntry]{
		MaximumWeight: maxBytes,
		Weigher:       func(k string, e variantEntry) uint32 { return uint32(len(k) + e.ref.size()) },
	})}
}

// instrument counts lookups with vec (label cache="variants") from now on.
func (c *variantCache) instrument(vec *prometheus.CounterVec) {
	if c != nil {
		c.hits, c.misses = vec.WithLabelValues(cacheVariants, "hit"), vec.WithLabelValues(cacheVariants, "miss")
	}
}

// get returns the variant with its product as the database holds it now,
// in any status: from the cache when an entry is at the current revision,
// else from SQL. Errors: not_found, or the database's.
func (c *variantCache) get(ctx context.Context, db *store.DB, variantID string) (VariantRef, error) {
	if c == nil {
		return variantRef(ctx, db, variantID)
	}
	rev, err := readRevision(ctx, db)
	if err != nil {
		return VariantRef{}, err
	}
	if e, ok := c.entries.GetIfPresent(variantID); ok && e.rev == rev {
		c.hits.Inc()
		if !e.found {
			return VariantRef{}, variantNotFound(variantID)
		}
		return e.ref, nil
	}
	c.misses.Inc()
	r, err := variantRef(ctx, db, variantID)
	if err != nil && !apperr.Is(err, apperr.NotFound) {
		return VariantRef{}, err
	}
	// Cached only when no write committed during the load: then both of
	// its statements saw the state at rev. Otherwise the answer is still
	// right for this lookup (it saw every write committed before it began),
	// but not for rev. A plain Set: revisions of a database made anew start
	// anywhere, so a higher revision is not a newer one.
	if again, rerr := readRevision(ctx, db); rerr == nil && again == rev {
		c.entries.Set(variantID, variantEntry{rev: rev, found: err == nil, ref: r})
	}
	return r, err
}

// size estimates the bytes r holds, for the cache's bound.
func (r VariantRef) size() int {
	const header, perEntry = 256, 48 // the struct; a map entry's overhead
	n := header + len(r.ID) + len(r.SKU) + len(r.Title) + len(r.ProductID) + len(r.ProductTitle) +
		len(r.ProductHandle) + len(r.ProductStatus)
	for _, m := range []map[string]string{r.Options, r.Attributes} {
		for k, v := range m {
			n += perEntry + len(k) + len(v)
		}
	}
	for _, c := range r.ProductCategoryIDs {
		n += 16 + len(c)
	}
	return n
}
