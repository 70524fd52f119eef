package payments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/resilience"
	"github.com/soukhq/souk/platform/store"
)

// Service is payments' use cases over its database and its providers. It
// is safe for concurrent use, in one process and across processes sharing
// the database: which attempt may call the provider for a key is decided by
// the database (the operations log), and amounts are admitted by
// conditional UPDATEs, never in Go memory. Every error a caller may see is
// an *apperr.Error.
type Service struct {
	db      *store.DB
	outbox  *bus.Outbox
	log     *slog.Logger
	cfg     Config
	clock   func() time.Time
	reg     prometheus.Registerer
	metrics *metrics

	custom    map[string]Provider  // WithProvider
	providers map[string]*provider // the configured ones, by name
	lease     time.Duration        // how long an attempt holds its key

	// afterProvider, when set (tests), runs after a provider call and
	// before its outcome is recorded; an error makes the attempt stop
	// there, as a crash would.
	afterProvider func(op Operation, key string) error
}

// provider is a configured provider behind its resilience policy.
type provider struct {
	Provider
	policy *resilience.Policy
}

var _ Client = (*Service)(nil)

// New returns payments on db, whose schema must have Migrations and
// bus.Migrations applied. Events go through outbox (a nil outbox writes
// the rows without waking a relay); a nil logger discards. It refuses an
// invalid cfg, and a provider name that is neither built in nor given with
// WithProvider.
func New(db *store.DB, outbox *bus.Outbox, logger *slog.Logger, cfg Config, opts ...Option) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if outbox == nil {
		outbox = bus.NewOutbox(nil)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		db: db, outbox: outbox, log: logger, cfg: cfg, clock: time.Now,
		custom: map[string]Provider{}, providers: map[string]*provider{},
	}
	for _, opt := range opts {
		opt(s)
	}
	s.metrics = newMetrics(s.reg)
	var longest time.Duration
	for _, name := range cfg.providers() {
		p, err := s.builtin(name)
		if err != nil {
			return nil, err
		}
		policy, err := resilience.New(resilience.Config{
			Name:                    "payments." + name,
			Timeout:                 cfg.Timeout,
			MaxAttempts:             cfg.ProviderMaxAttempts,
			Idempotent:              true, // every provider call carries its idempotency key
			BreakerFailureThreshold: cfg.BreakerFailureThreshold,
			BreakerDelay:            cfg.BreakerDelay,
			MaxConcurrent:           cfg.MaxConcurrent,
			Registerer:              s.reg,
		}, resilience.WithClock(s.clock))
		if err != nil {
			return nil, fmt.Errorf("payments: %w", err)
		}
		s.providers[name] = &provider{Provider: p, policy: policy}
		pc := policy.Config()
		longest = max(longest, time.Duration(pc.MaxAttempts)*(pc.Timeout+pc.Backoff.Max))
	}
	// An attempt holds its key for as long as its provider call can last,
	// retries included, and a margin; past it, the attempt is presumed
	// dead (a crash) and another may take the key over and reconcile.
	s.lease = longest + 5*time.Second
	return s, nil
}

func (s *Service) builtin(name string) (Provider, error) {
	if p, ok := s.custom[name]; ok {
		return p, nil
	}
	switch name {
	case ProviderTest:
		return NewTestProvider(s.cfg.TestProviderSlowDelay), nil
	case ProviderStripe:
		return NewStripeProvider(s.cfg.StripeAPIKey, s.cfg.StripeBaseURL, nil), nil
	}
	return nil, fmt.Errorf("payments: provider %q is neither built in (test, stripe) nor given with WithProvider", name)
}

// now is the time in microseconds: what PostgreSQL keeps, so a value read
// back equals the one written on both engines.
func (s *Service) now() time.Time { return s.clock().UTC().Truncate(time.Microsecond) }

// actor is who the audit trail names: the caller's principal, or "system".
func actor(ctx context.Context) string {
	if p, ok := auth.FromContext(ctx); ok && p.Subject != "" {
		return p.Subject
	}
	return "system"
}

// --- the use cases ---

// authorizeRecord is the request of an authorization as the operations
// log keeps it: its fingerprint, and what recording the payment needs
// later, even in another process. Never the token.
type authorizeRecord struct {
	OrderID    string `json:"order_id"`
	Provider   string `json:"provider"` // as requested: "" is the active one
	CustomerID string `json:"customer_id"`
	Email      string `json:"email"`
	Amount     int64  `json:"amount"`
	Currency   string `json:"currency"`
}

