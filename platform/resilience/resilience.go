// Package resilience is Souk's one mechanism for calling a dependency: every
// outbound call (an HTTP client of another service, a payment provider, an
// SMTP server) goes through a Policy built from a Config, which gives it
//
//   - a timeout per attempt;
//   - retries with exponential backoff and jitter, only for calls that are
//     idempotent and only after errors that are retryable;
//   - a circuit breaker: after BreakerFailureThreshold consecutive failures
//     the dependency is not called for BreakerDelay, and calls fail fast
//     with apperr.Unavailable (then one trial call decides whether it
//     closes again);
//   - a bulkhead: at most MaxConcurrent calls in flight, so a slow
//     dependency cannot take every goroutine and connection with it.
//
// One Policy per dependency, shared by every call to it, so the breaker and
// the bulkhead see all its traffic. For HTTP clients, Transport wraps an
// http.RoundTripper in a policy.
//
// The mechanisms are the ones of github.com/failsafe-go/failsafe-go
// (consecutive-failure breaker, semaphore bulkhead, backoff with jitter
// factor), written out here in ~200 lines: failsafe-go v0.9.8 needs
// github.com/bits-and-blooms/bitset, which the module's go.sum does not
// hold, and a hand-written breaker takes an injected clock, which keeps its
// tests free of sleeps. Swapping the internals for failsafe-go later does
// not change this package's API.
package resilience

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/apperr"
)

// Defaults of Config.
const (
	DefaultTimeout                 = 5 * time.Second
	DefaultMaxAttempts             = 3
	DefaultBackoffInitial          = 50 * time.Millisecond
	DefaultBackoffMax              = 2 * time.Second
	DefaultBackoffJitter           = 0.5
	DefaultBreakerFailureThreshold = 5
	DefaultBreakerDelay            = 30 * time.Second
	DefaultMaxConcurrent           = 64
)

// Backoff is the delay between attempts: Initial before the second one,
// doubling after each retry up to Max, each delay varied at random by
// ±Jitter of itself (0 to 1) so the retries of many callers spread out.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	Jitter  float64
}

// Config describes how to call one dependency. Zero fields take the
// defaults named; Validate reports settings that cannot work.
type Config struct {
	// Name names the dependency in metrics and errors ("payments.stripe",
	// "inventory"). Required.
	Name string
	// Timeout bounds each attempt (default 5 s); the attempt's context is
	// cancelled when it expires, and the attempt fails with ErrTimeout.
	Timeout time.Duration
	// MaxAttempts is how many times an idempotent call is tried in all
	// (default 3; 1 never retries).
	MaxAttempts int
	// Backoff spaces the attempts (default 50 ms doubling to 2 s, ±50 %).
	Backoff Backoff
	// BreakerFailureThreshold is how many consecutive failures open the
	// circuit breaker (default 5).
	BreakerFailureThreshold int
	// BreakerDelay is how long the breaker stays open before it lets one
	// trial call through (default 30 s).
	BreakerDelay time.Duration
	// MaxConcurrent caps the calls in flight (default 64); a call over the
	// cap waits up to MaxWait for a slot, then fails with ErrBulkheadFull.
	MaxConcurrent int
	// MaxWait is how long a call waits for a bulkhead slot (default 0:
	// fail at once).
	MaxWait time.Duration
	// Idempotent says every call through the policy is idempotent (a
	// payment provider whose every request carries an idempotency key), so
	// each may be retried; otherwise only calls whose context is marked
	// with Idempotent are.
	Idempotent bool
	// Failure tells whether an error is the dependency's failure: it counts
	// towards opening the breaker and, for an idempotent call, is retried.
	// Default Retryable. Errors it rejects (a declined card, a validation
	// error) are the caller's and pass through untouched.
	Failure func(error) bool
	// Registerer, when set, receives the policy's metrics (see Policy).
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.Backoff.Initial == 0 {
		c.Backoff.Initial = DefaultBackoffInitial
	}
	if c.Backoff.Max == 0 {
		c.Backoff.Max = max(DefaultBackoffMax, c.Backoff.Initial)
	}
	if c.Backoff.Jitter == 0 {
		c.Backoff.Jitter = DefaultBackoffJitter
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
	if c.Failure == nil {
		c.Failure = Retryable
	}
}

// Validate reports the first setting that cannot work, naming it; unset
// fields take their defaults first.
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case c.Name == "":
		return errors.New("resilience: Name is required")
	case c.Timeout < 0:
		return fmt.Errorf("resilience %s: Timeout %v: want > 0", c.Name, c.Timeout)
	case c.MaxAttempts < 1 || c.MaxAttempts > 10:
		return fmt.Errorf("resilience %s: MaxAttempts %d: want 1 to 10", c.Name, c.MaxAttempts)
	case c.Backoff.Initial < 0 || c.Backoff.Max < c.Backoff.Initial:
		return fmt.Errorf("resilience %s: Backoff %v..%v: want 0 < Initial <= Max", c.Name, c.Backoff.Initial, c.Backoff.Max)
	case c.Backoff.Jitter < 0 || c.Backoff.Jitter > 1:
		return fmt.Errorf("resilience %s: Backoff.Jitter %v: want 0 to 1", c.Name, c.Backoff.Jitter)
	case c.BreakerFailureThreshold < 1:
		return fmt.Errorf("resilience %s: BreakerFailureThreshold %d: want at least 1", c.Name, c.BreakerFailureThreshold)
	case c.BreakerDelay < 0:
		return fmt.Errorf("resilience %s: BreakerDelay %v: want > 0", c.Name, c.BreakerDelay)
	case c.MaxConcurrent < 1:
		return fmt.Errorf("resilience %s: MaxConcurrent %d: want at least 1", c.Name, c.MaxConcurrent)
	case c.MaxWait < 0:
		return fmt.Errorf("resilience %s: MaxWait %v: want >= 0", c.Name, c.MaxWait)
	}
	return nil
}

