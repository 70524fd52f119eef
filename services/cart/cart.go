// Package cart is Souk's shopping cart: line items, discount codes and
// checkout details (email, addresses, shipping method) of a shopper, priced
// by the pricing service on every read and never from what a client sends.
// It owns the cart database (its own SQLite file or PostgreSQL schema),
// serves the carts part of the Store API and internal Admin routes for
// the orders service, and publishes souk.cart.cart_checked_out.v1 through
// the transactional outbox.
//
// Access. A cart made by a logged-in customer (a customer access token) is
// bound to that customer: only a customer token with the same subject opens
// it, with or without the cart token. Any other cart is anonymous and opens
// only with the secret cart token returned once at creation, sent as
// X-Cart-Token. Everything else — another customer, a wrong or missing
// token, an unknown id, a cart that expired or was checked out — is the same
// 404 not_found, so a caller learns nothing about carts that are not theirs.
//
// Other services use it through Client: *Service in one process,
// *HTTPClient when split.
package cart

import (
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/currency"
	"golang.org/x/text/language"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/money"
)

// The permissions of the cart's Admin routes. identity's role matrix must
// grant them (carts:read to support and viewer; carts:write to the orders
// service's API key).
const (
	PermissionRead  auth.Permission = "carts:read"
	PermissionWrite auth.Permission = "carts:write"
)

// Id prefixes of the cart's resources.
const (
	cartPrefix  = "cart"
	itemPrefix  = "item"
	orderPrefix = "ord"
	tokenPrefix = "ct_"
)

// Limits of a cart that are not configurable. A request over one fails with
// validation_failed naming the field.
const (
	MaxCodes        = 10  // discount codes per cart
	MaxCodeLen      = 64  // characters of a discount code
	MaxEmailLen     = 254 // RFC 5321 path limit
	MaxNameLen      = 100 // first_name, last_name, city, region
	MaxCompanyLen   = 200
	MaxLineLen      = 200 // line1, line2
	MaxPostalLen    = 20
	MaxPhoneLen     = 32
	MaxMethodIDLen  = 100 // shipping_method_id
	maxVariantIDLen = 100
)

// The error codes of the cart, beyond apperr's shared ones. httpx answers
// each with 422 (a well-formed request the cart's state refuses).
const (
	// CodePriceMissing: the variant has no price in the cart's currency.
	CodePriceMissing apperr.Code = "price_missing"
	// CodeShippingMethodUnavailable: the shipping method is not offered
	// for the cart's address (or the cart has no shipping address).
	CodeShippingMethodUnavailable apperr.Code = "shipping_method_unavailable"
	// CodeShippingAddressRequired: shipping methods were asked for a cart
	// without a shipping address.
	CodeShippingAddressRequired apperr.Code = "shipping_address_required"
	// CodeCartEmpty: Validate of a cart without items.
	CodeCartEmpty apperr.Code = "cart_empty"
	// CodeNotPurchasable: Validate of a cart with a line, a code or a
	// shipping method that cannot be bought as it is; the field errors
	// name each one.
	CodeNotPurchasable apperr.Code = "cart_not_purchasable"
)

// Status is a cart's lifecycle state.
type Status string

// The cart statuses. Only active carts are visible in the Store API. A cart
// merged into a customer's cart at login becomes expired (with merged_into
// set).
const (
	StatusActive     Status = "active"
	StatusCheckedOut Status = "checked_out"
	StatusExpired    Status = "expired"
)

// Problems of a line item (Item.Problem, Problem.Code). A line with a
// problem stays in the cart, is left out of every total, and makes Validate
// fail until the shopper removes it.
const (
	// ProblemUnpublished: the product was unpublished, archived or deleted
	// (the catalogue no longer sells the variant).
	ProblemUnpublished = "unpublished"
	// ProblemPriceMissing: the variant has no price in the cart's currency
	// any more.
	ProblemPriceMissing = "price_missing"
	// ProblemShippingUnavailable (a cart-level problem naming
	// shipping_method_id): the chosen method no longer serves the cart.
	ProblemShippingUnavailable = "shipping_unavailable"
	// ProblemPricingUnavailable (cart-level): a change was saved but the
	// cart could not be priced just then; totals are zero until the next
	// read.
	ProblemPricingUnavailable = "pricing_unavailable"
)