// amountRecord is the fingerprint of a capture or refund (and, without an
// amount, of a void).
type amountRecord struct {
	PaymentID string `json:"payment_id"`
	Amount    int64  `json:"amount,omitempty"`
	Currency  string `json:"currency,omitempty"`
}

func fingerprint(v any) string {
	b, _ := json.Marshal(v) // plain structs of strings and integers
	return string(b)
}

// Authorize implements Client. The key is claimed in the operations log
// before the provider is called with it; see the package ADR.
func (s *Service) Authorize(ctx context.Context, req AuthorizeRequest) (Payment, error) {
	if err := req.validate(); err != nil {
		return Payment{}, fmt.Errorf("authorize payment: %w", err)
	}
	name := req.Provider
	if name != "" && s.providers[name] == nil {
		return Payment{}, fmt.Errorf("authorize payment: %w", &apperr.Error{Code: apperr.ValidationFailed,
			Message: fmt.Sprintf("provider %q is not configured (configured: %v)", name, s.cfg.providers()),
			Fields:  []apperr.FieldError{{Field: "provider", Code: "unknown", Message: "is not a configured payment provider"}}})
	}
	if name == "" {
		var err error
		if name, err = s.activeProvider(ctx); err != nil {
			return Payment{}, fmt.Errorf("authorize payment: %w", err)
		}
	}
	spec := opSpec{
		kind: OpAuthorize, key: req.Key, paymentID: id.New(paymentPrefix), provider: name, amount: req.Amount,
		request: fingerprint(authorizeRecord{OrderID: req.OrderID, Provider: req.Provider, CustomerID: req.CustomerID,
			Email: req.Email, Amount: req.Amount.Amount, Currency: req.Amount.Currency}),
		call: func(ctx context.Context, p Provider, o opRow) (ProviderResult, error) {
			return p.Authorize(ctx, ProviderAuthorize{Key: o.Key, PaymentID: o.PaymentID, OrderID: req.OrderID, Amount: o.Amount,
				Token: req.Token, CustomerID: req.CustomerID, Email: req.Email})
		},
	}
	o, err := s.run(ctx, spec)
	if err != nil {
		return Payment{}, fmt.Errorf("authorize payment: %w", err)
	}
	if o.State == OpDeclined {
		return Payment{}, fmt.Errorf("authorize payment: %w", declinedError(o.FailureCode))
	}
	if o.payment != nil {
		return *o.payment, nil // as this call recorded it
	}
	return s.Get(ctx, o.PaymentID)
}

// Capture implements Client: amount (at most the authorized amount, in
// its currency) of an authorized payment. A capture excludes any other
// capture or void of the payment while it is in flight.
func (s *Service) Capture(ctx context.Context, key, paymentID string, amount money.Money) (Payment, error) {
	var v apperr.Validation
	checkKey(&v, key)
	checkAmount(&v, "amount", amount)
	if err := v.Err(); err != nil {
		return Payment{}, fmt.Errorf("capture payment: %w", err)
	}
	p, err := s.paymentFor(ctx, paymentID)
	if err != nil {
		return Payment{}, fmt.Errorf("capture payment: %w", err)
	}
	spec := opSpec{
		kind: OpCapture, key: key, paymentID: paymentID, provider: p.Provider, amount: amount,
		request: fingerprint(amountRecord{PaymentID: paymentID, Amount: amount.Amount, Currency: amount.Currency}),
		reserve: func(ctx context.Context, tx *store.Tx, now time.Time) error {
			return s.reserveCaptureOrVoid(ctx, tx, OpCapture, paymentID, key, amount, now)
		},
		call: func(ctx context.Context, pr Provider, o opRow) (ProviderResult, error) {
			return pr.Capture(ctx, ProviderCapture{Key: o.Key, Ref: p.ProviderRef, Amount: o.Amount})
		},
	}
	return s.finish(ctx, "capture payment", spec)
}

