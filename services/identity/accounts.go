package identity

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/store"
)

// Id prefixes of identity's resources.
const (
	customerPrefix   = "cus"
	staffPrefix      = "usr"
	signingKeyPrefix = "sig"
	familyPrefix     = "rtf"
	refreshRowPrefix = "rtk"
)

// Limits on account fields. A request over one of them fails with
// validation_failed naming the field.
const (
	MaxEmailLen     = 254 // bytes (RFC 5321 path limit)
	MaxNameLen      = 200 // characters
	MaxGroups       = 20  // groups per customer
	MaxGroupNameLen = 50  // characters
)

var groupName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// normalizeEmail is how an email is stored and looked up: trimmed and
// lower-case. (Treating the local part as case-insensitive is what shoppers
// expect, although RFC 5321 allows otherwise.)
func normalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func checkEmail(v *apperr.Validation, email string) {
	switch {
	case email == "":
		v.Add("email", "required", "email is required")
	case len(email) > MaxEmailLen:
		v.Addf("email", "too_long", "email must be at most %d characters", MaxEmailLen)
	default:
		a, err := mail.ParseAddress(email)
		if err != nil || a.Name != "" || a.Address != email || !strings.Contains(email[strings.LastIndexByte(email, '@')+1:], ".") {
			v.Add("email", "invalid", "email must be an address such as ada@example.com")
		}
	}
}

func checkName(v *apperr.Validation, name string) {
	switch {
	case name == "":
		v.Add("name", "required", "name is required")
	case !utf8.ValidString(name):
		v.Add("name", "invalid", "name must be valid UTF-8 text")
	case utf8.RuneCountInString(name) > MaxNameLen:
		v.Addf("name", "too_long", "name must be at most %d characters", MaxNameLen)
	}
}

// normalizeGroups checks group names and returns them sorted and unique.
func normalizeGroups(v *apperr.Validation, groups []string) []string {
	if len(groups) > MaxGroups {
		v.Addf("groups", "too_many", "at most %d groups", MaxGroups)
		return nil
	}
	out := make([]string, 0, len(groups))
	for i, g := range groups {
		if len(g) > MaxGroupNameLen || !groupName.MatchString(g) {
			v.Addf(fmt.Sprintf("groups[%d]", i), "invalid",
				"a group is 1 to %d lower-case letters, digits, '-' and '_', starting with a letter or digit", MaxGroupNameLen)
			continue
		}
		out = append(out, g)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func emailTaken(kind string) error {
	return &apperr.Error{
		Code:    apperr.Conflict,
		Message: "an account with this email already exists",
		Fields:  []apperr.FieldError{{Field: "email", Code: "taken", Message: "is already registered" + kind}},
	}
}

// --- customers ---

// RegisterParams are a new customer's fields. ClientIP, when set, is
// throttled like a login attempt (ThrottleIP*).
type RegisterParams struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
	ClientIP string `json:"-"`
}

// RegisterCustomer creates a customer account, with no groups, and
// announces it (customer_registered) in the same transaction. Errors:
// validation_failed naming email, password or name; conflict naming email
// when the address is registered already (this does tell whether an address
// has an account, see docs/adr/0011); rate_limited (*ThrottledError) when
// the client IP made too many attempts.
func (s *Service) RegisterCustomer(ctx context.Context, p RegisterParams) (Customer, error) {
	if p.ClientIP != "" {
		if err := s.throttle(ctx, s.ipLimiter, throttleKey("register", p.ClientIP), true); err != nil {
			return Customer{}, err
		}
	}
	email, name := normalizeEmail(p.Email), strings.TrimSpace(p.Name)
	var v apperr.Validation
	checkEmail(&v, email)
	checkPassword(&v, p.Password, email)
	checkName(&v, name)
	if err := v.Err(); err != nil {
		return Customer{}, err
	}
	hash, err := s.hasher.hash(ctx, p.Password)
	if err != nil {
		return Customer{}, fmt.Errorf("register customer: %w", err)
	}
	var c Customer
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		c, err = s.insertCustomer(ctx, tx, email, name, hash, nil)
		return err
	})
	if err != nil {
		return Customer{}, fmt.Errorf("register customer: %w", err)
	}
	return c, nil
}

