package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/revcache"
	"github.com/soukhq/souk/platform/store"
)

// Service is the catalogue's use cases over its database. It is safe for
// concurrent use. Every write runs in one transaction together with its
// search index update and its outbox events, so an error leaves nothing
// half-written; every error a caller may see is an *apperr.Error.
type Service struct {
	db     *store.DB
	outbox *bus.Outbox
	log    *slog.Logger
	search searchIndex
	cache  *storeCache // nil: Store API reads go to the database every time
	// variants serves GetVariant (nil: from SQL every time); lookups
	// counts both caches' hits and misses.
	variants *revcache.Cache[string, VariantRef]
	lookups  *prometheus.CounterVec
	now      func() time.Time

	// Storefront decoration (WithStorefront); nil sources add nothing.
	prices          PriceSource
	stock           StockSource
	defaultCurrency string
}

// ServiceOption tunes a Service.
type ServiceOption func(*Service)

// WithStoreCache sets how long Store API bodies may be served from memory
// (ttl 0 turns the cache off) and how many bytes the cache may hold. It
// bounds how stale a read can be after a write made by another process;
// this process's own writes are visible at once. Default:
// DefaultStoreCacheTTL and DefaultStoreCacheBytes.
func WithStoreCache(ttl time.Duration, maxBytes uint64) ServiceOption {
	return func(s *Service) { s.cache = newStoreCache(ttl, maxBytes) }
}

// WithVariantCache bounds the memory GetVariant's cache may hold (0 turns
// it off: every call reads SQL). Whatever the bound, GetVariant reflects
// every catalogue write committed before the call, in any process (ADR
// 0019). Default: DefaultVariantCacheBytes.
func WithVariantCache(maxBytes uint64) ServiceOption {
	return func(s *Service) { s.variants = newVariantCache(maxBytes) }
}

var _ Client = (*Service)(nil)

// New returns the catalogue service on db, whose schema must have
// Migrations and bus.Migrations applied. Events go through outbox (a nil
// outbox writes the rows without waking a relay); a nil logger discards.
func New(db *store.DB, outbox *bus.Outbox, logger *slog.Logger, opts ...ServiceOption) *Service {
	if outbox == nil {
		outbox = bus.NewOutbox(nil)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		db:       db,
		outbox:   outbox,
		log:      logger, // the composition root labels it (component=catalog)
		search:   newSearchIndex(db.Engine()),
		cache:    newStoreCache(DefaultStoreCacheTTL, DefaultStoreCacheBytes),
		variants: newVariantCache(DefaultVariantCacheBytes),
		lookups:  newCacheLookups(),
		// Microseconds: what PostgreSQL keeps, so a value read back equals
		// the one written on both engines.
		now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
	}
	for _, opt := range opts {
		opt(s)
	}
	s.cache.instrument(s.lookups)
	if s.variants != nil {
		s.variants.Instrument(s.lookups.WithLabelValues(cacheVariants, "hit"), s.lookups.WithLabelValues(cacheVariants, "miss"))
	}
	return s
}

// errConcurrentChange: a row read in a transaction was changed by another
// one before the conditional write; write retries the whole transaction.
var errConcurrentChange = errors.New("changed concurrently")

// maxWriteAttempts bounds write's retries of a transaction that lost a race.
const maxWriteAttempts = 5

// write runs fn in a transaction, again (from a fresh read) when it reports
// errConcurrentChange. Only requests without If-Match get here: with one, a
// lost race is the caller's version_conflict. Its error is wrapped as
// "<what>: …".
func (s *Service) write(ctx context.Context, what string, fn func(tx *store.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.inTx(ctx, fn)
		if errors.Is(err, errConcurrentChange) {
			if attempt < maxWriteAttempts {
				continue
			}
			err = apperr.New(apperr.Conflict, "the resource is being changed by others; retry")
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
}

// inTx runs fn in a transaction that may write the catalogue; every such
// transaction goes through here (write, Seed). After fn it bumps the
// catalogue's revision, so that no replica's GetVariant serves what fn
// replaced (ADR 0019), and after the commit it invalidates this process's
// Store API cache, which sees other replicas' writes only through its TTL
// (ADR 0007).
func (s *Service) inTx(ctx context.Context, fn func(tx *store.Tx) error) error {
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		tx.AfterCommit(s.cache.invalidate)
		return revision.Bump(ctx, tx)
	})
}

