// Package pricing is Souk's pricing service: price lists (prices per variant
// and currency, optionally per customer group and validity window),
// promotions and their voucher codes with usage limits, tax rates per
// country and region, and shipping methods. It computes cart totals — unit
// prices, discounts allocated to lines, shipping, tax and totals — with one
// pure function, Compute, in which every rounding of a computed amount
// happens in one place (mulDivRound, half-up; see docs/adr/0008-pricing-rules.md).
//
// Money is int64 minor units with an ISO 4217 code (platform/money); no
// floating point is used anywhere in this package.
//
// Other services use it only through Client: *Service in one process,
// *HTTPClient when split.
package pricing

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/money"
)

// The permissions of pricing's Admin API routes. Writes of the back office
// and voucher redemption need PermissionWrite; reading, and quoting for
// other services, PermissionRead.
const (
	PermissionRead  auth.Permission = "pricing:read"
	PermissionWrite auth.Permission = "pricing:write"
)

// Id prefixes of pricing's resources.
const (
	priceListPrefix  = "pl"
	promotionPrefix  = "promo"
	taxRatePrefix    = "tax"
	shippingPrefix   = "ship"
	redemptionPrefix = "red"
)

// Limits. A request over one of them fails with validation_failed naming
// the field. MaxAmount × MaxQuantity × MaxLines stays far below 2^63, so a
// valid cart can never overflow; the arithmetic is checked all the same.
const (
	MaxNameLen        = 200
	MaxAmount         = 10_000_000_000 // minor units of one price, fixed discount or shipping rate
	MaxQuantity       = 100_000        // units of one quote line
	MaxLines          = 500            // lines of one quote
	MaxCodes          = 20             // voucher codes of one quote or redemption
	MaxPricesPerList  = 10_000
	MaxCodesPerPromo  = 1_000
	MaxTargetIDs      = 100
	MaxGroups         = 20
	MaxGroupLen       = 64
	MaxCountries      = 300
	MaxShippingRates  = 50
	MaxRateBps        = 10_000 // 100 %
	MaxVariantIDs     = 500    // variants of one Prices call
	MaxIdempotencyKey = 255
	MaxCodeLen        = 64
	MinCodeLen        = 3
	MaxPriority       = 1_000_000
	MaxUsageLimit     = 1_000_000_000
	MaxBuyGetQuantity = 1_000
	MaxExternalIDLen  = 128 // order, customer, variant, product, category and line ids from other services
)

// Nullable is a JSON field of a patch that may be absent, null or a value:
// Set tells whether it was present, Value is nil for null.
type Nullable[T any] struct {
	Set   bool
	Value *T
}

