package resilience

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/clocktest"
	"github.com/soukhq/souk/platform/telemetry/telemetrytest"
)

// newClock returns a test clock that moves only when told.
func newClock() *clocktest.Clock {
	return clocktest.New(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
}

// fast is a configuration whose waits are too short to slow the tests.
func fast(name string) Config {
	return Config{Name: name, Timeout: time.Second, Backoff: Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond, Jitter: 0.1}}
}

var errTransient = MarkRetryable(errors.New("connection dropped"))

// failing returns a fn failing with the errors in turn, then succeeding,
// and a counter of its calls.
func failing(errs ...error) (func(context.Context) error, *atomic.Int64) {
	var n atomic.Int64
	return func(context.Context) error {
		i := n.Add(1)
		if int(i) <= len(errs) {
			return errs[i-1]
		}
		return nil
	}, &n
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{Name: "x"}).Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Name"},
		{Config{Name: "x", Timeout: -1}, "Timeout"},
		{Config{Name: "x", MaxAttempts: 11}, "MaxAttempts"},
		{Config{Name: "x", MaxAttempts: -1}, "MaxAttempts"},
		{Config{Name: "x", Backoff: Backoff{Initial: time.Second, Max: time.Millisecond}}, "Backoff"},
		{Config{Name: "x", Backoff: Backoff{Jitter: 2}}, "Jitter"},
		{Config{Name: "x", BreakerFailureThreshold: -1}, "BreakerFailureThreshold"},
		{Config{Name: "x", BreakerDelay: -1}, "BreakerDelay"},
		{Config{Name: "x", MaxConcurrent: -1}, "MaxConcurrent"},
		{Config{Name: "x", MaxWait: -1}, "MaxWait"},
	} {
		err := tt.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tt.cfg, err, tt.want)
		}
		if _, err := New(tt.cfg); err == nil {
			t.Errorf("New(%+v) accepted an invalid config", tt.cfg)
		}
	}
	p := MustNew(Config{Name: "x"})
	got := p.Config()
	if got.Timeout != DefaultTimeout || got.MaxAttempts != DefaultMaxAttempts || got.BreakerFailureThreshold != DefaultBreakerFailureThreshold ||
		got.BreakerDelay != DefaultBreakerDelay || got.MaxConcurrent != DefaultMaxConcurrent || got.Backoff.Initial != DefaultBackoffInitial ||
		got.Backoff.Max != DefaultBackoffMax || got.Backoff.Jitter != DefaultBackoffJitter || got.Failure == nil || p.Name() != "x" {
		t.Fatalf("defaults not applied: %+v", got)
	}
}

func TestAttemptTimeout(t *testing.T) {
	cfg := fast("slow")
	cfg.Timeout = 5 * time.Millisecond
	p := MustNew(cfg)
	var calls atomic.Int64
	err := p.Do(context.Background(), func(ctx context.Context) error {
		calls.Add(1)
		<-ctx.Done() // a dependency that never answers
		return ctx.Err()
	})
	if !apperr.Is(err, apperr.Unavailable) || !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want unavailable wrapping ErrTimeout", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("a call not marked idempotent was tried %d times", calls.Load())
	}
	// Idempotent: every attempt times out, MaxAttempts of them.
	calls.Store(0)
	err = p.Do(Idempotent(context.Background()), func(ctx context.Context) error {
		calls.Add(1)
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, ErrTimeout) || calls.Load() != DefaultMaxAttempts {
		t.Fatalf("err = %v after %d attempts, want ErrTimeout after %d", err, calls.Load(), DefaultMaxAttempts)
	}
}

func TestRetriesOnlyIdempotentCallsAndRetryableErrors(t *testing.T) {
	validation := apperr.New(apperr.ValidationFailed, "bad amount")
	for _, tt := range []struct {
		name       string
		cfg        func(*Config)
		idempotent bool
		errs       []error
		wantCalls  int64
		wantErr    error
	}{
		{"idempotent call, transient errors", nil, true, []error{errTransient, errTransient}, 3, nil},
		{"idempotent policy, transient errors", func(c *Config) { c.Idempotent = true }, false, []error{errTransient}, 2, nil},
		{"idempotent call, attempts run out", nil, true, []error{errTransient, errTransient, errTransient, errTransient}, 3, errTransient},
		{"one attempt configured", func(c *Config) { c.MaxAttempts = 1 }, true, []error{errTransient}, 1, errTransient},
		{"call not idempotent", nil, false, []error{errTransient}, 1, errTransient},
		{"error not retryable", nil, true, []error{validation}, 1, validation},
		{"custom failure predicate", func(c *Config) {
			c.Failure = func(err error) bool { return apperr.Is(err, apperr.ValidationFailed) }
		}, true, []error{validation}, 2, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fast("dep")
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			p := MustNew(cfg)
			fn, calls := failing(tt.errs...)
			ctx := context.Background()
			if tt.idempotent {
				ctx = Idempotent(ctx)
			}
			err := p.Do(ctx, fn)
			if err != tt.wantErr { // the last error itself, unchanged
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if calls.Load() != tt.wantCalls {
				t.Fatalf("%d calls, want %d", calls.Load(), tt.wantCalls)
			}
		})
	}
}

