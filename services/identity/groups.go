package identity

import (
	"context"
	"net/http"
	"slices"
	"strings"
)

// AccessTokenVerifier verifies access tokens and returns their claims.
// *Service and *JWKSAuthenticator implement it.
type AccessTokenVerifier interface {
	VerifyAccessToken(ctx context.Context, token string) (Claims, error)
}

var (
	_ AccessTokenVerifier = (*Service)(nil)
	_ AccessTokenVerifier = (*JWKSAuthenticator)(nil)
)

type groupsKey struct{}

// WithGroups returns a context carrying the caller's customer groups.
func WithGroups(ctx context.Context, groups []string) context.Context {
	return context.WithValue(ctx, groupsKey{}, slices.Clone(groups))
}

// GroupsFromContext returns the customer groups of the request's access
// token (see Groups), or nil. Pricing and cart read a shopper's groups
// here.
//
// This is a stop-gap: auth.Principal has no field for them yet, and an
// auth.Authenticator can only hand a Principal to the request context.
// Once auth.Principal carries Groups, the principal will be the one place
// to read them.
func GroupsFromContext(ctx context.Context) []string {
	g, _ := ctx.Value(groupsKey{}).([]string)
	return g
}

// Groups is middleware that puts the "groups" claim of the request's
// access token into the context, for GroupsFromContext. Mount it inside
// httpx.Authorize (which has refused invalid tokens already) on the routes
// that price for a customer. A request without a bearer access token (an
// anonymous shopper, an API key) passes with no groups, and so does one
// whose token v refuses: authentication is not this middleware's job.
func Groups(v AccessTokenVerifier) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
			token = strings.TrimSpace(token)
			if ok && strings.EqualFold(scheme, "Bearer") && looksLikeJWT(token) {
				if c, err := v.VerifyAccessToken(r.Context(), token); err == nil && len(c.Groups) > 0 {
					r = r.WithContext(WithGroups(r.Context(), c.Groups))
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}