// UnmarshalJSON records that the field was present, and its value or null.
func (n *Nullable[T]) UnmarshalJSON(b []byte) error {
	n.Set = true
	if string(b) == "null" {
		n.Value = nil
		return nil
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	n.Value = &v
	return nil
}

// MarshalJSON writes the value or null.
func (n Nullable[T]) MarshalJSON() ([]byte, error) {
	if n.Value == nil {
		return []byte("null"), nil
	}
	return json.Marshal(*n.Value)
}

// IsZero reports whether the field was absent (for omitzero).
func (n Nullable[T]) IsZero() bool { return !n.Set }

// Null returns a Nullable that is set to null.
func Null[T any]() Nullable[T] { return Nullable[T]{Set: true} }

// Some returns a Nullable set to v.
func Some[T any](v T) Nullable[T] { return Nullable[T]{Set: true, Value: &v} }

// --- price lists ---

// Price is one variant's price in a price list, in minor units of the list's
// currency.
type Price struct {
	VariantID string `json:"variant_id"`
	Amount    int64  `json:"amount"`
}

// PriceList is a set of prices in one currency. Which list prices a variant
// for a shopper is decided by the most-specific rule (see resolvePrices):
// among the lists valid at the moment in the requested currency that have
// a price for the variant, a list for one of the shopper's customer groups
// beats a list without group; then a list with a validity window beats an
// open-ended one; then the higher Priority; then the newer list (greater
// id). PricesIncludeTax says whether its amounts are gross (tax included)
// or net.
type PriceList struct {
	ID               string     `json:"id"`
	Name             string     `json:"name"`
	Currency         string     `json:"currency"`
	PricesIncludeTax bool       `json:"prices_include_tax"`
	CustomerGroup    *string    `json:"customer_group"`
	StartsAt         *time.Time `json:"starts_at"`
	EndsAt           *time.Time `json:"ends_at"`
	Priority         int        `json:"priority"`
	Prices           []Price    `json:"prices"`
	Version          int64      `json:"version"`
	CreatedAt        time.Time  `json:"created_at"`
	UpdatedAt        time.Time  `json:"updated_at"`
}

// PriceListInput creates a price list.
type PriceListInput struct {
	Name             string     `json:"name"`
	Currency         string     `json:"currency"`
	PricesIncludeTax bool       `json:"prices_include_tax"`
	CustomerGroup    *string    `json:"customer_group,omitempty"`
	StartsAt         *time.Time `json:"starts_at,omitempty"`
	EndsAt           *time.Time `json:"ends_at,omitempty"`
	Priority         int        `json:"priority"`
	Prices           []Price    `json:"prices"`
}

// PriceListPatch changes a price list: fields left out are unchanged;
// Prices, when given, replaces every price of the list. The currency of a
// list never changes (create another list).
type PriceListPatch struct {
	Name             *string             `json:"name,omitempty"`
	PricesIncludeTax *bool               `json:"prices_include_tax,omitempty"`
	CustomerGroup    Nullable[string]    `json:"customer_group,omitzero"`
	StartsAt         Nullable[time.Time] `json:"starts_at,omitzero"`
	EndsAt           Nullable[time.Time] `json:"ends_at,omitzero"`
	Priority         *int                `json:"priority,omitempty"`
	Prices           *[]Price            `json:"prices,omitempty"`
}

// --- promotions ---

// PromotionType is what a promotion does.
type PromotionType string

// The promotion types.
const (
	// TypePercentage takes Value.Percent % off its target.
	TypePercentage PromotionType = "percentage"
	// TypeFixed takes Value.Amount off: once off the order for target
	// order, off every matching unit for targets product and category.
	TypeFixed PromotionType = "fixed"
	// TypeBuyXGetY discounts, for every buy+get matching units in the
	// cart, the get cheapest units by BuyXGetY.DiscountPercent.
	TypeBuyXGetY PromotionType = "buy_x_get_y"
	// TypeFreeShipping waives the price of the chosen shipping method.
	TypeFreeShipping PromotionType = "free_shipping"
)

// Target is what a promotion applies to.
type Target string

// The targets.
const (
	TargetOrder    Target = "order"
	TargetProduct  Target = "product"  // lines whose product is in TargetIDs
	TargetCategory Target = "category" // lines with a category in TargetIDs
)

// PromotionValue is a promotion's value: a whole percentage (1–100) for
// percentage promotions, a money amount for fixed ones. In JSON it is a
// number or a money object.
type PromotionValue struct {
	Percent int64
	Amount  *money.Money
}

// MarshalJSON writes the percentage as a number, the amount as money.
func (v PromotionValue) MarshalJSON() ([]byte, error) {
	if v.Amount != nil {
		return json.Marshal(*v.Amount)
	}
	return json.Marshal(v.Percent)
}

// UnmarshalJSON reads a number (percentage) or a money object (fixed).
func (v *PromotionValue) UnmarshalJSON(b []byte) error {
	*v = PromotionValue{}
	s := strings.TrimSpace(string(b))
	if strings.HasPrefix(s, "{") {
		var m struct {
			Amount   int64  `json:"amount"`
			Currency string `json:"currency"`
		}
		dec := json.NewDecoder(strings.NewReader(s))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			return fmt.Errorf("value: want a whole percentage or a money object {amount, currency}: %w", err)
		}
		v.Amount = &money.Money{Amount: m.Amount, Currency: m.Currency}
		return nil
	}
	if err := json.Unmarshal(b, &v.Percent); err != nil {
		return fmt.Errorf("value: want a whole percentage or a money object {amount, currency}")
	}
	return nil
}

// Conditions must all hold for a promotion to apply. MinSubtotal is
// measured on the cart's subtotal before any discount, in the quote's tax
// mode, and only in its own currency (a cart in another currency never
// meets it).
type Conditions struct {
	MinSubtotal    *money.Money `json:"min_subtotal"`
	CustomerGroups []string     `json:"customer_groups"`
}

