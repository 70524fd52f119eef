package identity

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

func TestAccessTokenClaims(t *testing.T) {
	e := MustNewSQLiteEnv(t, Config{Issuer: "https://id.example", Audience: "shop", AccessTTL: 5 * time.Minute})
	ctx := context.Background()
	c := MustRegister(t, e.s, "ada@example.com", "Ada")
	pair := MustLogin(t, e.s, auth.KindCustomer, "ada@example.com")
	if pair.ExpiresIn != 300 {
		t.Fatalf("expires_in = %d", pair.ExpiresIn)
	}
	tok, err := jwt.ParseSigned(pair.AccessToken, []jose.SignatureAlgorithm{SigningAlgorithm})
	if err != nil {
		t.Fatal(err)
	}
	h := tok.Headers[0]
	k, _ := e.s.activeKey(ctx)
	if h.Algorithm != "EdDSA" || h.KeyID != k.kid || h.ExtraHeaders["typ"] != "at+jwt" {
		t.Fatalf("header = %+v", h)
	}
	var claims map[string]any
	if err := tok.UnsafeClaimsWithoutVerification(&claims); err != nil {
		t.Fatal(err)
	}
	now := float64(e.clock.Now().Unix())
	if claims["iss"] != "https://id.example" || claims["aud"] != "shop" || claims["sub"] != c.ID || claims["kind"] != "customer" ||
		claims["iat"] != now || claims["exp"] != now+300 || claims["jti"] == "" || claims["role"] != nil {
		t.Fatalf("claims = %v", claims)
	}
	// Another issuer's verifier refuses it.
	other := MustNewSQLiteEnv(t, Config{})
	if _, err := other.s.Authenticate(ctx, pair.AccessToken); err == nil {
		t.Fatal("a token of another identity (other keys, iss and aud) must be refused")
	}
}

// TestConcurrentRotation: rotations racing each other (in one or several
// processes) each rotate once, and exactly one key is ever active.
func TestConcurrentRotation(t *testing.T) {
	runEnvs(t, Config{}, func(t *testing.T, e testEnv) {
		ctx := context.Background()
		if _, err := e.s.activeKey(ctx); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if _, err := e.s.RotateSigningKey(ctx); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := countRows(t, e.s, `SELECT COUNT(*) FROM signing_keys WHERE active = 1`); n != 1 {
			t.Fatalf("active keys = %d", n)
		}
		if n := countRows(t, e.s, `SELECT COUNT(*) FROM signing_keys`); n != 5 {
			t.Fatalf("keys = %d, want 5 (the first and four rotations)", n)
		}
		if n := countRows(t, e.s, `SELECT COUNT(*) FROM signing_keys WHERE private_key <> ''`); n != 1 {
			t.Fatalf("private keys kept = %d: a rotated-out key must lose its private part", n)
		}
	})
}

// TestKeysAcrossProcesses: two identity processes on one database create
// one first key between them, and each accepts the tokens the other signs
// across a rotation.
func TestKeysAcrossProcesses(t *testing.T) {
	storetest.Run(t, testMigrations, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a, b := newTestEnv(t, db, Config{}), newTestEnv(t, db, Config{})
		b.s.now = a.clock.Now // one clock
		var wg sync.WaitGroup
		kids := make([]string, 2)
		for i, s := range []*Service{a.s, b.s} {
			wg.Go(func() {
				k, err := s.activeKey(ctx)
				if err != nil {
					t.Error(err)
				}
				kids[i] = k.kid
			})
		}
		wg.Wait()
		if kids[0] == "" || kids[0] != kids[1] {
			t.Fatalf("first keys = %v, want one shared key", kids)
		}
		MustRegister(t, a.s, "ada@example.com", "Ada")

		if _, err := a.s.RotateSigningKey(ctx); err != nil {
			t.Fatal(err)
		}
		fromA := MustLogin(t, a.s, auth.KindCustomer, "ada@example.com").AccessToken // new key
		fromB := MustLogin(t, b.s, auth.KindCustomer, "ada@example.com").AccessToken // b's cached old key
		if !strings.Contains(fromA, ".") || fromA == fromB {
			t.Fatal("tokens")
		}
		a.clock.Advance(2 * time.Second) // past the unknown-kid reload limit
		if _, err := b.s.Authenticate(ctx, fromA); err != nil {
			t.Fatalf("b verifying a token of a's new key: %v", err)
		}
		if _, err := a.s.Authenticate(ctx, fromB); err != nil {
			t.Fatalf("a verifying a token of the old key b still signs with: %v", err)
		}
		a.clock.Advance(keyCacheTTL)
		kb, _ := b.s.activeKey(ctx)
		ka, _ := a.s.activeKey(ctx)
		if kb.kid != ka.kid {
			t.Fatalf("after its cache expired, b signs with %s, a with %s", kb.kid, ka.kid)
		}
	})
}

// TestKeysUnreadable: when the signing keys cannot be read, verification is
// unavailable (503), never a 401 that would log everybody out.
func TestKeysUnreadable(t *testing.T) {
	e := MustNewSQLiteEnv(t, Config{})
	MustRegister(t, e.s, "ada@example.com", "Ada")
	tok := MustLogin(t, e.s, auth.KindCustomer, "ada@example.com").AccessToken
	e.clock.Advance(2 * keyCacheTTL)
	_ = e.s.db.Close()
	if _, err := e.s.Authenticate(context.Background(), tok); !apperr.Is(err, apperr.Unavailable) {
		t.Fatalf("Authenticate with the database gone = %v, want unavailable", err)
	}
}

// BenchmarkAuthenticateAccessToken: the per-request cost of a customer's
// access token in process (signature and claims; keys cached).
func BenchmarkAuthenticateAccessToken(b *testing.B) {
	e := MustNewSQLiteEnv(b, Config{})
	MustRegister(b, e.s, "ada@example.com", "Ada")
	tok := MustLogin(b, e.s, auth.KindCustomer, "ada@example.com").AccessToken
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.s.Authenticate(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}
