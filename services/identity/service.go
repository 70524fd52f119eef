package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/store"
)

//go:embed migrations
var migrationsFS embed.FS

// Migrations creates identity's tables.
var Migrations = store.Migrations{Name: "identity", FS: migrationsFS}

// SecretPrefix starts every API key secret, so secret scanners recognise one.
const SecretPrefix = "sk_"

// Service is the identity service. It is safe for concurrent use. Every
// error a caller may see is an *apperr.Error (or a *ThrottledError, which
// unwraps to one); anything else is internal.
type Service struct {
	db     *store.DB
	outbox *bus.Outbox
	logger *slog.Logger
	cfg    Config
	// now is the clock; tests replace it. Microseconds: what PostgreSQL
	// keeps, so a value read back equals the one written on both engines.
	now    func() time.Time
	hasher *hasher
	// accountLimiter counts failed logins per account, ipLimiter attempts
	// per client IP.
	accountLimiter Limiter
	ipLimiter      Limiter
	ring           keyring
}

var _ auth.Authenticator = (*Service)(nil)

// Option tunes a Service beyond its Config.
type Option func(*Service)

// WithLimiters replaces the in-memory login throttles: account counts failed
// logins per account, ip counts login and registration attempts per client
// IP. A nil limiter keeps the default. Use shared (Redis) limiters when
// several identity processes serve logins.
func WithLimiters(account, ip Limiter) Option {
	return func(s *Service) {
		if account != nil {
			s.accountLimiter = account
		}
		if ip != nil {
			s.ipLimiter = ip
		}
	}
}

// New returns the identity service on db, whose schema must have
// Migrations and bus.Migrations applied. cfg takes its defaults for zero
// fields; it is not validated here (the composition root calls
// cfg.Validate). Events go through outbox (nil: rows are written without
// waking a relay); a nil logger discards. The first signing key is created
// on first use.
func New(db *store.DB, outbox *bus.Outbox, logger *slog.Logger, cfg Config, opts ...Option) *Service {
	if outbox == nil {
		outbox = bus.NewOutbox(nil)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	s := &Service{
		db:     db,
		outbox: outbox,
		logger: logger,
		cfg:    cfg,
		now:    func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		hasher: newHasher(cfg.Argon2),
	}
	clock := func() time.Time { return s.now() }
	s.accountLimiter = NewMemoryLimiter(cfg.ThrottleAccountFailures, cfg.ThrottleAccountWindow, clock)
	s.ipLimiter = NewMemoryLimiter(cfg.ThrottleIPAttempts, cfg.ThrottleIPWindow, clock)
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// Config returns the configuration in effect, defaults applied.
func (s *Service) Config() Config { return s.cfg }

// NewSecret returns a new random API key secret: "sk_" and 32 random bytes
// in hex (256 bits), so a plain SHA-256 digest is a safe way to store it.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return SecretPrefix + hex.EncodeToString(b)
}

func digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// CreateAPIKeyParams are the fields of a new API key.
type CreateAPIKeyParams struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
}

func (p CreateAPIKeyParams) validate() error {
	var v apperr.Validation
	switch name := strings.TrimSpace(p.Name); {
	case name == "":
		v.Add("name", "required", "name is required")
	case len(name) > 100:
		v.Add("name", "too_long", "name must be at most 100 characters")
	}
	if !p.Role.Valid() {
		v.Addf("role", "invalid", "role must be one of admin, merchandiser, fulfilment, support, viewer")
	}
	return v.Err()
}

// CreateAPIKey creates a key with a new secret, which the result carries and
// nothing will show again.
func (s *Service) CreateAPIKey(ctx context.Context, p CreateAPIKeyParams) (APIKey, error) {
	if err := p.validate(); err != nil {
		return APIKey{}, err
	}
	createdBy := ""
	if pr, ok := auth.FromContext(ctx); ok {
		createdBy = pr.Subject
	}
	return s.insertKey(ctx, strings.TrimSpace(p.Name), p.Role, NewSecret(), createdBy)
}

