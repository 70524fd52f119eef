package pricing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/store"
)

// Service is pricing's use cases over its database. It is safe for
// concurrent use. Every write runs in one transaction together with its
// outbox events; every error a caller may see is an *apperr.Error. Quotes
// read definitions through a cache that is never stale (ADR 0017), also
// when other processes share the database.
type Service struct {
	db     *store.DB
	outbox *bus.Outbox
	log    *slog.Logger
	cfg    Config
	now    func() time.Time
	cache  *cache
}

var _ Client = (*Service)(nil)

// New returns the pricing service on db, whose schema must have Migrations
// and bus.Migrations applied. Events go through outbox (a nil outbox writes
// the rows without waking a relay); a nil logger discards. cfg should have
// passed Validate; its defaults are applied here.
func New(db *store.DB, outbox *bus.Outbox, logger *slog.Logger, cfg Config, opts ...Option) *Service {
	if outbox == nil {
		outbox = bus.NewOutbox(nil)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	s := &Service{
		db:     db,
		outbox: outbox,
		log:    logger,
		cfg:    cfg,
		// Microseconds: what PostgreSQL keeps, so a value read back
		// equals the one written on both engines.
		now:   func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		cache: newCache(cfg.CacheSize),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Option tunes a Service beyond its Config.
type Option func(*Service)

// WithMetrics registers the service's Prometheus metrics on reg (nil: none):
// souk_pricing_cache_lookups_total{cache, result}. Registering twice on one
// registry shares the collector.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(s *Service) { s.cache.register(reg) }
}

// errConcurrentChange: a row read in a transaction was changed by another
// one before the conditional write; write retries the whole transaction.
var errConcurrentChange = errors.New("changed concurrently")

const maxWriteAttempts = 5

// write runs fn in a transaction, again (from a fresh read) when it reports
// errConcurrentChange. Every use of it writes definitions, so it bumps the
// revision in the same transaction when fn succeeds — also when fn changed
// nothing, which costs only a cache refill.
func (s *Service) write(ctx context.Context, fn func(tx *store.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.db.InTx(ctx, func(tx *store.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return revision.Bump(ctx, tx)
		})
		if !errors.Is(err, errConcurrentChange) {
			return err
		}
		if attempt == maxWriteAttempts {
			return apperr.New(apperr.Conflict, "the resource is being changed by others; retry")
		}
	}
}

// idKeyPrefix marks cursors of the id-ordered admin lists.
const idKeyPrefix = "id:"

// pageParams checks an admin list's limit and cursor and returns the id to
// list after.
func pageParams(limit int, cursor string) (int, string, error) {
	var v apperr.Validation
	limit = httpx.CheckLimit(&v, limit)
	after := httpx.CursorKey(&v, cursor, func(key string) (string, bool) { return strings.CutPrefix(key, idKeyPrefix) })
	return limit, after, v.Err()
}

// kind is how the admin API reaches one kind of definition (price lists,
// promotions, tax rates, shipping methods), so that their Get, List and
// Update share one read, one paging and one If-Match protocol.
type kind[T any] struct {
	name   string // as errors and messages name it: "price list"
	prefix string // of its ids
	// lockTable, when set, is the table whose row an update without
	// If-Match locks before reading (lockRow); without it, such an update
	// that races another is retried from a fresh read.
	lockTable string
	get       func(ctx context.Context, q store.Querier, id string) (T, error)
	list      func(ctx context.Context, q store.Querier, afterID string, limit int) ([]T, error)
	save      func(ctx context.Context, tx *store.Tx, next T, prev int64) (bool, error)
	// meta points at the id, version and update time of a value.
	meta func(*T) (id string, version *int64, updatedAt *time.Time)
}

var (
	priceListKind = kind[PriceList]{name: "price list", prefix: priceListPrefix, lockTable: "pricing_price_lists",
		get: getPriceList, list: listPriceLists, save: updatePriceListRow,
		meta: func(pl *PriceList) (string, *int64, *time.Time) { return pl.ID, &pl.Version, &pl.UpdatedAt }}
	promotionKind = kind[Promotion]{name: "promotion", prefix: promotionPrefix, lockTable: "pricing_promotions",
		get: getPromotion, list: listPromotions, save: updatePromotionRow,
		meta: func(p *Promotion) (string, *int64, *time.Time) { return p.ID, &p.Version, &p.UpdatedAt }}
	taxRateKind = kind[TaxRate]{name: "tax rate", prefix: taxRatePrefix,
		get: getTaxRate, list: listTaxRates, save: updateTaxRateRow,
		meta: func(t *TaxRate) (string, *int64, *time.Time) { return t.ID, &t.Version, &t.UpdatedAt }}
	shippingMethodKind = kind[ShippingMethod]{name: "shipping method", prefix: shippingPrefix,
		get: getShippingMethod, list: listShippingMethods, save: updateShippingMethodRow,
		meta: func(m *ShippingMethod) (string, *int64, *time.Time) { return m.ID, &m.Version, &m.UpdatedAt }}
)

// getOne returns the row rowID of kind k; not_found when there is none.
func getOne[T any](ctx context.Context, s *Service, k kind[T], rowID string) (T, error) {
	var zero T
	if !id.Valid(k.prefix, rowID) {
		return zero, notFound(k.name, rowID)
	}
	v, err := k.get(ctx, s.db, rowID)
	if err != nil {
		return zero, fmt.Errorf("get %s: %w", k.name, err)
	}
	return v, nil
}

// listPage returns a page of the rows of kind k in creation order.
func listPage[T any](ctx context.Context, s *Service, k kind[T], limit int, cursor string) (httpx.Page[T], error) {
	limit, after, err := pageParams(limit, cursor)
	if err != nil {
		return httpx.Page[T]{}, fmt.Errorf("list %ss: %w", k.name, err)
	}
	items, err := k.list(ctx, s.db, after, limit+1)
	if err != nil {
		return httpx.Page[T]{}, err
	}
	return httpx.NextPage(items, limit, func(v T) string { rowID, _, _ := k.meta(&v); return idKeyPrefix + rowID }), nil
}

// updateOne changes the row rowID of kind k at ifMatch (0: whatever the
// version). edit makes the next value from the current one, which it
// receives as a shallow copy (it clones a slice before changing it in
// place), and validates it. A next value that encodes like the current one
// keeps the version and skips after; otherwise the row is written at the
// next version and after, when set, runs in the same transaction. Errors:
// not_found, version_conflict, and edit's and after's.
func updateOne[T any](ctx context.Context, s *Service, k kind[T], rowID string, ifMatch int64,
	edit func(next T) (T, error), after func(tx *store.Tx, cur, next T) error) (T, error) {
	var zero T
	if !id.Valid(k.prefix, rowID) {
		return zero, fmt.Errorf("update %s: %w", k.name, notFound(k.name, rowID))
	}
	var out T
	err := s.write(ctx, func(tx *store.Tx) error {
		if ifMatch == 0 && k.lockTable != "" {
			if err := lockRow(ctx, tx, k.lockTable, rowID); err != nil {
				return err
			}
		}
		cur, err := k.get(ctx, tx, rowID)
		if err != nil {
			return err
		}
		_, version, _ := k.meta(&cur)
		prev := *version
		if ifMatch > 0 && prev != ifMatch {
			return versionConflict(k.name, ifMatch, prev)
		}
		next, err := edit(cur)
		if err != nil {
			return err
		}
		if sameJSON(cur, next) {
			out = cur
			return nil
		}
		_, version, updatedAt := k.meta(&next)
		*version, *updatedAt = prev+1, s.now()
		ok, err := k.save(ctx, tx, next, prev)
		if err != nil {
			return err
		}
		if !ok {
			if ifMatch > 0 {
				return versionConflict(k.name, ifMatch, prev+1)
			}
			return errConcurrentChange
		}
		out = next
		if after == nil {
			return nil
		}
		return after(tx, cur, next)
	})
	if err != nil {
		return zero, fmt.Errorf("update %s %s: %w", k.name, rowID, err)
	}
	return out, nil
}

// sameJSON reports whether two values encode alike: a patch that changes
// nothing keeps the version.
func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// --- price lists ---

// CreatePriceList validates and stores a new price list at version 1 and
// announces its prices (price_changed). Errors: validation_failed naming
// every bad field.
func (s *Service) CreatePriceList(ctx context.Context, in PriceListInput) (PriceList, error) {
	now := s.now()
	pl := PriceList{
		ID: id.New(priceListPrefix), Name: strings.TrimSpace(in.Name), Currency: in.Currency, PricesIncludeTax: in.PricesIncludeTax,
		CustomerGroup: in.CustomerGroup, StartsAt: truncPtr(in.StartsAt), EndsAt: truncPtr(in.EndsAt), Priority: in.Priority,
		Prices: slices.Clone(in.Prices), Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	if pl.Prices == nil {
		pl.Prices = []Price{}
	}
	var v apperr.Validation
	validatePriceList(&v, &pl)
	if err := v.Err(); err != nil {
		return PriceList{}, fmt.Errorf("create price list: %w", err)
	}
	err := s.write(ctx, func(tx *store.Tx) error {
		if err := insertPriceListRow(ctx, tx, pl); err != nil {
			return err
		}
		if err := replacePrices(ctx, tx, pl.ID, pl.Prices); err != nil {
			return err
		}
		return s.announcePriceChange(ctx, tx, nil, pl)
	})
	if err != nil {
		return PriceList{}, fmt.Errorf("create price list: %w", err)
	}
	return pl, nil
}

// GetPriceList returns a price list with its prices; not_found otherwise.
func (s *Service) GetPriceList(ctx context.Context, listID string) (PriceList, error) {
	return getOne(ctx, s, priceListKind, listID)
}

// ListPriceLists returns a page of price lists in creation order.
func (s *Service) ListPriceLists(ctx context.Context, limit int, cursor string) (httpx.Page[PriceList], error) {
	return listPage(ctx, s, priceListKind, limit, cursor)
}

// UpdatePriceList applies a patch at ifMatch (0: whatever the version) and
// announces the variants whose price may have changed. A patch that
// changes nothing keeps the version. Errors: not_found, version_conflict,
// validation_failed.
func (s *Service) UpdatePriceList(ctx context.Context, listID string, patch PriceListPatch, ifMatch int64) (PriceList, error) {
	return updateOne(ctx, s, priceListKind, listID, ifMatch, func(next PriceList) (PriceList, error) {
		next.Prices = slices.Clone(next.Prices)
		if patch.Name != nil {
			next.Name = strings.TrimSpace(*patch.Name)
		}
		if patch.PricesIncludeTax != nil {
			next.PricesIncludeTax = *patch.PricesIncludeTax
		}
		if patch.CustomerGroup.Set {
			next.CustomerGroup = patch.CustomerGroup.Value
		}
		if patch.StartsAt.Set {
			next.StartsAt = truncPtr(patch.StartsAt.Value)
		}
		if patch.EndsAt.Set {
			next.EndsAt = truncPtr(patch.EndsAt.Value)
		}
		if patch.Priority != nil {
			next.Priority = *patch.Priority
		}
		if patch.Prices != nil {
			next.Prices = slices.Clone(*patch.Prices)
			if next.Prices == nil {
				next.Prices = []Price{}
			}
		}
		var v apperr.Validation
		validatePriceList(&v, &next)
		if err := v.Err(); err != nil {
			return next, err
		}
		return next, nil
	}, func(tx *store.Tx, cur, next PriceList) error {
		if patch.Prices != nil {
			if err := replacePrices(ctx, tx, next.ID, next.Prices); err != nil {
				return err
			}
		}
		return s.announcePriceChange(ctx, tx, &cur, next)
	})
}

func truncPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}

// --- promotions ---

// CreatePromotion validates and stores a new promotion with its codes.
// Errors: validation_failed naming every bad field; conflict naming
// codes[i] when another promotion holds a code.
func (s *Service) CreatePromotion(ctx context.Context, in PromotionInput) (Promotion, error) {
	now := s.now()
	p := Promotion{
		ID: id.New(promotionPrefix), Name: strings.TrimSpace(in.Name), Type: in.Type, Value: in.Value, Target: in.Target,
		TargetIDs: slices.Clone(in.TargetIDs), Codes: slices.Clone(in.Codes), UsageLimit: in.UsageLimit,
		UsageLimitPerCustomer: in.UsageLimitPerCustomer, StartsAt: truncPtr(in.StartsAt), EndsAt: truncPtr(in.EndsAt),
		Combinable: in.Combinable, Priority: in.Priority, BuyXGetY: in.BuyXGetY, Active: true,
		Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	if in.Conditions != nil {
		p.Conditions = *in.Conditions
		if m := in.Conditions.MinSubtotal; m != nil {
			c := *m
			p.Conditions.MinSubtotal = &c
		}
	}
	if in.Value != nil {
		val := *in.Value
		if val.Amount != nil {
			a := *val.Amount
			val.Amount = &a
		}
		p.Value = &val
	}
	if in.Active != nil {
		p.Active = *in.Active
	}
	var v apperr.Validation
	validatePromotion(&v, &p)
	if err := v.Err(); err != nil {
		return Promotion{}, fmt.Errorf("create promotion: %w", err)
	}
	p.Usage = usageOf(p.Codes, nil)
	err := s.write(ctx, func(tx *store.Tx) error {
		if err := insertPromotionRow(ctx, tx, p); err != nil {
			return err
		}
		return writeCodes(ctx, tx, p)
	})
	if err != nil {
		return Promotion{}, fmt.Errorf("create promotion: %w", err)
	}
	return p, nil
}

// usageOf lists the codes with their use counts from prev (0 for new ones).
func usageOf(codes []string, prev []CodeUsage) []CodeUsage {
	out := make([]CodeUsage, len(codes))
	for i, c := range codes {
		out[i] = CodeUsage{Code: c}
		for _, u := range prev {
			if u.Code == c {
				out[i].Used = u.Used
			}
		}
	}
	return out
}

// GetPromotion returns a promotion with its codes and their usage.
func (s *Service) GetPromotion(ctx context.Context, promoID string) (Promotion, error) {
	return getOne(ctx, s, promotionKind, promoID)
}

// ListPromotions returns a page of promotions in creation order.
func (s *Service) ListPromotions(ctx context.Context, limit int, cursor string) (httpx.Page[Promotion], error) {
	return listPage(ctx, s, promotionKind, limit, cursor)
}

// UpdatePromotion applies a patch at ifMatch (0: whatever the version);
// `active: false` deactivates the promotion and its codes at once. Errors:
// not_found, version_conflict, validation_failed, conflict (codes[i]).
func (s *Service) UpdatePromotion(ctx context.Context, promoID string, patch PromotionPatch, ifMatch int64) (Promotion, error) {
	return updateOne(ctx, s, promotionKind, promoID, ifMatch, func(next Promotion) (Promotion, error) {
		next.TargetIDs, next.Codes = slices.Clone(next.TargetIDs), slices.Clone(next.Codes)
		if patch.Name != nil {
			next.Name = strings.TrimSpace(*patch.Name)
		}
		if patch.Type != nil {
			next.Type = *patch.Type
		}
		if patch.Value.Set {
			next.Value = patch.Value.Value
		}
		if patch.Target != nil {
			next.Target = *patch.Target
		}
		if patch.TargetIDs != nil {
			next.TargetIDs = slices.Clone(*patch.TargetIDs)
		}
		if patch.Codes != nil {
			next.Codes = slices.Clone(*patch.Codes)
		}
		if patch.UsageLimit.Set {
			next.UsageLimit = patch.UsageLimit.Value
		}
		if patch.UsageLimitPerCustomer.Set {
			next.UsageLimitPerCustomer = patch.UsageLimitPerCustomer.Value
		}
		if patch.StartsAt.Set {
			next.StartsAt = truncPtr(patch.StartsAt.Value)
		}
		if patch.EndsAt.Set {
			next.EndsAt = truncPtr(patch.EndsAt.Value)
		}
		if patch.Combinable != nil {
			next.Combinable = *patch.Combinable
		}
		if patch.Priority != nil {
			next.Priority = *patch.Priority
		}
		if patch.Conditions != nil {
			next.Conditions = *patch.Conditions
		}
		if patch.BuyXGetY.Set {
			next.BuyXGetY = patch.BuyXGetY.Value
		}
		if patch.Active != nil {
			next.Active = *patch.Active
		}
		var v apperr.Validation
		validatePromotion(&v, &next)
		if err := v.Err(); err != nil {
			return next, err
		}
		next.Usage = usageOf(next.Codes, next.Usage)
		return next, nil
	}, func(tx *store.Tx, _, next Promotion) error {
		return writeCodes(ctx, tx, next)
	})
}

// --- tax rates ---

// CreateTaxRate stores the tax rate of a country or region. Errors:
// validation_failed; conflict when the place has a rate already.
func (s *Service) CreateTaxRate(ctx context.Context, in TaxRateInput) (TaxRate, error) {
	now := s.now()
	t := TaxRate{ID: id.New(taxRatePrefix), Country: in.Country, RateBps: in.RateBps, Name: strings.TrimSpace(in.Name),
		Version: 1, CreatedAt: now, UpdatedAt: now}
	var v apperr.Validation
	validateCountry(&v, "country", &t.Country)
	if in.Region != nil {
		if r := normalizeRegion(t.Country, *in.Region); r != "" {
			if !regionPattern.MatchString(r) || !strings.HasPrefix(r, t.Country+"-") {
				v.Add("region", "invalid", "want an ISO 3166-2 subdivision of the country, such as \"US-CA\" or \"CA\"")
			}
			t.Region = &r
		}
	}
	validateTaxRate(&v, t)
	if err := v.Err(); err != nil {
		return TaxRate{}, fmt.Errorf("create tax rate: %w", err)
	}
	err := s.write(ctx, func(tx *store.Tx) error { return insertTaxRate(ctx, tx, t) })
	if err != nil {
		return TaxRate{}, fmt.Errorf("create tax rate: %w", err)
	}
	return t, nil
}

func validateTaxRate(v *apperr.Validation, t TaxRate) {
	validateName(v, "name", t.Name)
	if t.RateBps < 0 || t.RateBps > MaxRateBps {
		v.Addf("rate_bps", "out_of_range", "rate_bps must be from 0 to %d (basis points: 2100 = 21 %%)", MaxRateBps)
	}
}

// GetTaxRate returns a tax rate.
func (s *Service) GetTaxRate(ctx context.Context, rateID string) (TaxRate, error) {
	return getOne(ctx, s, taxRateKind, rateID)
}

// ListTaxRates returns a page of tax rates in creation order.
func (s *Service) ListTaxRates(ctx context.Context, limit int, cursor string) (httpx.Page[TaxRate], error) {
	return listPage(ctx, s, taxRateKind, limit, cursor)
}

// UpdateTaxRate changes a rate's rate_bps or name at ifMatch (0: any).
func (s *Service) UpdateTaxRate(ctx context.Context, rateID string, patch TaxRatePatch, ifMatch int64) (TaxRate, error) {
	return updateOne(ctx, s, taxRateKind, rateID, ifMatch, func(next TaxRate) (TaxRate, error) {
		if patch.RateBps != nil {
			next.RateBps = *patch.RateBps
		}
		if patch.Name != nil {
			next.Name = strings.TrimSpace(*patch.Name)
		}
		var v apperr.Validation
		validateTaxRate(&v, next)
		if err := v.Err(); err != nil {
			return next, err
		}
		return next, nil
	}, nil)
}

// --- shipping methods ---

// CreateShippingMethod validates and stores a shipping method.
func (s *Service) CreateShippingMethod(ctx context.Context, in ShippingMethodInput) (ShippingMethod, error) {
	now := s.now()
	m := ShippingMethod{ID: id.New(shippingPrefix), Name: strings.TrimSpace(in.Name), Countries: slices.Clone(in.Countries),
		Rates: slices.Clone(in.Rates), Active: true, Version: 1, CreatedAt: now, UpdatedAt: now}
	if in.FreeOver != nil {
		f := *in.FreeOver
		m.FreeOver = &f
	}
	if in.Active != nil {
		m.Active = *in.Active
	}
	if m.Rates == nil {
		m.Rates = []ShippingRate{}
	}
	var v apperr.Validation
	validateShippingMethod(&v, &m)
	if err := v.Err(); err != nil {
		return ShippingMethod{}, fmt.Errorf("create shipping method: %w", err)
	}
	if err := s.write(ctx, func(tx *store.Tx) error { return insertShippingMethod(ctx, tx, m) }); err != nil {
		return ShippingMethod{}, fmt.Errorf("create shipping method: %w", err)
	}
	return m, nil
}

// GetShippingMethod returns a shipping method.
func (s *Service) GetShippingMethod(ctx context.Context, methodID string) (ShippingMethod, error) {
	return getOne(ctx, s, shippingMethodKind, methodID)
}

// ListShippingMethods returns a page of shipping methods in creation order.
func (s *Service) ListShippingMethods(ctx context.Context, limit int, cursor string) (httpx.Page[ShippingMethod], error) {
	return listPage(ctx, s, shippingMethodKind, limit, cursor)
}

// UpdateShippingMethod applies a patch at ifMatch (0: any).
func (s *Service) UpdateShippingMethod(ctx context.Context, methodID string, patch ShippingMethodPatch, ifMatch int64) (ShippingMethod, error) {
	return updateOne(ctx, s, shippingMethodKind, methodID, ifMatch, func(next ShippingMethod) (ShippingMethod, error) {
		if patch.Name != nil {
			next.Name = strings.TrimSpace(*patch.Name)
		}
		if patch.Countries != nil {
			next.Countries = slices.Clone(*patch.Countries)
		}
		if patch.Rates != nil {
			next.Rates = slices.Clone(*patch.Rates)
		}
		if patch.FreeOver.Set {
			next.FreeOver = patch.FreeOver.Value
		}
		if patch.Active != nil {
			next.Active = *patch.Active
		}
		if next.Rates == nil {
			next.Rates = []ShippingRate{}
		}
		var v apperr.Validation
		validateShippingMethod(&v, &next)
		if err := v.Err(); err != nil {
			return next, err
		}
		return next, nil
	}, nil)
}