// Errors of Do. Each reaches the caller wrapped in an apperr.Unavailable
// error, so errors.Is finds them and a client sees "unavailable".
var (
	// ErrTimeout: an attempt did not finish within Config.Timeout.
	ErrTimeout = errors.New("attempt timed out")
	// ErrBreakerOpen: the circuit breaker is open; the dependency was not called.
	ErrBreakerOpen = errors.New("circuit breaker open")
	// ErrBulkheadFull: MaxConcurrent calls were in flight; this one was not made.
	ErrBulkheadFull = errors.New("too many concurrent calls")
)

// Policy runs calls to one dependency under its Config. It is safe for
// concurrent use, and meant to be shared by every call to the dependency.
//
// With a Registerer it exports
//
//	souk_dependency_calls_total{name, outcome}   counter: success, failure, error, timeout, rejected
//	souk_dependency_attempts_total{name}         counter: attempts, retries included
//	souk_dependency_breaker_state{name}          gauge: 0 closed, 1 half-open, 2 open
type Policy struct {
	cfg     Config
	breaker *breaker
	slots   chan struct{} // the bulkhead: a semaphore of MaxConcurrent
	metrics *metrics
}

// Option tunes a Policy beyond its Config.
type Option func(*Policy)

// WithClock sets the clock the circuit breaker measures BreakerDelay with
// (default time.Now); tests move it instead of sleeping.
func WithClock(now func() time.Time) Option {
	return func(p *Policy) { p.breaker.now = now }
}

// New returns a policy for cfg, or the error of cfg.Validate.
func New(cfg Config, opts ...Option) (*Policy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	p := &Policy{
		cfg:     cfg,
		slots:   make(chan struct{}, cfg.MaxConcurrent),
		metrics: newMetrics(cfg.Registerer, cfg.Name),
	}
	p.breaker = &breaker{threshold: cfg.BreakerFailureThreshold, delay: cfg.BreakerDelay, now: time.Now, onChange: p.metrics.breaker}
	for _, opt := range opts {
		opt(p)
	}
	p.metrics.breaker(BreakerClosed)
	return p, nil
}

// MustNew is New for configurations known to be valid (tests, literals);
// it panics on an invalid one.
func MustNew(cfg Config, opts ...Option) *Policy {
	p, err := New(cfg, opts...)
	if err != nil {
		panic(err)
	}
	return p
}

// Name is the dependency's name.
func (p *Policy) Name() string { return p.cfg.Name }

// Config returns the policy's configuration, defaults filled in.
func (p *Policy) Config() Config { return p.cfg }

// State is the circuit breaker's current state.
func (p *Policy) State() BreakerState { return p.breaker.state() }

// Do calls fn under the policy, with a context bounded by the attempt
// timeout (fn must honour it). A failed attempt is retried — after a
// backoff, while attempts and ctx last — only when the call is idempotent
// (Config.Idempotent, or ctx marked with Idempotent) and Config.Failure
// says the error is the dependency's. Do returns nil, fn's last error
// unchanged, or an apperr.Unavailable error wrapping ErrTimeout,
// ErrBreakerOpen or ErrBulkheadFull (or ctx's error when ctx ended first).
func (p *Policy) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	attempts := 1
	if p.cfg.Idempotent || IsIdempotent(ctx) {
		attempts = p.cfg.MaxAttempts
	}
	var err error
	for attempt := 1; ; attempt++ {
		err = p.attempt(ctx, fn)
		if err == nil || attempt >= attempts || !p.cfg.Failure(err) || ctx.Err() != nil ||
			errors.Is(err, ErrBreakerOpen) || errors.Is(err, ErrBulkheadFull) {
			break
		}
		t := time.NewTimer(p.backoff(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return p.finish(err)
		case <-t.C:
		}
	}
	return p.finish(err)
}

