package identity

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/store"
)

// CodeInvalidCredentials is the error code of a refused login: the same
// for an unknown email, a wrong password and a disabled staff user, so a
// caller cannot tell which. httpx answers it with 401.
const CodeInvalidCredentials apperr.Code = "invalid_credentials"

// RefreshTokenPrefix starts every refresh token.
const RefreshTokenPrefix = "rt_"

func invalidCredentials() error {
	return apperr.New(CodeInvalidCredentials, "the email or password is incorrect")
}

func invalidRefresh() error {
	return apperr.New(apperr.Unauthorized, "the refresh token is invalid, expired or revoked; log in again")
}

// LoginParams are a login's credentials. ClientIP, when set, is throttled
// (ThrottleIP*); in-process callers without one are throttled per account
// only.
type LoginParams struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	ClientIP string `json:"-"`
}

// Login checks a customer's (kind customer) or staff user's (kind staff)
// credentials and starts a session: a new refresh token family and an
// access token. Errors: invalid_credentials (401) for an unknown email, a
// wrong password or a disabled staff user, alike in body and in timing (an
// unknown email is checked against a dummy hash); rate_limited
// (*ThrottledError, 429) when the client IP made too many attempts or the
// account had too many failures (a success forgets them); unavailable when
// too many password checks are queued for the context's deadline.
func (s *Service) Login(ctx context.Context, kind auth.Kind, p LoginParams) (TokenPair, error) {
	if kind != auth.KindCustomer && kind != auth.KindStaff {
		return TokenPair{}, fmt.Errorf("login: kind %q has no password", kind)
	}
	email := normalizeEmail(p.Email)
	if p.ClientIP != "" {
		if err := s.throttle(ctx, s.ipLimiter, throttleKey("login", p.ClientIP), true); err != nil {
			return TokenPair{}, err
		}
	}
	account := throttleKey("login", string(kind), email)
	if err := s.throttle(ctx, s.accountLimiter, account, false); err != nil {
		return TokenPair{}, err
	}

	sub, hash, enabled, err := s.credentials(ctx, kind, email)
	if err != nil {
		return TokenPair{}, fmt.Errorf("login: %w", err)
	}
	ok, stale := false, false
	if hash == "" {
		err = s.hasher.verifyDummy(ctx, p.Password)
	} else {
		ok, stale, err = s.hasher.verify(ctx, p.Password, hash)
		if errors.Is(err, errBadHash) {
			s.logger.ErrorContext(ctx, "unreadable password hash; the account cannot log in", "subject", sub.id)
			ok, err = false, nil
		}
	}
	if err != nil {
		return TokenPair{}, fmt.Errorf("login: %w", err)
	}
	if !ok || !enabled {
		_ = s.throttle(ctx, s.accountLimiter, account, true)
		return TokenPair{}, invalidCredentials()
	}
	if err := s.accountLimiter.Reset(ctx, account); err != nil {
		s.logger.WarnContext(ctx, "reset login throttle", "error", err)
	}
	if stale {
		s.rehash(ctx, kind, sub.id, hash, p.Password)
	}
	pair, err := s.startSession(ctx, sub)
	if err != nil {
		return TokenPair{}, fmt.Errorf("login: %w", err)
	}
	return pair, nil
}

// credentials looks an account up by email: hash is "" when there is none.
func (s *Service) credentials(ctx context.Context, kind auth.Kind, email string) (sub subject, hash string, enabled bool, err error) {
	sub.kind = kind
	if kind == auth.KindCustomer {
		var groups string
		err = s.db.QueryRow(ctx, `SELECT id, name, password_hash, customer_groups FROM customers WHERE email = ?`, email).
			Scan(&sub.id, &sub.name, &hash, &groups)
		if err == nil {
			err = json.Unmarshal([]byte(groups), &sub.groups)
		}
		enabled = true
	} else {
		var disabled bool
		err = s.db.QueryRow(ctx, `SELECT id, name, role, password_hash, disabled FROM staff_users WHERE email = ?`, email).
			Scan(&sub.id, &sub.name, &sub.role, &hash, &disabled)
		enabled = !disabled
	}
	if errors.Is(err, sql.ErrNoRows) {
		return subject{kind: kind}, "", false, nil
	}
	return sub, hash, enabled, err
}

