package identity

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
)

// JWKSPath is where identity publishes its signing keys.
const JWKSPath = "/.well-known/jwks.json"

// JWKSAuthenticator authenticates bearer tokens in a process that does not
// run identity: access tokens (JWTs) are verified locally with the public
// keys of identity's JWKS, fetched once and cached, so a request costs no
// call to identity; API key secrets ("sk_…"), which only identity's
// database knows, are delegated (by default to an HTTPAuthenticator asking
// GET /admin/auth/whoami at the JWKS URL's origin).
//
// The JWKS is fetched again when the cache is older than its TTL, and when
// a token names an unknown kid (a key rotated in), at most once per minimum
// refresh interval, so forged kids cannot make it hammer identity. When a
// fetch fails, keys already known keep working (and the failure is
// logged); without any, verification is unavailable (503), never a 401.
// It is safe for concurrent use.
type JWKSAuthenticator struct {
	url        string
	hc         *http.Client
	apiKeys    auth.Authenticator
	verify     verifier
	ttl        time.Duration
	minRefresh time.Duration
	logger     *slog.Logger

	fetchMu sync.Mutex // one fetch at a time; held while fetching

	mu        sync.RWMutex
	keys      map[string]ed25519.PublicKey
	fetchedAt time.Time // last successful fetch
	triedAt   time.Time // last attempt
}

var _ auth.Authenticator = (*JWKSAuthenticator)(nil)

// JWKSOption tunes a JWKSAuthenticator.
type JWKSOption func(*JWKSAuthenticator)

// WithTokenIssuer sets the "iss" access tokens must carry (default "souk").
func WithTokenIssuer(iss string) JWKSOption {
	return func(a *JWKSAuthenticator) { a.verify.issuer = iss }
}

// WithTokenAudience sets the "aud" access tokens must carry (default "souk").
func WithTokenAudience(aud string) JWKSOption {
	return func(a *JWKSAuthenticator) { a.verify.audience = aud }
}

// WithLeeway sets the clock skew tolerated on exp and iat (default 30s).
func WithLeeway(d time.Duration) JWKSOption {
	return func(a *JWKSAuthenticator) { a.verify.leeway = d }
}

// WithJWKSCacheTTL sets how long a fetched JWKS is used before it is
// fetched again (default 5m).
func WithJWKSCacheTTL(d time.Duration) JWKSOption { return func(a *JWKSAuthenticator) { a.ttl = d } }

// WithJWKSMinRefresh sets the minimum time between two fetches (default 10s).
func WithJWKSMinRefresh(d time.Duration) JWKSOption {
	return func(a *JWKSAuthenticator) { a.minRefresh = d }
}

// WithAPIKeyAuthenticator sets who authenticates API key secrets.
func WithAPIKeyAuthenticator(authn auth.Authenticator) JWKSOption {
	return func(a *JWKSAuthenticator) { a.apiKeys = authn }
}

// WithJWKSClock sets the clock (default time.Now).
func WithJWKSClock(now func() time.Time) JWKSOption {
	return func(a *JWKSAuthenticator) { a.verify.now = now }
}

// WithJWKSLogger sets the logger of fetch failures (default: discard).
func WithJWKSLogger(l *slog.Logger) JWKSOption { return func(a *JWKSAuthenticator) { a.logger = l } }

// NewJWKSAuthenticator returns an authenticator verifying access tokens
// with the JWKS at jwksURL ("http://identity:8080/.well-known/jwks.json").
// hc should carry a timeout (nil: a client with a 5 s timeout).
func NewJWKSAuthenticator(jwksURL string, hc *http.Client, opts ...JWKSOption) *JWKSAuthenticator {
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	a := &JWKSAuthenticator{
		url:        jwksURL,
		hc:         hc,
		ttl:        5 * time.Minute,
		minRefresh: 10 * time.Second,
		logger:     slog.New(slog.DiscardHandler),
		verify:     verifier{issuer: DefaultIssuer, audience: DefaultAudience, leeway: DefaultLeeway, now: time.Now},
	}
	a.verify.key = a.key
	for _, opt := range opts {
		opt(a)
	}
	if a.apiKeys == nil {
		base := strings.TrimSuffix(jwksURL, JWKSPath)
		if u, err := url.Parse(jwksURL); err == nil && u.Host != "" {
			base = u.Scheme + "://" + u.Host
		}
		a.apiKeys = NewHTTPAuthenticator(base, hc)
	}
	return a
}

