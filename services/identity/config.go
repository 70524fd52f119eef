package identity

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Config tunes the identity service. Zero fields take the defaults named;
// the composition root fills it from flags and environment and calls
// Validate before New.
type Config struct {
	// Issuer is the access tokens' "iss" claim, and what verifiers expect
	// (default "souk").
	Issuer string
	// Audience is the access tokens' "aud" claim, and what verifiers expect
	// (default "souk").
	Audience string
	// AccessTTL is how long an access token is valid (default 15m). It also
	// bounds how long a revoked session or a disabled staff user keeps
	// working: access tokens are verified without a database look-up.
	AccessTTL time.Duration
	// RefreshTTL is how long a refresh token is valid after it was issued
	// (default 30 days); every refresh issues a new one.
	RefreshTTL time.Duration
	// Leeway is the clock skew tolerated on exp/iat (default 30s).
	Leeway time.Duration
	// KeyRetireMargin is added to AccessTTL (and Leeway) to decide when a
	// rotated-out signing key stops being published and accepted
	// (default 5m). It must exceed the signing key cache's lifetime (1m),
	// because another identity process may sign with the old key until its
	// cache expires.
	KeyRetireMargin time.Duration
	// JWKSMaxAge is the Cache-Control max-age of GET /.well-known/jwks.json
	// (default 5m).
	JWKSMaxAge time.Duration

	// ThrottleAccountFailures failed logins per account within
	// ThrottleAccountWindow lock further attempts on it out (429) until the
	// oldest failure leaves the window (defaults 5 and 15m). A successful
	// login forgets the account's failures.
	ThrottleAccountFailures int
	ThrottleAccountWindow   time.Duration
	// ThrottleIPAttempts login (and registration) attempts per client IP
	// within ThrottleIPWindow are allowed (defaults 20 and 1m); IPv6
	// addresses count per /64.
	ThrottleIPAttempts int
	ThrottleIPWindow   time.Duration
	// TrustedProxies are the networks whose X-Forwarded-For is believed
	// (the gateway or load balancer in front of identity when split). The
	// client IP is then the right-most address in X-Forwarded-For that is
	// not itself a trusted proxy. Default: none; the client IP is the
	// connection's remote address.
	TrustedProxies []netip.Prefix

	// Argon2 are the password hashing parameters (default DefaultArgon2).
	// Raising them is safe: stored hashes keep their own parameters and are
	// rehashed with the new ones at the next successful login.
	Argon2 Argon2Params
}

// keyCacheTTL is how long a process trusts its in-memory copy of the
// signing keys before reading them again (an unknown kid reloads sooner).
const keyCacheTTL = time.Minute

// The defaults of Config.
const (
	DefaultIssuer                  = "souk"
	DefaultAudience                = "souk"
	DefaultAccessTTL               = 15 * time.Minute
	DefaultRefreshTTL              = 30 * 24 * time.Hour
	DefaultLeeway                  = 30 * time.Second
	DefaultKeyRetireMargin         = 5 * time.Minute
	DefaultJWKSMaxAge              = 5 * time.Minute
	DefaultThrottleAccountFailures = 5
	DefaultThrottleAccountWindow   = 15 * time.Minute
	DefaultThrottleIPAttempts      = 20
	DefaultThrottleIPWindow        = time.Minute
)

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Issuer == "" {
		c.Issuer = DefaultIssuer
	}
	if c.Audience == "" {
		c.Audience = DefaultAudience
	}
	def(&c.AccessTTL, DefaultAccessTTL)
	def(&c.RefreshTTL, DefaultRefreshTTL)
	def(&c.Leeway, DefaultLeeway)
	def(&c.KeyRetireMargin, DefaultKeyRetireMargin)
	def(&c.JWKSMaxAge, DefaultJWKSMaxAge)
	def(&c.ThrottleAccountWindow, DefaultThrottleAccountWindow)
	def(&c.ThrottleIPWindow, DefaultThrottleIPWindow)
	if c.ThrottleAccountFailures == 0 {
		c.ThrottleAccountFailures = DefaultThrottleAccountFailures
	}
	if c.ThrottleIPAttempts == 0 {
		c.ThrottleIPAttempts = DefaultThrottleIPAttempts
	}
	if c.Argon2 == (Argon2Params{}) {
		c.Argon2 = DefaultArgon2
	}
	return c
}

// Validate reports every setting that cannot work, after defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.AccessTTL < time.Minute || c.AccessTTL > 24*time.Hour {
		bad("access TTL %s: want 1m to 24h", c.AccessTTL)
	}
	if c.RefreshTTL <= c.AccessTTL || c.RefreshTTL > 365*24*time.Hour {
		bad("refresh TTL %s: want more than the access TTL and at most 365 days", c.RefreshTTL)
	}
	if c.Leeway < 0 || c.Leeway > 5*time.Minute {
		bad("leeway %s: want 0 to 5m", c.Leeway)
	}
	if c.KeyRetireMargin <= keyCacheTTL {
		bad("key retire margin %s: want more than the signing key cache lifetime (%s)", c.KeyRetireMargin, keyCacheTTL)
	}
	if c.JWKSMaxAge < 0 || c.JWKSMaxAge > time.Hour {
		bad("JWKS max-age %s: want 0 to 1h", c.JWKSMaxAge)
	}
	if c.ThrottleAccountFailures < 1 || c.ThrottleAccountWindow <= 0 {
		bad("account throttle %d per %s: want at least 1 per positive window", c.ThrottleAccountFailures, c.ThrottleAccountWindow)
	}
	if c.ThrottleIPAttempts < 1 || c.ThrottleIPWindow <= 0 {
		bad("IP throttle %d per %s: want at least 1 per positive window", c.ThrottleIPAttempts, c.ThrottleIPWindow)
	}
	for _, p := range c.TrustedProxies {
		if !p.IsValid() {
			bad("trusted proxy %v: not a network", p)
		}
	}
	if err := c.Argon2.validate(); err != nil {
		bad("argon2: %w", err)
	}
	return errors.Join(errs...)
}