// BuyXGetY parameterises a buy_x_get_y promotion: for every BuyQuantity +
// GetQuantity matching units, GetQuantity units — the cheapest matching
// units of the cart — are DiscountPercent % off (100 = free).
type BuyXGetY struct {
	BuyQuantity     int64 `json:"buy_quantity"`
	GetQuantity     int64 `json:"get_quantity"`
	DiscountPercent int64 `json:"discount_percent"`
}

// Promotion is a discount rule. Without Codes it applies automatically
// whenever its conditions hold; with Codes only to carts that carry one of
// them. UsageLimit bounds the redemptions of each code, UsageLimitPerCustomer
// a customer's redemptions of the promotion (any of its codes). Stacking:
// see Compute.
type Promotion struct {
	ID                    string          `json:"id"`
	Name                  string          `json:"name"`
	Type                  PromotionType   `json:"type"`
	Value                 *PromotionValue `json:"value"`
	Target                Target          `json:"target"`
	TargetIDs             []string        `json:"target_ids"`
	Codes                 []string        `json:"codes"`
	UsageLimit            *int64          `json:"usage_limit"`
	UsageLimitPerCustomer *int64          `json:"usage_limit_per_customer"`
	StartsAt              *time.Time      `json:"starts_at"`
	EndsAt                *time.Time      `json:"ends_at"`
	Combinable            bool            `json:"combinable"`
	Priority              int             `json:"priority"`
	Conditions            Conditions      `json:"conditions"`
	BuyXGetY              *BuyXGetY       `json:"buy_x_get_y"`
	Active                bool            `json:"active"`
	// Usage is how often each code was redeemed (and not released), in
	// the order of Codes; filled in by the Admin API reads.
	Usage     []CodeUsage `json:"usage"`
	Version   int64       `json:"version"`
	CreatedAt time.Time   `json:"created_at"`
	UpdatedAt time.Time   `json:"updated_at"`
}

// CodeUsage is the redemption count of one voucher code.
type CodeUsage struct {
	Code string `json:"code"`
	Used int64  `json:"used"`
}

// PromotionInput creates a promotion. Active defaults to true.
type PromotionInput struct {
	Name                  string          `json:"name"`
	Type                  PromotionType   `json:"type"`
	Value                 *PromotionValue `json:"value,omitempty"`
	Target                Target          `json:"target,omitempty"`
	TargetIDs             []string        `json:"target_ids,omitempty"`
	Codes                 []string        `json:"codes,omitempty"`
	UsageLimit            *int64          `json:"usage_limit,omitempty"`
	UsageLimitPerCustomer *int64          `json:"usage_limit_per_customer,omitempty"`
	StartsAt              *time.Time      `json:"starts_at,omitempty"`
	EndsAt                *time.Time      `json:"ends_at,omitempty"`
	Combinable            bool            `json:"combinable"`
	Priority              int             `json:"priority"`
	Conditions            *Conditions     `json:"conditions,omitempty"`
	BuyXGetY              *BuyXGetY       `json:"buy_x_get_y,omitempty"`
	Active                *bool           `json:"active,omitempty"`
}

// PromotionPatch changes a promotion: fields left out are unchanged; arrays
// replace the whole array (Codes too: codes left out stop working, their
// redemptions stay on record).
type PromotionPatch struct {
	Name                  *string                  `json:"name,omitempty"`
	Type                  *PromotionType           `json:"type,omitempty"`
	Value                 Nullable[PromotionValue] `json:"value,omitzero"`
	Target                *Target                  `json:"target,omitempty"`
	TargetIDs             *[]string                `json:"target_ids,omitempty"`
	Codes                 *[]string                `json:"codes,omitempty"`
	UsageLimit            Nullable[int64]          `json:"usage_limit,omitzero"`
	UsageLimitPerCustomer Nullable[int64]          `json:"usage_limit_per_customer,omitzero"`
	StartsAt              Nullable[time.Time]      `json:"starts_at,omitzero"`
	EndsAt                Nullable[time.Time]      `json:"ends_at,omitzero"`
	Combinable            *bool                    `json:"combinable,omitempty"`
	Priority              *int                     `json:"priority,omitempty"`
	Conditions            *Conditions              `json:"conditions,omitempty"`
	BuyXGetY              Nullable[BuyXGetY]       `json:"buy_x_get_y,omitzero"`
	Active                *bool                    `json:"active,omitempty"`
}

