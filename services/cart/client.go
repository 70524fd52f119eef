package cart

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/soukhq/souk/platform/apperr"
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
// /admin/carts/{id}/checked-out with carts:write). Every attempt has a
// timeout; as every call is idempotent, transport failures and
// 429/502/503/504 answers are retried with jittered exponential backoff.
// Problem documents become *apperr.Error with the remote code, message and
// field errors, so apperr.Is works across the wire.
type HTTPClient struct {
	base        string
	hc          *http.Client
	token       string
	timeout     time.Duration // per attempt
	maxAttempts int
	backoff     time.Duration // before the second attempt; doubles after
}

var _ Client = (*HTTPClient)(nil)

// NewHTTPClient returns a client of the cart service at baseURL (the
// gateway or the cart's own address) that authenticates with the bearer
// token (an API key holding carts:read and carts:write). hc may be nil for
// a default client; each attempt is bounded by a 5 s timeout as well as by
// hc's own and the context's.
func NewHTTPClient(baseURL string, hc *http.Client, token string) *HTTPClient {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &HTTPClient{
		base:        strings.TrimRight(baseURL, "/"),
		hc:          hc,
		token:       token,
		timeout:     5 * time.Second,
		maxAttempts: 3,
		backoff:     50 * time.Millisecond,
	}
}

// GetForCheckout implements Client.
func (c *HTTPClient) GetForCheckout(ctx context.Context, cartID string) (CheckoutCart, error) {
	if cartID == "" {
		return CheckoutCart{}, notFound(cartID)
	}
	var out CheckoutCart
	if err := c.call(ctx, http.MethodGet, "/admin/carts/"+url.PathEscape(cartID)+"/checkout", nil, &out); err != nil {
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
	path := "/admin/carts/" + url.PathEscape(cartID) + "/checkout-view"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	hdr := http.Header{}
	if in.CartToken != "" {
		hdr.Set(httpx.HeaderCartToken, in.CartToken)
	}
	var out CheckoutCart
	if err := c.callWith(ctx, http.MethodGet, path, hdr, nil, &out); err != nil {
		return CheckoutCart{}, fmt.Errorf("get cart %s for checkout: %w", cartID, err)
	}
	return out, nil
}

// Validate implements Client.
func (c *HTTPClient) Validate(ctx context.Context, cartID string) error {
	if cartID == "" {
		return notFound(cartID)
	}
	if err := c.call(ctx, http.MethodGet, "/admin/carts/"+url.PathEscape(cartID)+"/validation", nil, nil); err != nil {
		return fmt.Errorf("validate cart %s: %w", cartID, err)
	}
	return nil
}

// MarkCheckedOut implements Client.
func (c *HTTPClient) MarkCheckedOut(ctx context.Context, cartID, orderID string) error {
	if cartID == "" {
		return notFound(cartID)
	}
	body, _ := json.Marshal(MarkCheckedOutInput{OrderID: orderID})
	if err := c.call(ctx, http.MethodPost, "/admin/carts/"+url.PathEscape(cartID)+"/checked-out", body, nil); err != nil {
		return fmt.Errorf("mark cart %s checked out: %w", cartID, err)
	}
	return nil
}

// call makes the request, retrying what is worth retrying, and decodes a
// 200 answer into out (unless out is nil).
func (c *HTTPClient) call(ctx context.Context, method, path string, body []byte, out any) error {
	return c.callWith(ctx, method, path, nil, body, out)
}

// callWith is call with extra request headers.
func (c *HTTPClient) callWith(ctx context.Context, method, path string, hdr http.Header, body []byte, out any) error {
	delay := c.backoff
	for attempt := 1; ; attempt++ {
		retry, err := c.try(ctx, method, c.base+path, hdr, body, out)
		if err == nil || !retry || attempt == c.maxAttempts {
			return err
		}
		// Full jitter in [delay/2, delay*3/2): retries of many callers spread out.
		wait := delay/2 + rand.N(delay)
		select {
		case <-ctx.Done():
			return apperr.Wrap(ctx.Err(), apperr.Unavailable, "cart call abandoned: "+ctx.Err().Error())
		case <-time.After(wait):
		}
		delay *= 2
	}
}

// try makes one attempt and tells whether a failure is worth retrying.
func (c *HTTPClient) try(ctx context.Context, method, u string, hdr http.Header, body []byte, out any) (retry bool, err error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, u, rd)
	if err != nil {
		return false, fmt.Errorf("build cart request: %w", err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, apperr.Wrap(err, apperr.Unavailable, "cart call abandoned: "+ctx.Err().Error())
		}
		return true, apperr.Wrap(err, apperr.Unavailable, "cart service is unreachable")
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return ctx.Err() == nil, apperr.Wrap(err, apperr.Unavailable, "cart answer was cut off")
	}
	if resp.StatusCode == http.StatusOK {
		if out == nil {
			return false, nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return false, apperr.Wrap(err, apperr.Unavailable, "cart service answered with malformed JSON")
		}
		return false, nil
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		retry = true
	}
	return retry, problemError(resp, raw)
}

// problemError turns an error answer into the *apperr.Error it reports.
func problemError(resp *http.Response, body []byte) error {
	var p httpx.Problem
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/problem+json" && json.Unmarshal(body, &p) == nil && p.Code != "" {
		code := p.Code
		if code == apperr.Internal {
			// The cart service failed: for the caller, a dependency is down.
			code = apperr.Unavailable
		}
		return &apperr.Error{Code: code, Message: p.Detail, Fields: p.Errors,
			Err: fmt.Errorf("cart service answered %d %s", resp.StatusCode, p.Code)}
	}
	code := apperr.Internal
	switch s := resp.StatusCode; {
	case s == http.StatusBadRequest:
		code = apperr.BadRequest
	case s == http.StatusUnauthorized:
		code = apperr.Unauthorized
	case s == http.StatusForbidden:
		code = apperr.Forbidden
	case s == http.StatusNotFound:
		code = apperr.NotFound
	case s == http.StatusConflict:
		code = apperr.Conflict
	case s == http.StatusTooManyRequests:
		code = apperr.RateLimited
	case s >= 500:
		code = apperr.Unavailable
	}
	return &apperr.Error{Code: code, Message: fmt.Sprintf("cart service answered %s", resp.Status),
		Err: errors.New(strings.TrimSpace(string(body[:min(len(body), 200)])))}
}
