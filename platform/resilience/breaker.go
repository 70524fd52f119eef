package resilience

import (
	"sync"
	"time"
)

// BreakerState is the state of a policy's circuit breaker.
type BreakerState string

// The breaker states.
const (
	BreakerClosed   BreakerState = "closed"    // calls go through
	BreakerOpen     BreakerState = "open"      // calls fail fast
	BreakerHalfOpen BreakerState = "half_open" // one trial call decides
)

// breaker is a consecutive-failure circuit breaker: threshold failures in
// a row open it; after delay it lets one trial call through (half-open),
// whose success closes it and whose failure opens it again.
type breaker struct {
	threshold int
	delay     time.Duration
	now       func() time.Time
	onChange  func(BreakerState)

	mu       sync.Mutex
	st       BreakerState // "" is closed
	failures int          // consecutive, while closed
	openedAt time.Time
	trial    bool // the half-open trial call is in flight
}

func (b *breaker) state() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.st == "" {
		return BreakerClosed
	}
	if b.st == BreakerOpen && b.now().Sub(b.openedAt) >= b.delay {
		return BreakerHalfOpen // what the next call will find
	}
	return b.st
}

// allow reports whether a call may go ahead; every allowed call must end
// in success, failure or cancel.
func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.st {
	case BreakerOpen:
		if b.now().Sub(b.openedAt) < b.delay {
			return false
		}
		b.set(BreakerHalfOpen)
		b.trial = true
		return true
	case BreakerHalfOpen:
		if b.trial {
			return false
		}
		b.trial = true
		return true
	}
	return true
}

func (b *breaker) success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures = 0
	if b.st == BreakerHalfOpen {
		b.trial = false
		b.set("")
	}
}

func (b *breaker) failure() {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.st {
	case BreakerHalfOpen:
		b.trial = false
		b.open()
	case "":
		b.failures++
		if b.failures >= b.threshold {
			b.open()
		}
	}
}

// cancel ends an allowed call that says nothing about the dependency (the
// caller gave up, the bulkhead refused it).
func (b *breaker) cancel() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.st == BreakerHalfOpen {
		b.trial = false
	}
}

func (b *breaker) open() {
	b.failures = 0
	b.openedAt = b.now()
	b.set(BreakerOpen)
}

func (b *breaker) set(s BreakerState) {
	if b.st == s {
		return
	}
	b.st = s
	if b.onChange != nil {
		if s == "" {
			s = BreakerClosed
		}
		b.onChange(s)
	}
}
