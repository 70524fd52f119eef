package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/store"
)

// Access tokens are JWTs (RFC 7519, profiled after RFC 9068) signed with
// EdDSA over Ed25519 — the only algorithm any verifier here accepts.
const (
	// SigningAlgorithm is the JWS "alg" of every access token.
	SigningAlgorithm = jose.EdDSA
	// AccessTokenType is the JWS "typ" header of an access token, so that
	// no other JWT signed with the same key can pass for one.
	AccessTokenType = "at+jwt"
	// maxJWTLen bounds the tokens parsed at all.
	maxJWTLen = 8192
	// keyReloadInterval rate-limits reloading the signing keys from the
	// database for an unknown kid (a token signed by another identity
	// process with a key this one has not seen yet, or a forged kid).
	keyReloadInterval = time.Second
)

// Claims are the claims of an access token.
type Claims struct {
	jwt.Claims
	// Kind is "customer" or "staff".
	Kind auth.Kind `json:"kind"`
	// Role is the staff role; empty for customers.
	Role string `json:"role,omitempty"`
	// Groups are the customer's groups (see Customer.Groups); they reach
	// auth.Principal.Groups, where pricing reads them.
	Groups []string `json:"groups,omitempty"`
	// Name is the subject's display name, for logs and audit records.
	Name string `json:"name,omitempty"`
}

// Principal returns the auth.Principal the claims describe, customer
// groups included.
func (c Claims) Principal() auth.Principal {
	return auth.Principal{Subject: c.Subject, Kind: c.Kind, Role: c.Role, Name: c.Name, Groups: slices.Clone(c.Groups)}
}

// AccessTokenVerifier verifies access tokens and returns their claims.
// *Service and *JWKSAuthenticator implement it.
type AccessTokenVerifier interface {
	VerifyAccessToken(ctx context.Context, token string) (Claims, error)
}

var (
	_ AccessTokenVerifier = (*Service)(nil)
	_ AccessTokenVerifier = (*JWKSAuthenticator)(nil)
)

// check enforces what every access token must carry, beyond signature and
// time: a subject of its kind, a valid role for staff and none for
// customers, and an id.
func (c Claims) check() error {
	switch {
	case c.ID == "" || c.Expiry == nil || c.IssuedAt == nil:
		return errors.New("missing jti, exp or iat")
	case c.Kind == auth.KindCustomer && id.Valid(customerPrefix, c.Subject) && c.Role == "":
	case c.Kind == auth.KindStaff && id.Valid(staffPrefix, c.Subject) && Role(c.Role).Valid():
	default:
		return fmt.Errorf("kind %q with subject %q and role %q", c.Kind, c.Subject, c.Role)
	}
	return nil
}

// errUnknownKey: no published key has the token's kid.
var errUnknownKey = errors.New("unknown signing key")

// verifier checks access tokens against public keys found by kid. Both the
// service (keys from its database) and JWKSAuthenticator (keys from the
// JWKS) use it, so the two accept exactly the same tokens.
type verifier struct {
	issuer, audience string
	leeway           time.Duration
	now              func() time.Time
	// key returns the public key of kid, errUnknownKey when there is none
	// (or it is retired), or another error when keys cannot be read.
	key func(ctx context.Context, kid string) (ed25519.PublicKey, error)
}

func invalidToken(cause error) error {
	return apperr.Wrap(cause, apperr.Unauthorized, "invalid bearer token")
}

