package payments

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/soukhq/souk/platform/resilience"
)

// The test provider's tokens.
const (
	TokenVisa              = "tok_visa"               // authorized
	TokenDeclined          = "tok_declined"           // declined: card_declined
	TokenInsufficientFunds = "tok_insufficient_funds" // declined: insufficient_funds
	TokenTimeout           = "tok_timeout"            // never answers; never authorizes
	TokenSlow              = "tok_slow"               // authorized after the slow delay
)

// TestProvider is the built-in deterministic provider the demo and the
// tests use; it moves no money. Its behaviour is chosen by the token:
// TokenVisa is authorized; TokenDeclined and TokenInsufficientFunds are
// declined with card_declined and insufficient_funds; TokenTimeout never
// answers (the call blocks until its context ends, and nothing is
// authorized, which Lookup then confirms); TokenSlow is authorized after
// the configured delay; any other token is declined with invalid_token.
// Capture, void and refund succeed for authorizations it made (within
// their amounts).
//
// Like a real provider it is idempotent by key: it remembers every key's
// result in memory, returns it again for a repeated key, and answers
// Lookup from it. Its counters tell tests how often it was called and how
// often it actually moved money, per key. It is safe for concurrent use.
type TestProvider struct {
	name  string
	delay time.Duration

	mu       sync.Mutex
	results  map[string]ProviderResult // by operation key
	payments map[string]*testPayment   // by ref
	calls    map[opKey]int             // requests received
	effects  map[opKey]int             // money moved (at most 1 per key)
	failures int                       // the next calls that fail transiently
}

type opKey struct {
	op  Operation
	key string
}

type testPayment struct {
	amount, captured, refunded int64
	voided                     bool
}

var _ Provider = (*TestProvider)(nil)

// NewTestProvider returns a test provider named "test" whose TokenSlow
// answers take delay.
func NewTestProvider(delay time.Duration) *TestProvider {
	return &TestProvider{
		name: ProviderTest, delay: delay,
		results: map[string]ProviderResult{}, payments: map[string]*testPayment{},
		calls: map[opKey]int{}, effects: map[opKey]int{},
	}
}

// Named returns the provider under another name (a second test provider
// to fail over to, in tests).
func (p *TestProvider) Named(name string) *TestProvider {
	p.name = name
	return p
}

// Name implements Provider.
func (p *TestProvider) Name() string { return p.name }

// Calls is how many requests for the operation with the key reached the
// provider (repeats included).
func (p *TestProvider) Calls(op Operation, key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[opKey{op, key}]
}

// Effects is how many times the operation with the key moved money
// (authorized, captured, voided, refunded): 0 or 1.
func (p *TestProvider) Effects(op Operation, key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.effects[opKey{op, key}]
}

// Total is how many operations of the kind moved money, over all keys.
func (p *TestProvider) Total(op Operation) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for k, v := range p.effects {
		if k.op == op {
			n += v
		}
	}
	return n
}

// Refunded is the total refunded of the payment ref.
func (p *TestProvider) Refunded(ref string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if tp := p.payments[ref]; tp != nil {
		return tp.refunded
	}
	return 0
}

// FailNext makes the next n calls fail with a transient (retryable) error
// before doing anything, as an overloaded provider would.
func (p *TestProvider) FailNext(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failures = n
}

// errTestProviderDown is the transient failure of FailNext.
var errTestProviderDown = errors.New("test provider: temporarily unavailable")

// begin counts a call and says whether it must fail, and any result
// already recorded for the key.
func (p *TestProvider) begin(op Operation, key string) (ProviderResult, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[opKey{op, key}]++
	if p.failures > 0 {
		p.failures--
		return ProviderResult{}, false, resilience.MarkRetryable(errTestProviderDown)
	}
	r, ok := p.results[key]
	return r, ok, nil
}

// testRef is the deterministic reference of the authorization of a key.
func testRef(prefix, key string) string {
	sum := sha256.Sum256([]byte(key))
	return prefix + hex.EncodeToString(sum[:12])
}

// Authorize implements Provider.
func (p *TestProvider) Authorize(ctx context.Context, req ProviderAuthorize) (ProviderResult, error) {
	if r, done, err := p.begin(OpAuthorize, req.Key); err != nil || done {
		return r, err
	}
	switch req.Token {
	case TokenTimeout:
		<-ctx.Done()
		return ProviderResult{}, fmt.Errorf("test provider: no answer: %w", ctx.Err())
	case TokenSlow:
		t := time.NewTimer(p.delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ProviderResult{}, fmt.Errorf("test provider: no answer: %w", ctx.Err())
		case <-t.C:
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.results[req.Key]; ok { // a concurrent request with the key won
		return r, nil
	}
	var r ProviderResult
	switch req.Token {
	case TokenVisa, TokenSlow:
		r = ProviderResult{Ref: testRef("tpi_", req.Key)}
		p.payments[r.Ref] = &testPayment{amount: req.Amount.Amount}
		p.effects[opKey{OpAuthorize, req.Key}]++
	case TokenDeclined:
		r = ProviderResult{DeclineCode: "card_declined"}
	case TokenInsufficientFunds:
		r = ProviderResult{DeclineCode: "insufficient_funds"}
	default:
		r = ProviderResult{DeclineCode: "invalid_token"}
	}
	p.results[req.Key] = r
	return r, nil
}

// change applies an operation on an authorization once per key.
func (p *TestProvider) change(op Operation, key, ref string, apply func(tp *testPayment) string) (ProviderResult, error) {
	if r, done, err := p.begin(op, key); err != nil || done {
		return r, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.results[key]; ok {
		return r, nil
	}
	r := ProviderResult{Ref: ref}
	tp := p.payments[ref]
	if tp == nil {
		r.DeclineCode = "unknown_payment"
	} else if r.DeclineCode = apply(tp); r.DeclineCode == "" {
		p.effects[opKey{op, key}]++
		if op == OpRefund {
			r.OpRef = testRef("tre_", key)
		}
	}
	p.results[key] = r
	return r, nil
}

// Capture implements Provider.
func (p *TestProvider) Capture(_ context.Context, req ProviderCapture) (ProviderResult, error) {
	return p.change(OpCapture, req.Key, req.Ref, func(tp *testPayment) string {
		switch {
		case tp.voided:
			return "payment_voided"
		case tp.captured > 0:
			return "already_captured"
		case req.Amount.Amount > tp.amount:
			return "amount_too_large"
		}
		tp.captured = req.Amount.Amount
		return ""
	})
}

// Void implements Provider.
func (p *TestProvider) Void(_ context.Context, req ProviderVoid) (ProviderResult, error) {
	return p.change(OpVoid, req.Key, req.Ref, func(tp *testPayment) string {
		if tp.captured > 0 {
			return "already_captured"
		}
		tp.voided = true
		return ""
	})
}

// Refund implements Provider.
func (p *TestProvider) Refund(_ context.Context, req ProviderRefund) (ProviderResult, error) {
	return p.change(OpRefund, req.Key, req.Ref, func(tp *testPayment) string {
		if tp.refunded+req.Amount.Amount > tp.captured {
			return "amount_too_large"
		}
		tp.refunded += req.Amount.Amount
		return ""
	})
}

// Lookup implements Provider: the result recorded for the key, or
// ErrNoRecord.
func (p *TestProvider) Lookup(_ context.Context, req ProviderLookup) (ProviderResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[opKey{"lookup", req.Key}]++
	if r, ok := p.results[req.Key]; ok {
		return r, nil
	}
	return ProviderResult{}, ErrNoRecord
}
