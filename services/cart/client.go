package cart

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/soukhq/souk/platform/httpx"
)

// Client is what the orders service may ask the cart. Implementations are
// safe for concurrent use and return *apperr.Error codes alike. *Service
// is the in-process implementation, *HTTPClient the remote one; one
// contract suite runs against both.
type Client interface {
	// GetForCheckout returns what an order needs of a live or checked-out
	// cart. Errors: not_found (unknown, expired or merged), unavailable.
	GetForCheckout(ctx context.Context, cartID string) (CheckoutCart, error)
	// CheckoutView is GetForCheckout for a shopper: not_found unless the
	// caller may open the cart exactly as the Store API decides (its
	// customer's token, or its cart token), and the cart is live or
	// checked out. It carries the customer's groups. Errors: not_found,
	// unavailable.
	CheckoutView(ctx context.Context, cartID string, caller Caller) (CheckoutCart, error)
	// Validate reports whether the live cart can be bought as it is: nil,
	// cart_empty, or cart_not_purchasable naming each line, code and
	// shipping method that cannot (see Service.Validate). Errors also:
	// not_found, unavailable.
	Validate(ctx context.Context, cartID string) error
	// MarkCheckedOut records that the cart became the order, once:
	// repeating it with the same order id is a no-op, with another order id
	// a conflict. Errors: validation_failed (order_id), not_found,
	// conflict, unavailable.
	MarkCheckedOut(ctx context.Context, cartID, orderID string) error
}

// HTTPClient is Client over the cart's internal Admin routes
// (GET /admin/carts/{id}/checkout, GET /admin/carts/{id}/checkout-view —
// the shopper's cart token in X-Cart-Token, never in the URL — and GET
// /admin/carts/{id}/validation with carts:read; POST
// /admin/carts/{id}/checked-out with carts:write), through an
// httpx.Client. Every attempt has a timeout; as every call is idempotent
// (MarkCheckedOut by its order id), transport failures and 429/502/503/504
// answers are retried with jittered exponential backoff
// (httpx.ClientPolicy, unless an httpx.WithPolicy option gives another).
// Problem documents become *apperr.Error with the remote code, message and
// field errors, so apperr.Is works across the wire.
type HTTPClient struct {
	api *httpx.Client
}

var _ Client = (*HTTPClient)(nil)

// NewHTTPClient returns a client of the cart service at baseURL (the
// gateway or the cart's own address) that authenticates with the bearer
// token (an API key holding carts:read and carts:write). hc may be nil for
// a default client; each attempt is bounded by the policy's timeout (5 s)
// as well as by hc's own and the context's. opts tune the underlying
// httpx.Client: httpx.WithPolicy to share the composition root's policy
// for the cart (breaker and bulkhead included).
func NewHTTPClient(baseURL string, hc *http.Client, token string, opts ...httpx.ClientOption) *HTTPClient {
	opts = append([]httpx.ClientOption{httpx.WithBearerToken(token)}, opts...)
	return &HTTPClient{api: httpx.NewServiceClient("cart", baseURL, hc, opts...)}
}

// GetForCheckout implements Client.
func (c *HTTPClient) GetForCheckout(ctx context.Context, cartID string) (CheckoutCart, error) {
	if cartID == "" {
		return CheckoutCart{}, notFound(cartID)
	}
	var out CheckoutCart
	if err := c.api.Do(ctx, http.MethodGet, cartPath(cartID, "checkout"), nil, &out); err != nil {
		return CheckoutCart{}, fmt.Errorf("get cart %s for checkout: %w", cartID, err)
	}
	return out, nil
}

// CheckoutView implements Client.
func (c *HTTPClient) CheckoutView(ctx context.Context, cartID string, caller Caller) (CheckoutCart, error) {
	if cartID == "" {
		return CheckoutCart{}, notFound(cartID)
	}
	in := CheckoutViewInputOf(caller)
	q := url.Values{}
	if in.CustomerID != "" {
		q.Set("customer_id", in.CustomerID)
	}
	for _, g := range in.CustomerGroups {
		q.Add("customer_group", g)
	}
	opts := []httpx.CallOption{httpx.Query(q)}
	if in.CartToken != "" {
		opts = append(opts, httpx.Header(httpx.HeaderCartToken, in.CartToken))
	}
	var out CheckoutCart
	if err := c.api.Do(ctx, http.MethodGet, cartPath(cartID, "checkout-view"), nil, &out, opts...); err != nil {
		return CheckoutCart{}, fmt.Errorf("get cart %s for checkout: %w", cartID, err)
	}
	return out, nil
}

// Validate implements Client.
func (c *HTTPClient) Validate(ctx context.Context, cartID string) error {
	if cartID == "" {
		return notFound(cartID)
	}
	if err := c.api.Do(ctx, http.MethodGet, cartPath(cartID, "validation"), nil, nil); err != nil {
		return fmt.Errorf("validate cart %s: %w", cartID, err)
	}
	return nil
}

// MarkCheckedOut implements Client. Marking is idempotent by the order id,
// so the call is retried like the reads.
func (c *HTTPClient) MarkCheckedOut(ctx context.Context, cartID, orderID string) error {
	if cartID == "" {
		return notFound(cartID)
	}
	in := MarkCheckedOutInput{OrderID: orderID}
	if err := c.api.Do(ctx, http.MethodPost, cartPath(cartID, "checked-out"), in, nil, httpx.Idempotent()); err != nil {
		return fmt.Errorf("mark cart %s checked out: %w", cartID, err)
	}
	return nil
}

// cartPath is the path of an internal route of the cart: /admin/carts/{id}/{route}.
func cartPath(cartID, route string) string {
	return "/admin/carts/" + url.PathEscape(cartID) + "/" + route
}
