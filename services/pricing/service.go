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
	var after string
	if cursor != "" {
		key, err := httpx.DecodeCursor(cursor)
		ok := err == nil
		if ok {
			after, ok = strings.CutPrefix(key, idKeyPrefix)
		}
		if !ok {
			v.Add("cursor", "invalid", "cursor is not one this list returned")
		}
	}
	return limit, after, v.Err()
}

// page cuts one extra item off and makes the page.
func page[T any](items []T, limit int, idOf func(T) string) httpx.Page[T] {
	next := ""
	if len(items) > limit {
		items = items[:limit]
		next = idKeyPrefix + idOf(items[limit-1])
	}
	return httpx.NewPage(items, next)
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
	if !id.Valid(priceListPrefix, listID) {
		return PriceList{}, notFound("price list", listID)
	}
	pl, err := getPriceList(ctx, s.db, listID)
	if err != nil {
		return PriceList{}, fmt.Errorf("get price list: %w", err)
	}
	return pl, nil
}

// ListPriceLists returns a page of price lists in creation order.
func (s *Service) ListPriceLists(ctx context.Context, limit int, cursor string) (httpx.Page[PriceList], error) {
	limit, after, err := pageParams(limit, cursor)
	if err != nil {
		return httpx.Page[PriceList]{}, fmt.Errorf("list price lists: %w", err)
	}
	items, err := listPriceLists(ctx, s.db, after, limit+1)
	if err != nil {
		return httpx.Page[PriceList]{}, err
	}
	return page(items, limit, func(pl PriceList) string { return pl.ID }), nil
}

// UpdatePriceList applies a patch at ifMatch (0: whatever the version) and
// announces the variants whose price may have changed. A patch that
// changes nothing keeps the version. Errors: not_found, version_conflict,
// validation_failed.
func (s *Service) UpdatePriceList(ctx context.Context, listID string, patch PriceListPatch, ifMatch int64) (PriceList, error) {
	if !id.Valid(priceListPrefix, listID) {
		return PriceList{}, fmt.Errorf("update price list: %w", notFound("price list", listID))
	}
	var out PriceList
	err := s.write(ctx, func(tx *store.Tx) error {
		if ifMatch == 0 {
			if err := lockRow(ctx, tx, "pricing_price_lists", listID); err != nil {
				return err
			}
		}
		cur, err := getPriceList(ctx, tx, listID)
		if err != nil {
			return err
		}
		if ifMatch > 0 && cur.Version != ifMatch {
			return versionConflict("price list", ifMatch, cur.Version)
		}
		next := cur
		next.Prices = slices.Clone(cur.Prices)
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
			return err
		}
		if sameJSON(cur, next) {
			out = cur
			return nil
		}
		next.Version, next.UpdatedAt = cur.Version+1, s.now()
		ok, err := updatePriceListRow(ctx, tx, next, cur.Version)
		if err != nil {
			return err
		}
		if !ok {
			if ifMatch > 0 {
				return versionConflict("price list", ifMatch, cur.Version+1)
			}
			return errConcurrentChange
		}
		if patch.Prices != nil {
			if err := replacePrices(ctx, tx, next.ID, next.Prices); err != nil {
				return err
			}
		}
		out = next
		return s.announcePriceChange(ctx, tx, &cur, next)
	})
	if err != nil {
		return PriceList{}, fmt.Errorf("update price list %s: %w", listID, err)
	}
	return out, nil
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
	if !id.Valid(promotionPrefix, promoID) {
		return Promotion{}, notFound("promotion", promoID)
	}
	p, err := getPromotion(ctx, s.db, promoID)
	if err != nil {
		return Promotion{}, fmt.Errorf("get promotion: %w", err)
	}
	return p, nil
}

// ListPromotions returns a page of promotions in creation order.
func (s *Service) ListPromotions(ctx context.Context, limit int, cursor string) (httpx.Page[Promotion], error) {
	limit, after, err := pageParams(limit, cursor)
	if err != nil {
		return httpx.Page[Promotion]{}, fmt.Errorf("list promotions: %w", err)
	}
	items, err := listPromotions(ctx, s.db, after, limit+1)
	if err != nil {
		return httpx.Page[Promotion]{}, err
	}
	return page(items, limit, func(p Promotion) string { return p.ID }), nil
}

// UpdatePromotion applies a patch at ifMatch (0: whatever the version);
// `active: false` deactivates the promotion and its codes at once. Errors:
// not_found, version_conflict, validation_failed, conflict (codes[i]).
func (s *Service) UpdatePromotion(ctx context.Context, promoID string, patch PromotionPatch, ifMatch int64) (Promotion, error) {
	if !id.Valid(promotionPrefix, promoID) {
		return Promotion{}, fmt.Errorf("update promotion: %w", notFound("promotion", promoID))
	}
	var out Promotion
	err := s.write(ctx, func(tx *store.Tx) error {
		if ifMatch == 0 {
			if err := lockRow(ctx, tx, "pricing_promotions", promoID); err != nil {
				return err
			}
		}
		cur, err := getPromotion(ctx, tx, promoID)
		if err != nil {
			return err
		}
		if ifMatch > 0 && cur.Version != ifMatch {
			return versionConflict("promotion", ifMatch, cur.Version)
		}
		next := cur
		next.TargetIDs, next.Codes = slices.Clone(cur.TargetIDs), slices.Clone(cur.Codes)
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
			return err
		}
		next.Usage = usageOf(next.Codes, cur.Usage)
		if sameJSON(cur, next) {
			out = cur
			return nil
		}
		next.Version, next.UpdatedAt = cur.Version+1, s.now()
		ok, err := updatePromotionRow(ctx, tx, next, cur.Version)
		if err != nil {
			return err
		}
		if !ok {
			if ifMatch > 0 {
				return versionConflict("promotion", ifMatch, cur.Version+1)
			}
			return errConcurrentChange
		}
		if err := writeCodes(ctx, tx, next); err != nil {
			return err
		}
		out = next
		return nil
	})
	if err != nil {
		return Promotion{}, fmt.Errorf("update promotion %s: %w", promoID, err)
	}
	return out, nil
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
	if !id.Valid(taxRatePrefix, rateID) {
		return TaxRate{}, notFound("tax rate", rateID)
	}
	t, err := getTaxRate(ctx, s.db, rateID)
	if err != nil {
		return TaxRate{}, fmt.Errorf("get tax rate: %w", err)
	}
	return t, nil
}

