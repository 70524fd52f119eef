package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
)

// HTTPAuthenticator authenticates bearer tokens by asking a remote identity
// service (GET /admin/auth/whoami with the caller's token). A process that
// does not run identity itself uses it.
type HTTPAuthenticator struct {
	base string
	hc   *http.Client
}

var _ auth.Authenticator = (*HTTPAuthenticator)(nil)

// NewHTTPAuthenticator returns an authenticator for the identity service at
// baseURL. hc should carry a timeout.
func NewHTTPAuthenticator(baseURL string, hc *http.Client) *HTTPAuthenticator {
	return &HTTPAuthenticator{base: strings.TrimSuffix(baseURL, "/"), hc: hc}
}

// Authenticate implements auth.Authenticator. A token identity refuses is
// apperr.Unauthorized; an unreachable identity is apperr.Unavailable.
func (c *HTTPAuthenticator) Authenticate(ctx context.Context, token string) (auth.Principal, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/admin/auth/whoami", nil)
	if err != nil {
		return auth.Principal{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return auth.Principal{}, apperr.Wrap(err, apperr.Unavailable, "identity service unreachable")
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		return auth.Principal{}, apperr.New(apperr.Unauthorized, "invalid bearer token")
	default:
		return auth.Principal{}, apperr.New(apperr.Unavailable, "identity service answered %d", resp.StatusCode)
	}
	var who WhoAmI
	if err := json.NewDecoder(resp.Body).Decode(&who); err != nil {
		return auth.Principal{}, fmt.Errorf("decode whoami: %w", err)
	}
	return auth.Principal{Subject: who.Subject, Kind: auth.Kind(who.Kind), Role: who.Role, Name: who.Name}, nil
}