// writeOne runs fn in write and returns what it made.
func writeOne[T any](ctx context.Context, s *Service, what string, fn func(tx *store.Tx) (T, error)) (T, error) {
	var out T
	err := s.write(ctx, what, func(tx *store.Tx) error {
		var err error
		out, err = fn(tx)
		return err
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

// kind is how the admin writes reach one kind of row (products,
// categories), so that their updates and deletes share one If-Match
// protocol: readForWrite before the change, lostRace after a conditional
// write that matched no row.
type kind[T any] struct {
	name     string // as errors name it: "product"
	prefix   string // of its ids
	table    string
	notFound func(ref string) error
	get      func(ctx context.Context, q store.Querier, id string) (T, error)
	version  func(T) int64
}

var (
	productKind = kind[Product]{name: "product", prefix: productPrefix, table: "catalog_products",
		notFound: productNotFound, get: getProduct, version: func(p Product) int64 { return p.Version }}
	categoryKind = kind[Category]{name: "category", prefix: categoryPrefix, table: "catalog_categories",
		notFound: categoryNotFound, get: getCategory, version: func(c Category) int64 { return c.Version }}
)

// readForWrite reads the row rowID in tx for a change at ifMatch (0:
// whatever the version). Without If-Match it first locks the row, so that
// concurrent writers queue on it. Errors: not_found, version_conflict.
func (k kind[T]) readForWrite(ctx context.Context, tx *store.Tx, rowID string, ifMatch int64) (T, error) {
	var zero T
	if !id.Valid(k.prefix, rowID) {
		return zero, k.notFound(rowID)
	}
	if ifMatch == 0 {
		if err := lockRow(ctx, tx, k.table, rowID); err != nil {
			return zero, err
		}
	}
	cur, err := k.get(ctx, tx, rowID)
	if err != nil {
		return zero, err
	}
	if have := k.version(cur); ifMatch > 0 && have != ifMatch {
		return zero, versionConflict(k.name, ifMatch, have)
	}
	return cur, nil
}

// lostRace is the error of a conditional write that matched no row: the
// row changed (or went) since it was read in this transaction.
func (k kind[T]) lostRace(ctx context.Context, tx *store.Tx, rowID string, ifMatch int64) error {
	if ifMatch == 0 {
		return errConcurrentChange
	}
	var have int64
	err := tx.QueryRow(ctx, `SELECT version FROM `+k.table+` WHERE id = ?`, rowID).Scan(&have)
	if errors.Is(err, sql.ErrNoRows) {
		return apperr.New(apperr.NotFound, "%s %q was deleted meanwhile", k.name, rowID)
	}
	if err != nil {
		return fmt.Errorf("read %s version: %w", k.name, err)
	}
	return versionConflict(k.name, ifMatch, have)
}

// --- products: admin ---

// CreateProduct validates and stores a new product at version 1, and
// announces it when it is created published. Errors: validation_failed
// naming every bad field (an unknown category as "category_ids[i]"),
// conflict naming "handle" or "variants[i].sku" when another product holds
// the value.
func (s *Service) CreateProduct(ctx context.Context, in ProductInput) (Product, error) {
	return writeOne(ctx, s, "create product", func(tx *store.Tx) (Product, error) {
		return s.createProduct(ctx, tx, in)
	})
}

func (s *Service) createProduct(ctx context.Context, tx *store.Tx, in ProductInput) (Product, error) {
	now := s.now()
	p := Product{
		ID:          id.New(productPrefix),
		Handle:      in.Handle,
		Title:       in.Title,
		Description: in.Description,
		Status:      in.Status,
		CategoryIDs: in.CategoryIDs,
		Options:     in.Options,
		Media:       in.Media,
		Version:     1,
		CreatedAt:   now,
		UpdatedAt:   now,
	}
	if p.Status == "" {
		p.Status = StatusDraft
	}
	var v apperr.Validation
	p.Variants = buildVariants(&v, in.Variants, nil)
	skuField, err := s.prepareProduct(ctx, tx, &p, &v)
	if err != nil {
		return Product{}, err
	}
	if p.Handle == "" {
		base := slugify(p.Title, MaxHandleLen)
		if base == "" {
			base = strings.ToLower(strings.ReplaceAll(p.ID, "_", "-"))
		}
		if p.Handle, err = freeHandle(ctx, tx, "catalog_products", base); err != nil {
			return Product{}, err
		}
	}
	if p.Status == StatusPublished {
		p.PublishedAt = &now
	}
	if err := insertProductRow(ctx, tx, p); err != nil {
		return Product{}, err
	}
	if err := s.writeProductParts(ctx, tx, p, skuField); err != nil {
		return Product{}, err
	}
	if err := s.announce(ctx, tx, nil, p); err != nil {
		return Product{}, err
	}
	return p, nil
}

// buildVariants turns the request's variants into variants, keeping the id
// of each that names one of existing (the product's current variants). The
// result is in request order, with Position holding the requested position
// (or the index) until finishProduct sorts and renumbers them.
func buildVariants(v *apperr.Validation, in []VariantInput, existing map[string]Variant) []Variant {
	out := make([]Variant, 0, len(in))
	seen := map[string]int{}
	for i, vi := range in {
		vr := Variant{
			ID:          vi.ID,
			SKU:         vi.SKU,
			Options:     map[string]string{},
			WeightGrams: vi.WeightGrams,
			Attributes:  map[string]string{},
			Position:    i,
		}
		for k, val := range vi.Options {
			vr.Options[strings.TrimSpace(k)] = strings.TrimSpace(val)
		}
		maps.Copy(vr.Attributes, vi.Attributes)
		if vi.Position != nil {
			vr.Position = *vi.Position
		}
		field := fmt.Sprintf("variants[%d].id", i)
		switch _, known := existing[vi.ID]; {
		case vi.ID == "":
			vr.ID = id.New(variantPrefix)
		case !known:
			v.Addf(field, "unknown", "%q is not a variant of this product; leave id out to add a variant", vi.ID)
		default:
			if j, dup := seen[vi.ID]; dup {
				v.Addf(field, "duplicate", "variant %q is also listed as variants[%d]", vi.ID, j)
			}
			seen[vi.ID] = i
		}
		out = append(out, vr)
	}
	return out
}

// prepareProduct normalises p, checks every invariant (the category ids
// against the database in tx) and, when all hold, orders the variants and
// derives their titles. It returns each SKU's field name in the request.
func (s *Service) prepareProduct(ctx context.Context, tx *store.Tx, p *Product, v *apperr.Validation) (map[string]string, error) {
	p.Title = strings.TrimSpace(p.Title)
	p.Handle = strings.TrimSpace(p.Handle)
	if p.CategoryIDs == nil {
		p.CategoryIDs = []string{}
	}
	if p.Options == nil {
		p.Options = []Option{}
	}
	if p.Media == nil {
		p.Media = []Media{}
	}
	for i := range p.Options {
		p.Options[i].Name = strings.TrimSpace(p.Options[i].Name)
		for j := range p.Options[i].Values {
			p.Options[i].Values[j] = strings.TrimSpace(p.Options[i].Values[j])
		}
	}
	validateProduct(v, p)
	if len(p.CategoryIDs) > 0 && len(p.CategoryIDs) <= MaxProductCategories {
		wellFormed := slices.DeleteFunc(slices.Clone(p.CategoryIDs), func(c string) bool { return !id.Valid(categoryPrefix, c) })
		exist, err := existingCategories(ctx, tx, wellFormed)
		if err != nil {
			return nil, err
		}
		for i, cid := range p.CategoryIDs {
			if id.Valid(categoryPrefix, cid) && !exist[cid] {
				v.Addf(fmt.Sprintf("category_ids[%d]", i), "unknown", "no category %q", cid)
			}
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	skuField := make(map[string]string, len(p.Variants))
	for i, vr := range p.Variants {
		skuField[vr.SKU] = fmt.Sprintf("variants[%d].sku", i)
	}
	sort.SliceStable(p.Variants, func(i, j int) bool { return p.Variants[i].Position < p.Variants[j].Position })
	for i := range p.Variants {
		p.Variants[i].Position = i
		p.Variants[i].Title = variantTitle(p.Options, p.Variants[i].Options)
	}
	return skuField, nil
}

// writeProductParts writes what hangs off the product row: variants,
// category links and the search document.
func (s *Service) writeProductParts(ctx context.Context, tx *store.Tx, p Product, skuField map[string]string) error {
	if err := replaceVariants(ctx, tx, p, skuField); err != nil {
		return err
	}
	if err := replaceProductCategories(ctx, tx, p); err != nil {
		return err
	}
	return s.search.put(ctx, tx, searchDocOf(p))
}

// UpdateProduct applies a partial update. With ifMatch > 0 the product must
// still be at that version (else version_conflict, and nothing changes); the
// check and the write are one conditional UPDATE, so of two concurrent
// updates naming the same version exactly one succeeds. With ifMatch 0 the
// last writer wins: concurrent writers queue on the row (and a transaction
// that still loses a race is retried from a fresh read). An update that
// changes nothing returns the product as it is, at the same version.
// Errors as CreateProduct, plus not_found, and validation_failed
// "variants[i].id" for an id that is not one of the product's variants.
func (s *Service) UpdateProduct(ctx context.Context, productID string, patch ProductPatch, ifMatch int64) (Product, error) {
	return writeOne(ctx, s, "update product "+productID, func(tx *store.Tx) (Product, error) {
		return s.updateProduct(ctx, tx, productID, patch, ifMatch)
	})
}

func (s *Service) updateProduct(ctx context.Context, tx *store.Tx, productID string, patch ProductPatch, ifMatch int64) (Product, error) {
	cur, err := productKind.readForWrite(ctx, tx, productID, ifMatch)
	if err != nil {
		return Product{}, err
	}
	next := cur.clone()
	var v apperr.Validation
	if patch.Title != nil {
		next.Title = *patch.Title
	}
	if patch.Handle != nil {
		next.Handle = strings.TrimSpace(*patch.Handle)
		if next.Handle == "" {
			v.Add("handle", "required", "handle cannot be empty")
		}
	}
	if patch.Description != nil {
		next.Description = *patch.Description
	}
	if patch.Status != nil {
		next.Status = *patch.Status
	}
	if patch.CategoryIDs != nil {
		next.CategoryIDs = slices.Clone(*patch.CategoryIDs)
	}
	if patch.Options != nil {
		next.Options = slices.Clone(*patch.Options)
	}
	if patch.Media != nil {
		next.Media = slices.Clone(*patch.Media)
	}
	if patch.Variants != nil {
		existing := make(map[string]Variant, len(cur.Variants))
		for _, vr := range cur.Variants {
			existing[vr.ID] = vr
		}
		next.Variants = buildVariants(&v, *patch.Variants, existing)
	}
	skuField, err := s.prepareProduct(ctx, tx, &next, &v)
	if err != nil {
		return Product{}, err
	}
	if sameContent(cur, next) {
		return cur, nil
	}
	now := s.now()
	next.Version = cur.Version + 1
	next.UpdatedAt = now
	if next.Status == StatusPublished && cur.Status != StatusPublished {
		next.PublishedAt = &now
	}
	if err := s.saveProductRow(ctx, tx, next, cur.Version, ifMatch); err != nil {
		return Product{}, err
	}
	if err := s.writeProductParts(ctx, tx, next, skuField); err != nil {
		return Product{}, err
	}
	if err := s.announce(ctx, tx, &cur, next); err != nil {
		return Product{}, err
	}
	return next, nil
}

// saveProductRow is the conditional UPDATE of an existing product read at
// version expected.
func (s *Service) saveProductRow(ctx context.Context, tx *store.Tx, p Product, expected, ifMatch int64) error {
	ok, err := updateProductRow(ctx, tx, p, expected)
	if err != nil {
		return err
	}
	if !ok {
		return productKind.lostRace(ctx, tx, p.ID, ifMatch)
	}
	return nil
}

// DeleteProduct removes a product that was never published. One that ever
// was is archived instead (and announced), keeping its id and variants for
// the orders that refer to it; an archived one stays as it is. ifMatch as
// in UpdateProduct. Errors: not_found, version_conflict.
func (s *Service) DeleteProduct(ctx context.Context, productID string, ifMatch int64) error {
	return s.write(ctx, "delete product "+productID, func(tx *store.Tx) error {
		return s.deleteProduct(ctx, tx, productID, ifMatch)
	})
}

func (s *Service) deleteProduct(ctx context.Context, tx *store.Tx, productID string, ifMatch int64) error {
	cur, err := productKind.readForWrite(ctx, tx, productID, ifMatch)
	if err != nil {
		return err
	}
	if !cur.everPublished() {
		if err := s.search.remove(ctx, tx, cur.ID); err != nil {
			return err
		}
		ok, err := deleteProductRow(ctx, tx, cur.ID, cur.Version)
		if err != nil {
			return err
		}
		if !ok {
			return productKind.lostRace(ctx, tx, cur.ID, ifMatch)
		}
		return nil
	}
	if cur.Status == StatusArchived {
		return nil
	}
	next := cur.clone()
	next.Status = StatusArchived
	next.Version = cur.Version + 1
	next.UpdatedAt = s.now()
	if err := s.saveProductRow(ctx, tx, next, cur.Version, ifMatch); err != nil {
		return err
	}
	return s.announce(ctx, tx, &cur, next)
}

// AdminGetProduct returns a product in any status, by id. Errors: not_found.
func (s *Service) AdminGetProduct(ctx context.Context, productID string) (Product, error) {
	if !id.Valid(productPrefix, productID) {
		return Product{}, productNotFound(productID)
	}
	ps, err := s.readProducts(ctx, []string{productID})
	if err != nil {
		return Product{}, fmt.Errorf("get product %s: %w", productID, err)
	}
	if len(ps) == 0 {
		return Product{}, productNotFound(productID)
	}
	return ps[0], nil
}

// readProducts loads products outside a transaction, consistently: it reads
// the products, their variants and categories, then their versions again,
// and starts over when a version moved (every change to a product's parts
// bumps its version in the same transaction). Products that do not exist
// are left out. Readers so never block writers, on SQLite neither.
func (s *Service) readProducts(ctx context.Context, ids []string) ([]Product, error) {
	for range maxWriteAttempts {
		ps, err := loadProducts(ctx, s.db, ids)
		if err != nil {
			return nil, err
		}
		versions, err := productVersions(ctx, s.db, ids)
		if err != nil {
			return nil, err
		}
		consistent := true
		for _, p := range ps {
			if versions[p.ID] != p.Version {
				consistent = false
				break
			}
		}
		if consistent {
			return ps, nil
		}
	}
	return nil, apperr.New(apperr.Unavailable, "products changed too often to be read; retry")
}

// ProductQuery selects a page of products. Q searches titles, descriptions
// and SKUs (every word must match, the last as a prefix) and orders by
// relevance, then id; without Q the order is by id, which is creation
// order. Category is a category id or handle and includes its descendants.
// Limit is 1–100 (0 means 20). Cursor is a previous page's NextCursor, used
// with the same Q.
type ProductQuery struct {
	Q        string
	Category string
	Limit    int
	Cursor   string
}

// ListProducts returns a page of published products, as the Store API shows
// them. Errors: validation_failed naming "limit", "cursor", "q" or
// "category" (an unknown category).
func (s *Service) ListProducts(ctx context.Context, q ProductQuery) (httpx.Page[Product], error) {
	page, err := s.listProducts(ctx, q, productFilter{statuses: []Status{StatusPublished}})
	if err != nil {
		return httpx.Page[Product]{}, fmt.Errorf("list products: %w", err)
	}
	for i := range page.Data {
		page.Data[i] = page.Data[i].storeView()
	}
	return page, nil
}

// AdminListProducts returns a page of products of every status, or of
// status when it is not empty. Errors as ListProducts, and
// validation_failed "status".
func (s *Service) AdminListProducts(ctx context.Context, q ProductQuery, status Status) (httpx.Page[Product], error) {
	var f productFilter
	if status != "" {
		if !status.Valid() {
			var v apperr.Validation
			v.Add("status", "invalid", "status must be draft, published or archived")
			return httpx.Page[Product]{}, fmt.Errorf("list products: %w", v.Err())
		}
		f.statuses = []Status{status}
	}
	page, err := s.listProducts(ctx, q, f)
	if err != nil {
		return httpx.Page[Product]{}, fmt.Errorf("list products: %w", err)
	}
	return page, nil
}

// Cursor keys: "id:<id>" in id order, "rank:<score>:<id>" in search order.
const (
	idKeyPrefix   = "id:"
	rankKeyPrefix = "rank:"
)

func (s *Service) listProducts(ctx context.Context, q ProductQuery, f productFilter) (httpx.Page[Product], error) {
	var v apperr.Validation
	limit := httpx.CheckLimit(&v, q.Limit)
	if textLen(q.Q) > MaxQueryLen {
		v.Addf("q", "too_long", "q must be at most %d characters", MaxQueryLen)
	}
	searching := strings.TrimSpace(q.Q) != ""
	var (
		afterID   string
		afterRank *searchKey
	)
	if q.Cursor != "" {
		key, err := httpx.DecodeCursor(q.Cursor)
		ok := err == nil
		if ok && searching {
			afterRank, ok = parseRankKey(key)
		} else if ok {
			afterID, ok = strings.CutPrefix(key, idKeyPrefix)
		}
		if !ok {
			v.Add("cursor", "invalid", "cursor is not one this list returned (with this q)")
		}
	}
	if q.Category != "" && v.Empty() {
		ids, err := s.categoryWithDescendants(ctx, q.Category)
		if apperr.Is(err, apperr.NotFound) {
			v.Addf("category", "unknown", "no category %q", q.Category)
		} else if err != nil {
			return httpx.Page[Product]{}, err
		}
		f.categoryIDs = ids
	}
	if err := v.Err(); err != nil {
		return httpx.Page[Product]{}, err
	}

	var (
		ids  []string
		next string
	)
	if searching {
		terms := searchTerms(q.Q)
		if len(terms) == 0 {
			return httpx.NewPage[Product](nil, ""), nil
		}
		hits, err := s.search.search(ctx, s.db, searchQuery{terms: terms, filter: f, after: afterRank, limit: limit + 1})
		if err != nil {
			return httpx.Page[Product]{}, err
		}
		if len(hits) > limit {
			last := hits[limit-1]
			next = rankKeyPrefix + strconv.FormatFloat(last.score, 'g', -1, 64) + ":" + last.id
			hits = hits[:limit]
		}
		for _, h := range hits {
			ids = append(ids, h.id)
		}
	} else {
		var err error
		ids, err = listProductIDs(ctx, s.db, f, afterID, limit+1)
		if err != nil {
			return httpx.Page[Product]{}, err
		}
		if len(ids) > limit {
			next = idKeyPrefix + ids[limit-1]
			ids = ids[:limit]
		}
	}
	ps, err := s.readProducts(ctx, ids)
	if err != nil {
		return httpx.Page[Product]{}, err
	}
	// A product may have changed status between the page query and the read.
	ps = slices.DeleteFunc(ps, func(p Product) bool { return !f.admits(p.Status) })
	return httpx.NewPage(ps, next), nil
}

func parseRankKey(key string) (*searchKey, bool) {
	rest, ok := strings.CutPrefix(key, rankKeyPrefix)
	if !ok {
		return nil, false
	}
	score, pid, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, false
	}
	f, err := strconv.ParseFloat(score, 64)
	if err != nil || !id.Valid(productPrefix, pid) {
		return nil, false
	}
	return &searchKey{score: f, id: pid}, true
}

// --- products and variants: the Store API and Client ---

// GetProduct returns a published product, by id or handle, as the Store API
// shows it. Errors: not_found (also for drafts and archived products).
func (s *Service) GetProduct(ctx context.Context, idOrHandle string) (Product, error) {
	pid := idOrHandle
	if !id.Valid(productPrefix, idOrHandle) {
		if !handlePattern.MatchString(idOrHandle) {
			return Product{}, productNotFound(idOrHandle)
		}
		var err error
		if pid, err = productIDByHandle(ctx, s.db, idOrHandle); err != nil {
			return Product{}, fmt.Errorf("get product: %w", err)
		}
	}
	ps, err := s.readProducts(ctx, []string{pid})
	if err != nil {
		return Product{}, fmt.Errorf("get product %s: %w", idOrHandle, err)
	}
	if len(ps) == 0 || ps[0].Status != StatusPublished {
		return Product{}, productNotFound(idOrHandle)
	}
	return ps[0].storeView(), nil
}

// GetVariant returns a variant of a published product, with that product's
// id, title, handle and status, as of every catalogue write committed before
// the call, by any replica: repeated calls are answered from memory after
// one read of the catalogue's revision (ADR 0019). The result is the
// caller's to modify. Errors: not_found (also when the product is a draft or
// archived).
func (s *Service) GetVariant(ctx context.Context, variantID string) (VariantRef, error) {
	if !id.Valid(variantPrefix, variantID) {
		return VariantRef{}, variantNotFound(variantID)
	}
	r, err := s.variant(ctx, variantID)
	if err != nil {
		return VariantRef{}, fmt.Errorf("get variant: %w", err)
	}
	if r.ProductStatus != StatusPublished {
		return VariantRef{}, variantNotFound(variantID)
	}
	return r.clone(), nil
}

// GetVariants implements Client: the variants of published products among
// variantIDs, as GetVariant returns them, from one read of the catalogue's
// revision and, for those not in memory at it, one SQL statement (ADR
// 0019). The values are the caller's to modify.
func (s *Service) GetVariants(ctx context.Context, variantIDs []string) (map[string]VariantRef, error) {
	ids, err := variantBatch(variantIDs)
	if err != nil {
		return nil, err
	}
	refs, err := s.variantsByID(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("get variants: %w", err)
	}
	out := make(map[string]VariantRef, len(refs))
	for vid, r := range refs {
		if r.ProductStatus == StatusPublished {
			out[vid] = r.clone()
		}
	}
	return out, nil
}

// --- categories ---

// CreateCategory validates and stores a new category at version 1. Errors:
// validation_failed (an unknown parent as "parent_id", a tree deeper than
// MaxCategoryDepth), conflict naming "handle".
func (s *Service) CreateCategory(ctx context.Context, in CategoryInput) (Category, error) {
	return writeOne(ctx, s, "create category", func(tx *store.Tx) (Category, error) {
		return s.createCategory(ctx, tx, in)
	})
}

func (s *Service) createCategory(ctx context.Context, tx *store.Tx, in CategoryInput) (Category, error) {
	now := s.now()
	c := Category{
		ID:          id.New(categoryPrefix),
		Name:        strings.TrimSpace(in.Name),
		Handle:      strings.TrimSpace(in.Handle),
		Description: in.Description,
		ParentID:    in.ParentID,
		Position:    in.Position,
		Version:     1,
		CreatedAt:   now,
		UpdatedAt:   now,
	}
	var v apperr.Validation
	validateCategory(&v, &c)
	if err := v.Err(); err != nil {
		return Category{}, err
	}
	if err := checkParent(ctx, tx, &v, c); err != nil {
		return Category{}, err
	}
	if err := v.Err(); err != nil {
		return Category{}, err
	}
	if c.Handle == "" {
		base := slugify(c.Name, MaxHandleLen)
		if base == "" {
			base = strings.ToLower(strings.ReplaceAll(c.ID, "_", "-"))
		}
		var err error
		if c.Handle, err = freeHandle(ctx, tx, "catalog_categories", base); err != nil {
			return Category{}, err
		}
	}
	if err := insertCategoryRow(ctx, tx, c); err != nil {
		return Category{}, err
	}
	return c, nil
}

// checkParent checks c's parent exists, that c is not its own ancestor and
// that the tree stays within MaxCategoryDepth levels.
func checkParent(ctx context.Context, tx *store.Tx, v *apperr.Validation, c Category) error {
	if c.ParentID == nil {
		return nil
	}
	all, err := allCategories(ctx, tx)
	if err != nil {
		return err
	}
	byID := make(map[string]Category, len(all))
	children := map[string][]string{}
	for _, x := range all {
		byID[x.ID] = x
		if x.ParentID != nil {
			children[*x.ParentID] = append(children[*x.ParentID], x.ID)
		}
	}
	if _, ok := byID[*c.ParentID]; !ok {
		v.Addf("parent_id", "unknown", "no category %q", *c.ParentID)
		return nil
	}
	depth := 1 // levels from the root down to the parent
	for at := byID[*c.ParentID]; ; depth++ {
		if at.ID == c.ID {
			v.Add("parent_id", "cycle", "a category cannot be moved under itself or one of its subcategories")
			return nil
		}
		if at.ParentID == nil {
			break
		}
		at = byID[*at.ParentID]
	}
	var height func(string) int
	height = func(cid string) int {
		h := 0
		for _, ch := range children[cid] {
			h = max(h, height(ch))
		}
		return h + 1
	}
	if depth+height(c.ID) > MaxCategoryDepth {
		v.Addf("parent_id", "too_deep", "the category tree can be at most %d levels deep", MaxCategoryDepth)
	}
	return nil
}

// UpdateCategory applies a partial update; ifMatch as in UpdateProduct.
// Errors as CreateCategory, plus not_found, version_conflict, and
// validation_failed "parent_id" with code "cycle" for a move under itself.
func (s *Service) UpdateCategory(ctx context.Context, categoryID string, patch CategoryPatch, ifMatch int64) (Category, error) {
	return writeOne(ctx, s, "update category "+categoryID, func(tx *store.Tx) (Category, error) {
		return s.updateCategory(ctx, tx, categoryID, patch, ifMatch)
	})
}

func (s *Service) updateCategory(ctx context.Context, tx *store.Tx, categoryID string, patch CategoryPatch, ifMatch int64) (Category, error) {
	cur, err := categoryKind.readForWrite(ctx, tx, categoryID, ifMatch)
	if err != nil {
		return Category{}, err
	}
	next := cur
	var v apperr.Validation
	if patch.Name != nil {
		next.Name = strings.TrimSpace(*patch.Name)
	}
	if patch.Handle != nil {
		next.Handle = strings.TrimSpace(*patch.Handle)
		if next.Handle == "" {
			v.Add("handle", "required", "handle cannot be empty")
		}
	}
	if patch.Description != nil {
		next.Description = *patch.Description
	}
	if patch.ParentID.Set {
		next.ParentID = patch.ParentID.Value
	}
	if patch.Position != nil {
		next.Position = *patch.Position
	}
	validateCategory(&v, &next)
	if err := v.Err(); err != nil {
		return Category{}, err
	}
	if !samePtr(cur.ParentID, next.ParentID) {
		if err := checkParent(ctx, tx, &v, next); err != nil {
			return Category{}, err
		}
		if err := v.Err(); err != nil {
			return Category{}, err
		}
	}
	if next.Name == cur.Name && next.Handle == cur.Handle && next.Description == cur.Description &&
		samePtr(cur.ParentID, next.ParentID) && next.Position == cur.Position {
		return cur, nil
	}
	next.Version = cur.Version + 1
	next.UpdatedAt = s.now()
	ok, err := updateCategoryRow(ctx, tx, next, cur.Version)
	if err != nil {
		return Category{}, err
	}
	if !ok {
		return Category{}, categoryKind.lostRace(ctx, tx, cur.ID, ifMatch)
	}
	return next, nil
}

func samePtr(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// DeleteCategory deletes a category without subcategories (else conflict).
// Its products lose it, each as a change of the product (new version,
// announced when the product was ever published), in the same transaction.
// ifMatch as in UpdateProduct. Errors: not_found, version_conflict,
// conflict.
func (s *Service) DeleteCategory(ctx context.Context, categoryID string, ifMatch int64) error {
	return s.write(ctx, "delete category "+categoryID, func(tx *store.Tx) error {
		return s.deleteCategory(ctx, tx, categoryID, ifMatch)
	})
}

func (s *Service) deleteCategory(ctx context.Context, tx *store.Tx, categoryID string, ifMatch int64) error {
	cur, err := categoryKind.readForWrite(ctx, tx, categoryID, ifMatch)
	if err != nil {
		return err
	}
	n, err := countChildren(ctx, tx, cur.ID)
	if err != nil {
		return err
	}
	if n > 0 {
		return apperr.New(apperr.Conflict, "category %q has %d subcategories; move or delete them first", cur.ID, n)
	}
	pids, err := productIDsInCategory(ctx, tx, cur.ID)
	if err != nil {
		return err
	}
	now := s.now()
	for _, pid := range pids {
		p, err := getProduct(ctx, tx, pid)
		if err != nil {
			return err
		}
		next := p.clone()
		next.CategoryIDs = slices.DeleteFunc(next.CategoryIDs, func(c string) bool { return c == cur.ID })
		next.Version = p.Version + 1
		next.UpdatedAt = now
		ok, err := updateProductRow(ctx, tx, next, p.Version)
		if err != nil {
			return err
		}
		if !ok {
			return errConcurrentChange
		}
		if err := replaceProductCategories(ctx, tx, next); err != nil {
			return err
		}
		if err := s.announce(ctx, tx, &p, next); err != nil {
			return err
		}
	}
	ok, err := deleteCategoryRow(ctx, tx, cur.ID, cur.Version)
	if err != nil {
		return err
	}
	if !ok {
		return categoryKind.lostRace(ctx, tx, cur.ID, ifMatch)
	}
	return nil
}

// AdminGetCategory returns a category by id. Errors: not_found.
func (s *Service) AdminGetCategory(ctx context.Context, categoryID string) (Category, error) {
	if !id.Valid(categoryPrefix, categoryID) {
		return Category{}, categoryNotFound(categoryID)
	}
	c, err := getCategory(ctx, s.db, categoryID)
	if err != nil {
		return Category{}, fmt.Errorf("get category: %w", err)
	}
	return c, nil
}

// AdminListCategories returns a page of categories in id (creation) order.
// limit is 1–100 (0 means 20); cursor is a previous page's NextCursor.
// Errors: validation_failed naming "limit" or "cursor".
func (s *Service) AdminListCategories(ctx context.Context, limit int, cursor string) (httpx.Page[Category], error) {
	var v apperr.Validation
	limit = httpx.CheckLimit(&v, limit)
	afterID := httpx.CursorKey(&v, cursor, func(key string) (string, bool) { return strings.CutPrefix(key, idKeyPrefix) })
	if err := v.Err(); err != nil {
		return httpx.Page[Category]{}, fmt.Errorf("list categories: %w", err)
	}
	cs, err := listCategories(ctx, s.db, afterID, limit+1)
	if err != nil {
		return httpx.Page[Category]{}, fmt.Errorf("list categories: %w", err)
	}
	return httpx.NextPage(cs, limit, func(c Category) string { return idKeyPrefix + c.ID }), nil
}

// CategoryTree returns every category as a forest: roots in sibling order
// (position, then name), each with its children nested the same way.
func (s *Service) CategoryTree(ctx context.Context) ([]CategoryNode, error) {
	all, err := allCategories(ctx, s.db)
	if err != nil {
		return nil, fmt.Errorf("read category tree: %w", err)
	}
	children := map[string][]Category{}
	var roots []Category
	for _, c := range all {
		if c.ParentID == nil {
			roots = append(roots, c)
		} else {
			children[*c.ParentID] = append(children[*c.ParentID], c)
		}
	}
	var build func([]Category) []CategoryNode
	build = func(cs []Category) []CategoryNode {
		out := make([]CategoryNode, len(cs))
		for i, c := range cs {
			out[i] = CategoryNode{
				ID: c.ID, Name: c.Name, Handle: c.Handle, Description: c.Description,
				ParentID: c.ParentID, Position: c.Position, Children: build(children[c.ID]),
			}
		}
		return out
	}
	return build(roots), nil
}

// categoryWithDescendants resolves a category id or handle to the ids of it
// and every category below it. Errors: not_found.
func (s *Service) categoryWithDescendants(ctx context.Context, ref string) ([]string, error) {
	all, err := allCategories(ctx, s.db)
	if err != nil {
		return nil, err
	}
	root := ""
	children := map[string][]string{}
	for _, c := range all {
		if c.ID == ref || c.Handle == ref {
			root = c.ID
		}
		if c.ParentID != nil {
			children[*c.ParentID] = append(children[*c.ParentID], c.ID)
		}
	}
	if root == "" {
		return nil, categoryNotFound(ref)
	}
	out := []string{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out, nil
}
