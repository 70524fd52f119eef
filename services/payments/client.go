// Package payments authorizes, captures, voids and refunds payments through
// a payment provider (the built-in deterministic "test" provider, Stripe),
// so that no order is ever charged twice: every operation is idempotent by
// a caller-chosen key, recorded before the provider is called, and
// reconciled with the provider when its outcome is unknown.
package payments

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/resilience"
)

// Status is a payment's state.
type Status string

// The payment states. A payment starts authorized (or failed, when the
// provider declined); capture, void and refund move it on.
const (
	StatusAuthorized        Status = "authorized"
	StatusCaptured          Status = "captured"
	StatusPartiallyRefunded Status = "partially_refunded"
	StatusRefunded          Status = "refunded"
	StatusVoided            Status = "voided"
	StatusFailed            Status = "failed"
)

// CodeDeclined is the apperr code of a payment the provider declined
// (HTTP 402); the error's Fields[0].Code is the decline code
// ("card_declined", "insufficient_funds", "invalid_token", …).
const CodeDeclined apperr.Code = "payment_declined"

// Payment is one authorization and what happened to it since.
type Payment struct {
	// ID is the payment's id, pay_….
	ID      string `json:"id"`
	OrderID string `json:"order_id"`
	// Provider is the provider that made the payment ("test", "stripe");
	// every later operation on the payment goes to it.
	Provider string `json:"provider"`
	// ProviderRef is the provider's id of the payment (a PaymentIntent id
	// for Stripe); empty when the provider declined before making one.
	ProviderRef string `json:"provider_ref"`
	Status      Status `json:"status"`
	// Amount is what was authorized, Captured what was captured of it,
	// Refunded what was refunded of the captured amount.
	Amount   money.Money `json:"amount"`
	Captured money.Money `json:"captured"`
	Refunded money.Money `json:"refunded"`
	// FailureCode is the decline code when Status is failed
	// ("card_declined", "insufficient_funds", "invalid_token").
	FailureCode string    `json:"failure_code,omitempty"`
	Version     int64     `json:"version"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// AuthorizeRequest asks for an authorization (funds held, not captured).
type AuthorizeRequest struct {
	// Key is the idempotency key, required: the same key always yields the
	// same payment (or the same decline), and the provider is asked at most
	// once per key. Orders derives it from the order and the saga step.
	Key     string      `json:"key"`
	OrderID string      `json:"order_id"`
	Amount  money.Money `json:"amount"`
	// Provider is "test", "stripe" or "" for the active (configured
	// primary, or switched-to) provider.
	Provider string `json:"provider,omitempty"`
	// Token is the card token / payment method the storefront obtained
	// from the provider; it is passed on and never stored.
	Token      string `json:"token"`
	CustomerID string `json:"customer_id,omitempty"`
	Email      string `json:"email,omitempty"`
}

// Client is what other services (the checkout saga in orders) may ask of
// payments. *Service is the in-process implementation, *HTTPClient the
// remote one; one contract suite runs against both. Every error is an
// *apperr.Error:
//
//   - payment_declined (HTTP 402): the provider declined; Fields[0].Code is
//     the decline code. Retrying the same key returns the same decline.
//   - unavailable: the provider (or payments) could not be reached or did
//     not answer in time. The attempt is recorded; retrying the same key
//     later never charges twice — payments first reconciles with the
//     provider and returns what it actually did. Use ByKey to learn the
//     outcome without retrying.
//   - idempotency_key_in_use: a request with the same key is still in
//     flight and ctx ended before it finished (retry later).
//   - validation_failed (an amount over what may be captured or
//     refunded names amount.amount), not_found, conflict (capture of a
//     voided payment, refund of an uncaptured one, a refusal by the
//     provider), idempotency_key_reused (same key, different request).
//
// Every method is safe to retry: Authorize, Capture, Void and Refund by
// their key, Get and ByKey trivially.
type Client interface {
	// Authorize holds req.Amount on the customer's payment method.
	Authorize(ctx context.Context, req AuthorizeRequest) (Payment, error)
	// Capture captures amount (≤ authorized) of an authorized payment;
	// idempotent by key.
	Capture(ctx context.Context, key, paymentID string, amount money.Money) (Payment, error)
	// Void releases an authorization that was not captured; idempotent,
	// and voiding a voided payment returns it unchanged.
	Void(ctx context.Context, key, paymentID string) (Payment, error)
	// Refund gives back amount of what was captured, partially or fully;
	// the total refunded never exceeds the captured amount. Idempotent by
	// key.
	Refund(ctx context.Context, key, paymentID string, amount money.Money) (Payment, error)
	// Get returns a payment by id.
	Get(ctx context.Context, paymentID string) (Payment, error)
	// ByKey returns the payment an Authorize key made: authorized (or
	// captured, …), or failed with the decline code when the provider
	// declined. When that attempt's outcome is unknown (a timeout, a crash)
	// payments first reconciles with the provider. Errors: not_found when
	// the key made no payment (never tried, or the provider confirms it did
	// not authorize — the key may then be retried with Authorize);
	// unavailable while the outcome cannot be learnt yet (provider down);
	// idempotency_key_in_use while the first attempt is still in flight
	// and ctx ends first (ByKey waits for it otherwise).
	ByKey(ctx context.Context, authorizeKey string) (Payment, error)
}

// HTTPClient is Client over payments' Admin API (hc must carry credentials
// holding orders:read, orders:write and, for Refund, orders:refund — e.g.
// a transport adding a service API key), through an httpx.Client. Every
// call goes through a resilience policy (attempt timeout, breaker,
// bulkhead) and, being idempotent — the operations by their key, which
// travels in the body and as the Idempotency-Key header, the reads
// trivially — is retried after transport failures and unavailable,
// rate_limited and idempotency_key_in_use answers. Problem documents
// become *apperr.Error with the remote code, message and field errors, so
// a decline is apperr code payment_declined with Fields[0].Code the
// decline code, just as in process.
type HTTPClient struct {
	api    *httpx.Client
	policy *resilience.Policy
}

var _ Client = (*HTTPClient)(nil)

// ClientOption tunes an HTTPClient.
type ClientOption func(*HTTPClient)

// WithPolicy makes the client call through p instead of its default
// policy (named "payments": 60 s per attempt — an authorization may take
// the provider's retries —, 3 attempts, breaker after 5 failures).
func WithPolicy(p *resilience.Policy) ClientOption {
	return func(c *HTTPClient) { c.policy = p }
}

// NewHTTPClient returns a client of payments at baseURL (the gateway or
// payments' own address). hc may be nil for a default client.
func NewHTTPClient(baseURL string, hc *http.Client, opts ...ClientOption) *HTTPClient {
	c := &HTTPClient{}
	for _, opt := range opts {
		opt(c)
	}
	if c.policy == nil {
		c.policy = resilience.MustNew(resilience.Config{Name: "payments", Timeout: 60 * time.Second, Idempotent: true})
	}
	c.api = httpx.NewClient("payments", baseURL, hc, httpx.WithPolicy(c.policy))
	return c
}

// Authorize implements Client.
func (c *HTTPClient) Authorize(ctx context.Context, req AuthorizeRequest) (Payment, error) {
	var p Payment
	err := c.do(ctx, http.MethodPost, "/admin/payments/authorize", req.Key, authorizeBody(req), &p)
	if err != nil {
		return Payment{}, fmt.Errorf("authorize payment: %w", err)
	}
	return p, nil
}

// Capture implements Client.
func (c *HTTPClient) Capture(ctx context.Context, key, paymentID string, amount money.Money) (Payment, error) {
	return c.operation(ctx, "capture", key, paymentID, &amount)
}

// Void implements Client.
func (c *HTTPClient) Void(ctx context.Context, key, paymentID string) (Payment, error) {
	return c.operation(ctx, "void", key, paymentID, nil)
}

// Refund implements Client.
func (c *HTTPClient) Refund(ctx context.Context, key, paymentID string, amount money.Money) (Payment, error) {
	return c.operation(ctx, "refund", key, paymentID, &amount)
}

func (c *HTTPClient) operation(ctx context.Context, verb, key, paymentID string, amount *money.Money) (Payment, error) {
	if paymentID == "" {
		return Payment{}, fmt.Errorf("%s payment: %w", verb, notFound("payment", paymentID))
	}
	var p Payment
	path := "/admin/payments/" + url.PathEscape(paymentID) + "/" + verb
	if err := c.do(ctx, http.MethodPost, path, key, operationBody{Key: key, Amount: amount}, &p); err != nil {
		return Payment{}, fmt.Errorf("%s payment: %w", verb, err)
	}
	return p, nil
}

// Get implements Client.
func (c *HTTPClient) Get(ctx context.Context, paymentID string) (Payment, error) {
	if paymentID == "" {
		return Payment{}, fmt.Errorf("get payment: %w", notFound("payment", paymentID))
	}
	var p Payment
	if err := c.do(ctx, http.MethodGet, "/admin/payments/"+url.PathEscape(paymentID), "", nil, &p); err != nil {
		return Payment{}, fmt.Errorf("get payment: %w", err)
	}
	return p, nil
}

// ByKey implements Client.
func (c *HTTPClient) ByKey(ctx context.Context, authorizeKey string) (Payment, error) {
	if authorizeKey == "" {
		return Payment{}, fmt.Errorf("payment by key: %w", notFound("payment with key", authorizeKey))
	}
	var p Payment
	if err := c.do(ctx, http.MethodGet, "/admin/payments/by-key/"+url.PathEscape(authorizeKey), "", nil, &p); err != nil {
		return Payment{}, fmt.Errorf("payment by key: %w", err)
	}
	return p, nil
}

// do performs one call through the policy. Every call is idempotent; the
// key travels as the Idempotency-Key header too when it is one the
// gateway accepts (else the service names the body's key as invalid).
func (c *HTTPClient) do(ctx context.Context, method, path, key string, body, out any) error {
	opts := []httpx.CallOption{httpx.Idempotent()}
	if validKey(key) {
		opts = append(opts, httpx.IdempotencyKey(key))
	}
	return c.api.Do(ctx, method, path, body, out, opts...)
}