// attempt makes one attempt: through the breaker and the bulkhead, under
// the attempt timeout.
func (p *Policy) attempt(ctx context.Context, fn func(ctx context.Context) error) error {
	if !p.breaker.allow() {
		return &apperr.Error{Code: apperr.Unavailable, Message: p.cfg.Name + " is unavailable (circuit breaker open); retry later",
			Err: fmt.Errorf("%s: %w", p.cfg.Name, ErrBreakerOpen)}
	}
	if err := p.acquire(ctx); err != nil {
		p.breaker.cancel()
		return err
	}
	defer func() { <-p.slots }()
	p.metrics.attempt()
	actx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	err := fn(actx)
	if err != nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		err = &apperr.Error{Code: apperr.Unavailable, Message: p.cfg.Name + " did not answer in time",
			Err: &timeoutError{name: p.cfg.Name, limit: p.cfg.Timeout, err: err}}
	}
	switch {
	case err != nil && ctx.Err() != nil:
		p.breaker.cancel() // the caller gave up: says nothing about the dependency
	case err != nil && p.cfg.Failure(err):
		p.breaker.failure()
	default:
		p.breaker.success() // an answer, even a refusal, is a healthy dependency
	}
	return err
}

// acquire takes a bulkhead slot, waiting up to MaxWait.
func (p *Policy) acquire(ctx context.Context) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	full := &apperr.Error{Code: apperr.Unavailable, Message: p.cfg.Name + " is busy; retry later",
		Err: fmt.Errorf("%s: %w", p.cfg.Name, ErrBulkheadFull)}
	if p.cfg.MaxWait <= 0 {
		return full
	}
	t := time.NewTimer(p.cfg.MaxWait)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return full
	}
}

// backoff is the pause after the attempt-th attempt: Initial doubling up
// to Max, varied by ±Jitter.
func (p *Policy) backoff(attempt int) time.Duration {
	b := p.cfg.Backoff
	d := b.Initial
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	if b.Jitter > 0 {
		d = time.Duration(float64(d) * (1 + b.Jitter*(2*rand.Float64()-1)))
	}
	return max(d, 0)
}

// finish counts the call's outcome.
func (p *Policy) finish(err error) error {
	switch {
	case err == nil:
		p.metrics.call(outcomeSuccess)
	case errors.Is(err, ErrBreakerOpen), errors.Is(err, ErrBulkheadFull):
		p.metrics.call(outcomeRejected)
	case errors.Is(err, ErrTimeout):
		p.metrics.call(outcomeTimeout)
	case p.cfg.Failure(err):
		p.metrics.call(outcomeFailure)
	default:
		p.metrics.call(outcomeError)
	}
	return err
}

// timeoutError is an attempt that ran out of time. It wraps both ErrTimeout
// and what fn returned (typically context.DeadlineExceeded).
type timeoutError struct {
	name  string
	limit time.Duration
	err   error
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("%s: attempt timed out after %v: %v", e.name, e.limit, e.err)
}

func (e *timeoutError) Unwrap() []error { return []error{ErrTimeout, e.err} }

type idempotentKey struct{}

// Idempotent returns ctx marked as the context of an idempotent call: one
// that may be repeated without changing its effect (a read, a PUT, a POST
// carrying an idempotency key), so Do may retry it.
func Idempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, idempotentKey{}, true)
}

// IsIdempotent reports whether ctx was marked by Idempotent.
func IsIdempotent(ctx context.Context) bool {
	v, _ := ctx.Value(idempotentKey{}).(bool)
	return v
}

// retryableError marks an error as retryable.
type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// MarkRetryable returns err marked as a transient failure of the
// dependency, worth retrying (Retryable reports true); nil stays nil.
func MarkRetryable(err error) error {
	if err == nil {
		return nil
	}
	return &retryableError{err: err}
}

// Retryable is the default Config.Failure: it reports whether err is a
// transient failure of the dependency that another attempt may not meet —
// an error marked with MarkRetryable, an attempt timeout, a network error
// (refused, reset, timed out, cut short), or an *apperr.Error coded
// unavailable, rate_limited or idempotency_key_in_use. Everything else (a
// validation error, a declined card, not found, the caller's own context
// cancelled) is not, and neither are the policy's own refusals
// (ErrBreakerOpen, ErrBulkheadFull), which retrying would only prolong.
func Retryable(err error) bool {
	var r *retryableError
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrBreakerOpen), errors.Is(err, ErrBulkheadFull):
		return false
	case errors.As(err, &r), errors.Is(err, ErrTimeout):
		return true
	case errors.Is(err, context.Canceled):
		return false
	}
	switch apperr.CodeOf(err) {
	case apperr.Unavailable, apperr.RateLimited, apperr.IdempotencyInFlight:
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
