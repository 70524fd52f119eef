package pricing

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/resilience"
)

// Address is where a cart ships to, as far as pricing cares: the country
// (ISO 3166-1 alpha-2, "NL") picks tax rates and shipping methods, the
// optional region (ISO 3166-2, "US-CA" or "CA") a region-specific tax rate.
type Address struct {
	Country    string `json:"country"`
	Region     string `json:"region,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
}

// QuoteLine is one cart line to be priced. ID is the caller's line id
// (echoed back in QuotedLine), VariantID selects the price, ProductID and
// CategoryIDs select product and category promotions.
type QuoteLine struct {
	ID          string   `json:"id"`
	VariantID   string   `json:"variant_id"`
	SKU         string   `json:"sku,omitempty"`
	ProductID   string   `json:"product_id,omitempty"`
	CategoryIDs []string `json:"category_ids,omitempty"`
	Quantity    int64    `json:"quantity"`
}

// QuoteRequest asks for the totals of a cart.
type QuoteRequest struct {
	Currency string `json:"currency"`
	// CustomerID is the customer's id or, for a guest, any stable key
	// (such as "email:" + the normalised e-mail address). Codes limited
	// per customer apply only when it is given (else code_not_applicable).
	CustomerID     string      `json:"customer_id,omitempty"`
	CustomerGroups []string    `json:"customer_groups,omitempty"`
	Lines          []QuoteLine `json:"lines,omitempty"`
	// Codes are the voucher codes applied to the cart (any case).
	Codes           []string `json:"codes,omitempty"`
	ShippingAddress *Address `json:"shipping_address,omitempty"`
	// ShippingMethodID is the chosen shipping method; "" for none yet.
	ShippingMethodID string `json:"shipping_method_id,omitempty"`
	// At is the instant prices and promotions are evaluated at; zero: now.
	At time.Time `json:"at,omitzero"`
}

// Line problems reported in QuotedLine.Problem.
const (
	// ProblemPriceMissing: no price list valid for the request has a price
	// for the variant in the currency; the line cannot be bought and is
	// left out of every total.
	ProblemPriceMissing = "price_missing"
)

// QuotedLine is one priced line. Subtotal = UnitPrice × Quantity; Total =
// Subtotal − Discount (tax included or not as Quote.PricesIncludeTax says;
// Tax is the line's share of the tax either way).
type QuotedLine struct {
	ID        string      `json:"id"`
	VariantID string      `json:"variant_id"`
	Quantity  int64       `json:"quantity"`
	UnitPrice money.Money `json:"unit_price"`
	Subtotal  money.Money `json:"subtotal"`
	Discount  money.Money `json:"discount"`
	Tax       money.Money `json:"tax"`
	Total     money.Money `json:"total"`
	// Problem is "" or a code (ProblemPriceMissing).
	Problem string `json:"problem,omitempty"`
}

// AppliedPromotion is a promotion that took part in a quote and what it took
// off (for free_shipping: the shipping price it waived).
type AppliedPromotion struct {
	PromotionID string      `json:"promotion_id"`
	Name        string      `json:"name"`
	Code        string      `json:"code,omitempty"`
	Amount      money.Money `json:"amount"`
}

// Code problems reported in CodeProblem.Problem (and as apperr codes by
// CheckCode).
const (
	CodeInvalid       apperr.Code = "code_invalid"        // no such code, or its promotion is inactive
	CodeExpired       apperr.Code = "code_expired"        // outside the promotion's validity window
	CodeExhausted     apperr.Code = "code_exhausted"      // usage limit (total or per customer) reached
	CodeNotApplicable apperr.Code = "code_not_applicable" // valid, but its conditions do not hold for this cart
)

// CodeProblem says why a code of the request did not apply.
type CodeProblem struct {
	Code    string `json:"code"`
	Problem string `json:"problem"`
}

// ShippingOption is a shipping method priced for a cart. Free is true when
// the price was waived (threshold met or a free_shipping promotion).
type ShippingOption struct {
	ID    string      `json:"id"`
	Name  string      `json:"name"`
	Price money.Money `json:"price"`
	Free  bool        `json:"free"`
}

// Quote is a priced cart. total = subtotal − discount_total + shipping_total
// (+ tax_total when prices exclude tax); every amount is in Currency.
type Quote struct {
	Currency         string             `json:"currency"`
	PricesIncludeTax bool               `json:"prices_include_tax"`
	Lines            []QuotedLine       `json:"lines"`
	Subtotal         money.Money        `json:"subtotal"`
	DiscountTotal    money.Money        `json:"discount_total"`
	ShippingTotal    money.Money        `json:"shipping_total"`
	TaxTotal         money.Money        `json:"tax_total"`
	Total            money.Money        `json:"total"`
	Promotions       []AppliedPromotion `json:"promotions"`
	CodeProblems     []CodeProblem      `json:"code_problems"`
	// Shipping is the chosen method, priced; nil when none is chosen or
	// it cannot ship this cart (then ShippingProblem says so).
	Shipping *ShippingOption `json:"shipping,omitempty"`
	// ShippingProblem is "" or ShippingUnavailable: the chosen method does
	// not serve the address or the currency.
	ShippingProblem string `json:"shipping_problem,omitempty"`
	// ShippingTax is the part of TaxTotal that falls on shipping (shipping
	// is taxed at the address's rate, like the goods).
	ShippingTax money.Money `json:"shipping_tax"`
	// TaxRateBps is the tax rate applied, in basis points (2100 = 21 %).
	TaxRateBps int64 `json:"tax_rate_bps"`
}

// Redemption states.
const (
	RedemptionPending  = "pending"
	RedemptionRedeemed = "redeemed"
	RedemptionReleased = "released"
)

// RedeemRequest asks to use up voucher codes for an order. Key is the
// idempotency key (the checkout saga derives it from the order and step).
// CustomerID is the key per-customer limits count (as in QuoteRequest); it
// is required for codes limited per customer.
type RedeemRequest struct {
	Key        string   `json:"key"`
	OrderID    string   `json:"order_id"`
	CustomerID string   `json:"customer_id,omitempty"`
	Codes      []string `json:"codes"`
	Currency   string   `json:"currency,omitempty"`
}

// Redemption is the record of a RedeemRequest. State is redeemed, or
// released after Release (pending exists only inside the redeeming
// transaction and is never returned).
type Redemption struct {
	ID      string   `json:"id"`
	Key     string   `json:"key"`
	OrderID string   `json:"order_id"`
	Codes   []string `json:"codes"`
	State   string   `json:"state"`
}

// Client is what other services (cart, orders, catalog's storefront) may ask
// pricing. Implementations are safe for concurrent use and return
// *apperr.Error codes alike. *Service is the in-process implementation,
// *HTTPClient the remote one; one contract suite runs against both.
type Client interface {
	// Quote prices a cart: unit prices, discounts allocated to lines,
	// shipping, tax and totals. Codes that do not apply are reported in
	// Quote.CodeProblems, not as errors; lines without a price carry
	// Problem "price_missing" and are left out of the totals. Errors:
	// validation_failed (currency, quantities, address).
	Quote(ctx context.Context, req QuoteRequest) (Quote, error)
	// ShippingOptions returns the methods available for the request's
	// address and currency, priced for this cart (0 when free).
	ShippingOptions(ctx context.Context, req QuoteRequest) ([]ShippingOption, error)
	// CheckCode reports whether a voucher code can be used now by the
	// customer: nil, or apperr codes code_invalid / code_expired /
	// code_exhausted.
	CheckCode(ctx context.Context, code, currency, customerID string) error
	// Redeem uses up the request's codes atomically (all or none),
	// idempotently by Key: the same key returns the first redemption. A
	// usage limit is never exceeded, whatever the concurrency. Errors:
	// code_invalid / code_expired / code_exhausted, validation_failed.
	Redeem(ctx context.Context, req RedeemRequest) (Redemption, error)
	// Release gives the uses of the redemption with the key back, once;
	// releasing again, or an unknown key, is a no-op.
	Release(ctx context.Context, key string) error
	// Prices returns the display price of each variant that has one for a
	// shopper of the groups in the currency, now (variants without a price
	// are absent from the map).
	Prices(ctx context.Context, currency string, customerGroups []string, variantIDs []string) (map[string]money.Money, error)
}

// HTTPClient is Client over pricing's internal Admin API endpoints
// (/admin/pricing/…) of a remote pricing service, through an httpx.Client.
// Every attempt has a timeout; as every call is idempotent (quotes and
// checks are reads, Redeem is idempotent by its Key, Release by nature),
// transport failures and 429/502/503/504 answers are retried with jittered
// exponential backoff (httpx.ClientPolicy, unless WithPolicy gives
// another). Problem documents become *apperr.Error with the remote code,
// message and field errors, so apperr.Is works across the wire. It is safe
// for concurrent use.
type HTTPClient struct {
	api  *httpx.Client
	opts []httpx.ClientOption // what the HTTPClientOptions ask of api
}

var _ Client = (*HTTPClient)(nil)

// HTTPClientOption tunes an HTTPClient.
type HTTPClientOption func(*HTTPClient)

// WithBearerToken sends the token (an API key secret or a service token
// holding pricing:read and pricing:write) as Authorization: Bearer on
// every call.
func WithBearerToken(token string) HTTPClientOption {
	return func(c *HTTPClient) { c.opts = append(c.opts, httpx.WithBearerToken(token)) }
}

// WithPolicy makes the client call through p instead of its default
// policy (httpx.ClientPolicy("pricing"): 5 s per attempt, 3 attempts, no
// breaker); pass the policy shared by every client of pricing.
func WithPolicy(p *resilience.Policy) HTTPClientOption {
	return func(c *HTTPClient) { c.opts = append(c.opts, httpx.WithPolicy(p)) }
}

// NewHTTPClient returns a client of the pricing service at baseURL (the
// gateway, or pricing's own address). hc may be nil for a default client;
// each attempt is bounded by the policy's timeout (5 s) as well as by hc's
// own and the context's.
func NewHTTPClient(baseURL string, hc *http.Client, opts ...HTTPClientOption) *HTTPClient {
	c := &HTTPClient{}
	for _, o := range opts {
		o(c)
	}
	c.api = httpx.NewServiceClient("pricing", baseURL, hc, c.opts...)
	c.opts = nil
	return c
}

// Quote implements Client.
func (c *HTTPClient) Quote(ctx context.Context, req QuoteRequest) (Quote, error) {
	var q Quote
	if err := c.call(ctx, http.MethodPost, "/admin/pricing/quote", nil, req, &q); err != nil {
		return Quote{}, fmt.Errorf("quote: %w", err)
	}
	return q, nil
}

// ShippingOptions implements Client.
func (c *HTTPClient) ShippingOptions(ctx context.Context, req QuoteRequest) ([]ShippingOption, error) {
	var out shippingOptionList
	if err := c.call(ctx, http.MethodPost, "/admin/pricing/shipping-options", nil, req, &out); err != nil {
		return nil, fmt.Errorf("shipping options: %w", err)
	}
	if out.Data == nil {
		out.Data = []ShippingOption{}
	}
	return out.Data, nil
}

// CheckCode implements Client.
func (c *HTTPClient) CheckCode(ctx context.Context, code, currency, customerID string) error {
	code = NormalizeCode(code)
	if code == "" {
		return codeError(CodeInvalid, code)
	}
	params := url.Values{}
	if currency != "" {
		params.Set("currency", currency)
	}
	if customerID != "" {
		params.Set("customer_id", customerID)
	}
	var out codeCheck
	return c.call(ctx, http.MethodGet, "/admin/pricing/codes/"+url.PathEscape(code), params, nil, &out)
}

// Redeem implements Client.
func (c *HTTPClient) Redeem(ctx context.Context, req RedeemRequest) (Redemption, error) {
	var r Redemption
	if err := c.call(ctx, http.MethodPost, "/admin/pricing/redemptions", nil, req, &r); err != nil {
		return Redemption{}, fmt.Errorf("redeem: %w", err)
	}
	return r, nil
}

// Release implements Client.
func (c *HTTPClient) Release(ctx context.Context, key string) error {
	if key == "" {
		return fmt.Errorf("release: %w", &apperr.Error{Code: apperr.ValidationFailed, Message: "key must have 1 to 255 characters",
			Fields: []apperr.FieldError{{Field: "key", Code: "invalid", Message: "must have 1 to 255 characters"}}})
	}
	if err := c.call(ctx, http.MethodPost, "/admin/pricing/redemptions/"+url.PathEscape(key)+"/release", nil, nil, nil); err != nil {
		return fmt.Errorf("release %s: %w", key, err)
	}
	return nil
}

// Prices implements Client. Groups and variant ids travel comma-separated,
// so neither may contain a comma (the service refuses them as well).
func (c *HTTPClient) Prices(ctx context.Context, currency string, customerGroups []string, variantIDs []string) (map[string]money.Money, error) {
	params := url.Values{"currency": {currency}}
	if len(customerGroups) > 0 {
		params.Set("groups", strings.Join(customerGroups, ","))
	}
	if len(variantIDs) > 0 {
		params.Set("variant_ids", strings.Join(variantIDs, ","))
	}
	var out priceMap
	if err := c.call(ctx, http.MethodGet, "/admin/pricing/prices", params, nil, &out); err != nil {
		return nil, fmt.Errorf("prices: %w", err)
	}
	if out.Prices == nil {
		out.Prices = map[string]money.Money{}
	}
	return out.Prices, nil
}

// call sends one request, retrying what is worth retrying (every call is
// idempotent), and decodes the answer into out (when out is not nil).
func (c *HTTPClient) call(ctx context.Context, method, path string, params url.Values, body, out any) error {
	return c.api.Do(ctx, method, path, body, out, httpx.Query(params), httpx.Idempotent())
}
