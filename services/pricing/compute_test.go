package pricing

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/money"
)

// Fixtures of the Compute tests: products P1 (category C1), P2 (C1, C2),
// P3 (C2).
var (
	p1, p2, p3 = "prod_01JD3Q00000000000000000001", "prod_01JD3Q00000000000000000002", "prod_01JD3Q00000000000000000003"
	c1, c2     = "cat_01JD3Q00000000000000000001", "cat_01JD3Q00000000000000000002"
	at         = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// gross is a line of product product at unit cents, tax included.
func gross(lineID, product string, unit, qty int64) InputLine {
	return InputLine{
		QuoteLine: QuoteLine{ID: lineID, VariantID: "var_" + lineID, ProductID: product, CategoryIDs: categoriesOf(product), Quantity: qty},
		Price:     &LinePrice{Amount: unit, IncludesTax: true, PriceListID: "pl_test"},
	}
}

// net is a line priced net (tax excluded).
func net(lineID, product string, unit, qty int64) InputLine {
	l := gross(lineID, product, unit, qty)
	l.Price.IncludesTax = false
	return l
}

// unpriced is a line without a price.
func unpriced(lineID, product string, qty int64) InputLine {
	l := gross(lineID, product, 0, qty)
	l.Price = nil
	return l
}

func categoriesOf(product string) []string {
	switch product {
	case p1:
		return []string{c1}
	case p2:
		return []string{c1, c2}
	case p3:
		return []string{c2}
	}
	return nil
}

func percentOff(promoID string, pct int64) Promotion {
	return Promotion{ID: promoID, Name: promoID, Type: TypePercentage, Value: &PromotionValue{Percent: pct}, Target: TargetOrder, Active: true}
}

func fixedOff(promoID string, amount int64, currency string) Promotion {
	return Promotion{ID: promoID, Name: promoID, Type: TypeFixed, Value: &PromotionValue{Amount: &money.Money{Amount: amount, Currency: currency}},
		Target: TargetOrder, Active: true}
}

func on(p Promotion, target Target, ids ...string) Promotion {
	p.Target, p.TargetIDs = target, ids
	return p
}

func combinable(p Promotion, priority int) Promotion {
	p.Combinable, p.Priority = true, priority
	return p
}

func withCodes(p Promotion, codes ...string) Promotion {
	p.Codes = codes
	return p
}

func bxgy(promoID string, buy, get, pct int64) Promotion {
	return Promotion{ID: promoID, Name: promoID, Type: TypeBuyXGetY, Target: TargetOrder, Active: true,
		BuyXGetY: &BuyXGetY{BuyQuantity: buy, GetQuantity: get, DiscountPercent: pct}}
}

func freeShipping(promoID string) Promotion {
	return Promotion{ID: promoID, Name: promoID, Type: TypeFreeShipping, Target: TargetOrder, Active: true}
}

func standard(amount int64, freeOver *int64, countries ...string) *ShippingMethod {
	return &ShippingMethod{ID: "ship_std", Name: "Standard", Countries: countries, Active: true,
		Rates: []ShippingRate{{Currency: "EUR", Amount: amount, FreeOver: freeOver}}}
}

func eur(in Input) Input {
	if in.Currency == "" {
		in.Currency = "EUR"
	}
	if in.At.IsZero() {
		in.At = at
	}
	if in.ShippingCountry == "" {
		in.ShippingCountry = "NL"
	}
	return in
}

// expect is what a Compute table test checks; nil slices are not checked.
type expect struct {
	subtotal, discount, shipping, tax, total int64
	lineDiscounts                            []int64
	promotions                               []string // applied promotion ids, in order
	problems                                 []CodeProblem
	inclusive                                *bool
}

func TestComputeRules(t *testing.T) {
	inFuture, inPast := at.Add(time.Hour), at.Add(-time.Hour)
	for _, tt := range []struct {
		name string
		in   Input
		want expect
	}{
		{"no promotion, gross prices, tax extracted",
			Input{TaxRateBps: 2100, Lines: []InputLine{gross("a", p1, 1999, 2), gross("b", p2, 500, 1)}},
			// tax = 4498 × 2100 / 12100 = 780.64 → 781
			expect{subtotal: 4498, tax: 781, total: 4498, lineDiscounts: []int64{0, 0}, promotions: []string{}}},
		{"percentage off the order, allocated by largest remainder",
			Input{Lines: []InputLine{gross("a", p1, 1999, 2), gross("b", p2, 500, 1)}, Promotions: []Promotion{percentOff("promo_a", 10)}},
			// 10 % of 4498 = 449.8 → 450; shares 399.97 / 50.02 → 399 + 50 and the unit to a (remainder 4398 > 100)
			expect{subtotal: 4498, discount: 450, total: 4048, lineDiscounts: []int64{400, 50}, promotions: []string{"promo_a"}}},
		{"percentage rounds half up",
			Input{Lines: []InputLine{gross("a", p1, 5, 1)}, Promotions: []Promotion{percentOff("promo_a", 10)}},
			// 10 % of 5 = 0.5 → 1
			expect{subtotal: 5, discount: 1, total: 4, lineDiscounts: []int64{1}}},
		{"percentage off a product",
			Input{Lines: []InputLine{gross("a", p1, 1000, 1), gross("b", p2, 2000, 1)}, Promotions: []Promotion{on(percentOff("promo_a", 25), TargetProduct, p2)}},
			expect{subtotal: 3000, discount: 500, total: 2500, lineDiscounts: []int64{0, 500}}},
		{"percentage off a category",
			Input{Lines: []InputLine{gross("a", p1, 1000, 1), gross("b", p2, 2000, 1), gross("c", p3, 999, 1)}, Promotions: []Promotion{on(percentOff("promo_a", 10), TargetCategory, c2)}},
			// 10 % of 2999 = 299.9 → 300: 2000 → 200.0, 999 → 99.9 → 200 + 99 + 1 to c
			expect{subtotal: 3999, discount: 300, total: 3699, lineDiscounts: []int64{0, 200, 100}}},
		{"fixed off the order, allocated",
			Input{Lines: []InputLine{gross("a", p1, 1000, 1), gross("b", p2, 2000, 1)}, Promotions: []Promotion{fixedOff("promo_a", 1000, "EUR")}},
			// 1000 × 1/3 = 333.3, × 2/3 = 666.6 → 333 + 666, the unit to b (remainder 2000 > 1000)
			expect{subtotal: 3000, discount: 1000, total: 2000, lineDiscounts: []int64{333, 667}}},
		{"fixed off the order is capped at the subtotal",
			Input{Lines: []InputLine{gross("a", p1, 700, 1)}, Promotions: []Promotion{fixedOff("promo_a", 1000, "EUR")}},
			expect{subtotal: 700, discount: 700, total: 0, lineDiscounts: []int64{700}}},
		{"fixed off every unit of a product",
			Input{Lines: []InputLine{gross("a", p1, 1000, 3), gross("b", p2, 2000, 1)}, Promotions: []Promotion{on(fixedOff("promo_a", 150, "EUR"), TargetProduct, p1)}},
			expect{subtotal: 5000, discount: 450, total: 4550, lineDiscounts: []int64{450, 0}}},
		{"fixed off every unit of a category, capped per line",
			Input{Lines: []InputLine{gross("a", p1, 100, 2), gross("b", p3, 2000, 1)}, Promotions: []Promotion{on(fixedOff("promo_a", 150, "EUR"), TargetCategory, c1)}},
			expect{subtotal: 2200, discount: 200, total: 2000, lineDiscounts: []int64{200, 0}}},
		{"fixed in another currency does not apply",
			Input{Lines: []InputLine{gross("a", p1, 1000, 1)}, Promotions: []Promotion{fixedOff("promo_a", 100, "GBP")}},
			expect{subtotal: 1000, total: 1000, promotions: []string{}}},
		{"buy 2 get 1: the cheapest unit is free",
			Input{Lines: []InputLine{gross("a", p1, 1000, 2), gross("b", p2, 500, 1), gross("c", p3, 800, 1)}, Promotions: []Promotion{bxgy("promo_a", 2, 1, 100)}},
			// 4 units → 1 free: b's unit (500)
			expect{subtotal: 3300, discount: 500, total: 2800, lineDiscounts: []int64{0, 500, 0}}},
		{"buy 2 get 1: six units, the two cheapest free",
			Input{Lines: []InputLine{gross("a", p1, 1000, 4), gross("b", p2, 500, 1), gross("c", p3, 800, 1)}, Promotions: []Promotion{bxgy("promo_a", 2, 1, 100)}},
			expect{subtotal: 5300, discount: 1300, total: 4000, lineDiscounts: []int64{0, 500, 800}}},
		{"buy 1 get 1 half price on a category, cheapest units of several on one line",
			Input{Lines: []InputLine{gross("a", p1, 1000, 3), gross("b", p3, 300, 5)}, Promotions: []Promotion{on(bxgy("promo_a", 1, 1, 50), TargetCategory, c1)}},
			// c1: a's 3 units → 1 discounted at 50 % = 500
			expect{subtotal: 4500, discount: 500, total: 4000, lineDiscounts: []int64{500, 0}}},
		{"buy 3 get 2: not enough units",
			Input{Lines: []InputLine{gross("a", p1, 1000, 4)}, Promotions: []Promotion{bxgy("promo_a", 3, 2, 100)}},
			expect{subtotal: 4000, discount: 0, total: 4000, lineDiscounts: []int64{0}}},
		{"free shipping: shown as shipping 0, promotion amount is the waived price",
			Input{Lines: []InputLine{gross("a", p1, 1000, 1)}, Promotions: []Promotion{freeShipping("promo_a")}, Shipping: standard(495, nil)},
			expect{subtotal: 1000, shipping: 0, total: 1000, promotions: []string{"promo_a"}}},
		{"shipping flat rate, taxed at the address's rate",
			Input{TaxRateBps: 2100, Lines: []InputLine{gross("a", p1, 1000, 1)}, Shipping: standard(495, nil)},
			// tax = 1495 × 2100 / 12100 = 259.46 → 259
			expect{subtotal: 1000, shipping: 495, tax: 259, total: 1495}},
		{"shipping free over the threshold",
			Input{Lines: []InputLine{gross("a", p1, 5000, 1)}, Shipping: standard(495, ptr(int64(5000)))},
			expect{subtotal: 5000, shipping: 0, total: 5000}},
		{"shipping threshold measured after discounts",
			Input{Lines: []InputLine{gross("a", p1, 5200, 1)}, Shipping: standard(495, ptr(int64(5000))), Promotions: []Promotion{percentOff("promo_a", 10)}},
			// 5200 − 520 = 4680 < 5000: shipping is charged
			expect{subtotal: 5200, discount: 520, shipping: 495, total: 5175}},
		{"shipping per country: the method does not serve NL",
			Input{Lines: []InputLine{gross("a", p1, 1000, 1)}, Shipping: standard(495, nil, "DE", "BE")},
			expect{subtotal: 1000, shipping: 0, total: 1000}},
		{"min subtotal not reached",
			Input{Lines: []InputLine{gross("a", p1, 9999, 1)}, Promotions: []Promotion{withMin(percentOff("promo_a", 10), 10000, "EUR")}},
			expect{subtotal: 9999, total: 9999, promotions: []string{}}},
		{"min subtotal reached",
			Input{Lines: []InputLine{gross("a", p1, 10000, 1)}, Promotions: []Promotion{withMin(percentOff("promo_a", 10), 10000, "EUR")}},
			expect{subtotal: 10000, discount: 1000, total: 9000, promotions: []string{"promo_a"}}},
		{"min subtotal in another currency never holds",
			Input{Lines: []InputLine{gross("a", p1, 100000, 1)}, Promotions: []Promotion{withMin(percentOff("promo_a", 10), 100, "GBP")}},
			expect{subtotal: 100000, total: 100000, promotions: []string{}}},
		{"customer group: not a member",
			Input{CustomerGroups: []string{"retail"}, Lines: []InputLine{gross("a", p1, 1000, 1)}, Promotions: []Promotion{withGroups(percentOff("promo_a", 10), "vip")}},
			expect{subtotal: 1000, total: 1000, promotions: []string{}}},
		{"customer group: a member (case-insensitive)",
			Input{CustomerGroups: []string{"retail", "VIP"}, Lines: []InputLine{gross("a", p1, 1000, 1)}, Promotions: []Promotion{withGroups(percentOff("promo_a", 10), "vip")}},
			expect{subtotal: 1000, discount: 100, total: 900, promotions: []string{"promo_a"}}},
		{"date window: not started",
			Input{Lines: []InputLine{gross("a", p1, 1000, 1)}, Promotions: []Promotion{window(percentOff("promo_a", 10), &inFuture, nil)}},
			expect{subtotal: 1000, total: 1000, promotions: []string{}}},
		{"date window: ended (ends_at is exclusive)",
			Input{Lines: []InputLine{gross("a", p1, 1000, 1)}, Promotions: []Promotion{window(percentOff("promo_a", 10), nil, &at)}},
			expect{subtotal: 1000, total: 1000, promotions: []string{}}},
		{"date window: within (starts_at is inclusive)",
			Input{Lines: []InputLine{gross("a", p1, 1000, 1)}, Promotions: []Promotion{window(percentOff("promo_a", 10), &at, &inFuture)}},
			expect{subtotal: 1000, discount: 100, total: 900}},
		{"inactive promotion",
			Input{Lines: []InputLine{gross("a", p1, 1000, 1)}, Promotions: []Promotion{inactive(percentOff("promo_a", 10))}},
			expect{subtotal: 1000, total: 1000, promotions: []string{}}},
		{"a promotion with codes needs one of them",
			Input{Lines: []InputLine{gross("a", p1, 1000, 1)}, Promotions: []Promotion{withCodes(percentOff("promo_a", 10), "SAVE10")}},
			expect{subtotal: 1000, total: 1000, promotions: []string{}}},
		{"a code in the request applies its promotion",
			Input{Lines: []InputLine{gross("a", p1, 1000, 1)}, Promotions: []Promotion{withCodes(percentOff("promo_a", 10), "SAVE10")},
				Codes: []CodeInput{{Code: "save10", PromotionID: "promo_a"}}},
			expect{subtotal: 1000, discount: 100, total: 900, promotions: []string{"promo_a"}, problems: []CodeProblem{}}},
		{"code problems: unknown, exhausted, expired, not applicable",
			Input{Lines: []InputLine{gross("a", p1, 1000, 1)},
				Promotions: []Promotion{
					withCodes(percentOff("promo_a", 10), "USED"),
					withCodes(window(percentOff("promo_b", 10), nil, &inPast), "OLD"),
					withCodes(withMin(percentOff("promo_c", 10), 5000, "EUR"), "BIG"),
					withCodes(window(percentOff("promo_d", 10), &inFuture, nil), "SOON"),
					withCodes(inactive(percentOff("promo_e", 10)), "OFF"),
				},
				Codes: []CodeInput{{Code: "NOPE", Problem: string(CodeInvalid)}, {Code: "USED", PromotionID: "promo_a", Problem: string(CodeExhausted)},
					{Code: "OLD", PromotionID: "promo_b"}, {Code: "BIG", PromotionID: "promo_c"}, {Code: "SOON", PromotionID: "promo_d"},
					{Code: "OFF", PromotionID: "promo_e"}, {Code: "GONE", PromotionID: "promo_zz"}}},
			expect{subtotal: 1000, total: 1000, promotions: []string{}, problems: []CodeProblem{
				{"NOPE", "code_invalid"}, {"USED", "code_exhausted"}, {"OLD", "code_expired"}, {"BIG", "code_not_applicable"},
				{"SOON", "code_invalid"}, {"OFF", "code_invalid"}, {"GONE", "code_invalid"}}}},
		{"two codes of one promotion: the first applies",
			Input{Lines: []InputLine{gross("a", p1, 1000, 1)}, Promotions: []Promotion{withCodes(percentOff("promo_a", 10), "ONE", "TWO")},
				Codes: []CodeInput{{Code: "TWO", PromotionID: "promo_a"}, {Code: "ONE", PromotionID: "promo_a"}}},
			expect{subtotal: 1000, discount: 100, total: 900, problems: []CodeProblem{{"ONE", "code_not_applicable"}}}},
		{"stacking: combinables apply in priority order, each on what is left",
			Input{Lines: []InputLine{gross("a", p1, 10000, 1)}, Promotions: []Promotion{combinable(percentOff("promo_b", 5), 1), combinable(percentOff("promo_a", 10), 2)}},
			// 10 % of 10000 = 1000, then 5 % of 9000 = 450
			expect{subtotal: 10000, discount: 1450, total: 8550, promotions: []string{"promo_a", "promo_b"}}},
		{"stacking: priority decides the order of combinables",
			Input{Lines: []InputLine{gross("a", p1, 10000, 1)}, Promotions: []Promotion{combinable(fixedOff("promo_f", 1000, "EUR"), 5), combinable(percentOff("promo_p", 10), 1)}},
			// 1000 off, then 10 % of 9000 = 900
			expect{subtotal: 10000, discount: 1900, total: 8100, promotions: []string{"promo_f", "promo_p"}}},
		{"stacking: a better exclusive promotion applies alone",
			Input{Lines: []InputLine{gross("a", p1, 10000, 1)}, Promotions: []Promotion{combinable(percentOff("promo_a", 10), 2), combinable(percentOff("promo_b", 5), 1), percentOff("promo_x", 20)}},
			expect{subtotal: 10000, discount: 2000, total: 8000, promotions: []string{"promo_x"}}},
		{"stacking: combinables together beat a weaker exclusive",
			Input{Lines: []InputLine{gross("a", p1, 10000, 1)}, Promotions: []Promotion{combinable(percentOff("promo_a", 10), 2), combinable(percentOff("promo_b", 5), 1), percentOff("promo_x", 12)},
				Codes: nil},
			expect{subtotal: 10000, discount: 1450, total: 8550, promotions: []string{"promo_a", "promo_b"}}},
		{"stacking: of two exclusive promotions the better applies; the voucher that lost is reported",
			Input{Lines: []InputLine{gross("a", p1, 10000, 1)}, Promotions: []Promotion{percentOff("promo_a", 10), withCodes(percentOff("promo_b", 15), "WELCOME")},
				Codes: []CodeInput{{Code: "WELCOME", PromotionID: "promo_b"}}},
			expect{subtotal: 10000, discount: 1500, total: 8500, promotions: []string{"promo_b"}, problems: []CodeProblem{}}},
		{"stacking: the voucher that lost is code_not_applicable",
			Input{Lines: []InputLine{gross("a", p1, 10000, 1)}, Promotions: []Promotion{percentOff("promo_a", 20), withCodes(percentOff("promo_b", 15), "WELCOME")},
				Codes: []CodeInput{{Code: "WELCOME", PromotionID: "promo_b"}}},
			expect{subtotal: 10000, discount: 2000, total: 8000, promotions: []string{"promo_a"}, problems: []CodeProblem{{"WELCOME", "code_not_applicable"}}}},
		{"stacking: a tie goes to the higher priority",
			Input{Lines: []InputLine{gross("a", p1, 10000, 1)}, Promotions: []Promotion{percentOff("promo_a", 10), withPriority(fixedOff("promo_b", 1000, "EUR"), 3)}},
			expect{subtotal: 10000, discount: 1000, total: 9000, promotions: []string{"promo_b"}}},
		{"stacking: a tie at equal priority goes to the smaller id",
			Input{Lines: []InputLine{gross("a", p1, 10000, 1)}, Promotions: []Promotion{fixedOff("promo_b", 1000, "EUR"), percentOff("promo_a", 10)}},
			expect{subtotal: 10000, discount: 1000, total: 9000, promotions: []string{"promo_a"}}},
		{"stacking: free shipping counts by what it saves",
			Input{Lines: []InputLine{gross("a", p1, 2000, 1)}, Shipping: standard(995, nil), Promotions: []Promotion{percentOff("promo_a", 10), freeShipping("promo_s")}},
			// 10 % saves 200; free shipping saves 995
			expect{subtotal: 2000, shipping: 0, total: 2000, promotions: []string{"promo_s"}}},
		{"exclusive prices: tax added",
			Input{TaxRateBps: 2100, Lines: []InputLine{net("a", p1, 10000, 1)}},
			expect{subtotal: 10000, tax: 2100, total: 12100, inclusive: ptr(false)}},
		{"exclusive prices with discount and shipping",
			Input{TaxRateBps: 1900, Lines: []InputLine{net("a", p1, 3333, 3)}, Promotions: []Promotion{percentOff("promo_a", 10)}, Shipping: standard(495, nil)},
			// 9999 − 1000 (999.9 → 1000) = 8999 + 495 = 9494; tax 19 % = 1803.86 → 1804
			expect{subtotal: 9999, discount: 1000, shipping: 495, tax: 1804, total: 11298, inclusive: ptr(false)}},
		{"mixed lists: net prices are converted to gross",
			Input{TaxRateBps: 2100, Lines: []InputLine{gross("a", p1, 1210, 1), net("b", p2, 1000, 2)}},
			// b: 1000 × 1.21 = 1210 per unit
			expect{subtotal: 3630, tax: 630, total: 3630, inclusive: ptr(true)}},
		{"a line without a price is left out of every total",
			Input{TaxRateBps: 2100, Lines: []InputLine{gross("a", p1, 1210, 1), unpriced("b", p2, 5)}, Promotions: []Promotion{percentOff("promo_a", 10)}},
			expect{subtotal: 1210, discount: 121, tax: 189, total: 1089, lineDiscounts: []int64{121, 0}}},
		{"an empty cart",
			Input{TaxRateBps: 2100, Promotions: []Promotion{percentOff("promo_a", 10), freeShipping("promo_s")}, Shipping: standard(495, nil)},
			// free shipping is the only thing an empty cart can get
			expect{subtotal: 0, total: 0, promotions: []string{"promo_s"}}},
		{"zero-decimal currency",
			Input{Currency: "JPY", TaxRateBps: 1000, Lines: []InputLine{gross("a", p1, 1500, 3)}, Promotions: []Promotion{percentOff("promo_a", 15)}},
			// 15 % of 4500 = 675; tax = 3825 × 1000 / 11000 = 347.7 → 348
			expect{subtotal: 4500, discount: 675, tax: 348, total: 3825}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := eur(tt.in)
			q, err := Compute(in)
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, in, q)
			w := tt.want
			got := expect{subtotal: q.Subtotal.Amount, discount: q.DiscountTotal.Amount, shipping: q.ShippingTotal.Amount, tax: q.TaxTotal.Amount, total: q.Total.Amount}
			if got.subtotal != w.subtotal || got.discount != w.discount || got.shipping != w.shipping || got.tax != w.tax || got.total != w.total {
				t.Errorf("subtotal %d discount %d shipping %d tax %d total %d\nwant     %d          %d          %d     %d       %d",
					got.subtotal, got.discount, got.shipping, got.tax, got.total, w.subtotal, w.discount, w.shipping, w.tax, w.total)
			}
			if w.lineDiscounts != nil {
				var ld []int64
				for _, l := range q.Lines {
					ld = append(ld, l.Discount.Amount)
				}
				if !slices.Equal(ld, w.lineDiscounts) {
					t.Errorf("line discounts %v, want %v", ld, w.lineDiscounts)
				}
			}
			if w.promotions != nil {
				ids := []string{}
				for _, p := range q.Promotions {
					ids = append(ids, p.PromotionID)
				}
				if !slices.Equal(ids, w.promotions) {
					t.Errorf("promotions %v, want %v", ids, w.promotions)
				}
			}
			if w.problems != nil && !reflect.DeepEqual(q.CodeProblems, w.problems) {
				t.Errorf("code problems %v, want %v", q.CodeProblems, w.problems)
			}
			if w.inclusive != nil && q.PricesIncludeTax != *w.inclusive {
				t.Errorf("prices_include_tax = %v", q.PricesIncludeTax)
			}
		})
	}
}