// insertCustomer writes a new customer and its customer_registered event.
func (s *Service) insertCustomer(ctx context.Context, tx *store.Tx, email, name, hash string, groups []string) (Customer, error) {
	now := s.now()
	c := Customer{
		ID: id.New(customerPrefix), Email: email, Name: name, Groups: append([]string{}, groups...),
		Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	gj, _ := json.Marshal(c.Groups)
	_, err := tx.Exec(ctx,
		`INSERT INTO customers (id, email, name, password_hash, customer_groups, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.Email, c.Name, hash, string(gj), c.Version, c.CreatedAt, c.UpdatedAt)
	if store.IsUniqueViolation(err) {
		return Customer{}, emailTaken("")
	}
	if err != nil {
		return Customer{}, err
	}
	if err := s.announceRegistered(ctx, tx, c); err != nil {
		return Customer{}, err
	}
	return c, nil
}

const customerColumns = `id, email, name, customer_groups, version, created_at, updated_at`

func scanCustomer(r store.RowScanner) (Customer, error) {
	var (
		c      Customer
		groups string
	)
	if err := r.Scan(&c.ID, &c.Email, &c.Name, &groups, &c.Version, &c.CreatedAt, &c.UpdatedAt); err != nil {
		return Customer{}, err
	}
	if err := json.Unmarshal([]byte(groups), &c.Groups); err != nil {
		return Customer{}, fmt.Errorf("customer %s groups: %w", c.ID, err)
	}
	if c.Groups == nil {
		c.Groups = []string{}
	}
	return c, nil
}

func customerNotFound(cid string) error { return apperr.New(apperr.NotFound, "no customer %q", cid) }

// GetCustomer returns a customer by id; not_found when there is none.
func (s *Service) GetCustomer(ctx context.Context, customerID string) (Customer, error) {
	return s.getCustomer(ctx, s.db, customerID)
}

func (s *Service) getCustomer(ctx context.Context, q store.Querier, customerID string) (Customer, error) {
	c, err := scanCustomer(q.QueryRow(ctx, `SELECT `+customerColumns+` FROM customers WHERE id = ?`, customerID))
	if errors.Is(err, sql.ErrNoRows) {
		return Customer{}, customerNotFound(customerID)
	}
	if err != nil {
		return Customer{}, fmt.Errorf("get customer: %w", err)
	}
	return c, nil
}

// CustomerFor returns customer customerID as the customer p sees it: a
// customer sees only itself, and any other id is not_found — exactly as
// for an id that does not exist, so nothing leaks. Without a principal it
// is unauthorized; staff and API keys are forbidden here (they read
// customers with GetCustomer, behind customers:read).
func (s *Service) CustomerFor(ctx context.Context, p auth.Principal, customerID string) (Customer, error) {
	switch {
	case p.Subject == "":
		return Customer{}, apperr.New(apperr.Unauthorized, "this endpoint requires a customer access token")
	case p.Kind != auth.KindCustomer:
		return Customer{}, apperr.New(apperr.Forbidden, "only customers have a customer profile; staff use GET /admin/customers/{id}")
	case p.Subject != customerID:
		return Customer{}, customerNotFound(customerID)
	}
	return s.GetCustomer(ctx, customerID)
}

// CustomerQuery filters and pages ListCustomers.
type CustomerQuery struct {
	// Email, when set, matches one address exactly (case-insensitively).
	Email string
	Limit int
	// After is the id of the last customer of the previous page.
	After string
}

// ListCustomers returns customers in id (creation) order, and the id to
// continue after ("" on the last page).
func (s *Service) ListCustomers(ctx context.Context, q CustomerQuery) ([]Customer, string, error) {
	if q.Limit <= 0 {
		q.Limit = 20
	}
	query := `SELECT ` + customerColumns + ` FROM customers WHERE id > ?`
	args := []any{q.After}
	if q.Email != "" {
		query += ` AND email = ?`
		args = append(args, normalizeEmail(q.Email))
	}
	query += ` ORDER BY id LIMIT ?`
	args = append(args, q.Limit+1)
	rows, err := s.db.Query(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list customers: %w", err)
	}
	defer rows.Close()
	out := []Customer{}
	for rows.Next() {
		c, err := scanCustomer(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list customers: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list customers: %w", err)
	}
	next := ""
	if len(out) > q.Limit {
		out = out[:q.Limit]
		next = out[q.Limit-1].ID
	}
	return out, next, nil
}

// CustomerPatch is a staff change to a customer; nil fields stay as they are.
type CustomerPatch struct {
	Name   *string   `json:"name"`
	Groups *[]string `json:"groups"`
}

// UpdateCustomer applies a staff change. With ifMatch > 0 the change
// applies only to that version (version_conflict otherwise). New groups
// reach the customer's access tokens at its next refresh. Errors:
// not_found, validation_failed naming name or groups[i], version_conflict.
func (s *Service) UpdateCustomer(ctx context.Context, customerID string, patch CustomerPatch, ifMatch int64) (Customer, error) {
	var v apperr.Validation
	var name string
	var groups []string
	if patch.Name != nil {
		name = strings.TrimSpace(*patch.Name)
		checkName(&v, name)
	}
	if patch.Groups != nil {
		groups = normalizeGroups(&v, *patch.Groups)
	}
	if err := v.Err(); err != nil {
		return Customer{}, err
	}
	var out Customer
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		c, err := s.getCustomer(ctx, tx, customerID)
		if err != nil {
			return err
		}
		if ifMatch > 0 && c.Version != ifMatch {
			return versionConflict(c.Version)
		}
		if patch.Name != nil {
			c.Name = name
		}
		if patch.Groups != nil {
			c.Groups = groups
		}
		gj, _ := json.Marshal(c.Groups)
		c.UpdatedAt = s.now()
		res, err := tx.Exec(ctx,
			`UPDATE customers SET name = ?, customer_groups = ?, version = version + 1, updated_at = ? WHERE id = ? AND version = ?`,
			c.Name, string(gj), c.UpdatedAt, c.ID, c.Version)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return versionConflict(0)
		}
		c.Version++
		out = c
		return nil
	})
	if err != nil {
		return Customer{}, fmt.Errorf("update customer %s: %w", customerID, err)
	}
	return out, nil
}

func versionConflict(current int64) error {
	if current == 0 {
		return apperr.New(apperr.VersionConflict, "the resource was changed concurrently; read it again and retry")
	}
	return apperr.New(apperr.VersionConflict, "If-Match names a stale version; the current version is %d", current)
}

// --- staff ---

// CreateStaffParams are a new staff user's fields.
type CreateStaffParams struct {
	Email    string `json:"email"`
	Name     string `json:"name"`
	Role     Role   `json:"role"`
	Password string `json:"password"`
}

// CreateStaff creates a staff user. Errors: validation_failed naming email,
// name, role or password; conflict naming email.
func (s *Service) CreateStaff(ctx context.Context, p CreateStaffParams) (Staff, error) {
	email, name := normalizeEmail(p.Email), strings.TrimSpace(p.Name)
	var v apperr.Validation
	checkEmail(&v, email)
	checkName(&v, name)
	if !p.Role.Valid() {
		v.Add("role", "invalid", "role must be one of admin, merchandiser, fulfilment, support, viewer")
	}
	checkPassword(&v, p.Password, email)
	if err := v.Err(); err != nil {
		return Staff{}, err
	}
	hash, err := s.hasher.hash(ctx, p.Password)
	if err != nil {
		return Staff{}, fmt.Errorf("create staff user: %w", err)
	}
	u, err := s.insertStaff(ctx, s.db, email, name, p.Role, hash)
	if err != nil {
		return Staff{}, fmt.Errorf("create staff user: %w", err)
	}
	return u, nil
}

func (s *Service) insertStaff(ctx context.Context, q store.Querier, email, name string, role Role, hash string) (Staff, error) {
	now := s.now()
	u := Staff{ID: id.New(staffPrefix), Email: email, Name: name, Role: role, Version: 1, CreatedAt: now, UpdatedAt: now}
	_, err := q.Exec(ctx,
		`INSERT INTO staff_users (id, email, name, role, password_hash, disabled, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Email, u.Name, string(u.Role), hash, false, u.Version, u.CreatedAt, u.UpdatedAt)
	if store.IsUniqueViolation(err) {
		return Staff{}, emailTaken(" by a staff user")
	}
	if err != nil {
		return Staff{}, err
	}
	return u, nil
}

const staffColumns = `id, email, name, role, disabled, version, created_at, updated_at`

func scanStaff(r store.RowScanner) (Staff, error) {
	var u Staff
	err := r.Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.Disabled, &u.Version, &u.CreatedAt, &u.UpdatedAt)
	return u, err
}

// GetStaff returns a staff user by id; not_found when there is none.
func (s *Service) GetStaff(ctx context.Context, userID string) (Staff, error) {
	return s.getStaff(ctx, s.db, userID)
}

func (s *Service) getStaff(ctx context.Context, q store.Querier, userID string) (Staff, error) {
	u, err := scanStaff(q.QueryRow(ctx, `SELECT `+staffColumns+` FROM staff_users WHERE id = ?`, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return Staff{}, apperr.New(apperr.NotFound, "no staff user %q", userID)
	}
	if err != nil {
		return Staff{}, fmt.Errorf("get staff user: %w", err)
	}
	return u, nil
}

// ListStaff returns staff users in id order, and the id to continue after.
func (s *Service) ListStaff(ctx context.Context, limit int, after string) ([]Staff, string, error) {
	if limit <= 0 {
		limit = 20
	}
	rows, err := s.db.Query(ctx, `SELECT `+staffColumns+` FROM staff_users WHERE id > ? ORDER BY id LIMIT ?`, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list staff users: %w", err)
	}
	defer rows.Close()
	out := []Staff{}
	for rows.Next() {
		u, err := scanStaff(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list staff users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list staff users: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}

// StaffPatch changes a staff user; nil fields stay as they are.
type StaffPatch struct {
	Role     *Role   `json:"role"`
	Name     *string `json:"name"`
	Disabled *bool   `json:"disabled"`
}

// UpdateStaff changes a staff user's role, name or disabled flag. With
// ifMatch > 0 the change applies only to that version. Disabling a user
// revokes every session it has, in the same transaction: it cannot refresh
// any more, and its access tokens die within AccessTTL. A new role reaches
// its tokens at the next refresh. Errors: not_found, validation_failed
// naming role or name, version_conflict.
func (s *Service) UpdateStaff(ctx context.Context, userID string, patch StaffPatch, ifMatch int64) (Staff, error) {
	var v apperr.Validation
	var name string
	if patch.Role != nil && !patch.Role.Valid() {
		v.Add("role", "invalid", "role must be one of admin, merchandiser, fulfilment, support, viewer")
	}
	if patch.Name != nil {
		name = strings.TrimSpace(*patch.Name)
		checkName(&v, name)
	}
	if err := v.Err(); err != nil {
		return Staff{}, err
	}
	var out Staff
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		u, err := s.getStaff(ctx, tx, userID)
		if err != nil {
			return err
		}
		if ifMatch > 0 && u.Version != ifMatch {
			return versionConflict(u.Version)
		}
		disabling := patch.Disabled != nil && *patch.Disabled && !u.Disabled
		if patch.Role != nil {
			u.Role = *patch.Role
		}
		if patch.Name != nil {
			u.Name = name
		}
		if patch.Disabled != nil {
			u.Disabled = *patch.Disabled
		}
		u.UpdatedAt = s.now()
		res, err := tx.Exec(ctx,
			`UPDATE staff_users SET role = ?, name = ?, disabled = ?, version = version + 1, updated_at = ? WHERE id = ? AND version = ?`,
			string(u.Role), u.Name, u.Disabled, u.UpdatedAt, u.ID, u.Version)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return versionConflict(0)
		}
		u.Version++
		if disabling {
			if err := s.revokeSubject(ctx, tx, u.ID, "disabled"); err != nil {
				return err
			}
		}
		out = u
		return nil
	})
	if err != nil {
		return Staff{}, fmt.Errorf("update staff user %s: %w", userID, err)
	}
	return out, nil
}