// verify returns the claims of a valid access token: EdDSA signature by a
// published key named in the kid header, typ at+jwt, the expected iss and
// aud, not expired (with leeway), not issued in the future. Every refusal
// is apperr.Unauthorized; a failure to read keys is passed on as it is.
func (v verifier) verify(ctx context.Context, token string) (Claims, error) {
	if len(token) > maxJWTLen || strings.Count(token, ".") != 2 {
		return Claims{}, invalidToken(errors.New("not a compact JWS"))
	}
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{SigningAlgorithm})
	if err != nil {
		return Claims{}, invalidToken(err) // includes alg none, HS256, RS256, …
	}
	if len(tok.Headers) != 1 {
		return Claims{}, invalidToken(errors.New("want exactly one signature"))
	}
	h := tok.Headers[0]
	if h.KeyID == "" || h.JSONWebKey != nil || h.ExtraHeaders[jose.HeaderType] != AccessTokenType {
		return Claims{}, invalidToken(fmt.Errorf("header kid %q typ %v", h.KeyID, h.ExtraHeaders[jose.HeaderType]))
	}
	pub, err := v.key(ctx, h.KeyID)
	if errors.Is(err, errUnknownKey) {
		return Claims{}, invalidToken(fmt.Errorf("kid %q: %w", h.KeyID, err))
	}
	if err != nil {
		return Claims{}, err
	}
	var c Claims
	if err := tok.Claims(pub, &c); err != nil {
		return Claims{}, invalidToken(err)
	}
	exp := jwt.Expected{Issuer: v.issuer, AnyAudience: jwt.Audience{v.audience}, Time: v.now()}
	if err := c.ValidateWithLeeway(exp, v.leeway); err != nil {
		return Claims{}, invalidToken(err)
	}
	if err := c.check(); err != nil {
		return Claims{}, invalidToken(err)
	}
	return c, nil
}

// looksLikeJWT tells a compact JWS from other bearer tokens cheaply.
func looksLikeJWT(token string) bool {
	return strings.HasPrefix(token, "eyJ") && strings.Count(token, ".") == 2
}

// signingKey is one Ed25519 key of the keyring.
type signingKey struct {
	kid     string
	private ed25519.PrivateKey // nil once rotated out
	public  ed25519.PublicKey
	created time.Time
	active  bool
	retire  *time.Time // set when rotated out: not accepted from then on
}

func (k signingKey) published(now time.Time) bool { return k.retire == nil || now.Before(*k.retire) }

// keyring caches the signing keys of the database. It is safe for
// concurrent use: readers take the current snapshot without locking;
// reloads are serialised by mu.
type keyring struct {
	snap     atomic.Pointer[keySnapshot]
	mu       sync.Mutex
	forcedAt time.Time // last reload for an unknown kid; guarded by mu
}

type keySnapshot struct {
	keys     []signingKey // never modified once published
	loadedAt time.Time
}

// SigningKey describes a signing key, without its private part.
type SigningKey struct {
	KID       string     `json:"kid"`
	Algorithm string     `json:"alg"`
	Active    bool       `json:"active"`
	CreatedAt time.Time  `json:"created_at"`
	RetireAt  *time.Time `json:"retire_at"`
}

func (k signingKey) info() SigningKey {
	return SigningKey{KID: k.kid, Algorithm: string(SigningAlgorithm), Active: k.active, CreatedAt: k.created, RetireAt: k.retire}
}

// keys returns the signing keys, from memory while the copy is fresh
// (keyCacheTTL) unless force, reading the database otherwise and creating
// the first key when there is none.
func (s *Service) keys(ctx context.Context, force bool) ([]signingKey, error) {
	fresh := func() (*keySnapshot, bool) {
		sn := s.ring.snap.Load()
		return sn, sn != nil && s.now().Sub(sn.loadedAt) < keyCacheTTL
	}
	if sn, ok := fresh(); ok && !force {
		return sn.keys, nil
	}
	s.ring.mu.Lock()
	defer s.ring.mu.Unlock()
	if sn, ok := fresh(); ok && !force { // reloaded while this caller waited
		return sn.keys, nil
	}
	now := s.now()
	keys, err := s.loadKeys(ctx)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(keys, func(k signingKey) bool { return k.active }) {
		if err := s.insertFirstKey(ctx); err != nil {
			return nil, err
		}
		if keys, err = s.loadKeys(ctx); err != nil {
			return nil, err
		}
	}
	s.ring.snap.Store(&keySnapshot{keys: keys, loadedAt: now})
	return keys, nil
}

