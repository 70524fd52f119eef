package orders

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/services/cart"
	"github.com/soukhq/souk/services/inventory"
	"github.com/soukhq/souk/services/payments"
	"github.com/soukhq/souk/services/pricing"
)

// Defaults of Config.
const (
	DefaultWaitBudget      = 5 * time.Second
	DefaultSagaDeadline    = 2 * time.Minute
	DefaultStepTimeout     = 30 * time.Second
	DefaultCallTimeout     = 5 * time.Second
	DefaultWorkers         = 16
	DefaultPollInterval    = time.Second
	DefaultLeaseTTL        = 30 * time.Second
	DefaultRetryBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff      = 5 * time.Second
	DefaultReservationTTL  = 15 * time.Minute
	DefaultBreakerFailures = 5
	DefaultBreakerDelay    = 30 * time.Second
)

// Config tunes the orders service. Zero fields take the defaults named; the
// composition root fills it (RegisterFlags) and calls Validate before New.
type Config struct {
	// WaitBudget is how long POST /store/carts/{id}/checkout waits for the
	// saga before it answers 202 with the pending order (default 5s; 0 to
	// 1 min). The saga goes on either way.
	WaitBudget time.Duration
	// SagaDeadline is how long a saga may take from checkout until its
	// point of no return (the payment captured, or the stock committed
	// when capture waits for fulfilment); a saga still short of it at its
	// deadline is compensated with reason deadline_exceeded (default 2m).
	SagaDeadline time.Duration
	// StepTimeout is how long one step keeps retrying transient failures
	// (unavailable, internal errors, timeouts) before the saga gives up on
	// it and compensates (default 30s). Compensations never give up.
	StepTimeout time.Duration
	// CallTimeout bounds each call to a participant (default 5s).
	CallTimeout time.Duration
	// CapturePolicy is when payments are captured: on_confirmation
	// (default) or on_fulfilment.
	CapturePolicy string
	// Workers is how many sagas this process runs at once (default 16).
	Workers int
	// PollInterval is how often the executor looks for sagas that are due
	// (retries after a backoff, sagas of crashed processes) besides the
	// ones checkout hands it directly (default 1s).
	PollInterval time.Duration
	// LeaseTTL is how long a claimed saga stays with its process without
	// progress; a crashed process's sagas are taken over after it
	// (default 30s; at least twice CallTimeout).
	LeaseTTL time.Duration
	// RetryBackoff is the pause before a step's second attempt; it doubles
	// with each attempt, with jitter, up to MaxBackoff (defaults 100ms, 5s).
	RetryBackoff time.Duration
	MaxBackoff   time.Duration
	// BreakerFailures consecutive transient failures of a participant
	// open its circuit breaker (default 5) for BreakerDelay (default 30s):
	// calls to it then fail fast, and the sagas that need it back off
	// instead of piling up on it. Every participant call goes through its
	// platform/resilience policy: CallTimeout, the breaker, and a
	// bulkhead of 4×Workers+64 calls in flight.
	BreakerFailures int
	BreakerDelay    time.Duration
	// ReservationTTL is how long inventory holds an order's stock before
	// it is committed (default 15m, whole seconds; longer than
	// SagaDeadline, so an unfinished saga is compensated before its
	// reservation could expire).
	ReservationTTL time.Duration
}

func (c *Config) setDefaults() {
	if c.WaitBudget == 0 {
		c.WaitBudget = DefaultWaitBudget
	}
	if c.SagaDeadline == 0 {
		c.SagaDeadline = DefaultSagaDeadline
	}
	if c.StepTimeout == 0 {
		c.StepTimeout = DefaultStepTimeout
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.CapturePolicy == "" {
		c.CapturePolicy = CaptureOnConfirmation
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = max(DefaultMaxBackoff, c.RetryBackoff)
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = DefaultBreakerFailures
	}
	if c.BreakerDelay == 0 {
		c.BreakerDelay = DefaultBreakerDelay
	}
	if c.ReservationTTL == 0 {
		c.ReservationTTL = max(DefaultReservationTTL, (c.SagaDeadline + time.Minute).Truncate(time.Second))
	}
}

// Validate reports the first setting that cannot work, naming it; unset
// fields take their defaults first.
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case c.WaitBudget < 0 || c.WaitBudget > time.Minute:
		return fmt.Errorf("orders: WaitBudget %v: want 0 to 1m", c.WaitBudget)
	case c.CallTimeout < time.Millisecond:
		return fmt.Errorf("orders: CallTimeout %v: want at least 1ms", c.CallTimeout)
	case c.StepTimeout < c.CallTimeout:
		return fmt.Errorf("orders: StepTimeout %v: want at least CallTimeout %v", c.StepTimeout, c.CallTimeout)
	case c.SagaDeadline < c.StepTimeout:
		return fmt.Errorf("orders: SagaDeadline %v: want at least StepTimeout %v", c.SagaDeadline, c.StepTimeout)
	case c.CapturePolicy != CaptureOnConfirmation && c.CapturePolicy != CaptureOnFulfilment:
		return fmt.Errorf("orders: CapturePolicy %q: want %s or %s", c.CapturePolicy, CaptureOnConfirmation, CaptureOnFulfilment)
	case c.Workers < 1 || c.Workers > 1024:
		return fmt.Errorf("orders: Workers %d: want 1 to 1024", c.Workers)
	case c.PollInterval < time.Millisecond:
		return fmt.Errorf("orders: PollInterval %v: want at least 1ms", c.PollInterval)
	case c.LeaseTTL < 2*c.CallTimeout:
		return fmt.Errorf("orders: LeaseTTL %v: want at least twice CallTimeout (%v)", c.LeaseTTL, 2*c.CallTimeout)
	case c.RetryBackoff <= 0 || c.MaxBackoff < c.RetryBackoff:
		return fmt.Errorf("orders: RetryBackoff %v / MaxBackoff %v: want 0 < RetryBackoff <= MaxBackoff", c.RetryBackoff, c.MaxBackoff)
	case c.BreakerFailures < 1 || c.BreakerDelay < 0:
		return fmt.Errorf("orders: BreakerFailures %d / BreakerDelay %v: want at least 1 and a positive delay", c.BreakerFailures, c.BreakerDelay)
	case c.ReservationTTL%time.Second != 0 || c.ReservationTTL < time.Second || c.ReservationTTL > inventory.MaxReservationTTL:
		return fmt.Errorf("orders: ReservationTTL %v: want whole seconds from 1s to %v", c.ReservationTTL, inventory.MaxReservationTTL)
	case c.ReservationTTL <= c.SagaDeadline:
		return fmt.Errorf("orders: ReservationTTL %v: want longer than SagaDeadline %v", c.ReservationTTL, c.SagaDeadline)
	}
	return nil
}