// Address is a postal address of a cart. Country is an ISO 3166-1 alpha-2
// code of a country that exists today (upper case); Region is free text
// (ISO 3166-2 subdivision codes such as "US-CA" let pricing pick a regional
// tax rate).
type Address struct {
	FirstName  string `json:"first_name"`
	LastName   string `json:"last_name"`
	Company    string `json:"company,omitempty"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
	Region     string `json:"region,omitempty"`
	Phone      string `json:"phone,omitempty"`
}

// Item is a line item as the Store API shows it: what the shopper chose,
// described by the catalogue and priced by pricing. Amounts are zero and
// Problem says why when the line cannot be bought.
type Item struct {
	ID           string      `json:"id"`
	VariantID    string      `json:"variant_id"`
	ProductID    string      `json:"product_id"`
	SKU          string      `json:"sku"`
	Title        string      `json:"title"`
	VariantTitle string      `json:"variant_title"`
	Quantity     int64       `json:"quantity"`
	UnitPrice    money.Money `json:"unit_price"`
	Subtotal     money.Money `json:"subtotal"`
	Discount     money.Money `json:"discount"`
	Tax          money.Money `json:"tax"`
	Total        money.Money `json:"total"`
	Problem      string      `json:"problem,omitempty"`
}

// ShippingMethod is a shipping method priced for a cart. Free is true when
// its price was waived (a threshold met, a free_shipping promotion).
type ShippingMethod struct {
	ID    string      `json:"id"`
	Name  string      `json:"name"`
	Price money.Money `json:"price"`
	Free  bool        `json:"free"`
}

// Promotion is a promotion applied to the cart and what it took off.
type Promotion struct {
	PromotionID string      `json:"promotion_id"`
	Name        string      `json:"name"`
	Code        string      `json:"code,omitempty"`
	Amount      money.Money `json:"amount"`
}

// CodeProblem says why one of the cart's discount codes does not apply
// (code_invalid, code_expired, code_exhausted, code_not_applicable).
type CodeProblem struct {
	Code    string `json:"code"`
	Problem string `json:"problem"`
}

// Problem is something in the cart that cannot be bought as it is: a line
// (ItemID set) or the shipping method (Field "shipping_method_id").
type Problem struct {
	ItemID  string `json:"item_id,omitempty"`
	Field   string `json:"field,omitempty"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Cart is a cart as the API shows it, priced by pricing at the time of the
// response: total = subtotal − discount_total + shipping_total (+ tax_total
// when prices exclude tax). CartToken is set only in the answer to the
// request that created the cart.
type Cart struct {
	ID               string          `json:"id"`
	CartToken        string          `json:"cart_token,omitempty"`
	Status           Status          `json:"status"`
	Currency         string          `json:"currency"`
	CustomerID       *string         `json:"customer_id"`
	Email            *string         `json:"email"`
	Items            []Item          `json:"items"`
	DiscountCodes    []string        `json:"discount_codes"`
	ShippingAddress  *Address        `json:"shipping_address"`
	BillingAddress   *Address        `json:"billing_address"`
	ShippingMethodID *string         `json:"shipping_method_id"`
	ShippingMethod   *ShippingMethod `json:"shipping_method"`
	Subtotal         money.Money     `json:"subtotal"`
	DiscountTotal    money.Money     `json:"discount_total"`
	ShippingTotal    money.Money     `json:"shipping_total"`
	TaxTotal         money.Money     `json:"tax_total"`
	Total            money.Money     `json:"total"`
	PricesIncludeTax bool            `json:"prices_include_tax"`
	Promotions       []Promotion     `json:"promotions"`
	CodeProblems     []CodeProblem   `json:"code_problems"`
	Problems         []Problem       `json:"problems"`
	Version          int64           `json:"version"`
	CreatedAt        time.Time       `json:"created_at"`
	UpdatedAt        time.Time       `json:"updated_at"`
	ExpiresAt        time.Time       `json:"expires_at"`
}

// CreateInput creates a cart. Currency (ISO 4217) is required and fixed for
// the cart's life.
type CreateInput struct {
	Currency string `json:"currency"`
	Email    string `json:"email,omitempty"`
}

// ItemInput adds Quantity of a variant to a cart.
type ItemInput struct {
	VariantID string `json:"variant_id"`
	Quantity  int64  `json:"quantity"`
}

// Nullable is a patch field that may be absent (Set false: leave alone),
// null (Set true, Value nil: clear) or a value.
type Nullable[T any] struct {
	Set   bool
	Value *T
}

// Value returns a Nullable holding v.
func Value[T any](v T) Nullable[T] { return Nullable[T]{Set: true, Value: &v} }

// Null returns a Nullable that clears the field.
func Null[T any]() Nullable[T] { return Nullable[T]{Set: true} }

// Patch changes a cart's checkout details. Clearing the shipping address
// clears the shipping method; changing it keeps the method only while the
// method is offered for the new address.
type Patch struct {
	Email            Nullable[string]
	ShippingAddress  Nullable[Address]
	BillingAddress   Nullable[Address]
	ShippingMethodID Nullable[string]
}

// Caller is who asks for a cart: the cart token the request carried
// (X-Cart-Token) and the authenticated principal, zero for an anonymous
// shopper.
type Caller struct {
	CartToken string
	Principal auth.Principal
}

// customerID is the caller's customer id, or "" unless the caller is a
// customer.
func (c Caller) customerID() string {
	if c.Principal.Kind == auth.KindCustomer {
		return c.Principal.Subject
	}
	return ""
}

// --- validation ---

// validateEmail checks an email address: an addr-spec net/mail accepts, with
// no display name, at most MaxEmailLen bytes.
func validateEmail(v *apperr.Validation, field, email string) {
	switch {
	case email == "":
		v.Add(field, "required", "email cannot be empty; send null to clear it")
		return
	case len(email) > MaxEmailLen:
		v.Addf(field, "too_long", "email must be at most %d characters", MaxEmailLen)
		return
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Name != "" || a.Address != email || !strings.Contains(email, "@") {
		v.Add(field, "invalid", "email must be an address such as \"ada@example.com\"")
	}
}

// validateCurrency returns the currency upper-case, or records why not.
func validateCurrency(v *apperr.Validation, field, code string) string {
	if code == "" {
		v.Add(field, "required", "currency is required (an ISO 4217 code such as \"EUR\")")
		return ""
	}
	c, err := money.ParseCurrency(code)
	if err != nil {
		v.Add(field, "invalid", err.Error())
		return ""
	}
	return c
}

// ValidCountry reports whether code is the ISO 3166-1 alpha-2 code of a
// country that exists today, judged by Unicode CLDR data (golang.org/x/text)
// rather than a hand-kept table: a region CLDR calls a country, in its
// canonical form (not "UK" or "ZR", which CLDR replaces by GB and CD), with
// a UN M.49 number (not the exceptionally reserved AC, EA, EU, UN …) and a
// tender currency (not former countries such as SU or YU). Code must be
// upper case.
func ValidCountry(code string) bool {
	if len(code) != 2 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' || code[1] > 'Z' {
		return false
	}
	r, err := language.ParseRegion(code)
	if err != nil || !r.IsCountry() || r.Canonicalize() != r || r.String() != code || r.M49() == 0 {
		return false
	}
	_, ok := currency.FromRegion(r)
	return ok
}

var phonePattern = regexp.MustCompile(`^\+?[0-9 ()./-]+$`)

// normalizeAddress trims every field and upper-cases the country.
func normalizeAddress(a Address) Address {
	t := strings.TrimSpace
	return Address{
		FirstName: t(a.FirstName), LastName: t(a.LastName), Company: t(a.Company),
		Line1: t(a.Line1), Line2: t(a.Line2), City: t(a.City), PostalCode: t(a.PostalCode),
		Country: strings.ToUpper(t(a.Country)), Region: t(a.Region), Phone: t(a.Phone),
	}
}

// validateAddress records every bad field of a (normalized) address, named
// under prefix ("shipping_address.line1").
func validateAddress(v *apperr.Validation, prefix string, a Address) {
	text := func(name, val string, required bool, max int) {
		field := prefix + "." + name
		switch {
		case val == "" && required:
			v.Addf(field, "required", "%s is required", name)
		case utf8.RuneCountInString(val) > max:
			v.Addf(field, "too_long", "%s must be at most %d characters", name, max)
		case !printable(val):
			v.Addf(field, "invalid", "%s must be printable text on one line", name)
		}
	}
	text("first_name", a.FirstName, true, MaxNameLen)
	text("last_name", a.LastName, true, MaxNameLen)
	text("company", a.Company, false, MaxCompanyLen)
	text("line1", a.Line1, true, MaxLineLen)
	text("line2", a.Line2, false, MaxLineLen)
	text("city", a.City, true, MaxNameLen)
	text("postal_code", a.PostalCode, true, MaxPostalLen)
	text("region", a.Region, false, MaxNameLen)
	switch field := prefix + ".country"; {
	case a.Country == "":
		v.Add(field, "required", "country is required (an ISO 3166-1 alpha-2 code such as \"NL\")")
	case !ValidCountry(a.Country):
		v.Addf(field, "invalid", "%q is not the ISO 3166-1 alpha-2 code of a country", a.Country)
	}
	if field := prefix + ".phone"; a.Phone != "" {
		switch {
		case len(a.Phone) > MaxPhoneLen:
			v.Addf(field, "too_long", "phone must be at most %d characters", MaxPhoneLen)
		case !phonePattern.MatchString(a.Phone) || countDigits(a.Phone) < 3:
			v.Add(field, "invalid", "phone must be digits with an optional leading + and spaces, dots, dashes or parentheses")
		}
	}
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsControl)
}

