package payments

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/money"
)

// The permissions of the payments routes. They are the identity service's
// strings: payments are read and moved by whoever may read and write
// orders, refunds need the refund permission, and the provider switch is an
// operations mitigation.
const (
	PermissionRead     auth.Permission = "orders:read"
	PermissionWrite    auth.Permission = "orders:write"
	PermissionRefund   auth.Permission = "orders:refund"
	PermissionOpsRead  auth.Permission = "ops:read"
	PermissionOpsWrite auth.Permission = "ops:write"
)

// The built-in provider names.
const (
	ProviderTest   = "test"
	ProviderStripe = "stripe"
)

// paymentPrefix is the id prefix of payments; switchPrefix of provider switches.
const (
	paymentPrefix = "pay"
	switchPrefix  = "psw"
)

// MaxKeyLen bounds an idempotency key (as the Idempotency-Key header).
const MaxKeyLen = 255

// Operation names one kind of payment operation.
type Operation string

// The operations. Every one is idempotent by its key, at payments and at
// the provider.
const (
	OpAuthorize Operation = "authorize"
	OpCapture   Operation = "capture"
	OpVoid      Operation = "void"
	OpRefund    Operation = "refund"
)

// OpState is the state of one operation in the operations log.
type OpState string

// The operation states.
//
//	pending   the key is claimed and its owner is calling the provider (until lease_until)
//	succeeded the provider did it; the result is recorded
//	declined  the provider refused it for good (a declined card, a capture past its window)
//	unknown   the provider call failed or timed out: it may or may not have happened;
//	          the next attempt with the key reconciles with the provider first
//	abandoned known not to have happened (never sent: breaker open; or the provider has
//	          no record of it); nothing is held; the key may be tried again
const (
	OpPending   OpState = "pending"
	OpSucceeded OpState = "succeeded"
	OpDeclined  OpState = "declined"
	OpUnknown   OpState = "unknown"
	OpAbandoned OpState = "abandoned"
)

// OperationRecord is one row of a payment's operations log, as the Admin
// API shows it.
type OperationRecord struct {
	Key         string      `json:"key"`
	Kind        Operation   `json:"kind"`
	PaymentID   string      `json:"payment_id"`
	Provider    string      `json:"provider"`
	State       OpState     `json:"state"`
	Amount      money.Money `json:"amount"`
	ProviderRef string      `json:"provider_ref"`
	FailureCode string      `json:"failure_code,omitempty"`
	Attempts    int         `json:"attempts"`
	CreatedAt   time.Time   `json:"created_at"`
	UpdatedAt   time.Time   `json:"updated_at"`
}

// ProviderSwitch is one audited change of the active provider.
type ProviderSwitch struct {
	ID     string `json:"id"`
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason"`
	// Actor is the subject of the principal who switched ("system" when
	// there was none).
	Actor     string    `json:"actor"`
	CreatedAt time.Time `json:"created_at"`
}

// ProviderStatus is which provider new authorizations use, what is
// configured, and the audit trail of switches (newest first).
type ProviderStatus struct {
	Active     string            `json:"active"`
	Primary    string            `json:"primary"`
	Secondary  string            `json:"secondary,omitempty"`
	Configured []string          `json:"configured"`
	Breakers   map[string]string `json:"breakers"`
	Switches   []ProviderSwitch  `json:"switches"`
}

// --- providers ---

// Provider is a payment service provider. Every method is idempotent by
// the request's Key: a repeated key returns the first call's result and
// moves no money again, which is what lets payments retry a call whose
// answer was lost. Methods return a ProviderResult with DeclineCode set
// when the provider refused the operation for good, and an error only when
// the outcome is unknown (network, timeout, provider failure); mark
// transient errors with resilience.MarkRetryable or return apperr
// unavailable so the policy retries them. Implementations must be safe for
// concurrent use.
type Provider interface {
	// Name is the provider's configuration name ("test", "stripe").
	Name() string
	// Authorize holds the amount on the token's payment method.
	Authorize(ctx context.Context, req ProviderAuthorize) (ProviderResult, error)
	// Capture captures req.Amount of the authorization req.Ref.
	Capture(ctx context.Context, req ProviderCapture) (ProviderResult, error)
	// Void releases the authorization req.Ref.
	Void(ctx context.Context, req ProviderVoid) (ProviderResult, error)
	// Refund gives back req.Amount of the captured payment req.Ref.
	Refund(ctx context.Context, req ProviderRefund) (ProviderResult, error)
	// Lookup tells what the provider did with the operation keyed
	// req.Key (for capture, void and refund also naming req.Ref): the
	// result it recorded, or ErrNoRecord when it has none, so the
	// operation never happened there. It changes nothing.
	Lookup(ctx context.Context, req ProviderLookup) (ProviderResult, error)
}