// ListTaxRates returns a page of tax rates in creation order.
func (s *Service) ListTaxRates(ctx context.Context, limit int, cursor string) (httpx.Page[TaxRate], error) {
	limit, after, err := pageParams(limit, cursor)
	if err != nil {
		return httpx.Page[TaxRate]{}, fmt.Errorf("list tax rates: %w", err)
	}
	items, err := listTaxRates(ctx, s.db, after, limit+1)
	if err != nil {
		return httpx.Page[TaxRate]{}, err
	}
	return page(items, limit, func(t TaxRate) string { return t.ID }), nil
}

// UpdateTaxRate changes a rate's rate_bps or name at ifMatch (0: any).
func (s *Service) UpdateTaxRate(ctx context.Context, rateID string, patch TaxRatePatch, ifMatch int64) (TaxRate, error) {
	if !id.Valid(taxRatePrefix, rateID) {
		return TaxRate{}, fmt.Errorf("update tax rate: %w", notFound("tax rate", rateID))
	}
	var out TaxRate
	err := s.write(ctx, func(tx *store.Tx) error {
		cur, err := getTaxRate(ctx, tx, rateID)
		if err != nil {
			return err
		}
		if ifMatch > 0 && cur.Version != ifMatch {
			return versionConflict("tax rate", ifMatch, cur.Version)
		}
		next := cur
		if patch.RateBps != nil {
			next.RateBps = *patch.RateBps
		}
		if patch.Name != nil {
			next.Name = strings.TrimSpace(*patch.Name)
		}
		var v apperr.Validation
		validateTaxRate(&v, next)
		if err := v.Err(); err != nil {
			return err
		}
		if sameJSON(cur, next) {
			out = cur
			return nil
		}
		next.Version, next.UpdatedAt = cur.Version+1, s.now()
		ok, err := updateTaxRateRow(ctx, tx, next, cur.Version)
		if err != nil {
			return err
		}
		if !ok {
			if ifMatch > 0 {
				return versionConflict("tax rate", ifMatch, cur.Version+1)
			}
			return errConcurrentChange
		}
		out = next
		return nil
	})
	if err != nil {
		return TaxRate{}, fmt.Errorf("update tax rate %s: %w", rateID, err)
	}
	return out, nil
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
	if !id.Valid(shippingPrefix, methodID) {
		return ShippingMethod{}, notFound("shipping method", methodID)
	}
	m, err := getShippingMethod(ctx, s.db, methodID)
	if err != nil {
		return ShippingMethod{}, fmt.Errorf("get shipping method: %w", err)
	}
	return m, nil
}

// ListShippingMethods returns a page of shipping methods in creation order.
func (s *Service) ListShippingMethods(ctx context.Context, limit int, cursor string) (httpx.Page[ShippingMethod], error) {
	limit, after, err := pageParams(limit, cursor)
	if err != nil {
		return httpx.Page[ShippingMethod]{}, fmt.Errorf("list shipping methods: %w", err)
	}
	items, err := listShippingMethods(ctx, s.db, after, limit+1)
	if err != nil {
		return httpx.Page[ShippingMethod]{}, err
	}
	return page(items, limit, func(m ShippingMethod) string { return m.ID }), nil
}

// UpdateShippingMethod applies a patch at ifMatch (0: any).
func (s *Service) UpdateShippingMethod(ctx context.Context, methodID string, patch ShippingMethodPatch, ifMatch int64) (ShippingMethod, error) {
	if !id.Valid(shippingPrefix, methodID) {
		return ShippingMethod{}, fmt.Errorf("update shipping method: %w", notFound("shipping method", methodID))
	}
	var out ShippingMethod
	err := s.write(ctx, func(tx *store.Tx) error {
		cur, err := getShippingMethod(ctx, tx, methodID)
		if err != nil {
			return err
		}
		if ifMatch > 0 && cur.Version != ifMatch {
			return versionConflict("shipping method", ifMatch, cur.Version)
		}
		next := cur
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
			return err
		}
		if sameJSON(cur, next) {
			out = cur
			return nil
		}
		next.Version, next.UpdatedAt = cur.Version+1, s.now()
		ok, err := updateShippingMethodRow(ctx, tx, next, cur.Version)
		if err != nil {
			return err
		}
		if !ok {
			if ifMatch > 0 {
				return versionConflict("shipping method", ifMatch, cur.Version+1)
			}
			return errConcurrentChange
		}
		out = next
		return nil
	})
	if err != nil {
		return ShippingMethod{}, fmt.Errorf("update shipping method %s: %w", methodID, err)
	}
	return out, nil
}
