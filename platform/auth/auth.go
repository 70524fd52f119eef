// Package auth holds the shapes of authentication and authorization that
// every service shares: who is calling (a Principal), how a bearer token
// becomes one (an Authenticator), and whether a principal may do something
// (an Authorizer deciding on a Permission). The identity service implements
// them; the HTTP layer enforces them per route. Business rules — which role
// holds which permission — live in the identity service, not here.
package auth

import "context"

// Permission names one thing a caller may do, "<service>:<action>"
// (for example "catalog:write"). Every Admin route declares exactly one.
type Permission string

// Kind says what sort of caller a principal is.
type Kind string

// The kinds of principal.
const (
	KindAPIKey   Kind = "api_key"
	KindStaff    Kind = "staff"
	KindCustomer Kind = "customer"
)

// Principal is an authenticated caller.
type Principal struct {
	// Subject is the caller's id (key_…, usr_…, cus_…).
	Subject string
	Kind    Kind
	// Role is the staff role (admin, merchandiser, fulfilment, support,
	// viewer) for API keys and staff; empty for customers.
	Role string
	// Name is a human label for logs and audit records.
	Name string
	// Groups are a customer's groups ("vip", "wholesale"), which select
	// group prices and promotions; empty for staff and API keys.
	Groups []string
}

// Authenticator turns a bearer token into a principal. It returns an
// apperr.Unauthorized error for a missing, unknown, expired or revoked token.
// Implementations must be safe for concurrent use.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Principal, error)
}

// Authorizer decides whether a principal holds a permission. It must be safe
// for concurrent use.
type Authorizer interface {
	Allowed(p Principal, perm Permission) bool
}

type principalKey struct{}

// WithPrincipal returns a context carrying the principal.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal of the request, if it was authenticated.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