// rehash stores a hash with the current parameters after a successful
// login with a stale one. It is best effort: a failure only means the next
// login tries again.
func (s *Service) rehash(ctx context.Context, kind auth.Kind, subjectID, old, password string) {
	hash, err := s.hasher.hash(ctx, password)
	if err == nil {
		table := "customers"
		if kind == auth.KindStaff {
			table = "staff_users"
		}
		_, err = s.db.Exec(ctx, `UPDATE `+table+` SET password_hash = ? WHERE id = ? AND password_hash = ?`, hash, subjectID, old)
	}
	if err != nil {
		s.logger.WarnContext(ctx, "rehash password", "subject", subjectID, "error", err)
	}
}

// newRefreshToken returns a refresh token: "rt_" and 256 random bits in hex.
func newRefreshToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return RefreshTokenPrefix + hex.EncodeToString(b)
}

// startSession creates a refresh family with its first token, and an
// access token.
func (s *Service) startSession(ctx context.Context, sub subject) (TokenPair, error) {
	k, err := s.activeKey(ctx)
	if err != nil {
		return TokenPair{}, err
	}
	access, err := signClaims(k, s.claimsFor(sub))
	if err != nil {
		return TokenPair{}, err
	}
	refresh := newRefreshToken()
	family := id.New(familyPrefix)
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		now := s.now()
		if _, err := tx.Exec(ctx,
			`INSERT INTO refresh_families (id, subject_id, subject_kind, created_at, last_used_at) VALUES (?, ?, ?, ?, ?)`,
			family, sub.id, string(sub.kind), now, now); err != nil {
			return err
		}
		return s.insertRefresh(ctx, tx, family, sub, refresh)
	})
	if err != nil {
		return TokenPair{}, fmt.Errorf("start session: %w", err)
	}
	return s.pair(access, refresh), nil
}