// RegisterFlags binds the settings to flags named orders-… on fs (the
// composition root calls it; components never read flags themselves).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.WaitBudget, "orders-wait-budget", DefaultWaitBudget,
		"how long a checkout request waits for its saga before answering 202")
	fs.DurationVar(&c.SagaDeadline, "orders-saga-deadline", DefaultSagaDeadline,
		"how long a checkout saga may run before it is compensated")
	fs.DurationVar(&c.StepTimeout, "orders-step-timeout", DefaultStepTimeout,
		"how long one saga step retries transient failures before the saga compensates")
	fs.DurationVar(&c.CallTimeout, "orders-call-timeout", DefaultCallTimeout,
		"timeout of each call to a participant service")
	fs.StringVar(&c.CapturePolicy, "orders-capture-policy", CaptureOnConfirmation,
		"when payments are captured: on_confirmation or on_fulfilment")
	fs.IntVar(&c.Workers, "orders-workers", DefaultWorkers, "sagas run at once by this process")
}

// CartClient is what orders asks the cart; cart.Client satisfies it.
type CartClient interface {
	CheckoutView(ctx context.Context, cartID string, caller cart.Caller) (cart.CheckoutCart, error)
	Validate(ctx context.Context, cartID string) error
	MarkCheckedOut(ctx context.Context, cartID, orderID string) error
}

// PricingClient is what orders asks pricing; pricing.Client satisfies it.
type PricingClient interface {
	Quote(ctx context.Context, req pricing.QuoteRequest) (pricing.Quote, error)
	Redeem(ctx context.Context, req pricing.RedeemRequest) (pricing.Redemption, error)
	Release(ctx context.Context, key string) error
}

// InventoryClient is what orders asks the inventory; inventory.Client
// satisfies it.
type InventoryClient interface {
	Reserve(ctx context.Context, req inventory.ReserveRequest) (inventory.Reservation, error)
	Release(ctx context.Context, ref string) (inventory.Reservation, error)
	Commit(ctx context.Context, ref, orderID string) (inventory.Reservation, error)
	Restock(ctx context.Context, ref string) (inventory.Reservation, error)
	GetReservation(ctx context.Context, ref string) (inventory.Reservation, error)
}

// PaymentsClient is what orders asks payments; payments.Client satisfies it.
type PaymentsClient interface {
	Authorize(ctx context.Context, req payments.AuthorizeRequest) (payments.Payment, error)
	Capture(ctx context.Context, key, paymentID string, amount money.Money) (payments.Payment, error)
	Void(ctx context.Context, key, paymentID string) (payments.Payment, error)
	Refund(ctx context.Context, key, paymentID string, amount money.Money) (payments.Payment, error)
	Get(ctx context.Context, paymentID string) (payments.Payment, error)
	ByKey(ctx context.Context, authorizeKey string) (payments.Payment, error)
}

var (
	_ CartClient      = cart.Client(nil)
	_ PricingClient   = pricing.Client(nil)
	_ InventoryClient = inventory.Client(nil)
	_ PaymentsClient  = payments.Client(nil)
)

// Deps are the participants of the checkout saga.
type Deps struct {
	Carts     CartClient
	Pricing   PricingClient
	Inventory InventoryClient
	Payments  PaymentsClient
}

func (d Deps) validate() error {
	if d.Carts == nil || d.Pricing == nil || d.Inventory == nil || d.Payments == nil {
		return errors.New("orders: Deps needs Carts, Pricing, Inventory and Payments")
	}
	return nil
}

// Option tunes a Service beyond its Config.
type Option func(*Service)

// WithMetrics registers the service's Prometheus metrics, and its
// participants' resilience metrics, on reg (nil: no metrics). Registering
// twice on one registry shares the collectors.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(s *Service) { s.reg = reg }
}

// WithClock sets the clock (default time.Now). Deadlines, leases and
// backoffs are measured on it, so tests move it instead of waiting.
func WithClock(now func() time.Time) Option {
	return func(s *Service) {
		s.now = func() time.Time { return now().UTC().Truncate(time.Microsecond) }
	}
}

// withHooks installs test hooks (see hooks).
func withHooks(h hooks) Option {
	return func(s *Service) { s.hooks = h }
}
