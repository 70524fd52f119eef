package identity

import (
	"context"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

func TestMemoryLimiter(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	l := NewMemoryLimiter(3, time.Minute, clock.Now)
	take := func(key string) time.Duration {
		t.Helper()
		d, err := l.Take(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for i := range 3 {
		if d := take("a"); d != 0 {
			t.Fatalf("take %d refused (%s)", i, d)
		}
		clock.Advance(10 * time.Second)
	}
	// Events at 0s, 10s, 20s; now 30s: the first leaves the window at 60s.
	if d := take("a"); d != 30*time.Second {
		t.Fatalf("fourth take = %s, want 30s", d)
	}
	if d, _ := l.Peek(ctx, "a"); d != 30*time.Second {
		t.Fatalf("peek = %s", d)
	}
	if d := take("b"); d != 0 {
		t.Fatal("keys are independent")
	}
	clock.Advance(30 * time.Second) // the first event leaves: a sliding window
	if d := take("a"); d != 0 {
		t.Fatalf("after the window slid: %s", d)
	}
	if d := take("a"); d != 10*time.Second {
		t.Fatalf("full again = %s, want 10s", d)
	}
	_ = l.Reset(ctx, "a")
	if d, _ := l.Peek(ctx, "a"); d != 0 {
		t.Fatal("reset forgets")
	}

	// Bounded memory: a flood of keys never holds more than maxKeys.
	l = NewMemoryLimiter(5, time.Hour, clock.Now)
	l.maxKeys = 100
	for i := range 1000 {
		_, _ = l.Take(ctx, "k"+strconv.Itoa(i))
	}
	if n := len(l.events); n > 100 {
		t.Fatalf("%d keys held, cap 100", n)
	}
}

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	for _, tt := range []struct {
		name, remote, xff string
		trusted           []netip.Prefix
		want              string
	}{
		{"direct", "203.0.113.5:4711", "", nil, "203.0.113.5"},
		{"untrusted forwarder is ignored", "203.0.113.5:4711", "198.51.100.1", trusted, "203.0.113.5"},
		{"no proxies configured", "10.0.0.1:4711", "198.51.100.1", nil, "10.0.0.1"},
		{"trusted proxy", "10.0.0.1:4711", "198.51.100.1", trusted, "198.51.100.1"},
		{"spoofed left entries are ignored", "10.0.0.1:4711", "1.2.3.4, 198.51.100.1", trusted, "198.51.100.1"},
		{"chain of trusted proxies", "10.0.0.1:4711", "198.51.100.1, 10.0.0.9", trusted, "198.51.100.1"},
		{"garbage entry stops the walk", "10.0.0.1:4711", "198.51.100.1, nonsense", trusted, "10.0.0.1"},
		{"all trusted", "10.0.0.1:4711", "10.0.0.2", trusted, "10.0.0.2"},
		{"ipv6 per /64", "[2001:db8:1:2:3:4:5:6]:443", "", nil, "2001:db8:1:2::/64"},
		{"ipv4-mapped ipv6", "[::ffff:203.0.113.5]:443", "", nil, "203.0.113.5"},
		{"ipv6 proxy", "[fd00::1]:443", "2001:db8::9", trusted, "2001:db8::/64"},
		{"no address", "", "", nil, ""},
		{"bad address", "pipe", "", nil, ""},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := ClientIP(r, tt.trusted); got != tt.want {
			t.Errorf("%s: ClientIP = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("the defaults must be valid: %v", err)
	}
	c := Config{}.withDefaults()
	if c.Issuer != "souk" || c.Audience != "souk" || c.AccessTTL != 15*time.Minute || c.RefreshTTL != 30*24*time.Hour ||
		c.ThrottleAccountFailures != 5 || c.ThrottleAccountWindow != 15*time.Minute || c.ThrottleIPAttempts != 20 ||
		c.ThrottleIPWindow != time.Minute || c.Argon2 != DefaultArgon2 {
		t.Fatalf("defaults = %+v", c)
	}
	for name, bad := range map[string]Config{
		"access TTL too short":      {AccessTTL: time.Second},
		"refresh shorter":           {AccessTTL: time.Hour, RefreshTTL: 30 * time.Minute},
		"margin within key cache":   {KeyRetireMargin: 30 * time.Second},
		"negative leeway":           {Leeway: -time.Second},
		"zero account failures":     {ThrottleAccountFailures: -1},
		"weak argon2":               {Argon2: Argon2Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}},
		"invalid trusted proxy":     {TrustedProxies: []netip.Prefix{{}}},
		"JWKS max-age over an hour": {JWKSMaxAge: 2 * time.Hour},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