func TestRetryStopsWhenTheCallerGivesUp(t *testing.T) {
	cfg := fast("dep")
	cfg.Backoff = Backoff{Initial: time.Hour, Max: time.Hour}
	p := MustNew(cfg)
	ctx, cancel := context.WithCancel(Idempotent(context.Background()))
	var calls atomic.Int64
	done := make(chan error)
	go func() {
		done <- p.Do(ctx, func(context.Context) error { calls.Add(1); return errTransient })
	}()
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel() // during the hour-long backoff
	if err := <-done; err != errTransient {
		t.Fatalf("err = %v, want the last attempt's error", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("%d calls after the caller gave up", calls.Load())
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	p := MustNew(Config{Name: "x", Backoff: Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Jitter: 0.5}})
	for attempt, base := range map[int]time.Duration{1: 10, 2: 20, 3: 40, 4: 50, 9: 50} {
		base *= time.Millisecond
		for range 50 {
			d := p.backoff(attempt)
			if d < base/2 || d > base*3/2 {
				t.Fatalf("backoff(%d) = %v, want %v ±50%%", attempt, d, base)
			}
		}
	}
	p = MustNew(Config{Name: "x", Backoff: Backoff{Initial: 10 * time.Millisecond, Max: time.Second, Jitter: 0.000001}})
	if d := p.backoff(3); d < 39*time.Millisecond || d > 41*time.Millisecond {
		t.Fatalf("backoff(3) = %v, want 40ms", d)
	}
}

func TestBreakerOpensFailsFastAndRecovers(t *testing.T) {
	clk := newClock()
	cfg := fast("psp")
	cfg.BreakerFailureThreshold = 3
	cfg.BreakerDelay = 30 * time.Second
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	p := MustNew(cfg, WithClock(clk.Now))
	ctx := context.Background()
	fail := func(context.Context) error { return errTransient }
	var calls atomic.Int64
	count := func(context.Context) error { calls.Add(1); return nil }

	// Refusals by the dependency (not failures) never open it.
	for range 5 {
		_ = p.Do(ctx, func(context.Context) error { return apperr.New("payment_declined", "no") })
	}
	// Failures below the threshold, interrupted by a success, do not either.
	_ = p.Do(ctx, fail)
	_ = p.Do(ctx, fail)
	_ = p.Do(ctx, count)
	_ = p.Do(ctx, fail)
	_ = p.Do(ctx, fail)
	if p.State() != BreakerClosed {
		t.Fatalf("state %s after non-consecutive failures", p.State())
	}
	_ = p.Do(ctx, fail) // the third in a row
	if p.State() != BreakerOpen {
		t.Fatalf("state %s, want open", p.State())
	}
	if got := telemetrytest.MustMetric(t, reg, "souk_dependency_breaker_state", "name", "psp"); got != 2 {
		t.Fatalf("breaker gauge %v, want 2", got)
	}

	calls.Store(0)
	err := p.Do(Idempotent(ctx), count)
	if !apperr.Is(err, apperr.Unavailable) || !errors.Is(err, ErrBreakerOpen) || calls.Load() != 0 {
		t.Fatalf("open breaker: err = %v after %d calls, want unavailable without calling", err, calls.Load())
	}
	clk.Advance(29 * time.Second)
	if err := p.Do(ctx, count); !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("before the delay: %v", err)
	}

	// After the delay one trial goes through; it fails: open again.
	clk.Advance(time.Second)
	if p.State() != BreakerHalfOpen {
		t.Fatalf("state %s after the delay, want half_open", p.State())
	}
	if err := p.Do(ctx, fail); err != errTransient {
		t.Fatalf("trial: %v", err)
	}
	if err := p.Do(ctx, count); !errors.Is(err, ErrBreakerOpen) || calls.Load() != 0 {
		t.Fatalf("after a failed trial: %v", err)
	}

	// While a trial is in flight every other call fails fast; its success closes it.
	clk.Advance(30 * time.Second)
	inTrial, release := make(chan struct{}), make(chan struct{})
	trialDone := make(chan error)
	go func() {
		trialDone <- p.Do(ctx, func(context.Context) error { close(inTrial); <-release; return nil })
	}()
	<-inTrial
	if err := p.Do(ctx, count); !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("during the trial: %v", err)
	}
	close(release)
	if err := <-trialDone; err != nil {
		t.Fatal(err)
	}
	if p.State() != BreakerClosed {
		t.Fatalf("state %s after a successful trial", p.State())
	}
	if err := p.Do(ctx, count); err != nil || calls.Load() != 1 {
		t.Fatalf("closed again: %v, %d calls", err, calls.Load())
	}
	if got := telemetrytest.MustMetric(t, reg, "souk_dependency_calls_total", "name", "psp", "outcome", outcomeRejected); got != 4 {
		t.Fatalf("rejected calls %v, want 4", got)
	}
}

