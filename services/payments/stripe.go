package payments

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v84"

	"github.com/soukhq/souk/platform/resilience"
)

// Metadata keys Souk sets on Stripe objects: the operation's idempotency
// key (what Lookup searches by), the order and the payment.
const (
	stripeMetaKey     = "souk_key"
	stripeMetaOrder   = "souk_order_id"
	stripeMetaPayment = "souk_payment_id"
)

// StripeProvider is the Stripe adapter, on the official client
// (github.com/stripe/stripe-go/v84). An authorization is a PaymentIntent
// created with capture_method=manual and confirm=true on the token's
// payment method; capture, void (cancel) and refund act on it. Every
// request carries the operation's key as its Idempotency-Key, so Stripe
// answers a repeated key with the first answer and never charges twice.
// The client's own retries are off: payments' resilience policy retries.
// It is safe for concurrent use.
type StripeProvider struct {
	sc *stripe.Client
}

var _ Provider = (*StripeProvider)(nil)

// NewStripeProvider returns the adapter for the secret key, talking to
// baseURL ("" for https://api.stripe.com; stripe-mock's address in tests)
// through hc (nil: a client without its own timeout — the policy's
// attempt timeout bounds every call).
func NewStripeProvider(apiKey, baseURL string, hc *http.Client) *StripeProvider {
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
	}
	cfg := &stripe.BackendConfig{
		HTTPClient:        hc,
		MaxNetworkRetries: stripe.Int64(0),
		EnableTelemetry:   stripe.Bool(false),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if baseURL != "" {
		cfg.URL = stripe.String(strings.TrimRight(baseURL, "/"))
	}
	backends := &stripe.Backends{
		API:         stripe.GetBackendWithConfig(stripe.APIBackend, cfg),
		Connect:     stripe.GetBackendWithConfig(stripe.ConnectBackend, cfg),
		Uploads:     stripe.GetBackendWithConfig(stripe.UploadsBackend, cfg),
		MeterEvents: stripe.GetBackendWithConfig(stripe.MeterEventsBackend, cfg),
	}
	return &StripeProvider{sc: stripe.NewClient(apiKey, stripe.WithBackends(backends))}
}

// Name implements Provider.
func (p *StripeProvider) Name() string { return ProviderStripe }

// Authorize implements Provider: a PaymentIntent for the amount, confirmed
// at once on the token (a PaymentMethod id, pm_…) and left for a manual
// capture. A card needing customer action (3-D Secure) is declined with
// authentication_required: the storefront must confirm such cards itself.
func (p *StripeProvider) Authorize(ctx context.Context, req ProviderAuthorize) (ProviderResult, error) {
	params := &stripe.PaymentIntentCreateParams{
		Amount:                stripe.Int64(req.Amount.Amount),
		Currency:              stripe.String(strings.ToLower(req.Amount.Currency)),
		CaptureMethod:         stripe.String(string(stripe.PaymentIntentCaptureMethodManual)),
		Confirm:               stripe.Bool(true),
		ErrorOnRequiresAction: stripe.Bool(true),
		PaymentMethod:         stripe.String(req.Token),
		PaymentMethodTypes:    []*string{stripe.String("card")},
		Metadata: map[string]string{
			stripeMetaKey: req.Key, stripeMetaOrder: req.OrderID, stripeMetaPayment: req.PaymentID,
		},
	}
	if req.Email != "" {
		params.ReceiptEmail = stripe.String(req.Email)
	}
	params.SetIdempotencyKey(req.Key)
	pi, err := p.sc.V1PaymentIntents.Create(ctx, params)
	if err != nil {
		return stripeFailure(err)
	}
	return intentResult(pi), nil
}

// intentResult maps a PaymentIntent after its confirmation.
func intentResult(pi *stripe.PaymentIntent) ProviderResult {
	r := ProviderResult{Ref: pi.ID}
	switch pi.Status {
	case stripe.PaymentIntentStatusRequiresCapture, stripe.PaymentIntentStatusSucceeded, stripe.PaymentIntentStatusProcessing:
	case stripe.PaymentIntentStatusRequiresAction:
		r.DeclineCode = "authentication_required"
	default: // requires_payment_method after a failed confirmation, canceled
		r.DeclineCode = "card_declined"
		if e := pi.LastPaymentError; e != nil {
			r.DeclineCode = stripeDeclineCode(e)
		}
	}
	return r
}

// Capture implements Provider.
func (p *StripeProvider) Capture(ctx context.Context, req ProviderCapture) (ProviderResult, error) {
	params := &stripe.PaymentIntentCaptureParams{AmountToCapture: stripe.Int64(req.Amount.Amount)}
	params.SetIdempotencyKey(req.Key)
	pi, err := p.sc.V1PaymentIntents.Capture(ctx, req.Ref, params)
	if err != nil {
		return stripeFailure(err)
	}
	return ProviderResult{Ref: pi.ID}, nil
}

// Void implements Provider: the PaymentIntent is canceled.
func (p *StripeProvider) Void(ctx context.Context, req ProviderVoid) (ProviderResult, error) {
	params := &stripe.PaymentIntentCancelParams{CancellationReason: stripe.String("abandoned")}
	params.SetIdempotencyKey(req.Key)
	pi, err := p.sc.V1PaymentIntents.Cancel(ctx, req.Ref, params)
	if err != nil {
		return stripeFailure(err)
	}
	return ProviderResult{Ref: pi.ID}, nil
}

