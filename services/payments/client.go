// Package payments authorizes, captures, voids and refunds payments through
// a payment provider (the built-in deterministic "test" provider, Stripe),
// so that no order is ever charged twice: every operation is idempotent by
// a caller-chosen key, recorded before the provider is called, and
// reconciled with the provider when its outcome is unknown.
package payments

import (
	"context"
	"time"

	"github.com/soukhq/souk/platform/money"
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
const CodeDeclined = "payment_declined"

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
//   - validation_failed, not_found, conflict (e.g. capture of a voided
//     payment, amount over what may be captured or refunded),
//     idempotency_key_reused (same key, different request).
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
	// unavailable while the outcome cannot be learnt yet (provider down,
	// or the first attempt still in flight).
	ByKey(ctx context.Context, authorizeKey string) (Payment, error)
}
