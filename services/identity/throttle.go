package identity

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/soukhq/souk/platform/apperr"
)

// Limiter counts events per key in a sliding window and says when a key
// has had its fill. Login throttling uses two: failed logins per account,
// and attempts per client IP. The in-memory MemoryLimiter serves one
// process; a Redis implementation shares the counts between replicas.
// Implementations must be safe for concurrent use. When one returns an
// error the service logs it and lets the attempt through (fail open):
// the argon2 semaphore still bounds the cost of a flood, and a broken
// counter store must not lock every shopper out.
type Limiter interface {
	// Take records one event for key if the key is under its limit and
	// returns 0; otherwise it records nothing and returns how long until
	// the next event would be allowed.
	Take(ctx context.Context, key string) (retryAfter time.Duration, err error)
	// Peek returns what Take would, without recording anything.
	Peek(ctx context.Context, key string) (retryAfter time.Duration, err error)
	// Reset forgets every event of key.
	Reset(ctx context.Context, key string) error
}

// MemoryLimiter is a Limiter in process memory: a sliding log of at most
// limit timestamps per key. It holds at most maxKeys keys; when full it
// first drops keys whose events have all left the window, then arbitrary
// keys (so a flood of distinct keys costs bounded memory, at the price of
// forgetting some counts).
type MemoryLimiter struct {
	limit   int
	window  time.Duration
	maxKeys int
	now     func() time.Time

	mu     sync.Mutex
	events map[string][]time.Time // oldest first, at most limit
}

var _ Limiter = (*MemoryLimiter)(nil)

// DefaultLimiterKeys bounds a MemoryLimiter's keys.
const DefaultLimiterKeys = 100_000

// NewMemoryLimiter allows limit events per key in any window of the given
// length. now is the clock (nil: time.Now).
func NewMemoryLimiter(limit int, window time.Duration, now func() time.Time) *MemoryLimiter {
	if now == nil {
		now = time.Now
	}
	return &MemoryLimiter{limit: max(limit, 1), window: window, maxKeys: DefaultLimiterKeys, now: now, events: map[string][]time.Time{}}
}

// Take implements Limiter.
func (l *MemoryLimiter) Take(_ context.Context, key string) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	ev := l.live(key, now)
	if len(ev) >= l.limit {
		return ev[0].Add(l.window).Sub(now), nil
	}
	if ev == nil && len(l.events) >= l.maxKeys {
		l.evict(now)
	}
	l.events[key] = append(ev, now)
	return 0, nil
}

// Peek implements Limiter.
func (l *MemoryLimiter) Peek(_ context.Context, key string) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if ev := l.live(key, now); len(ev) >= l.limit {
		return ev[0].Add(l.window).Sub(now), nil
	}
	return 0, nil
}

// Reset implements Limiter.
func (l *MemoryLimiter) Reset(_ context.Context, key string) error {
	l.mu.Lock()
	delete(l.events, key)
	l.mu.Unlock()
	return nil
}

// live drops key's events that left the window and returns the rest.
func (l *MemoryLimiter) live(key string, now time.Time) []time.Time {
	ev := l.events[key]
	i := 0
	for i < len(ev) && !ev[i].Add(l.window).After(now) {
		i++
	}
	if i == len(ev) {
		delete(l.events, key)
		return nil
	}
	if i > 0 {
		ev = append(ev[:0], ev[i:]...)
		l.events[key] = ev
	}
	return ev
}

// evict makes room for a key: expired keys first, then arbitrary ones
// (map order) down to 90 % of the capacity.
func (l *MemoryLimiter) evict(now time.Time) {
	for k, ev := range l.events {
		if !ev[len(ev)-1].Add(l.window).After(now) {
			delete(l.events, k)
		}
	}
	for k := range l.events {
		if len(l.events) < l.maxKeys*9/10 {
			break
		}
		delete(l.events, k)
	}
}

// ThrottledError is returned by the login and registration use cases when
// an account or a client IP has had too many attempts. It unwraps to an
// apperr rate_limited error (429); the HTTP layer sends RetryAfter as the
// Retry-After header.
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string { return e.Unwrap().Error() }

// Unwrap returns the coded error a client sees.
func (e *ThrottledError) Unwrap() error {
	return apperr.New(apperr.RateLimited, "too many attempts; retry in %d seconds", e.retryAfterSeconds())
}

func (e *ThrottledError) retryAfterSeconds() int64 {
	return max(1, int64(math.Ceil(e.RetryAfter.Seconds())))
}

// retryAfterHeader sets Retry-After when err is a ThrottledError.
func retryAfterHeader(w http.ResponseWriter, err error) {
	var te *ThrottledError
	if errors.As(err, &te) {
		w.Header().Set("Retry-After", strconv.FormatInt(te.retryAfterSeconds(), 10))
	}
}

// throttle takes an event of key from l: a ThrottledError when the key is
// over its limit. Limiter failures are logged and let the attempt through.
func (s *Service) throttle(ctx context.Context, l Limiter, key string, take bool) error {
	var (
		wait time.Duration
		err  error
	)
	if take {
		wait, err = l.Take(ctx, key)
	} else {
		wait, err = l.Peek(ctx, key)
	}
	if err != nil {
		s.logger.WarnContext(ctx, "login throttle unavailable; allowing the attempt", "key", key, "error", err)
		return nil
	}
	if wait > 0 {
		return &ThrottledError{RetryAfter: wait}
	}
	return nil
}

// ClientIP returns the address the request came from, as a throttling key:
// the connection's remote address or, when that is one of the trusted
// proxies, the right-most X-Forwarded-For entry that is not. IPv6
// addresses are reduced to their /64 (one subscriber's usual allocation).
// It returns "" when no address can be read.
func ClientIP(r *http.Request, trusted []netip.Prefix) string {
	addr, ok := parseAddr(r.RemoteAddr)
	if !ok {
		return ""
	}
	if isTrusted(addr, trusted) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			hop, ok := parseAddr(strings.TrimSpace(hops[i]))
			if !ok {
				break // a garbled entry: trust nothing left of it
			}
			addr = hop
			if !isTrusted(hop, trusted) {
				break
			}
		}
	}
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

func parseAddr(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.WithZone(""), true
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// throttleKey names a limiter key.
func throttleKey(parts ...string) string { return strings.Join(parts, ":") }