// Refund implements Provider.
func (p *StripeProvider) Refund(ctx context.Context, req ProviderRefund) (ProviderResult, error) {
	params := &stripe.RefundCreateParams{
		PaymentIntent: stripe.String(req.Ref),
		Amount:        stripe.Int64(req.Amount.Amount),
		Metadata:      map[string]string{stripeMetaKey: req.Key},
	}
	params.SetIdempotencyKey(req.Key)
	re, err := p.sc.V1Refunds.Create(ctx, params)
	if err != nil {
		return stripeFailure(err)
	}
	return refundResult(req.Ref, re), nil
}

func refundResult(ref string, re *stripe.Refund) ProviderResult {
	r := ProviderResult{Ref: ref, OpRef: re.ID}
	if re.Status == stripe.RefundStatusFailed || re.Status == stripe.RefundStatusCanceled {
		r.DeclineCode = "refund_" + string(re.Status)
	}
	return r
}

// Lookup implements Provider. An authorization is found by searching
// PaymentIntents by the key in their metadata — Stripe's search index
// lags writes by up to a minute, so "no record" is only as sure as that;
// a retry with the key stays safe because Stripe dedupes the key itself. A
// capture or void is read off the PaymentIntent, a refund from its
// refunds' metadata.
func (p *StripeProvider) Lookup(ctx context.Context, req ProviderLookup) (ProviderResult, error) {
	switch req.Op {
	case OpAuthorize:
		params := &stripe.PaymentIntentSearchParams{}
		params.Query = fmt.Sprintf("metadata['%s']:'%s'", stripeMetaKey, strings.ReplaceAll(req.Key, "'", `\'`))
		params.Limit = stripe.Int64(10)
		for pi, err := range p.sc.V1PaymentIntents.Search(ctx, params) {
			if err != nil {
				return stripeFailure(err)
			}
			if pi.Metadata[stripeMetaKey] == req.Key {
				return intentResult(pi), nil
			}
		}
		return ProviderResult{}, ErrNoRecord
	case OpCapture, OpVoid:
		pi, err := p.sc.V1PaymentIntents.Retrieve(ctx, req.Ref, &stripe.PaymentIntentRetrieveParams{})
		if err != nil {
			return stripeFailure(err)
		}
		if req.Op == OpCapture && pi.Status == stripe.PaymentIntentStatusSucceeded && pi.AmountReceived > 0 {
			return ProviderResult{Ref: pi.ID}, nil
		}
		if req.Op == OpVoid && pi.Status == stripe.PaymentIntentStatusCanceled {
			return ProviderResult{Ref: pi.ID}, nil
		}
		return ProviderResult{}, ErrNoRecord
	case OpRefund:
		params := &stripe.RefundListParams{PaymentIntent: stripe.String(req.Ref)}
		params.Limit = stripe.Int64(100)
		for re, err := range p.sc.V1Refunds.List(ctx, params) {
			if err != nil {
				return stripeFailure(err)
			}
			if re.Metadata[stripeMetaKey] == req.Key {
				return refundResult(req.Ref, re), nil
			}
		}
		return ProviderResult{}, ErrNoRecord
	}
	return ProviderResult{}, fmt.Errorf("stripe lookup: unknown operation %q", req.Op)
}

// stripeFailure sorts an error of the Stripe client: a refusal for good
// (a declined card, an invalid request) becomes a declined result; what
// may pass (network, 429, 5xx, an idempotent request still in flight) a
// retryable error; the rest (a bad API key) an error that is not retried.
func stripeFailure(err error) (ProviderResult, error) {
	var se *stripe.Error
	if !errors.As(err, &se) {
		return ProviderResult{}, resilience.MarkRetryable(fmt.Errorf("stripe: %w", err)) // transport
	}
	switch {
	case se.Type == stripe.ErrorTypeCard:
		return ProviderResult{DeclineCode: stripeDeclineCode(se)}, nil
	case se.HTTPStatusCode == http.StatusTooManyRequests, se.HTTPStatusCode >= 500,
		se.Code == stripe.ErrorCodeIdempotencyKeyInUse, se.Type == stripe.ErrorTypeAPI:
		return ProviderResult{}, resilience.MarkRetryable(fmt.Errorf("stripe %d %s: %s", se.HTTPStatusCode, se.Code, se.Msg))
	case se.Type == stripe.ErrorTypeInvalidRequest && se.HTTPStatusCode != http.StatusUnauthorized && se.HTTPStatusCode != http.StatusForbidden:
		code := string(se.Code)
		if code == "" {
			code = "invalid_request"
		}
		return ProviderResult{DeclineCode: code}, nil
	}
	// Authentication, permission: retrying will not help, and nothing
	// happened; payments records the outcome unknown, to be reconciled.
	return ProviderResult{}, fmt.Errorf("stripe refused the request (%d %s %s): %w", se.HTTPStatusCode, se.Type, se.Code, err)
}

// stripeDeclineCode is the most precise code of a card error: the issuer's
// decline code, else Stripe's error code.
func stripeDeclineCode(e *stripe.Error) string {
	switch {
	case e.DeclineCode != "":
		return string(e.DeclineCode)
	case e.Code != "":
		return string(e.Code)
	}
	return "card_declined"
}
