package catalog

import (
	"context"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/revcache"
	"github.com/soukhq/souk/platform/store"
)

// GetVariant and GetVariants are on the purchase path: the cart resolves
// its lines through GetVariants on every cart change, the shipping-options
// listing and checkout, and adds a line through GetVariant. The
// answer changes only when the back office writes the catalogue, so the
// variants read are kept in memory here (ADR 0019).
//
// Freshness does not depend on time. Every transaction that writes the
// catalogue bumps catalog_revision (revision.Bump, through Service.inTx), in
// whichever replica it runs. A lookup reads the revision first and uses an
// entry only when it was cached at that very revision; otherwise it loads
// the variant from SQL and caches it only when the revision is still the
// same after the load (revcache). A lookup therefore reflects every write
// committed before it began. Variants that do not exist are cached the same
// way.

// revision is the catalogue's revision (ADR 0019). Every transaction that
// writes the catalogue bumps it before it commits (Service.inTx does), so
// that no process's variant cache serves what the transaction replaced,
// whichever replica committed it. Catalogue writes serialise on it on
// PostgreSQL, which back-office editing never notices.
var revision = store.Revision{Table: "catalog_revision"}

// DefaultVariantCacheBytes bounds the variant cache unless WithVariantCache
// says otherwise: some 50 000 variants of usual size.
const DefaultVariantCacheBytes = 32 << 20

// newVariantCache returns GetVariant's and GetVariants' cache of variants, with their
// products, by variant id, bounded to maxBytes as estimated by size; nil
// (GetVariant reads SQL every time) when maxBytes is 0. Cached values are
// shared and never modified: GetVariant hands out copies.
func newVariantCache(maxBytes uint64) *revcache.Cache[string, VariantRef] {
	if maxBytes == 0 {
		return nil
	}
	return revcache.New(maxBytes, func(id string, r VariantRef) uint32 { return uint32(len(id) + r.size()) })
}

// variant returns the variant with its product as the database holds it
// now, in any status: from the cache when an entry is at the current
// revision, else from SQL. Errors: not_found, or the database's.
func (s *Service) variant(ctx context.Context, variantID string) (VariantRef, error) {
	if s.variants == nil {
		return variantRef(ctx, s.db, variantID)
	}
	at, err := revcache.Read(ctx, s.db, revision)
	if err != nil {
		return VariantRef{}, err
	}
	r, found, err := s.variants.Get(ctx, at, variantID, func(ctx context.Context) (VariantRef, bool, error) {
		r, err := variantRef(ctx, s.db, variantID)
		if apperr.Is(err, apperr.NotFound) {
			return VariantRef{}, false, nil
		}
		return r, err == nil, err
	})
	if err != nil {
		return VariantRef{}, err
	}
	if !found {
		return VariantRef{}, variantNotFound(variantID)
	}
	return r, nil
}

// variantsByID returns the variants of ids that exist, by id, with their
// products, in any status, as variant does, from one read of the revision:
// those cached at it from memory, the others from SQL in one statement.
// ids must be distinct. Errors: the database's.
func (s *Service) variantsByID(ctx context.Context, ids []string) (map[string]VariantRef, error) {
	if len(ids) == 0 {
		return map[string]VariantRef{}, nil
	}
	if s.variants == nil {
		return variantRefs(ctx, s.db, ids)
	}
	at, err := revcache.Read(ctx, s.db, revision)
	if err != nil {
		return nil, err
	}
	return s.variants.GetMany(ctx, at, ids, func(ctx context.Context, missing []string) (map[string]VariantRef, error) {
		return variantRefs(ctx, s.db, missing)
	})
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
