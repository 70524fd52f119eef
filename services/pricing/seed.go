package pricing

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/store"
)

// seedKey marks, in pricing_meta, that the demo data was loaded.
const seedKey = "demo_pricing_seeded"

// SeedVariant is a catalogue variant the demo data prices.
type SeedVariant struct {
	VariantID     string
	SKU           string
	ProductID     string
	ProductHandle string // picks the demo price, the same in every install
	CategoryIDs   []string
}

// The demo's voucher and customer group.
const (
	DemoVoucherCode = "WELCOME10"
	DemoVIPGroup    = "vip"
)

// Seed loads the demo pricing once per database — the mark is written in
// the same transaction as the data, so of two processes seeding at once
// only one loads anything, and deleting or changing demo data later never
// brings it back. It loads:
//
//   - price lists in EUR and GBP (both tax-inclusive) pricing every given
//     variant, at a price point derived deterministically from its product
//     (variants of a product cost the same);
//   - a "vip" customer-group EUR list 15 % lower for the variants of the
//     first three products;
//   - tax rates NL 21 %, DE 19 %, GB 20 %, FR 20 %, BE 21 %;
//   - shipping: Standard (4.95 EUR / 3.95 GBP, free over 50 EUR / 40 GBP),
//     Express (9.95 EUR / 8.95 GBP), EU Economy (2.95 EUR, EU countries);
//   - promotions: 10 % off orders of 100 EUR or more (automatic), 15 % off
//     the category with the most variants (automatic), and the voucher
//     WELCOME10 (10 % off, 1000 uses, 1 per customer).
//
// seeded tells whether this call loaded it.
func Seed(ctx context.Context, s *Service, variants []SeedVariant) (seeded bool, err error) {
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		seeded = false
		claimed, err := store.Claim(ctx, tx, "pricing_meta", seedKey, "v1", s.now())
		if err != nil || !claimed {
			return err
		}
		if err := s.seed(ctx, tx, variants); err != nil {
			return err
		}
		seeded = true
		return revision.Bump(ctx, tx)
	})
	if err != nil {
		return false, fmt.Errorf("seed demo pricing: %w", err)
	}
	if seeded {
		s.log.InfoContext(ctx, "demo pricing loaded", "variants", len(variants))
	}
	return seeded, nil
}

// demoPricePoints are the EUR shelf prices a product may get, in cents;
// demoGBP is the GBP price of each point (index-aligned).
var (
	demoPricePoints = []int64{1495, 1995, 2495, 2995, 3495, 3995, 4995, 5995, 6995, 7995, 8995, 9995, 12900, 14900, 18900}
	demoGBP         = []int64{1295, 1695, 2195, 2495, 2995, 3495, 4295, 4995, 5995, 6995, 7695, 8495, 10900, 12900, 15900}
)

// demoPriceIndex picks a product's price point from its handle (or id, or
// the SKU): a handle gives every install the same prices, which the
// README's walk-through relies on.
func demoPriceIndex(v SeedVariant) int {
	key := cmp.Or(v.ProductHandle, v.ProductID, v.SKU)
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(len(demoPricePoints)))
}

var euCountries = []string{"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
	"LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"}