// Void implements Client: it releases an authorized payment that was not
// captured. Voiding a voided payment (or a failed one, which holds
// nothing) returns it as it is, whatever the key.
func (s *Service) Void(ctx context.Context, key, paymentID string) (Payment, error) {
	var v apperr.Validation
	checkKey(&v, key)
	if err := v.Err(); err != nil {
		return Payment{}, fmt.Errorf("void payment: %w", err)
	}
	p, err := s.paymentFor(ctx, paymentID)
	if err != nil {
		return Payment{}, fmt.Errorf("void payment: %w", err)
	}
	spec := opSpec{
		kind: OpVoid, key: key, paymentID: paymentID, provider: p.Provider, amount: p.Amount,
		request: fingerprint(amountRecord{PaymentID: paymentID}),
		reserve: func(ctx context.Context, tx *store.Tx, now time.Time) error {
			return s.reserveCaptureOrVoid(ctx, tx, OpVoid, paymentID, key, money.Money{}, now)
		},
		call: func(ctx context.Context, pr Provider, o opRow) (ProviderResult, error) {
			return pr.Void(ctx, ProviderVoid{Key: o.Key, Ref: p.ProviderRef})
		},
	}
	out, err := s.finish(ctx, "void payment", spec)
	if errors.Is(err, errNothingToVoid) {
		return s.Get(ctx, paymentID)
	}
	return out, err
}

// Refund implements Client: amount of what was captured, partially or
// fully. The refund is admitted — against what was captured less what was
// refunded and what refunds in flight hold — by one conditional UPDATE
// before the provider is called, so concurrent refunds never exceed the
// captured amount.
func (s *Service) Refund(ctx context.Context, key, paymentID string, amount money.Money) (Payment, error) {
	var v apperr.Validation
	checkKey(&v, key)
	checkAmount(&v, "amount", amount)
	if err := v.Err(); err != nil {
		return Payment{}, fmt.Errorf("refund payment: %w", err)
	}
	p, err := s.paymentFor(ctx, paymentID)
	if err != nil {
		return Payment{}, fmt.Errorf("refund payment: %w", err)
	}
	spec := opSpec{
		kind: OpRefund, key: key, paymentID: paymentID, provider: p.Provider, amount: amount,
		request: fingerprint(amountRecord{PaymentID: paymentID, Amount: amount.Amount, Currency: amount.Currency}),
		reserve: func(ctx context.Context, tx *store.Tx, now time.Time) error {
			return s.reserveRefund(ctx, tx, paymentID, amount, now)
		},
		call: func(ctx context.Context, pr Provider, o opRow) (ProviderResult, error) {
			return pr.Refund(ctx, ProviderRefund{Key: o.Key, Ref: p.ProviderRef, Amount: o.Amount})
		},
	}
	return s.finish(ctx, "refund payment", spec)
}

// finish runs a capture, void or refund and returns the payment after it.
func (s *Service) finish(ctx context.Context, verb string, spec opSpec) (Payment, error) {
	o, err := s.run(ctx, spec)
	if err != nil {
		return Payment{}, fmt.Errorf("%s: %w", verb, err)
	}
	if o.State == OpDeclined {
		return Payment{}, fmt.Errorf("%s: %w", verb, refusedError(o.Kind, o.FailureCode))
	}
	if o.payment != nil {
		return *o.payment, nil // as this call recorded it
	}
	return s.Get(ctx, spec.paymentID)
}

// errNothingToVoid: the payment is already voided, or failed.
var errNothingToVoid = errors.New("nothing to void")

// reserveCaptureOrVoid takes the payment for a capture or void (in the
// transaction that claims the key), or says why it cannot be. One
// conditional UPDATE takes it; the payment is read only when it refused.
func (s *Service) reserveCaptureOrVoid(ctx context.Context, tx *store.Tx, op Operation, paymentID, key string, amount money.Money, now time.Time) error {
	capture := money.Money{}
	if op == OpCapture {
		capture = amount
	}
	ok, err := claimPaymentOp(ctx, tx, paymentID, key, capture, now)
	if err != nil || ok {
		return err
	}
	p, found, err := getPayment(ctx, tx, paymentID)
	if err != nil {
		return err
	}
	if !found {
		return notFound("payment", paymentID)
	}
	if op == OpVoid && (p.Status == StatusVoided || p.Status == StatusFailed) {
		return errNothingToVoid
	}
	if op == OpCapture {
		var v apperr.Validation
		if amount.Currency != p.Amount.Currency {
			v.Addf("amount.currency", "mismatch", "the payment is in %s", p.Amount.Currency)
		} else if amount.Amount > p.Amount.Amount {
			v.Addf("amount.amount", "exceeds_authorized", "at most the authorized %s can be captured", p.Amount)
		}
		if err := v.Err(); err != nil {
			return err
		}
	}
	if p.Status != StatusAuthorized {
		hint := ""
		if op == OpVoid && p.Status != StatusFailed {
			hint = "; refund it instead"
		}
		return apperr.New(apperr.Conflict, "payment %s is %s, not authorized%s", paymentID, p.Status, hint)
	}
	return apperr.New(apperr.Conflict, "another capture or void of payment %s is in progress; retry later", paymentID)
}