// --- tax rates ---

// TaxRate is the tax rate of a country, or of one region of it. A
// region-specific rate beats the country-wide one.
type TaxRate struct {
	ID      string `json:"id"`
	Country string `json:"country"`
	// Region is an ISO 3166-2 subdivision code ("US-CA"), or null for the
	// country-wide rate.
	Region    *string   `json:"region"`
	RateBps   int64     `json:"rate_bps"`
	Name      string    `json:"name"`
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// TaxRateInput creates a tax rate. Region may be given as "US-CA" or "CA".
type TaxRateInput struct {
	Country string  `json:"country"`
	Region  *string `json:"region,omitempty"`
	RateBps int64   `json:"rate_bps"`
	Name    string  `json:"name"`
}

// TaxRatePatch changes a tax rate's rate or name (its place never changes).
type TaxRatePatch struct {
	RateBps *int64  `json:"rate_bps,omitempty"`
	Name    *string `json:"name,omitempty"`
}

// --- shipping ---

// ShippingRate is a shipping method's flat price in one currency, in the
// quote's tax mode (gross when prices include tax). FreeOver, when set, is
// the discounted subtotal (minor units of Currency) from which shipping is
// free; it overrides the method's FreeOver for this currency.
type ShippingRate struct {
	Currency string `json:"currency"`
	Amount   int64  `json:"amount"`
	FreeOver *int64 `json:"free_over,omitempty"`
}

// ShippingMethod is a way to ship. It is offered for addresses in one of
// Countries (all countries when empty) and carts in a currency it has a rate
// in. Shipping is free when the cart's subtotal after discounts reaches the
// threshold of the cart's currency (the rate's FreeOver, or the method's
// FreeOver when it is in that currency).
type ShippingMethod struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Countries []string       `json:"countries"`
	Rates     []ShippingRate `json:"rates"`
	FreeOver  *money.Money   `json:"free_over"`
	Active    bool           `json:"active"`
	Version   int64          `json:"version"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

// ShippingMethodInput creates a shipping method. Active defaults to true.
type ShippingMethodInput struct {
	Name      string         `json:"name"`
	Countries []string       `json:"countries,omitempty"`
	Rates     []ShippingRate `json:"rates"`
	FreeOver  *money.Money   `json:"free_over,omitempty"`
	Active    *bool          `json:"active,omitempty"`
}

// ShippingMethodPatch changes a shipping method; arrays replace.
type ShippingMethodPatch struct {
	Name      *string               `json:"name,omitempty"`
	Countries *[]string             `json:"countries,omitempty"`
	Rates     *[]ShippingRate       `json:"rates,omitempty"`
	FreeOver  Nullable[money.Money] `json:"free_over,omitzero"`
	Active    *bool                 `json:"active,omitempty"`
}

// rateFor returns the method's rate and free-shipping threshold in the
// currency; ok is false when it has no rate in it.
func (m ShippingMethod) rateFor(currency string) (amount int64, freeOver *int64, ok bool) {
	for _, r := range m.Rates {
		if r.Currency == currency {
			freeOver = r.FreeOver
			if freeOver == nil && m.FreeOver != nil && m.FreeOver.Currency == currency {
				f := m.FreeOver.Amount
				freeOver = &f
			}
			return r.Amount, freeOver, true
		}
	}
	return 0, nil, false
}

// shipsTo reports whether the method serves the country.
func (m ShippingMethod) shipsTo(country string) bool {
	return len(m.Countries) == 0 || slices.Contains(m.Countries, country)
}

// --- validation ---

var (
	countryPattern = regexp.MustCompile(`^[A-Z]{2}$`)
	regionPattern  = regexp.MustCompile(`^[A-Z]{2}-[A-Z0-9]{1,3}$`)
	codePattern    = regexp.MustCompile(`^[A-Z0-9][A-Z0-9_-]*$`)
)

// NormalizeCode returns a voucher code as stored: trimmed and upper-case.
func NormalizeCode(code string) string { return strings.ToUpper(strings.TrimSpace(code)) }

// normalizeGroup returns a customer group as compared: trimmed, lower-case.
func normalizeGroup(g string) string { return strings.ToLower(strings.TrimSpace(g)) }

// normalizeRegion returns an ISO 3166-2 code for a region given as "US-CA"
// or "CA" in country.
func normalizeRegion(country, region string) string {
	r := strings.ToUpper(strings.TrimSpace(region))
	if r != "" && !strings.Contains(r, "-") {
		r = country + "-" + r
	}
	return r
}

func validateName(v *apperr.Validation, field, name string) {
	switch n := utf8.RuneCountInString(name); {
	case strings.TrimSpace(name) == "":
		v.Add(field, "required", field+" is required")
	case n > MaxNameLen:
		v.Addf(field, "too_long", "%s must be at most %d characters", field, MaxNameLen)
	}
}

func validateCurrency(v *apperr.Validation, field string, code *string) {
	c, err := money.ParseCurrency(*code)
	if err != nil {
		v.Add(field, "invalid", err.Error())
		return
	}
	*code = c
}

func validateCountry(v *apperr.Validation, field string, c *string) {
	*c = strings.ToUpper(strings.TrimSpace(*c))
	if !countryPattern.MatchString(*c) {
		v.Add(field, "invalid", "want an ISO 3166-1 alpha-2 country code such as \"NL\"")
	}
}

func validateWindow(v *apperr.Validation, starts, ends *time.Time) {
	if starts != nil && ends != nil && !ends.After(*starts) {
		v.Add("ends_at", "invalid", "ends_at must be after starts_at")
	}
}

func validateExternalID(v *apperr.Validation, field, s string, required bool) {
	switch {
	case s == "" && required:
		v.Add(field, "required", field+" is required")
	case len(s) > MaxExternalIDLen:
		v.Addf(field, "too_long", "must be at most %d characters", MaxExternalIDLen)
	}
}

func validateGroups(v *apperr.Validation, field string, groups []string) []string {
	if len(groups) > MaxGroups {
		v.Addf(field, "too_many", "at most %d customer groups", MaxGroups)
		return groups
	}
	out := make([]string, 0, len(groups))
	for i, g := range groups {
		g = normalizeGroup(g)
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case g == "":
			v.Add(f, "required", "a customer group cannot be empty")
		case len(g) > MaxGroupLen:
			v.Addf(f, "too_long", "must be at most %d characters", MaxGroupLen)
		case strings.Contains(g, ","):
			v.Add(f, "invalid", "a customer group has no commas")
		case slices.Contains(out, g):
			v.Add(f, "duplicate", "listed twice")
		default:
			out = append(out, g)
		}
	}
	return out
}

// validatePriceList checks and normalises a price list.
func validatePriceList(v *apperr.Validation, pl *PriceList) {
	validateName(v, "name", pl.Name)
	validateCurrency(v, "currency", &pl.Currency)
	if pl.CustomerGroup != nil {
		g := normalizeGroup(*pl.CustomerGroup)
		switch {
		case g == "":
			pl.CustomerGroup = nil
		case len(g) > MaxGroupLen:
			v.Addf("customer_group", "too_long", "must be at most %d characters", MaxGroupLen)
		default:
			pl.CustomerGroup = &g
		}
	}
	validateWindow(v, pl.StartsAt, pl.EndsAt)
	if pl.Priority < -MaxPriority || pl.Priority > MaxPriority {
		v.Addf("priority", "out_of_range", "priority must be from %d to %d", -MaxPriority, MaxPriority)
	}
	if len(pl.Prices) > MaxPricesPerList {
		v.Addf("prices", "too_many", "at most %d prices per list", MaxPricesPerList)
		return
	}
	seen := make(map[string]int, len(pl.Prices))
	for i, p := range pl.Prices {
		f := fmt.Sprintf("prices[%d]", i)
		validateExternalID(v, f+".variant_id", p.VariantID, true)
		if j, dup := seen[p.VariantID]; dup && p.VariantID != "" {
			v.Addf(f+".variant_id", "duplicate", "variant %q is also priced in prices[%d]", p.VariantID, j)
		}
		seen[p.VariantID] = i
		if p.Amount < 0 || p.Amount > MaxAmount {
			v.Addf(f+".amount", "out_of_range", "amount must be from 0 to %d minor units", int64(MaxAmount))
		}
	}
	slices.SortFunc(pl.Prices, func(a, b Price) int { return strings.Compare(a.VariantID, b.VariantID) })
}

// validatePromotion checks and normalises a promotion.
func validatePromotion(v *apperr.Validation, p *Promotion) {
	validateName(v, "name", p.Name)
	if p.Target == "" {
		p.Target = TargetOrder
	}
	switch p.Type {
	case TypePercentage:
		if p.Value == nil || p.Value.Amount != nil {
			v.Add("value", "required", "a percentage promotion needs value: a whole percentage from 1 to 100")
		} else if p.Value.Percent < 1 || p.Value.Percent > 100 {
			v.Add("value", "out_of_range", "value must be a whole percentage from 1 to 100")
		}
	case TypeFixed:
		if p.Value == nil || p.Value.Amount == nil {
			v.Add("value", "required", "a fixed promotion needs value: a money object {amount, currency}")
		} else {
			validateCurrency(v, "value.currency", &p.Value.Amount.Currency)
			if p.Value.Amount.Amount < 1 || p.Value.Amount.Amount > MaxAmount {
				v.Addf("value.amount", "out_of_range", "amount must be from 1 to %d minor units", int64(MaxAmount))
			}
		}
	case TypeBuyXGetY, TypeFreeShipping:
		if p.Value != nil {
			v.Addf("value", "invalid", "a %s promotion takes no value", p.Type)
		}
	case "":
		v.Add("type", "required", "type is required: percentage, fixed, buy_x_get_y or free_shipping")
	default:
		v.Addf("type", "invalid", "type %q: want percentage, fixed, buy_x_get_y or free_shipping", p.Type)
	}
	if p.Type == TypeBuyXGetY {
		if b := p.BuyXGetY; b == nil {
			v.Add("buy_x_get_y", "required", "a buy_x_get_y promotion needs buy_x_get_y: {buy_quantity, get_quantity, discount_percent}")
		} else {
			if b.BuyQuantity < 1 || b.BuyQuantity > MaxBuyGetQuantity {
				v.Addf("buy_x_get_y.buy_quantity", "out_of_range", "must be from 1 to %d", MaxBuyGetQuantity)
			}
			if b.GetQuantity < 1 || b.GetQuantity > MaxBuyGetQuantity {
				v.Addf("buy_x_get_y.get_quantity", "out_of_range", "must be from 1 to %d", MaxBuyGetQuantity)
			}
			if b.DiscountPercent < 1 || b.DiscountPercent > 100 {
				v.Add("buy_x_get_y.discount_percent", "out_of_range", "must be from 1 to 100 (100 = free)")
			}
		}
	} else if p.BuyXGetY != nil {
		v.Add("buy_x_get_y", "invalid", "only buy_x_get_y promotions take buy_x_get_y")
	}
	switch p.Target {
	case TargetOrder:
		if len(p.TargetIDs) > 0 {
			v.Add("target_ids", "invalid", "an order promotion takes no target_ids")
		}
	case TargetProduct, TargetCategory:
		if p.Type == TypeFreeShipping {
			v.Add("target", "invalid", "a free_shipping promotion targets the order")
		}
		prefix := "prod"
		if p.Target == TargetCategory {
			prefix = "cat"
		}
		switch {
		case len(p.TargetIDs) == 0:
			v.Addf("target_ids", "required", "a %s promotion needs target_ids", p.Target)
		case len(p.TargetIDs) > MaxTargetIDs:
			v.Addf("target_ids", "too_many", "at most %d target_ids", MaxTargetIDs)
		default:
			for i, tid := range p.TargetIDs {
				if !id.Valid(prefix, tid) {
					v.Addf(fmt.Sprintf("target_ids[%d]", i), "invalid", "%q is not a %s_… id", tid, prefix)
				} else if slices.Index(p.TargetIDs, tid) != i {
					v.Add(fmt.Sprintf("target_ids[%d]", i), "duplicate", "listed twice")
				}
			}
		}
	default:
		v.Addf("target", "invalid", "target %q: want order, product or category", p.Target)
	}
	if p.TargetIDs == nil {
		p.TargetIDs = []string{}
	}
	if len(p.Codes) > MaxCodesPerPromo {
		v.Addf("codes", "too_many", "at most %d codes per promotion", MaxCodesPerPromo)
	} else {
		for i, c := range p.Codes {
			c = NormalizeCode(c)
			p.Codes[i] = c
			f := fmt.Sprintf("codes[%d]", i)
			switch {
			case len(c) < MinCodeLen || len(c) > MaxCodeLen:
				v.Addf(f, "invalid", "a code has %d to %d characters", MinCodeLen, MaxCodeLen)
			case !codePattern.MatchString(c):
				v.Add(f, "invalid", "a code has letters, digits, '-' and '_' only")
			case slices.Index(p.Codes, c) != i:
				v.Add(f, "duplicate", "listed twice (codes are case-insensitive)")
			}
		}
	}
	if p.Codes == nil {
		p.Codes = []string{}
	}
	for _, lim := range []struct {
		field string
		value *int64
	}{{"usage_limit", p.UsageLimit}, {"usage_limit_per_customer", p.UsageLimitPerCustomer}} {
		if lim.value != nil && (*lim.value < 1 || *lim.value > MaxUsageLimit) {
			v.Addf(lim.field, "out_of_range", "must be from 1 to %d, or null for no limit", MaxUsageLimit)
		}
	}
	if (p.UsageLimit != nil || p.UsageLimitPerCustomer != nil) && len(p.Codes) == 0 {
		v.Add("codes", "required", "usage limits count code redemptions: give the promotion codes")
	}
	validateWindow(v, p.StartsAt, p.EndsAt)
	if p.Priority < -MaxPriority || p.Priority > MaxPriority {
		v.Addf("priority", "out_of_range", "priority must be from %d to %d", -MaxPriority, MaxPriority)
	}
	if m := p.Conditions.MinSubtotal; m != nil {
		validateCurrency(v, "conditions.min_subtotal.currency", &m.Currency)
		if m.Amount < 0 || m.Amount > MaxAmount*MaxLines {
			v.Add("conditions.min_subtotal.amount", "out_of_range", "amount must not be negative")
		}
	}
	p.Conditions.CustomerGroups = validateGroups(v, "conditions.customer_groups", p.Conditions.CustomerGroups)
}

// validateShippingMethod checks and normalises a shipping method.
func validateShippingMethod(v *apperr.Validation, m *ShippingMethod) {
	validateName(v, "name", m.Name)
	if len(m.Countries) > MaxCountries {
		v.Addf("countries", "too_many", "at most %d countries", MaxCountries)
	}
	for i := range m.Countries {
		f := fmt.Sprintf("countries[%d]", i)
		validateCountry(v, f, &m.Countries[i])
		if slices.Index(m.Countries, m.Countries[i]) != i {
			v.Add(f, "duplicate", "listed twice")
		}
	}
	if m.Countries == nil {
		m.Countries = []string{}
	}
	switch {
	case len(m.Rates) == 0:
		v.Add("rates", "required", "a shipping method needs a rate in at least one currency")
	case len(m.Rates) > MaxShippingRates:
		v.Addf("rates", "too_many", "at most %d rates", MaxShippingRates)
	}
	for i := range m.Rates {
		r := &m.Rates[i]
		f := fmt.Sprintf("rates[%d]", i)
		validateCurrency(v, f+".currency", &r.Currency)
		if slices.IndexFunc(m.Rates, func(o ShippingRate) bool { return o.Currency == r.Currency }) != i {
			v.Add(f+".currency", "duplicate", "one rate per currency")
		}
		if r.Amount < 0 || r.Amount > MaxAmount {
			v.Addf(f+".amount", "out_of_range", "amount must be from 0 to %d minor units", int64(MaxAmount))
		}
		if r.FreeOver != nil && (*r.FreeOver < 0 || *r.FreeOver > MaxAmount*MaxLines) {
			v.Add(f+".free_over", "out_of_range", "free_over must not be negative")
		}
	}
	if m.FreeOver != nil {
		validateCurrency(v, "free_over.currency", &m.FreeOver.Currency)
		if m.FreeOver.Amount < 0 || m.FreeOver.Amount > MaxAmount*MaxLines {
			v.Add("free_over.amount", "out_of_range", "amount must not be negative")
		}
	}
}

func notFound(kind, ref string) error {
	return apperr.New(apperr.NotFound, "%s %q not found", kind, ref)
}

func versionConflict(kind string, want, have int64) error {
	return apperr.New(apperr.VersionConflict, "%s is at version %d, not %d; fetch it again and retry", kind, have, want)
}
