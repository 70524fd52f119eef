package payments

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config.
const (
	DefaultTimeout                 = 10 * time.Second
	DefaultProviderMaxAttempts     = 3
	DefaultBreakerFailureThreshold = 5
	DefaultBreakerDelay            = 30 * time.Second
	DefaultMaxConcurrent           = 64
	DefaultTestProviderSlowDelay   = 2 * time.Second
	DefaultReconcileInterval       = time.Minute
)

// Config configures payments. Zero fields take the defaults named.
type Config struct {
	// Primary is the provider new authorizations use until an operator
	// switches (default "test"): "test" or "stripe", or the name of a
	// provider given with WithProvider.
	Primary string
	// Secondary is the provider an operator may switch to at run time
	// (POST /admin/payments/provider); empty for none. Only Primary and
	// Secondary are ever used: a request naming another provider is
	// refused, so a production install without "test" cannot be paid with
	// test tokens.
	Secondary string
	// Timeout bounds each provider call attempt (default 10 s).
	Timeout time.Duration
	// ProviderMaxAttempts is how often a provider call is tried in all when
	// it fails transiently (default 3); every call carries its idempotency
	// key, so a retry never moves money twice.
	ProviderMaxAttempts int
	// BreakerFailureThreshold consecutive provider failures open its
	// circuit breaker (default 5) for BreakerDelay (default 30 s): calls
	// then fail fast with unavailable, a signal to switch providers.
	BreakerFailureThreshold int
	BreakerDelay            time.Duration
	// MaxConcurrent caps the calls in flight per provider (default 64).
	MaxConcurrent int
	// TestProviderSlowDelay is how long the test provider takes to answer
	// for tok_slow (default 2 s); it must be below Timeout.
	TestProviderSlowDelay time.Duration
	// ReconcileInterval is how often Run asks the providers about
	// operations whose outcome is unknown (default 1m; at least 1s).
	ReconcileInterval time.Duration
	// StripeAPIKey is the Stripe secret key (sk_…); required when Stripe is
	// the primary or secondary.
	StripeAPIKey string
	// StripeBaseURL is Stripe's API address (default
	// https://api.stripe.com; stripe-mock's in tests).
	StripeBaseURL string
}

func (c *Config) setDefaults() {
	if c.Primary == "" {
		c.Primary = ProviderTest
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ProviderMaxAttempts == 0 {
		c.ProviderMaxAttempts = DefaultProviderMaxAttempts
	}
	if c.BreakerFailureThreshold == 0 {
		c.BreakerFailureThreshold = DefaultBreakerFailureThreshold
	}
	if c.BreakerDelay == 0 {
		c.BreakerDelay = DefaultBreakerDelay
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if c.TestProviderSlowDelay == 0 {
		c.TestProviderSlowDelay = DefaultTestProviderSlowDelay
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = DefaultReconcileInterval
	}
}

// Validate reports the first setting that cannot work, naming it; unset
// fields take their defaults first. Provider names other than "test" and
// "stripe" are accepted here; New refuses them unless WithProvider
// supplies them.
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case !validProviderName(c.Primary):
		return fmt.Errorf("payments: Primary %q: want a provider name such as test or stripe", c.Primary)
	case c.Secondary != "" && !validProviderName(c.Secondary):
		return fmt.Errorf("payments: Secondary %q: want a provider name such as test or stripe", c.Secondary)
	case c.Secondary == c.Primary:
		return fmt.Errorf("payments: Secondary %q is the Primary", c.Secondary)
	case c.Timeout < 10*time.Millisecond || c.Timeout > 2*time.Minute:
		return fmt.Errorf("payments: Timeout %v: want 10ms to 2m", c.Timeout)
	case c.ProviderMaxAttempts < 1 || c.ProviderMaxAttempts > 10:
		return fmt.Errorf("payments: ProviderMaxAttempts %d: want 1 to 10", c.ProviderMaxAttempts)
	case c.BreakerFailureThreshold < 1:
		return fmt.Errorf("payments: BreakerFailureThreshold %d: want at least 1", c.BreakerFailureThreshold)
	case c.BreakerDelay < 0:
		return fmt.Errorf("payments: BreakerDelay %v: want > 0", c.BreakerDelay)
	case c.MaxConcurrent < 1:
		return fmt.Errorf("payments: MaxConcurrent %d: want at least 1", c.MaxConcurrent)
	case c.TestProviderSlowDelay < 0 || (c.uses(ProviderTest) && c.TestProviderSlowDelay >= c.Timeout):
		return fmt.Errorf("payments: TestProviderSlowDelay %v: want below Timeout %v", c.TestProviderSlowDelay, c.Timeout)
	case c.ReconcileInterval < time.Second:
		return fmt.Errorf("payments: ReconcileInterval %v: want at least 1s", c.ReconcileInterval)
	case c.uses(ProviderStripe) && c.StripeAPIKey == "":
		return errors.New("payments: StripeAPIKey is required when stripe is a provider")
	}
	if c.StripeBaseURL != "" {
		if u, err := url.Parse(c.StripeBaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("payments: StripeBaseURL %q: want an http(s) URL", c.StripeBaseURL)
		}
	}
	return nil
}

func (c Config) uses(name string) bool { return c.Primary == name || c.Secondary == name }

// providers lists the configured provider names, primary first.
func (c Config) providers() []string {
	if c.Secondary == "" {
		return []string{c.Primary}
	}
	return []string{c.Primary, c.Secondary}
}

func validProviderName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' && r != '-' {
			return false
		}
	}
	return true
}

// RegisterFlags binds the settings to flags named payments-… on fs (the
// composition root calls it; the Stripe key is better given by
// environment, which the composition root maps).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Primary, "payments-primary", ProviderTest, "payment provider new authorizations use: test or stripe")
	fs.StringVar(&c.Secondary, "payments-secondary", "", "payment provider operators may fail over to (empty: none)")
	fs.DurationVar(&c.Timeout, "payments-timeout", DefaultTimeout, "timeout of each payment provider call attempt")
	fs.DurationVar(&c.TestProviderSlowDelay, "payments-test-slow-delay", DefaultTestProviderSlowDelay, "how long the test provider takes for tok_slow")
	fs.DurationVar(&c.ReconcileInterval, "payments-reconcile-interval", DefaultReconcileInterval, "how often payment operations with an unknown outcome are reconciled with their provider")
	fs.StringVar(&c.StripeBaseURL, "payments-stripe-url", "", "Stripe API base URL (default https://api.stripe.com)")
}

// Option tunes a Service beyond its Config.
type Option func(*Service)

// WithMetrics registers the service's Prometheus metrics, and its
// providers' resilience metrics, on reg (nil: no metrics).
func WithMetrics(reg prometheus.Registerer) Option {
	return func(s *Service) { s.reg = reg }
}

// WithClock sets the clock (default time.Now) used for timestamps, the
// lease of an operation in flight and the breakers; tests move it instead
// of waiting.
func WithClock(now func() time.Time) Option {
	return func(s *Service) { s.clock = now }
}

// WithProvider makes p available under p.Name(), in place of the built-in
// provider of that name (tests pass their own TestProvider to read its
// counters; an installation may add an adapter). Config.Primary or
// Secondary must name it for it to be used.
func WithProvider(p Provider) Option {
	return func(s *Service) { s.custom[p.Name()] = p }
}