func withMin(p Promotion, amount int64, currency string) Promotion {
	p.Conditions.MinSubtotal = &money.Money{Amount: amount, Currency: currency}
	return p
}

func withGroups(p Promotion, groups ...string) Promotion {
	p.Conditions.CustomerGroups = groups
	return p
}

func window(p Promotion, starts, ends *time.Time) Promotion {
	p.StartsAt, p.EndsAt = starts, ends
	return p
}

func inactive(p Promotion) Promotion {
	p.Active = false
	return p
}

func withPriority(p Promotion, priority int) Promotion {
	p.Priority = priority
	return p
}

func TestComputeDetails(t *testing.T) {
	t.Run("free shipping promotion reports the waived price; the code is kept", func(t *testing.T) {
		in := eur(Input{Lines: []InputLine{gross("a", p1, 1000, 1)}, Shipping: standard(495, nil),
			Promotions: []Promotion{withCodes(freeShipping("promo_s"), "SHIPFREE")}, Codes: []CodeInput{{Code: "shipfree", PromotionID: "promo_s"}}})
		q, err := Compute(in)
		if err != nil {
			t.Fatal(err)
		}
		want := []AppliedPromotion{{PromotionID: "promo_s", Name: "promo_s", Code: "SHIPFREE", Amount: money.New(495, "EUR")}}
		if !reflect.DeepEqual(q.Promotions, want) {
			t.Fatalf("promotions = %+v", q.Promotions)
		}
		if q.Shipping == nil || !q.Shipping.Free || q.Shipping.Price.Amount != 0 || q.Shipping.ID != "ship_std" {
			t.Fatalf("shipping = %+v", q.Shipping)
		}
	})
	t.Run("unavailable shipping is reported", func(t *testing.T) {
		q, err := Compute(eur(Input{Lines: []InputLine{gross("a", p1, 1000, 1)}, Shipping: standard(495, nil, "DE")}))
		if err != nil {
			t.Fatal(err)
		}
		if q.Shipping != nil || q.ShippingProblem != ShippingUnavailable {
			t.Fatalf("shipping = %+v, problem %q", q.Shipping, q.ShippingProblem)
		}
	})
	t.Run("tax is allocated to lines and shipping", func(t *testing.T) {
		q, err := Compute(eur(Input{TaxRateBps: 2100, Lines: []InputLine{gross("a", p1, 1000, 1), gross("b", p2, 2000, 1)}, Shipping: standard(495, nil)}))
		if err != nil {
			t.Fatal(err)
		}
		// 3495 × 21/121 = 606.57 → 607: a 173.55, b 347.1, ship 85.9 → 173 + 347 + 85 = 605, then b? no: remainders .55 .1 .9 → ship, a
		if q.TaxTotal.Amount != 607 || q.Lines[0].Tax.Amount != 174 || q.Lines[1].Tax.Amount != 347 || q.ShippingTax.Amount != 86 {
			t.Fatalf("tax %d = %d + %d + %d", q.TaxTotal.Amount, q.Lines[0].Tax.Amount, q.Lines[1].Tax.Amount, q.ShippingTax.Amount)
		}
	})
	t.Run("price_missing line", func(t *testing.T) {
		q, err := Compute(eur(Input{Lines: []InputLine{unpriced("b", p2, 5)}}))
		if err != nil {
			t.Fatal(err)
		}
		l := q.Lines[0]
		if l.Problem != ProblemPriceMissing || l.Quantity != 5 || l.ID != "b" || l.UnitPrice != money.Zero("EUR") || l.Total != money.Zero("EUR") {
			t.Fatalf("line = %+v", l)
		}
	})
	t.Run("invalid input is validation_failed", func(t *testing.T) {
		for _, in := range []Input{
			{Currency: "EURO"},
			{Currency: "EUR", Lines: []InputLine{gross("a", p1, 100, 0)}},
			{Currency: "EUR", Lines: []InputLine{gross("a", p1, MaxAmount+1, 1)}},
			{Currency: "EUR", TaxRateBps: 10001},
		} {
			_, err := Compute(in)
			if !apperr.Is(err, apperr.ValidationFailed) {
				t.Errorf("Compute(%+v) = %v", in, err)
			}
		}
	})
}

