package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
)

// authImpls are the authenticators the contract suite runs: the service in
// process, and the JWKS verifier of another process over HTTP.
var authImpls = []struct {
	name string
	new  func(t *testing.T, e testEnv) auth.Authenticator
}{
	{"in-process", func(_ *testing.T, e testEnv) auth.Authenticator { return e.s }},
	{"jwks-over-http", func(t *testing.T, e testEnv) auth.Authenticator {
		srv := httptest.NewServer(mount(e.s, e.s))
		t.Cleanup(srv.Close)
		return NewJWKSAuthenticator(srv.URL+JWKSPath, srv.Client(), WithJWKSClock(e.clock.Now))
	}},
}

// TestAuthenticatorContract: the in-process service and the JWKS verifier
// accept and refuse exactly the same tokens, with the same principals.
func TestAuthenticatorContract(t *testing.T) {
	for _, impl := range authImpls {
		t.Run(impl.name, func(t *testing.T) {
			runEnvs(t, Config{}, func(t *testing.T, e testEnv) {
				testAuthenticatorContract(t, e, impl.new(t, e))
			})
		})
	}
}

// forge signs claims as a JWS with the algorithm, key, kid and typ given.
func forge(t testing.TB, alg jose.SignatureAlgorithm, key any, kid, typ string, claims any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// unsigned builds an "alg: none" token.
func unsigned(header string, claims any) string {
	payload, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc(payload) + "."
}

// tamper replaces the token's payload, keeping header and signature.
func tamper(token string, mutate func(m map[string]any)) string {
	parts := strings.Split(token, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	mutate(m)
	raw, _ = json.Marshal(m)
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

func testAuthenticatorContract(t *testing.T, e testEnv, a auth.Authenticator) {
	ctx := context.Background()
	s := e.s
	cust := MustRegister(t, s, "ada@example.com", "Ada")
	if _, err := s.UpdateCustomer(ctx, cust.ID, CustomerPatch{Groups: &[]string{"vip"}}, 0); err != nil {
		t.Fatal(err)
	}
	staff := MustCreateStaff(t, s, "support@example.com", RoleSupport)
	key := MustAdminKey(t, s, RoleFulfilment)

	t.Run("principals", func(t *testing.T) {
		for _, tt := range []struct {
			name, token string
			want        auth.Principal
		}{
			{"customer", MustLogin(t, s, auth.KindCustomer, "ada@example.com").AccessToken,
				auth.Principal{Subject: cust.ID, Kind: auth.KindCustomer, Name: "Ada", Groups: []string{"vip"}}},
			{"staff", MustLogin(t, s, auth.KindStaff, "support@example.com").AccessToken,
				auth.Principal{Subject: staff.ID, Kind: auth.KindStaff, Role: "support", Name: "Staff support"}},
			{"api key", key, auth.Principal{Kind: auth.KindAPIKey, Role: "fulfilment", Name: "test fulfilment"}},
		} {
			p, err := a.Authenticate(ctx, tt.token)
			if tt.want.Kind == auth.KindAPIKey {
				tt.want.Subject = p.Subject
				if !strings.HasPrefix(p.Subject, "key_") {
					t.Errorf("api key subject = %q", p.Subject)
				}
			}
			if err != nil || !reflect.DeepEqual(p, tt.want) {
				t.Errorf("%s: Authenticate = %+v, %v; want %+v", tt.name, p, err, tt.want)
			}
		}
		if v, ok := a.(AccessTokenVerifier); ok {
			c, err := v.VerifyAccessToken(ctx, MustLogin(t, s, auth.KindCustomer, "ada@example.com").AccessToken)
			if err != nil || len(c.Groups) != 1 || c.Groups[0] != "vip" {
				t.Errorf("groups claim = %+v, %v", c, err)
			}
		}
	})

	t.Run("refusals", func(t *testing.T) {
		k, err := s.activeKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		base := s.claimsFor(subject{id: cust.ID, kind: auth.KindCustomer, name: "Ada"})
		with := func(mutate func(c *Claims)) Claims {
			c := base
			mutate(&c)
			return c
		}
		sign := func(c Claims) string { return forge(t, SigningAlgorithm, k.private, k.kid, AccessTokenType, c) }
		_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
		valid := sign(base)
		if _, err := a.Authenticate(ctx, valid); err != nil {
			t.Fatalf("the base token must pass: %v", err)
		}
		now := s.now()
		for _, tt := range []struct {
			name, token string
		}{
			{"expired", sign(with(func(c *Claims) { c.Expiry = jwt.NewNumericDate(now.Add(-s.cfg.Leeway - time.Second)) }))},
			{"issued in the future", sign(with(func(c *Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(s.cfg.Leeway + time.Minute)) }))},
			{"not yet valid", sign(with(func(c *Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) }))},
			{"no exp", sign(with(func(c *Claims) { c.Expiry = nil }))},
			{"no iat", sign(with(func(c *Claims) { c.IssuedAt = nil }))},
			{"no jti", sign(with(func(c *Claims) { c.ID = "" }))},
			{"wrong aud", sign(with(func(c *Claims) { c.Audience = jwt.Audience{"elsewhere"} }))},
			{"no aud", sign(with(func(c *Claims) { c.Audience = nil }))},
			{"wrong iss", sign(with(func(c *Claims) { c.Issuer = "evil" }))},
			{"customer with a role", sign(with(func(c *Claims) { c.Role = "admin" }))},
			{"staff with a customer id", sign(with(func(c *Claims) { c.Kind = auth.KindStaff; c.Role = "admin" }))},
			{"staff with an unknown role", sign(with(func(c *Claims) { c.Kind, c.Subject, c.Role = auth.KindStaff, staff.ID, "owner" }))},
			{"api_key kind", sign(with(func(c *Claims) { c.Kind = auth.KindAPIKey; c.Role = "admin" }))},
			{"no kind", sign(with(func(c *Claims) { c.Kind = "" }))},
			{"tampered payload", tamper(valid, func(m map[string]any) { m["sub"] = staff.ID; m["kind"] = "staff"; m["role"] = "admin" })},
			{"tampered groups", tamper(valid, func(m map[string]any) { m["groups"] = []string{"vip"} })},
			{"tampered signature", valid[:len(valid)-4] + strings.Map(func(r rune) rune {
				if r == 'A' {
					return 'B'
				}
				return 'A'
			}, valid[len(valid)-4:])},
			{"alg none", unsigned(`{"alg":"none","kid":"`+k.kid+`","typ":"at+jwt"}`, base)},
			{"HS256 keyed with the public key", forge(t, jose.HS256, []byte(k.public), k.kid, AccessTokenType, base)},
			{"unknown kid", forge(t, SigningAlgorithm, otherKey, "sig_01JD3Q0000000000000000000A", AccessTokenType, base)},
			{"right kid, other key", forge(t, SigningAlgorithm, otherKey, k.kid, AccessTokenType, base)},
			{"no kid", forge(t, SigningAlgorithm, k.private, "", AccessTokenType, base)},
			{"typ JWT", forge(t, SigningAlgorithm, k.private, k.kid, "JWT", base)},
			{"no typ", forge(t, SigningAlgorithm, k.private, k.kid, "", base)},
			{"garbage", "eyJhbGciOi.not.atoken"},
			{"two parts", "eyJhbGciOiJFZERTQSJ9.e30"},
			{"huge", "eyJ" + strings.Repeat("A", maxJWTLen) + ".e30.sig"},
			{"api key look-alike", "sk_" + strings.Repeat("0", 64)},
			{"refresh token", MustLogin(t, s, auth.KindCustomer, "ada@example.com").RefreshToken},
			{"empty", ""},
		} {
			p, err := a.Authenticate(ctx, tt.token)
			if !apperr.Is(err, apperr.Unauthorized) {
				t.Errorf("%s: Authenticate = %+v, %v; want unauthorized", tt.name, p, err)
			}
		}
		// Expiry honours the leeway, and nothing more.
		e.clock.Advance(s.cfg.AccessTTL + s.cfg.Leeway - time.Second)
		if _, err := a.Authenticate(ctx, valid); err != nil {
			t.Errorf("within the leeway: %v", err)
		}
		e.clock.Advance(2 * time.Second)
		if _, err := a.Authenticate(ctx, valid); !apperr.Is(err, apperr.Unauthorized) {
			t.Errorf("past the leeway: %v", err)
		}
	})

	t.Run("key rotation", func(t *testing.T) {
		before := MustLogin(t, s, auth.KindCustomer, "ada@example.com").AccessToken
		if _, err := a.Authenticate(ctx, before); err != nil {
			t.Fatal(err)
		}
		old, _ := s.activeKey(ctx)
		longLived := forge(t, SigningAlgorithm, old.private, old.kid, AccessTokenType,
			s.claimsFor(subject{id: cust.ID, kind: auth.KindCustomer}).withExpiry(s.now().Add(48*time.Hour)))
		if _, err := s.RotateSigningKey(ctx); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(11 * time.Second) // past the JWKS verifier's refresh rate limit
		after := MustLogin(t, s, auth.KindCustomer, "ada@example.com").AccessToken
		for name, tok := range map[string]string{"signed before": before, "signed after": after, "long-lived old": longLived} {
			if _, err := a.Authenticate(ctx, tok); err != nil {
				t.Errorf("%s rotation: %v", name, err)
			}
		}
		// Once every token of the old key has expired, the key is retired.
		e.clock.Advance(s.cfg.AccessTTL + s.cfg.Leeway + s.cfg.KeyRetireMargin)
		if _, err := a.Authenticate(ctx, longLived); !apperr.Is(err, apperr.Unauthorized) {
			t.Errorf("a retired key's token: %v, want unauthorized", err)
		}
		if _, err := a.Authenticate(ctx, MustLogin(t, s, auth.KindCustomer, "ada@example.com").AccessToken); err != nil {
			t.Errorf("a fresh token: %v", err)
		}
	})
}

func (c Claims) withExpiry(t time.Time) Claims {
	c.Expiry = jwt.NewNumericDate(t)
	return c
}

// countingServer serves identity's routes and counts requests per path.
type countingServer struct {
	*httptest.Server
	mu    sync.Mutex
	calls map[string]int
	down  atomic.Bool
}

func newCountingServer(t *testing.T, s *Service) *countingServer {
	cs := &countingServer{calls: map[string]int{}}
	h := mount(s, s)
	cs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.mu.Lock()
		cs.calls[r.URL.Path]++
		cs.mu.Unlock()
		if cs.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(cs.Close)
	return cs
}

func (cs *countingServer) count(path string) int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.calls[path]
}

