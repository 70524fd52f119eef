// Package identity owns who may call Souk: staff roles, the permission matrix
// that says which role may do what, and API keys (machine credentials with a
// role). Customers, staff users and signed tokens join it in a later issue;
// they plug into the same auth.Authenticator / auth.Authorizer shapes.
package identity

import (
	"slices"
	"time"

	"github.com/soukhq/souk/platform/auth"
)

// Role is a staff role.
type Role string

// The staff roles, from most to least powerful.
const (
	RoleAdmin        Role = "admin"
	RoleMerchandiser Role = "merchandiser"
	RoleFulfilment   Role = "fulfilment"
	RoleSupport      Role = "support"
	RoleViewer       Role = "viewer"
)

// Roles lists every role.
var Roles = []Role{RoleAdmin, RoleMerchandiser, RoleFulfilment, RoleSupport, RoleViewer}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// The permissions of the Admin API. Every /admin route names one of them.
const (
	PermCatalogRead   auth.Permission = "catalog:read"
	PermCatalogWrite  auth.Permission = "catalog:write"
	PermAPIKeysManage auth.Permission = "api_keys:manage"
)

// matrix is the single permission matrix: which roles hold each permission.
// Admin holds every permission. A permission missing here is held by admin
// only, so a new route is closed by default.
var matrix = map[auth.Permission][]Role{
	PermCatalogRead:   {RoleMerchandiser, RoleFulfilment, RoleSupport, RoleViewer},
	PermCatalogWrite:  {RoleMerchandiser},
	PermAPIKeysManage: {},
	PermWhoAmI:        {RoleMerchandiser, RoleFulfilment, RoleSupport, RoleViewer},
}

// Permissions lists every permission in the matrix.
func Permissions() []auth.Permission {
	out := make([]auth.Permission, 0, len(matrix))
	for p := range matrix {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Policy is the auth.Authorizer that applies the permission matrix.
type Policy struct{}

var _ auth.Authorizer = Policy{}

// Allowed reports whether the principal's role holds the permission.
// Customers hold no Admin permission.
func (Policy) Allowed(p auth.Principal, perm auth.Permission) bool {
	if p.Kind == auth.KindCustomer {
		return false
	}
	role := Role(p.Role)
	if role == RoleAdmin {
		return true
	}
	return slices.Contains(matrix[perm], role)
}

// APIKey is a machine credential. Its secret is shown once, at creation; the
// database keeps only a SHA-256 digest of it.
type APIKey struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       Role       `json:"role"`
	Prefix     string     `json:"prefix"` // the first characters of the secret, to recognise it
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	CreatedBy  string     `json:"created_by,omitempty"`
	// Secret is set only in the response to the creation.
	Secret string `json:"secret,omitempty"`
}
