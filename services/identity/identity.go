// Package identity owns who may call Souk and what they may do: customers
// and staff users (argon2id passwords, login throttling, short-lived EdDSA
// access tokens with rotating signing keys published as a JWKS, rotating
// refresh tokens with reuse detection), API keys (machine credentials with a
// role), and the single permission matrix that says which staff role may do
// what. It implements auth.Authenticator (*Service in process,
// *JWKSAuthenticator and *HTTPAuthenticator in other processes) and
// auth.Authorizer (Policy).
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

// The permissions of the Admin API. Every /admin route of every service
// names one of them. Other services declare their own auth.Permission
// constants with the same strings (they do not import identity); the
// composition root's authorization test checks both agree with this list.
const (
	PermCatalogRead    auth.Permission = "catalog:read"
	PermCatalogWrite   auth.Permission = "catalog:write"
	PermPricingRead    auth.Permission = "pricing:read"
	PermPricingWrite   auth.Permission = "pricing:write"
	PermInventoryRead  auth.Permission = "inventory:read"
	PermInventoryWrite auth.Permission = "inventory:write"
	PermCustomersRead  auth.Permission = "customers:read"
	PermCustomersWrite auth.Permission = "customers:write"
	PermCartsRead      auth.Permission = "carts:read"
	// PermCartsWrite marks carts checked out: the checkout's own service
	// calls, admin-only for people.
	PermCartsWrite     auth.Permission = "carts:write"
	PermOrdersRead     auth.Permission = "orders:read"
	PermOrdersWrite    auth.Permission = "orders:write"
	PermOrdersFulfil   auth.Permission = "orders:fulfil"
	PermOrdersRefund   auth.Permission = "orders:refund"
	PermWebhooksManage auth.Permission = "webhooks:manage"
	PermStaffManage    auth.Permission = "staff:manage"
	PermAPIKeysManage  auth.Permission = "api_keys:manage"
	PermAuthKeysRotate auth.Permission = "auth:keys:rotate"
	// PermWhoAmI is held by every staff role: it tells a caller who it is.
	PermWhoAmI   auth.Permission = "auth:whoami"
	PermOpsRead  auth.Permission = "ops:read"
	PermOpsWrite auth.Permission = "ops:write"
)

// allPermissions is every permission of the Admin API, in the order above.
var allPermissions = []auth.Permission{
	PermCatalogRead, PermCatalogWrite,
	PermPricingRead, PermPricingWrite,
	PermInventoryRead, PermInventoryWrite,
	PermCustomersRead, PermCustomersWrite,
	PermCartsRead, PermCartsWrite,
	PermOrdersRead, PermOrdersWrite, PermOrdersFulfil, PermOrdersRefund,
	PermWebhooksManage, PermStaffManage, PermAPIKeysManage, PermAuthKeysRotate,
	PermWhoAmI,
	PermOpsRead, PermOpsWrite,
}

// grants is the single permission matrix, written per role. Admin holds
// every permission and is not listed. A permission no role is granted here
// (carts:write, staff:manage, api_keys:manage, auth:keys:rotate,
// webhooks:manage, ops:write) is admin-only, and so is any permission missing from
// allPermissions: a new route is closed by default.
var grants = map[Role][]auth.Permission{
	RoleMerchandiser: {
		PermCatalogRead, PermCatalogWrite, PermPricingRead, PermPricingWrite,
		PermInventoryRead, PermOrdersRead, PermCustomersRead, PermWhoAmI, PermOpsRead,
	},
	RoleFulfilment: {
		PermCatalogRead, PermInventoryRead, PermInventoryWrite,
		PermOrdersRead, PermOrdersFulfil, PermWhoAmI, PermOpsRead,
	},
	RoleSupport: {
		PermCatalogRead, PermPricingRead, PermInventoryRead,
		PermCustomersRead, PermCustomersWrite, PermCartsRead,
		PermOrdersRead, PermOrdersWrite, PermOrdersRefund, PermWhoAmI, PermOpsRead,
	},
	RoleViewer: {
		PermCatalogRead, PermPricingRead, PermInventoryRead, PermCustomersRead,
		PermCartsRead, PermOrdersRead, PermOpsRead, PermWhoAmI,
	},
}

// Permissions lists every permission of the Admin API, sorted.
func Permissions() []auth.Permission {
	out := slices.Clone(allPermissions)
	slices.Sort(out)
	return out
}

// RolePermissions lists the permissions a role holds, sorted (every one for
// admin, none for an unknown role).
func RolePermissions(r Role) []auth.Permission {
	if r == RoleAdmin {
		return Permissions()
	}
	out := slices.Clone(grants[r])
	slices.Sort(out)
	return out
}

// Policy is the auth.Authorizer that applies the permission matrix. The zero
// value is ready to use and safe for concurrent use.
type Policy struct{}

var _ auth.Authorizer = Policy{}

// Allowed reports whether the principal's role holds the permission. Only
// staff users and API keys hold Admin permissions: a customer (or a
// principal of any other kind) holds none, whatever its Role says.
func (Policy) Allowed(p auth.Principal, perm auth.Permission) bool {
	if p.Kind != auth.KindStaff && p.Kind != auth.KindAPIKey {
		return false
	}
	role := Role(p.Role)
	if role == RoleAdmin {
		return true
	}
	return slices.Contains(grants[role], perm)
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

// Customer is a shopper with an account. Its password hash never leaves
// the service.
type Customer struct {
	ID    string `json:"id"`    // cus_…
	Email string `json:"email"` // lower-case, unique
	Name  string `json:"name"`
	// Groups are the customer groups (e.g. "vip") pricing uses for group
	// prices and promotions: lower-case, sorted, unique. Access tokens carry
	// them in the "groups" claim.
	Groups    []string  `json:"groups"`
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Staff is a back-office user with a role. A disabled user cannot log in
// and cannot refresh a session.
type Staff struct {
	ID        string    `json:"id"` // usr_…
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	Disabled  bool      `json:"disabled"`
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// TokenPair is what a login or a refresh returns.
type TokenPair struct {
	// AccessToken is a JWT (EdDSA) to send as "Authorization: Bearer …".
	AccessToken string `json:"access_token"`
	// RefreshToken ("rt_…") gets a new pair once, at POST …/auth/refresh.
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"` // always "Bearer"
	// ExpiresIn is the access token's lifetime in seconds.
	ExpiresIn int64 `json:"expires_in"`
}