func countDigits(s string) int {
	n := 0
	for _, r := range s {
		if r >= '0' && r <= '9' {
			n++
		}
	}
	return n
}

// normalizeCode returns a discount code as the cart keeps it: trimmed and
// upper-case (pricing compares codes case-insensitively).
func normalizeCode(code string) string { return strings.ToUpper(strings.TrimSpace(code)) }

// validateCode records why a code cannot be a discount code.
func validateCode(v *apperr.Validation, field, code string) {
	switch {
	case code == "":
		v.Add(field, "required", "code is required")
	case utf8.RuneCountInString(code) > MaxCodeLen:
		v.Addf(field, "too_long", "code must be at most %d characters", MaxCodeLen)
	case !printable(code):
		v.Add(field, "invalid", "code must be printable text")
	}
}

// validateQuantity records a quantity outside min..max.
func validateQuantity(v *apperr.Validation, field string, q, lo, hi int64) {
	if q < lo || q > hi {
		v.Addf(field, "out_of_range", "quantity must be from %d to %d", lo, hi)
	}
}

func notFound(cartID string) error {
	return apperr.New(apperr.NotFound, "cart %q not found", cartID)
}

func versionConflict(want, have int64) error {
	return apperr.New(apperr.VersionConflict, "cart is at version %d, not %d; fetch it again and retry", have, want)
}

// fieldError returns an error of the code naming one field.
func fieldError(code apperr.Code, field, fieldCode, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return &apperr.Error{Code: code, Message: msg, Fields: []apperr.FieldError{{Field: field, Code: fieldCode, Message: msg}}}
}

// containsFold reports whether codes holds code, ignoring case.
func containsFold(codes []string, code string) bool {
	return slices.ContainsFunc(codes, func(c string) bool { return strings.EqualFold(c, code) })
}