// reserveRefund admits a refund (in the transaction that claims the key),
// or says why it cannot be. One conditional UPDATE admits it; the payment
// is read only when it refused.
func (s *Service) reserveRefund(ctx context.Context, tx *store.Tx, paymentID string, amount money.Money, now time.Time) error {
	ok, err := reserveRefund(ctx, tx, paymentID, amount, now)
	if err != nil || ok {
		return err
	}
	p, found, err := getPayment(ctx, tx, paymentID)
	if err != nil {
		return err
	}
	if !found {
		return notFound("payment", paymentID)
	}
	if amount.Currency != p.Amount.Currency {
		return fieldError(apperr.ValidationFailed, "amount.currency", "mismatch", fmt.Sprintf("the payment is in %s", p.Amount.Currency))
	}
	if p.Status != StatusCaptured && p.Status != StatusPartiallyRefunded {
		return apperr.New(apperr.Conflict, "payment %s is %s; only a captured payment can be refunded", paymentID, p.Status)
	}
	left := money.Money{Amount: p.Captured.Amount - p.Refunded.Amount - p.RefundPending, Currency: p.Amount.Currency}
	return fieldError(apperr.ValidationFailed, "amount.amount", "exceeds_refundable",
		fmt.Sprintf("at most %s is left to refund (captured %s, refunded %s, in flight %d)", left, p.Captured, p.Refunded, p.RefundPending))
}

func fieldError(code apperr.Code, field, fcode, msg string) error {
	return &apperr.Error{Code: code, Message: msg, Fields: []apperr.FieldError{{Field: field, Code: fcode, Message: msg}}}
}

// paymentFor reads the payment an operation is about.
func (s *Service) paymentFor(ctx context.Context, paymentID string) (paymentRow, error) {
	if err := checkPaymentID(paymentID); err != nil {
		return paymentRow{}, err
	}
	p, found, err := getPayment(ctx, s.db, paymentID)
	if err != nil {
		return paymentRow{}, fmt.Errorf("read payment: %w", err)
	}
	if !found {
		return paymentRow{}, notFound("payment", paymentID)
	}
	return p, nil
}

// Get implements Client.
func (s *Service) Get(ctx context.Context, paymentID string) (Payment, error) {
	p, err := s.paymentFor(ctx, paymentID)
	if err != nil {
		return Payment{}, fmt.Errorf("get payment: %w", err)
	}
	return p.Payment, nil
}

// ByKey implements Client. It never calls the provider to authorize:
// when the key's attempt has an unknown outcome it asks the provider
// (Lookup) and records the answer.
func (s *Service) ByKey(ctx context.Context, authorizeKey string) (Payment, error) {
	if !validKey(authorizeKey) {
		return Payment{}, fmt.Errorf("payment by key: %w", notFound("payment with key", authorizeKey))
	}
	o, err := s.run(ctx, opSpec{kind: OpAuthorize, key: authorizeKey, lookupOnly: true})
	if apperr.Is(err, apperr.IdempotencyKeyReused) { // the key of a capture, void or refund
		err = notFound("payment with key", authorizeKey)
	}
	if err != nil {
		return Payment{}, fmt.Errorf("payment by key: %w", err)
	}
	if o.State == OpAbandoned {
		return Payment{}, fmt.Errorf("payment by key: %w", apperr.New(apperr.NotFound,
			"no payment was authorized with key %q: provider %s has no record of it; the key may be retried", authorizeKey, o.Provider))
	}
	return s.Get(ctx, o.PaymentID)
}