func (s *Service) insertRefresh(ctx context.Context, tx *store.Tx, family string, sub subject, token string) error {
	now := s.now()
	_, err := tx.Exec(ctx,
		`INSERT INTO refresh_tokens (id, token_hash, family_id, subject_id, subject_kind, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		id.New(refreshRowPrefix), digest(token), family, sub.id, string(sub.kind), now, now.Add(s.cfg.RefreshTTL))
	return err
}

func (s *Service) pair(access, refresh string) TokenPair {
	return TokenPair{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer", ExpiresIn: int64(s.cfg.AccessTTL / time.Second)}
}

// Refresh exchanges a refresh token of the kind for a new pair: the token
// is used up and a new one joins its family (rotation), all in one
// transaction whose conditional update lets only one of two concurrent
// refreshes of a token succeed. The new access token carries the
// subject's current name, role and groups. Presenting a token that was
// used already is reuse — a copy of it leaked — and revokes the whole
// family, the legitimate holder's newest token included. Every refusal is
// unauthorized (401): an unknown, expired or revoked token, one of another
// kind, reuse, and a subject that is gone or disabled (which also revokes
// the family).
func (s *Service) Refresh(ctx context.Context, kind auth.Kind, refreshToken string) (TokenPair, error) {
	if !strings.HasPrefix(refreshToken, RefreshTokenPrefix) || len(refreshToken) > 200 {
		return TokenPair{}, invalidRefresh()
	}
	k, err := s.activeKey(ctx) // outside the transaction: it may write the first key
	if err != nil {
		return TokenPair{}, fmt.Errorf("refresh: %w", err)
	}
	var (
		pair    TokenPair
		family  string
		subID   string
		outcome string // "" (refreshed), "reuse" or "subject_disabled"
	)
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		outcome = ""
		var (
			tokenID, subKind string
			expires          time.Time
		)
		err := tx.QueryRow(ctx,
			`SELECT id, family_id, subject_id, subject_kind, expires_at FROM refresh_tokens WHERE token_hash = ?`,
			digest(refreshToken)).Scan(&tokenID, &family, &subID, &subKind, &expires)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && subKind != string(kind)) {
			return invalidRefresh()
		}
		if err != nil {
			return err
		}
		now := s.now()
		// Lock the family first: a revocation racing this refresh either
		// waits for it (and then revokes the new token too) or wins (and
		// this refresh finds the family revoked).
		res, err := tx.Exec(ctx, `UPDATE refresh_families SET last_used_at = ? WHERE id = ? AND revoked_at IS NULL`, now, family)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return invalidRefresh()
		}
		if !now.Before(expires) {
			return invalidRefresh()
		}
		res, err = tx.Exec(ctx,
			`UPDATE refresh_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL`, now, tokenID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			outcome = "reuse"
			return s.revokeFamily(ctx, tx, family, "reuse")
		}
		sub, active, err := s.loadSubject(ctx, tx, kind, subID)
		if err != nil {
			return err
		}
		if !active {
			outcome = "subject_disabled"
			return s.revokeFamily(ctx, tx, family, "subject_disabled")
		}
		access, err := signClaims(k, s.claimsFor(sub))
		if err != nil {
			return err
		}
		next := newRefreshToken()
		if err := s.insertRefresh(ctx, tx, family, sub, next); err != nil {
			return err
		}
		pair = s.pair(access, next)
		return nil
	})
	if err != nil {
		if apperr.Is(err, apperr.Unauthorized) {
			return TokenPair{}, err
		}
		return TokenPair{}, fmt.Errorf("refresh: %w", err)
	}
	switch outcome {
	case "reuse":
		s.logger.WarnContext(ctx, "refresh token reuse detected; session revoked", "family_id", family, "subject", subID)
		return TokenPair{}, invalidRefresh()
	case "subject_disabled":
		return TokenPair{}, invalidRefresh()
	}
	return pair, nil
}

// loadSubject reads the subject of a session as it is now; active is false
// when it is gone or (staff) disabled.
func (s *Service) loadSubject(ctx context.Context, q store.Querier, kind auth.Kind, subjectID string) (sub subject, active bool, err error) {
	sub = subject{id: subjectID, kind: kind}
	if kind == auth.KindCustomer {
		c, err := s.getCustomer(ctx, q, subjectID)
		if apperr.Is(err, apperr.NotFound) {
			return sub, false, nil
		}
		if err != nil {
			return sub, false, err
		}
		sub.name, sub.groups = c.Name, c.Groups
		return sub, true, nil
	}
	u, err := s.getStaff(ctx, q, subjectID)
	if apperr.Is(err, apperr.NotFound) {
		return sub, false, nil
	}
	if err != nil {
		return sub, false, err
	}
	sub.name, sub.role = u.Name, u.Role
	return sub, !u.Disabled, nil
}

// revokeFamily ends a session: no token of the family refreshes again.
func (s *Service) revokeFamily(ctx context.Context, tx *store.Tx, family, reason string) error {
	now := s.now()
	if _, err := tx.Exec(ctx,
		`UPDATE refresh_families SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL`, now, reason, family); err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	if _, err := tx.Exec(ctx,
		`UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL`, now, family); err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}

// revokeSubject ends every session of a subject.
func (s *Service) revokeSubject(ctx context.Context, tx *store.Tx, subjectID, reason string) error {
	now := s.now()
	if _, err := tx.Exec(ctx,
		`UPDATE refresh_families SET revoked_at = ?, revoke_reason = ? WHERE subject_id = ? AND revoked_at IS NULL`, now, reason, subjectID); err != nil {
		return fmt.Errorf("revoke sessions: %w", err)
	}
	if _, err := tx.Exec(ctx,
		`UPDATE refresh_tokens SET revoked_at = ? WHERE subject_id = ? AND revoked_at IS NULL`, now, subjectID); err != nil {
		return fmt.Errorf("revoke sessions: %w", err)
	}
	return nil
}

// Logout ends the session of a refresh token of the kind: its whole family
// is revoked. It is idempotent and says nothing about the token: an
// unknown, used, expired or foreign token is not an error.
func (s *Service) Logout(ctx context.Context, kind auth.Kind, refreshToken string) error {
	if !strings.HasPrefix(refreshToken, RefreshTokenPrefix) || len(refreshToken) > 200 {
		return nil
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var family, subKind string
		err := tx.QueryRow(ctx, `SELECT family_id, subject_kind FROM refresh_tokens WHERE token_hash = ?`, digest(refreshToken)).
			Scan(&family, &subKind)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && subKind != string(kind)) {
			return nil
		}
		if err != nil {
			return err
		}
		return s.revokeFamily(ctx, tx, family, "logout")
	})
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

// Cleanup deletes what can never be used again: refresh tokens past their
// expiry, sessions without tokens, and signing keys past retirement. Used
// tokens are kept until they expire, so that their reuse is still detected.
// The composition root calls it periodically; it is safe to run
// concurrently with everything else, in any number of processes.
func (s *Service) Cleanup(ctx context.Context) error {
	now := s.now()
	for _, q := range []string{
		`DELETE FROM refresh_tokens WHERE expires_at <= ?`,
		`DELETE FROM refresh_families WHERE created_at <= ? AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = refresh_families.id)`,
		`DELETE FROM signing_keys WHERE retire_at IS NOT NULL AND retire_at <= ?`,
	} {
		if _, err := s.db.Exec(ctx, q, now); err != nil {
			return fmt.Errorf("identity cleanup: %w", err)
		}
	}
	return nil
}