// ErrNoRecord is Provider.Lookup's answer for an operation the provider
// has no record of.
var ErrNoRecord = errors.New("the provider has no record of the operation")

// ProviderAuthorize asks a provider for an authorization.
type ProviderAuthorize struct {
	Key        string
	PaymentID  string
	OrderID    string
	Amount     money.Money
	Token      string
	CustomerID string
	Email      string
}

// ProviderCapture asks a provider to capture an authorization.
type ProviderCapture struct {
	Key    string
	Ref    string
	Amount money.Money
}

// ProviderVoid asks a provider to release an authorization.
type ProviderVoid struct {
	Key string
	Ref string
}

// ProviderRefund asks a provider to refund part of a captured payment.
type ProviderRefund struct {
	Key    string
	Ref    string
	Amount money.Money
}

// ProviderLookup asks a provider what became of an operation.
type ProviderLookup struct {
	Op  Operation
	Key string
	Ref string // the payment's provider reference; empty for authorize
}

// ProviderResult is what a provider did.
type ProviderResult struct {
	// Ref is the provider's reference of the payment (a PaymentIntent id).
	Ref string
	// OpRef is the provider's reference of the operation when it has its
	// own (a refund id); else empty.
	OpRef string
	// DeclineCode, when set, says the provider refused the operation for
	// good: "card_declined", "insufficient_funds", "invalid_token", ….
	DeclineCode string
}

// Declined reports whether the provider refused the operation.
func (r ProviderResult) Declined() bool { return r.DeclineCode != "" }

// --- validation and errors ---

func validKey(key string) bool {
	if key == "" || len(key) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

func checkKey(v *apperr.Validation, key string) {
	switch {
	case key == "":
		v.Add("key", "required", "key (the idempotency key) is required")
	case !validKey(key):
		v.Addf("key", "invalid", "key must be 1 to %d printable ASCII characters without spaces", MaxKeyLen)
	}
}

func checkAmount(v *apperr.Validation, field string, m money.Money) {
	if _, err := money.ParseCurrency(m.Currency); err != nil || m.Currency != strings.ToUpper(m.Currency) {
		v.Add(field+".currency", "invalid", "currency must be an upper-case ISO 4217 code")
	}
	if m.Amount <= 0 {
		v.Add(field+".amount", "out_of_range", "amount must be a positive number of minor units")
	}
}

func (r AuthorizeRequest) validate() error {
	var v apperr.Validation
	checkKey(&v, r.Key)
	if r.OrderID == "" {
		v.Add("order_id", "required", "order_id is required")
	} else if len(r.OrderID) > 128 {
		v.Add("order_id", "too_long", "order_id must be at most 128 characters")
	}
	checkAmount(&v, "amount", r.Amount)
	if r.Token == "" {
		v.Add("token", "required", "token (the payment method from the storefront) is required")
	} else if len(r.Token) > 255 {
		v.Add("token", "too_long", "token must be at most 255 characters")
	}
	if len(r.Email) > 320 {
		v.Add("email", "too_long", "email must be at most 320 characters")
	}
	if len(r.CustomerID) > 128 {
		v.Add("customer_id", "too_long", "customer_id must be at most 128 characters")
	}
	return v.Err()
}

func notFound(kind, ref string) error {
	return apperr.New(apperr.NotFound, "no %s %q", kind, ref)
}

func checkPaymentID(paymentID string) error {
	if !id.Valid(paymentPrefix, paymentID) {
		return notFound("payment", paymentID)
	}
	return nil
}

// declinedError is the payment_declined error of a decline code.
func declinedError(code string) error {
	return &apperr.Error{
		Code:    CodeDeclined,
		Message: fmt.Sprintf("the payment was declined (%s)", code),
		Fields:  []apperr.FieldError{{Field: "token", Code: code, Message: declineMessage(code)}},
	}
}

// refusedError is the error of a capture, void or refund the provider
// refused for good.
func refusedError(op Operation, code string) error {
	return &apperr.Error{
		Code:    apperr.Conflict,
		Message: fmt.Sprintf("the provider refused the %s (%s)", op, code),
		Fields:  []apperr.FieldError{{Field: "payment", Code: code, Message: "refused by the payment provider"}},
	}
}

func declineMessage(code string) string {
	switch code {
	case "card_declined":
		return "the card was declined"
	case "insufficient_funds":
		return "the card has insufficient funds"
	case "invalid_token":
		return "the payment token is not valid"
	}
	return "the payment provider declined the payment"
}

// unavailableError: the provider's answer is unknown; the attempt is
// recorded and a retry with the key reconciles first.
func unavailableError(provider string, op Operation, err error) error {
	return apperr.Wrap(err, apperr.Unavailable,
		fmt.Sprintf("payment provider %s did not complete the %s; it is recorded, retry with the same key", provider, op))
}