func TestMulDivRound(t *testing.T) {
	for _, tt := range []struct{ a, num, den, want int64 }{
		{5, 10, 100, 1},  // 0.5 → 1 (half up)
		{4, 10, 100, 0},  // 0.4 → 0
		{15, 10, 100, 2}, // 1.5 → 2
		{25, 10, 100, 3}, // 2.5 → 3 (half up, not to even)
		{4498, 2100, 12100, 781},
		{0, 2100, 12100, 0},
		{math.MaxInt64, 1, 1, math.MaxInt64},
		{math.MaxInt64, 10_000, 10_000, math.MaxInt64}, // 128-bit intermediate
		{math.MaxInt64, 2, 3, 6148914691236517205},     // 6148914691236517204.67 → …205
	} {
		got, err := mulDivRound(tt.a, tt.num, tt.den)
		if err != nil || got != tt.want {
			t.Errorf("mulDivRound(%d, %d, %d) = %d, %v; want %d", tt.a, tt.num, tt.den, got, err, tt.want)
		}
	}
	if _, err := mulDivRound(math.MaxInt64, 2, 1); !errors.Is(err, errAmountOverflow) {
		t.Errorf("overflow not detected: %v", err)
	}
	if _, err := mulDivRound(-1, 2, 1); err == nil {
		t.Error("negative operand accepted")
	}
}

func TestAllocate(t *testing.T) {
	for _, tt := range []struct {
		total   int64
		weights []int64
		want    []int64
	}{
		{450, []int64{3998, 500}, []int64{400, 50}},
		{1, []int64{1, 1, 1}, []int64{1, 0, 0}},   // tie: the earlier
		{2, []int64{1, 3, 3}, []int64{0, 1, 1}},   // 0.29 0.86 0.86
		{7, []int64{0, 0, 7}, []int64{0, 0, 7}},   // zero weights get nothing
		{10, []int64{10, 0, 5}, []int64{7, 0, 3}}, // 6.67 / 3.33 → 6+3, the unit to the larger remainder
		{5, []int64{2, 2, 1}, []int64{2, 2, 1}},   // exact
		{0, []int64{4, 5}, []int64{0, 0}},
		{3, []int64{math.MaxInt64 / 2, math.MaxInt64 / 2}, []int64{2, 1}},
	} {
		got, err := allocate(tt.total, tt.weights)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("allocate(%d, %v) = %v, %v; want %v", tt.total, tt.weights, got, err, tt.want)
		}
	}
	if _, err := allocate(11, []int64{5, 5}); err == nil {
		t.Error("allocating more than the weights hold must fail")
	}
}