func (s *Service) loadKeys(ctx context.Context) ([]signingKey, error) {
	rows, err := s.db.Query(ctx,
		`SELECT kid, private_key, public_key, created_at, active, retire_at FROM signing_keys ORDER BY created_at, kid`)
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	defer rows.Close()
	var keys []signingKey
	for rows.Next() {
		var (
			k             signingKey
			priv, pub     string
			active        sql.NullInt64
			retire        sql.NullTime
			privRaw, pubR []byte
		)
		if err := rows.Scan(&k.kid, &priv, &pub, &k.created, &active, &retire); err != nil {
			return nil, fmt.Errorf("load signing keys: %w", err)
		}
		if pubR, err = base64.RawURLEncoding.DecodeString(pub); err != nil || len(pubR) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("signing key %s: bad public key", k.kid)
		}
		k.public = ed25519.PublicKey(pubR)
		if priv != "" {
			if privRaw, err = base64.RawURLEncoding.DecodeString(priv); err != nil || len(privRaw) != ed25519.SeedSize {
				return nil, fmt.Errorf("signing key %s: bad private key", k.kid)
			}
			k.private = ed25519.NewKeyFromSeed(privRaw)
		}
		k.active = active.Valid && k.private != nil
		if retire.Valid {
			t := retire.Time
			k.retire = &t
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	return keys, nil
}

// newKeyRow makes a new Ed25519 key and its row values.
func newKeyRow() (kid, priv, pub string) {
	seed := make([]byte, ed25519.SeedSize)
	_, _ = rand.Read(seed)
	pk := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	return id.New(signingKeyPrefix), base64.RawURLEncoding.EncodeToString(seed), base64.RawURLEncoding.EncodeToString(pk)
}

// insertFirstKey creates the active key of a keyring that has none. Two
// processes starting at once both try; the unique "active" column lets one
// win and the other simply reads the winner's key.
func (s *Service) insertFirstKey(ctx context.Context) error {
	kid, priv, pub := newKeyRow()
	_, err := s.db.Exec(ctx,
		`INSERT INTO signing_keys (kid, algorithm, private_key, public_key, active, created_at) VALUES (?, ?, ?, ?, 1, ?)`,
		kid, string(SigningAlgorithm), priv, pub, s.now())
	if err != nil && !store.IsUniqueViolation(err) {
		return fmt.Errorf("create signing key: %w", err)
	}
	if err == nil {
		s.logger.InfoContext(ctx, "signing key created", "kid", kid)
	}
	return nil
}

// activeKey returns the key new tokens are signed with.
func (s *Service) activeKey(ctx context.Context) (signingKey, error) {
	keys, err := s.keys(ctx, false)
	if err != nil {
		return signingKey{}, err
	}
	for _, k := range keys {
		if k.active {
			return k, nil
		}
	}
	return signingKey{}, errors.New("no active signing key")
}

// publicKey returns the published key kid, reloading the keys (at most
// once per keyReloadInterval) when kid is not among them.
func (s *Service) publicKey(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	find := func(keys []signingKey) (ed25519.PublicKey, bool) {
		for _, k := range keys {
			if k.kid == kid {
				return k.public, k.published(s.now())
			}
		}
		return nil, false
	}
	keys, err := s.keys(ctx, false)
	if err != nil {
		return nil, apperr.Wrap(err, apperr.Unavailable, "the signing keys cannot be read")
	}
	if pub, ok := find(keys); ok {
		return pub, nil
	}
	s.ring.mu.Lock()
	stale := s.now().Sub(s.ring.forcedAt) >= keyReloadInterval
	if stale {
		s.ring.forcedAt = s.now()
	}
	s.ring.mu.Unlock()
	if stale {
		if keys, err = s.keys(ctx, true); err != nil {
			return nil, apperr.Wrap(err, apperr.Unavailable, "the signing keys cannot be read")
		}
		if pub, ok := find(keys); ok {
			return pub, nil
		}
	}
	return nil, errUnknownKey
}

// RotateSigningKey makes a new active signing key; tokens are signed with
// it from now on. The previous key stops signing at once (its private part
// is erased) but stays published and accepted until every token it signed
// has expired: AccessTTL + Leeway + KeyRetireMargin from now. Keys retired
// before now are deleted. Concurrent rotations each rotate once.
func (s *Service) RotateSigningKey(ctx context.Context) (SigningKey, error) {
	var kid string
	for attempt := 1; ; attempt++ {
		now := s.now()
		var priv, pub string
		kid, priv, pub = newKeyRow()
		err := s.db.InTx(ctx, func(tx *store.Tx) error {
			retire := now.Add(s.cfg.AccessTTL + s.cfg.Leeway + s.cfg.KeyRetireMargin)
			if _, err := tx.Exec(ctx,
				`UPDATE signing_keys SET active = NULL, private_key = '', rotated_at = ?, retire_at = ? WHERE active = 1`,
				now, retire); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx,
				`INSERT INTO signing_keys (kid, algorithm, private_key, public_key, active, created_at) VALUES (?, ?, ?, ?, 1, ?)`,
				kid, string(SigningAlgorithm), priv, pub, now); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DELETE FROM signing_keys WHERE retire_at IS NOT NULL AND retire_at <= ?`, now)
			return err
		})
		if err == nil {
			break
		}
		// Another rotation committed its new key between our UPDATE and INSERT.
		if !store.IsUniqueViolation(err) || attempt == 3 {
			return SigningKey{}, fmt.Errorf("rotate signing key: %w", err)
		}
	}
	keys, err := s.keys(ctx, true)
	if err != nil {
		return SigningKey{}, err
	}
	for _, k := range keys {
		if k.kid == kid {
			s.logger.InfoContext(ctx, "signing key rotated", "kid", kid)
			return k.info(), nil
		}
	}
	return SigningKey{}, fmt.Errorf("rotate signing key: new key %s not found", kid)
}

// SigningKeys lists the published signing keys (the active one and those
// rotated out but not yet retired), oldest first.
func (s *Service) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	keys, err := s.keys(ctx, false)
	if err != nil {
		return nil, err
	}
	var out []SigningKey
	for _, k := range keys {
		if k.published(s.now()) {
			out = append(out, k.info())
		}
	}
	return out, nil
}

// JWKS returns the published public keys as a JSON Web Key Set.
func (s *Service) JWKS(ctx context.Context) (jose.JSONWebKeySet, error) {
	keys, err := s.keys(ctx, false)
	if err != nil {
		return jose.JSONWebKeySet{}, err
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range keys {
		if k.published(s.now()) {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.public, KeyID: k.kid, Algorithm: string(SigningAlgorithm), Use: "sig"})
		}
	}
	return set, nil
}

// subject is whom a token is issued to, as of the issuing.
type subject struct {
	id     string
	kind   auth.Kind
	role   Role
	name   string
	groups []string
}

func (s *Service) claimsFor(sub subject) Claims {
	now := s.now()
	return Claims{
		Claims: jwt.Claims{
			Issuer:   s.cfg.Issuer,
			Subject:  sub.id,
			Audience: jwt.Audience{s.cfg.Audience},
			Expiry:   jwt.NewNumericDate(now.Add(s.cfg.AccessTTL)),
			IssuedAt: jwt.NewNumericDate(now),
			ID:       rand.Text(),
		},
		Kind:   sub.kind,
		Role:   string(sub.role),
		Groups: sub.groups,
		Name:   sub.name,
	}
}

func signClaims(k signingKey, c Claims) (string, error) {
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: SigningAlgorithm, Key: jose.JSONWebKey{Key: k.private, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType(AccessTokenType))
	if err != nil {
		return "", fmt.Errorf("signer: %w", err)
	}
	tok, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return tok, nil
}

// VerifyAccessToken returns the claims of a valid access token issued by
// this service (see verifier.verify for what valid means). It is
// apperr.Unauthorized for any token it refuses.
func (s *Service) VerifyAccessToken(ctx context.Context, token string) (Claims, error) {
	return s.verifier().verify(ctx, token)
}

func (s *Service) verifier() verifier {
	return verifier{issuer: s.cfg.Issuer, audience: s.cfg.Audience, leeway: s.cfg.Leeway, now: s.now, key: s.publicKey}
}