// TestJWKSAuthenticatorVerifiesLocally counts the calls a verifier in
// another process makes to identity: one JWKS fetch, then none per
// request; rate-limited refetches for unknown kids; a refetch per TTL;
// stale keys while identity is down; API keys delegated to whoami.
func TestJWKSAuthenticatorVerifiesLocally(t *testing.T) {
	ctx := context.Background()
	e := MustNewSQLiteEnv(t, Config{})
	s := e.s
	MustRegister(t, s, "ada@example.com", "Ada")
	srv := newCountingServer(t, s)
	a := NewJWKSAuthenticator(srv.URL+JWKSPath, srv.Client(), WithJWKSClock(e.clock.Now),
		WithJWKSCacheTTL(5*time.Minute), WithJWKSMinRefresh(10*time.Second))
	login := func() string { return MustLogin(t, s, auth.KindCustomer, "ada@example.com").AccessToken }

	tok := login()
	for range 100 {
		if _, err := a.Authenticate(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.count(JWKSPath); n != 1 {
		t.Fatalf("JWKS fetched %d times for 100 verifications, want 1", n)
	}
	if n := srv.count("/admin/auth/whoami"); n != 0 {
		t.Fatalf("whoami called %d times for access tokens", n)
	}

	// API keys are identity's alone to check.
	key := MustAdminKey(t, s, RoleViewer)
	if p, err := a.Authenticate(ctx, key); err != nil || p.Kind != auth.KindAPIKey || p.Role != "viewer" {
		t.Fatalf("API key via whoami = %+v, %v", p, err)
	}
	if n := srv.count("/admin/auth/whoami"); n != 1 {
		t.Fatalf("whoami calls = %d, want 1", n)
	}

	// Forged kids cost at most one fetch per refresh interval.
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	forged := forge(t, SigningAlgorithm, otherKey, "sig_forged", AccessTokenType, s.claimsFor(subject{id: "cus_x", kind: auth.KindCustomer}))
	for range 50 {
		if _, err := a.Authenticate(ctx, forged); !apperr.Is(err, apperr.Unauthorized) {
			t.Fatalf("forged kid: %v", err)
		}
	}
	if n := srv.count(JWKSPath); n != 1 {
		t.Fatalf("JWKS fetches = %d within the refresh interval, want still 1", n)
	}
	e.clock.Advance(11 * time.Second)
	for range 50 {
		_, _ = a.Authenticate(ctx, forged)
	}
	if n := srv.count(JWKSPath); n != 2 {
		t.Fatalf("JWKS fetches = %d after the interval, want 2", n)
	}

	// A rotated-in key is fetched on first sight (past the interval).
	if _, err := s.RotateSigningKey(ctx); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(11 * time.Second)
	if _, err := a.Authenticate(ctx, login()); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	if n := srv.count(JWKSPath); n != 3 {
		t.Fatalf("JWKS fetches = %d after rotation, want 3", n)
	}

	// The TTL brings a refetch; identity being down keeps the known keys.
	tok = login()
	srv.down.Store(true)
	e.clock.Advance(5 * time.Minute)
	if _, err := a.Authenticate(ctx, tok); err != nil {
		t.Fatalf("identity down, known key: %v", err)
	}
	if n := srv.count(JWKSPath); n != 4 {
		t.Fatalf("JWKS fetches = %d after the TTL, want 4", n)
	}
	fresh := NewJWKSAuthenticator(srv.URL+JWKSPath, srv.Client(), WithJWKSClock(e.clock.Now))
	if _, err := fresh.Authenticate(ctx, tok); !apperr.Is(err, apperr.Unavailable) {
		t.Fatalf("no keys and identity down = %v, want unavailable (never a 401)", err)
	}
	srv.down.Store(false)
}

// TestJWKSAuthenticatorConcurrentFirstUse: many requests arriving before
// the first fetch share one fetch.
func TestJWKSAuthenticatorConcurrentFirstUse(t *testing.T) {
	e := MustNewSQLiteEnv(t, Config{})
	MustRegister(t, e.s, "ada@example.com", "Ada")
	srv := newCountingServer(t, e.s)
	a := NewJWKSAuthenticator(srv.URL+JWKSPath, srv.Client(), WithJWKSClock(e.clock.Now))
	tok := MustLogin(t, e.s, auth.KindCustomer, "ada@example.com").AccessToken
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := a.Authenticate(context.Background(), tok); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := srv.count(JWKSPath); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}
}
