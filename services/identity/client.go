package identity

import (
	"context"
	"errors"
	"net/http"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/httpx"
)

// HTTPAuthenticator authenticates bearer tokens by asking a remote identity
// service (GET /admin/auth/whoami with the caller's token). A process that
// does not run identity itself uses it. Each token is asked about once, with
// no retry: the caller's request is waiting.
type HTTPAuthenticator struct {
	api *httpx.Client
}

var _ auth.Authenticator = (*HTTPAuthenticator)(nil)

// NewHTTPAuthenticator returns an authenticator for the identity service at
// baseURL. hc should carry a timeout.
func NewHTTPAuthenticator(baseURL string, hc *http.Client) *HTTPAuthenticator {
	return &HTTPAuthenticator{api: httpx.NewClient("identity service", baseURL, hc)}
}

// Authenticate implements auth.Authenticator. A token identity refuses is
// apperr.Unauthorized; an unreachable identity, or any other answer, is
// apperr.Unavailable.
func (c *HTTPAuthenticator) Authenticate(ctx context.Context, token string) (auth.Principal, error) {
	var who WhoAmI
	err := c.api.Do(ctx, http.MethodGet, "/admin/auth/whoami", nil, &who, httpx.Header("Authorization", "Bearer "+token))
	var answer *httpx.ResponseError
	switch {
	case err == nil:
		return auth.Principal{Subject: who.Subject, Kind: auth.Kind(who.Kind), Role: who.Role, Name: who.Name}, nil
	case errors.As(err, &answer) && (answer.StatusCode == http.StatusUnauthorized || answer.StatusCode == http.StatusForbidden):
		return auth.Principal{}, apperr.New(apperr.Unauthorized, "invalid bearer token")
	case errors.As(err, &answer):
		return auth.Principal{}, apperr.New(apperr.Unavailable, "identity service answered %d", answer.StatusCode)
	}
	return auth.Principal{}, err
}
