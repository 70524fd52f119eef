package httpx

import (
	"net/http"
	"strings"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
)

// maxTokenLen bounds a bearer token; longer ones are rejected unread.
const maxTokenLen = 4096

// Authorize authenticates the caller's "Authorization: Bearer <token>" with
// authn and, when perm is not empty, checks authz.Allowed(principal, perm).
// The principal goes into the request context (auth.FromContext), and its
// subject onto the request-scoped logger.
//
// With perm == "" (a public route) a request without an Authorization header
// passes through anonymously; one with a valid bearer token passes with its
// principal (so a logged-in shopper is recognised); one with a malformed or
// invalid token is refused with 401. With a perm, a missing, malformed or
// invalid token is a 401 unauthorized problem with a WWW-Authenticate: Bearer
// challenge, and a valid token lacking the permission is a 403 forbidden
// problem. Errors of authn other than apperr.Unauthorized (the identity
// service is down) are reported as they are (5xx), never as a 401.
//
// It panics when authn is nil, or authz is nil and perm is not: a wiring
// mistake caught at start-up.
func Authorize(authn auth.Authenticator, authz auth.Authorizer, perm auth.Permission) Middleware {
	if authn == nil {
		panic("httpx.Authorize: nil Authenticator")
	}
	if authz == nil && perm != "" {
		panic("httpx.Authorize: nil Authorizer for permission " + string(perm))
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			noteRoute(r, "")
			header, present := r.Header["Authorization"]
			if !present {
				if perm == "" {
					next.ServeHTTP(w, r)
					return
				}
				challenge(w, "")
				Error(w, r, apperr.New(apperr.Unauthorized, "this endpoint requires an Authorization: Bearer <token> header"))
				return
			}
			token, ok := bearerToken(header)
			if !ok {
				challenge(w, "invalid_request")
				Error(w, r, apperr.New(apperr.Unauthorized, `the Authorization header must be "Bearer <token>"`))
				return
			}
			p, err := authn.Authenticate(r.Context(), token)
			if err != nil {
				if apperr.Is(err, apperr.Unauthorized) {
					challenge(w, "invalid_token")
				}
				Error(w, r, err)
				return
			}
			if perm != "" && !authz.Allowed(p, perm) {
				Error(w, r, apperr.New(apperr.Forbidden, "this credential does not grant the %s permission", perm))
				return
			}
			ctx := auth.WithPrincipal(r.Context(), p)
			ctx = WithLogger(ctx, Logger(ctx).With("subject", p.Subject))
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// challenge sets the RFC 6750 WWW-Authenticate challenge of a 401.
func challenge(w http.ResponseWriter, errCode string) {
	v := `Bearer realm="souk"`
	if errCode != "" {
		v += `, error="` + errCode + `"`
	}
	w.Header().Set("WWW-Authenticate", v)
}

// bearerToken returns the token of a single "Bearer <token>" header value
// (the scheme in any case), checking the RFC 6750 b64token syntax.
func bearerToken(values []string) (string, bool) {
	if len(values) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || len(token) > maxTokenLen {
		return "", false
	}
	end := len(token)
	for end > 0 && token[end-1] == '=' {
		end--
	}
	if end == 0 {
		return "", false
	}
	for i := 0; i < end; i++ {
		c := token[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return "", false
		}
	}
	return token, true
}