func (s *Service) insertKey(ctx context.Context, name string, role Role, secret, createdBy string) (APIKey, error) {
	k := APIKey{
		ID:        id.New("key"),
		Name:      name,
		Role:      role,
		Prefix:    secret[:min(len(secret), 10)],
		CreatedAt: s.now().UTC().Truncate(time.Microsecond),
		CreatedBy: createdBy,
		Secret:    secret,
	}
	_, err := s.db.Exec(ctx,
		`INSERT INTO api_keys (id, name, role, prefix, secret_hash, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Name, string(k.Role), k.Prefix, digest(secret), k.CreatedBy, k.CreatedAt)
	if store.IsUniqueViolation(err) {
		return APIKey{}, apperr.New(apperr.Conflict, "an API key with this secret already exists")
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("create api key: %w", err)
	}
	return k, nil
}

// ListAPIKeys returns the active keys, oldest first, without secrets.
func (s *Service) ListAPIKeys(ctx context.Context, limit int, after string) ([]APIKey, string, error) {
	rows, err := s.db.Query(ctx,
		`SELECT id, name, role, prefix, created_by, created_at, last_used_at FROM api_keys
		 WHERE revoked_at IS NULL AND id > ? ORDER BY id LIMIT ?`, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list api keys: %w", err)
	}
	defer rows.Close()
	var keys []APIKey
	for rows.Next() {
		var (
			k    APIKey
			role string
			used sql.NullTime
		)
		if err := rows.Scan(&k.ID, &k.Name, &role, &k.Prefix, &k.CreatedBy, &k.CreatedAt, &used); err != nil {
			return nil, "", fmt.Errorf("list api keys: %w", err)
		}
		k.Role = Role(role)
		if used.Valid {
			t := used.Time
			k.LastUsedAt = &t
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list api keys: %w", err)
	}
	next := ""
	if len(keys) > limit {
		keys = keys[:limit]
		next = keys[limit-1].ID
	}
	return keys, next, nil
}

// RevokeAPIKey revokes a key; it stops authenticating at once. Revoking an
// unknown or already revoked key is not_found.
func (s *Service) RevokeAPIKey(ctx context.Context, keyID string) error {
	res, err := s.db.Exec(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, s.now(), keyID)
	if err != nil {
		return fmt.Errorf("revoke api key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return apperr.New(apperr.NotFound, "no API key %q", keyID)
	}
	return nil
}

// Authenticate implements auth.Authenticator. It accepts API key secrets
// ("sk_…", looked up in the database) and access tokens (JWTs verified with
// the published signing keys, without a database look-up once the keys are
// cached). Anything else, and any token refused, is apperr.Unauthorized.
func (s *Service) Authenticate(ctx context.Context, token string) (auth.Principal, error) {
	switch {
	case strings.HasPrefix(token, SecretPrefix):
		return s.authenticateAPIKey(ctx, token)
	case looksLikeJWT(token):
		c, err := s.VerifyAccessToken(ctx, token)
		if err != nil {
			return auth.Principal{}, err
		}
		return c.Principal(), nil
	}
	return auth.Principal{}, apperr.New(apperr.Unauthorized, "invalid bearer token")
}

func (s *Service) authenticateAPIKey(ctx context.Context, token string) (auth.Principal, error) {
	if len(token) > 200 {
		return auth.Principal{}, apperr.New(apperr.Unauthorized, "invalid bearer token")
	}
	var (
		p    auth.Principal
		used sql.NullTime
	)
	err := s.db.QueryRow(ctx,
		`SELECT id, name, role, last_used_at FROM api_keys WHERE secret_hash = ? AND revoked_at IS NULL`,
		digest(token)).Scan(&p.Subject, &p.Name, &p.Role, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return auth.Principal{}, apperr.New(apperr.Unauthorized, "invalid bearer token")
	}
	if err != nil {
		return auth.Principal{}, fmt.Errorf("authenticate api key: %w", err)
	}
	p.Kind = auth.KindAPIKey
	// Record use at most once a minute, so authentication stays a read.
	if now := s.now(); !used.Valid || now.Sub(used.Time) > time.Minute {
		if _, err := s.db.Exec(ctx, `UPDATE api_keys SET last_used_at = ? WHERE id = ?`, now, p.Subject); err != nil {
			s.logger.Warn("record api key use", "key_id", p.Subject, "error", err)
		}
	}
	return p, nil
}

// Bootstrap makes sure an administrator can get in on first start. With a
// secret (SOUK_ADMIN_API_KEY), an admin key with that secret exists
// afterwards (idempotent). Without one, on the very first start of this
// database only, a new admin key is created and its secret returned
// (generated == true) for the caller to show once; later starts return "".
func (s *Service) Bootstrap(ctx context.Context, secret string) (generated string, err error) {
	if secret != "" {
		if !strings.HasPrefix(secret, SecretPrefix) || len(secret) < len(SecretPrefix)+24 {
			return "", fmt.Errorf("admin API key must start with %q and have at least 24 more characters", SecretPrefix)
		}
		var n int
		if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM api_keys WHERE secret_hash = ?`, digest(secret)).Scan(&n); err != nil {
			return "", fmt.Errorf("bootstrap admin key: %w", err)
		}
		if n > 0 {
			return "", nil
		}
		if _, err := s.insertKey(ctx, "bootstrap admin (SOUK_ADMIN_API_KEY)", RoleAdmin, secret, "bootstrap"); err != nil && !apperr.Is(err, apperr.Conflict) {
			return "", err
		}
		_, err := s.db.Exec(ctx, `INSERT INTO identity_meta (key, value) VALUES ('bootstrapped', 'env') ON CONFLICT (key) DO NOTHING`)
		return "", err
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.Exec(ctx, `INSERT INTO identity_meta (key, value) VALUES ('bootstrapped', 'generated') ON CONFLICT (key) DO NOTHING`)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // bootstrapped before
		}
		generated = NewSecret()
		_, err = tx.Exec(ctx,
			`INSERT INTO api_keys (id, name, role, prefix, secret_hash, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			id.New("key"), "bootstrap admin (generated)", string(RoleAdmin), generated[:10], digest(generated), "bootstrap", s.now())
		return err
	})
	if err != nil {
		return "", fmt.Errorf("bootstrap admin key: %w", err)
	}
	return generated, nil
}

// Ready checks identity's database answers.
func (s *Service) Ready(ctx context.Context) error { return s.db.Ping(ctx) }