// Authenticate implements auth.Authenticator.
func (a *JWKSAuthenticator) Authenticate(ctx context.Context, token string) (auth.Principal, error) {
	switch {
	case strings.HasPrefix(token, SecretPrefix):
		return a.apiKeys.Authenticate(ctx, token)
	case looksLikeJWT(token):
		c, err := a.VerifyAccessToken(ctx, token)
		if err != nil {
			return auth.Principal{}, err
		}
		return c.Principal(), nil
	}
	return auth.Principal{}, apperr.New(apperr.Unauthorized, "invalid bearer token")
}

// VerifyAccessToken implements AccessTokenVerifier: the same checks as the
// identity service makes, with the keys of the JWKS.
func (a *JWKSAuthenticator) VerifyAccessToken(ctx context.Context, token string) (Claims, error) {
	return a.verify.verify(ctx, token)
}

// key returns the public key kid, fetching the JWKS when the cache is
// stale or does not know kid (within the refresh rate limit).
func (a *JWKSAuthenticator) key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	pub, known, fresh := a.cached(kid)
	if known && fresh {
		return pub, nil
	}
	a.fetchMu.Lock()
	defer a.fetchMu.Unlock()
	// Another caller may have fetched while this one waited.
	if pub, known, fresh = a.cached(kid); known && fresh {
		return pub, nil
	}
	a.mu.RLock()
	haveKeys, recent := a.keys != nil, a.verify.now().Sub(a.triedAt) < a.minRefresh
	a.mu.RUnlock()
	if recent {
		switch {
		case known:
			return pub, nil
		case haveKeys:
			return nil, errUnknownKey
		}
		return nil, apperr.New(apperr.Unavailable, "the identity service's signing keys cannot be fetched")
	}
	// The fetch serves every waiting caller: one caller giving up must not
	// fail it for the others (its own timeout still bounds it).
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
	keys, err := a.fetch(fctx)
	cancel()
	a.mu.Lock()
	a.triedAt = a.verify.now()
	if err == nil {
		a.keys, a.fetchedAt = keys, a.triedAt
	}
	a.mu.Unlock()
	if err != nil {
		a.logger.WarnContext(ctx, "fetch JWKS", "url", a.url, "error", err)
		if known {
			return pub, nil // a stale key is better than refusing every token
		}
		if haveKeys {
			return nil, apperr.Wrap(err, apperr.Unavailable, "the identity service's signing keys cannot be refreshed")
		}
		return nil, apperr.Wrap(err, apperr.Unavailable, "the identity service's signing keys cannot be fetched")
	}
	if pub, ok := keys[kid]; ok {
		return pub, nil
	}
	return nil, errUnknownKey
}

func (a *JWKSAuthenticator) cached(kid string) (pub ed25519.PublicKey, known, fresh bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	pub, known = a.keys[kid]
	return pub, known, a.keys != nil && a.verify.now().Sub(a.fetchedAt) < a.ttl
}

// maxJWKSBytes bounds the JWKS document read; jwksFetchTimeout one fetch.
const (
	maxJWKSBytes     = 1 << 20
	jwksFetchTimeout = 10 * time.Second
)

// fetch reads the JWKS and returns its Ed25519 signing keys by kid.
func (a *JWKSAuthenticator) fetch(ctx context.Context) (map[string]ed25519.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", a.url, resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKSBytes)).Decode(&set); err != nil {
		return nil, fmt.Errorf("decode JWKS: %w", err)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		pub, ok := k.Key.(ed25519.PublicKey)
		if !ok || k.KeyID == "" || k.Algorithm != string(SigningAlgorithm) || (k.Use != "" && k.Use != "sig") {
			continue // not a key this verifier may use
		}
		keys[k.KeyID] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("the JWKS holds no EdDSA signing key")
	}
	return keys, nil
}