// List returns a page of payments in id (creation) order, of one order
// when orderID is set. cursor is the NextCursor of the previous page.
func (s *Service) List(ctx context.Context, orderID string, limit int, cursor string) (httpx.Page[Payment], error) {
	if limit < 1 || limit > httpx.MaxLimit {
		limit = httpx.DefaultLimit
	}
	after := ""
	if cursor != "" {
		var err error
		if after, err = httpx.DecodeCursor(cursor); err != nil {
			return httpx.Page[Payment]{}, fmt.Errorf("list payments: %w", err)
		}
	}
	ps, err := listPayments(ctx, s.db, orderID, after, limit+1)
	if err != nil {
		return httpx.Page[Payment]{}, fmt.Errorf("list payments: %w", err)
	}
	next := ""
	if len(ps) > limit {
		ps, next = ps[:limit], ps[limit-1].ID
	}
	return httpx.NewPage(ps, next), nil
}

// Operations returns a payment's operations log, oldest first.
func (s *Service) Operations(ctx context.Context, paymentID string) ([]OperationRecord, error) {
	if _, err := s.paymentFor(ctx, paymentID); err != nil {
		return nil, fmt.Errorf("payment operations: %w", err)
	}
	ops, err := listOps(ctx, s.db, paymentID)
	if err != nil {
		return nil, fmt.Errorf("payment operations: %w", err)
	}
	return ops, nil
}

// --- failover ---

// maxSwitches is how much of the audit trail ProviderStatus shows.
const maxSwitches = 50

// activeProvider is the provider new authorizations use: the target of the
// latest switch while it is configured, else the primary.
func (s *Service) activeProvider(ctx context.Context) (string, error) {
	sw, err := listSwitches(ctx, s.db, 1)
	if err != nil {
		return "", fmt.Errorf("read active provider: %w", err)
	}
	if len(sw) == 1 && s.providers[sw[0].To] != nil {
		return sw[0].To, nil
	}
	return s.cfg.Primary, nil
}

// SwitchProvider makes new authorizations use the provider name (a
// configured one) and records who switched, when, from which and why
// (the actor is auth.FromContext's subject). Payments made before keep
// using the provider that made them. Switching to the active provider
// records nothing and returns the status as it is. Errors:
// validation_failed naming provider or reason.
func (s *Service) SwitchProvider(ctx context.Context, name, reason string) (ProviderStatus, error) {
	var v apperr.Validation
	if s.providers[name] == nil {
		v.Addf("provider", "unknown", "provider must be one of %v", s.cfg.providers())
	}
	switch {
	case reason == "":
		v.Add("reason", "required", "reason is required: the audit trail says why")
	case len(reason) > 500:
		v.Add("reason", "too_long", "reason must be at most 500 characters")
	}
	if err := v.Err(); err != nil {
		return ProviderStatus{}, fmt.Errorf("switch payment provider: %w", err)
	}
	var switched *ProviderSwitch
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		from, err := s.activeProvider(ctx)
		if err != nil {
			return err
		}
		if from == name {
			return nil
		}
		sw := ProviderSwitch{ID: id.New(switchPrefix), From: from, To: name, Reason: reason, Actor: actor(ctx), CreatedAt: s.now()}
		if err := insertSwitch(ctx, tx, sw); err != nil {
			return fmt.Errorf("record switch: %w", err)
		}
		switched = &sw
		return s.emit(ctx, tx, eventProviderSwitched(sw))
	})
	if err != nil {
		return ProviderStatus{}, fmt.Errorf("switch payment provider: %w", err)
	}
	if switched != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "payment provider switched", slog.String("from", switched.From),
			slog.String("to", switched.To), slog.String("reason", reason), slog.String("actor", switched.Actor))
	}
	return s.ProviderStatus(ctx)
}

// ProviderStatus reports the active provider, the configured ones with
// their circuit breakers' states, and the latest switches.
func (s *Service) ProviderStatus(ctx context.Context) (ProviderStatus, error) {
	active, err := s.activeProvider(ctx)
	if err != nil {
		return ProviderStatus{}, err
	}
	sws, err := listSwitches(ctx, s.db, maxSwitches)
	if err != nil {
		return ProviderStatus{}, fmt.Errorf("read provider switches: %w", err)
	}
	st := ProviderStatus{Active: active, Primary: s.cfg.Primary, Secondary: s.cfg.Secondary,
		Configured: s.cfg.providers(), Breakers: map[string]string{}, Switches: sws}
	for name, p := range s.providers {
		st.Breakers[name] = string(p.policy.State())
	}
	return st, nil
}