func TestBreakerIgnoresCallsTheCallerAbandoned(t *testing.T) {
	cfg := fast("psp")
	cfg.BreakerFailureThreshold = 1
	p := MustNew(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := p.Do(ctx, func(ctx context.Context) error { return ctx.Err() })
	if !errors.Is(err, context.Canceled) || apperr.Is(err, apperr.Unavailable) {
		t.Fatalf("err = %v, want the caller's context error", err)
	}
	if p.State() != BreakerClosed {
		t.Fatal("a call the caller abandoned opened the breaker")
	}
}

func TestBulkheadCapsConcurrency(t *testing.T) {
	cfg := fast("smtp")
	cfg.MaxConcurrent = 2
	p := MustNew(cfg)
	ctx := context.Background()
	started, release := make(chan struct{}, 2), make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if err := p.Do(ctx, func(context.Context) error { started <- struct{}{}; <-release; return nil }); err != nil {
				t.Error(err)
			}
		})
	}
	<-started
	<-started
	var calls atomic.Int64
	err := p.Do(ctx, func(context.Context) error { calls.Add(1); return nil })
	if !apperr.Is(err, apperr.Unavailable) || !errors.Is(err, ErrBulkheadFull) || calls.Load() != 0 {
		t.Fatalf("third concurrent call: %v (%d calls), want ErrBulkheadFull without calling", err, calls.Load())
	}
	if p.State() != BreakerClosed {
		t.Fatal("a full bulkhead counted as a failure of the dependency")
	}

	// With MaxWait, a call waits for a slot instead.
	cfg.MaxWait = time.Minute
	p2 := MustNew(cfg)
	hold := make(chan struct{})
	for range 2 {
		wg.Go(func() { _ = p2.Do(ctx, func(context.Context) error { started <- struct{}{}; <-hold; return nil }) })
	}
	<-started
	<-started
	waited := make(chan error)
	go func() { waited <- p2.Do(ctx, func(context.Context) error { calls.Add(1); return nil }) }()
	close(hold)
	if err := <-waited; err != nil || calls.Load() != 1 {
		t.Fatalf("waiting call: %v", err)
	}
	close(release)
	wg.Wait()
}

func TestRetryable(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("boom"), false},
		{MarkRetryable(errors.New("boom")), true},
		{fmt.Errorf("call: %w", MarkRetryable(errors.New("boom"))), true},
		{apperr.New(apperr.Unavailable, "down"), true},
		{apperr.New(apperr.RateLimited, "slow down"), true},
		{apperr.New(apperr.IdempotencyInFlight, "busy"), true},
		{apperr.New(apperr.ValidationFailed, "bad"), false},
		{apperr.New("payment_declined", "no"), false},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{io.ErrUnexpectedEOF, true},
		{context.Canceled, false},
		{&apperr.Error{Code: apperr.Unavailable, Err: &timeoutError{err: context.DeadlineExceeded}}, true},
		{&apperr.Error{Code: apperr.Unavailable, Err: ErrBreakerOpen}, false},
		{&apperr.Error{Code: apperr.Unavailable, Err: ErrBulkheadFull}, false},
	} {
		if got := Retryable(tt.err); got != tt.want {
			t.Errorf("Retryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	if MarkRetryable(nil) != nil {
		t.Error("MarkRetryable(nil) != nil")
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := fast("inventory")
	cfg.Registerer = reg
	p := MustNew(cfg)
	ctx := Idempotent(context.Background())
	fn, _ := failing(errTransient)
	_ = p.Do(ctx, fn)                                                                     // success after a retry
	_ = p.Do(ctx, func(context.Context) error { return apperr.New(apperr.NotFound, "") }) // the caller's error
	_ = p.Do(context.Background(), func(context.Context) error { return errTransient })   // failure
	// A second policy on the registry shares the collectors.
	p2 := MustNew(Config{Name: "other", Registerer: reg})
	_ = p2.Do(ctx, func(context.Context) error { return nil })

	for _, tt := range []struct {
		name, outcome string
		want          float64
	}{
		{"inventory", outcomeSuccess, 1}, {"inventory", outcomeError, 1}, {"inventory", outcomeFailure, 1},
		{"inventory", outcomeTimeout, 0}, {"other", outcomeSuccess, 1},
	} {
		if got := telemetrytest.MustMetric(t, reg, "souk_dependency_calls_total", "name", tt.name, "outcome", tt.outcome); got != tt.want {
			t.Errorf("calls{name=%s,outcome=%s} = %v, want %v", tt.name, tt.outcome, got, tt.want)
		}
	}
	if got := telemetrytest.MustMetric(t, reg, "souk_dependency_attempts_total", "name", "inventory"); got != 4 {
		t.Errorf("attempts = %v, want 4", got)
	}
	if got := telemetrytest.MustMetric(t, reg, "souk_dependency_breaker_state", "name", "other"); got != 0 {
		t.Errorf("breaker state of other = %v, want 0", got)
	}
}