func (s *Service) seed(ctx context.Context, tx *store.Tx, variants []SeedVariant) error {
	now := s.now()
	var eur, gbp, vip []Price
	var products []string
	categoryCount := map[string]int{}
	for _, v := range variants {
		if v.VariantID == "" {
			continue
		}
		i := demoPriceIndex(v)
		eur = append(eur, Price{VariantID: v.VariantID, Amount: demoPricePoints[i]})
		gbp = append(gbp, Price{VariantID: v.VariantID, Amount: demoGBP[i]})
		p := cmp.Or(v.ProductID, v.SKU)
		if !slices.Contains(products, p) {
			products = append(products, p)
		}
		if slices.Index(products, p) < 3 {
			// 15 % off, to the cent below (a demo price, not a computed amount).
			vip = append(vip, Price{VariantID: v.VariantID, Amount: demoPricePoints[i] * 85 / 100})
		}
		for _, c := range v.CategoryIDs {
			categoryCount[c]++
		}
	}
	vipGroup := DemoVIPGroup
	lists := []PriceList{
		{Name: "Retail EUR", Currency: "EUR", PricesIncludeTax: true, Prices: eur},
		{Name: "Retail GBP", Currency: "GBP", PricesIncludeTax: true, Prices: gbp},
		{Name: "VIP EUR", Currency: "EUR", PricesIncludeTax: true, CustomerGroup: &vipGroup, Priority: 10, Prices: vip},
	}
	for _, pl := range lists {
		pl.ID, pl.Version, pl.CreatedAt, pl.UpdatedAt = id.New(priceListPrefix), 1, now, now
		if pl.Prices == nil {
			pl.Prices = []Price{}
		}
		if err := s.seedPriceList(ctx, tx, pl); err != nil {
			return err
		}
	}

	for _, t := range []TaxRate{
		{Country: "NL", RateBps: 2100, Name: "BTW hoog tarief"},
		{Country: "DE", RateBps: 1900, Name: "Umsatzsteuer"},
		{Country: "GB", RateBps: 2000, Name: "VAT standard rate"},
		{Country: "FR", RateBps: 2000, Name: "TVA taux normal"},
		{Country: "BE", RateBps: 2100, Name: "BTW/TVA standaardtarief"},
	} {
		t.ID, t.Version, t.CreatedAt, t.UpdatedAt = id.New(taxRatePrefix), 1, now, now
		if err := insertTaxRate(ctx, tx, t); err != nil {
			return fmt.Errorf("tax rate %s: %w", t.Country, err)
		}
	}

	free := func(a int64) *int64 { return &a }
	for _, m := range []ShippingMethod{
		{Name: "Standard", Countries: []string{}, Rates: []ShippingRate{
			{Currency: "EUR", Amount: 495, FreeOver: free(5000)}, {Currency: "GBP", Amount: 395, FreeOver: free(4000)}}},
		{Name: "Express", Countries: []string{}, Rates: []ShippingRate{{Currency: "EUR", Amount: 995}, {Currency: "GBP", Amount: 895}}},
		{Name: "EU Economy", Countries: euCountries, Rates: []ShippingRate{{Currency: "EUR", Amount: 295}}},
	} {
		m.ID, m.Active, m.Version, m.CreatedAt, m.UpdatedAt = id.New(shippingPrefix), true, 1, now, now
		if err := insertShippingMethod(ctx, tx, m); err != nil {
			return fmt.Errorf("shipping method %s: %w", m.Name, err)
		}
	}

	limit, perCustomer := int64(1000), int64(1)
	promos := []Promotion{
		{Name: "10% off orders of 100 EUR or more", Type: TypePercentage, Value: &PromotionValue{Percent: 10}, Target: TargetOrder,
			Combinable: true, Conditions: Conditions{MinSubtotal: &money.Money{Amount: 10000, Currency: "EUR"}}},
		{Name: "Welcome: 10% off your first order", Type: TypePercentage, Value: &PromotionValue{Percent: 10}, Target: TargetOrder,
			Codes: []string{DemoVoucherCode}, UsageLimit: &limit, UsageLimitPerCustomer: &perCustomer},
	}
	if cat := topCategory(categoryCount); cat != "" {
		promos = append(promos, Promotion{Name: "15% off the season's favourites", Type: TypePercentage, Value: &PromotionValue{Percent: 15},
			Target: TargetCategory, TargetIDs: []string{cat}, Combinable: true, Priority: 10})
	} else if len(products) > 0 && strings.HasPrefix(products[0], "prod_") {
		promos = append(promos, Promotion{Name: "15% off our bestseller", Type: TypePercentage, Value: &PromotionValue{Percent: 15},
			Target: TargetProduct, TargetIDs: []string{products[0]}, Combinable: true, Priority: 10})
	}
	for _, p := range promos {
		p.ID, p.Active, p.Version, p.CreatedAt, p.UpdatedAt = id.New(promotionPrefix), true, 1, now, now
		var v apperr.Validation
		validatePromotion(&v, &p)
		if err := v.Err(); err != nil {
			return fmt.Errorf("promotion %q: %w", p.Name, err)
		}
		if err := insertPromotionRow(ctx, tx, p); err != nil {
			return fmt.Errorf("promotion %q: %w", p.Name, err)
		}
		if err := writeCodes(ctx, tx, p); err != nil {
			return fmt.Errorf("promotion %q: %w", p.Name, err)
		}
	}
	return nil
}

func (s *Service) seedPriceList(ctx context.Context, tx *store.Tx, pl PriceList) error {
	var v apperr.Validation
	validatePriceList(&v, &pl)
	if err := v.Err(); err != nil {
		return fmt.Errorf("price list %q: %w", pl.Name, err)
	}
	if err := insertPriceListRow(ctx, tx, pl); err != nil {
		return fmt.Errorf("price list %q: %w", pl.Name, err)
	}
	if err := replacePrices(ctx, tx, pl.ID, pl.Prices); err != nil {
		return fmt.Errorf("price list %q: %w", pl.Name, err)
	}
	return s.announcePriceChange(ctx, tx, nil, pl)
}

// topCategory is the category with the most variants (ties: smallest id).
func topCategory(count map[string]int) string {
	best, n := "", 0
	for c, k := range count {
		if !strings.HasPrefix(c, "cat_") {
			continue
		}
		if k > n || (k == n && c < best) {
			best, n = c, k
		}
	}
	return best
}
