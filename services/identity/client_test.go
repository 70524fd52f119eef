package identity

import (
	"context"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
)

// TestHTTPAuthenticator: an API key checked by a remote identity is the
// same principal as in process; a refused token is unauthorized, and an
// identity that is down or unreachable is unavailable, each after one
// call.
func TestHTTPAuthenticator(t *testing.T) {
	ctx := context.Background()
	e := MustNewSQLiteEnv(t, Config{})
	key := MustAdminKey(t, e.s, RoleViewer)
	srv := newCountingServer(t, e.s)
	a := NewHTTPAuthenticator(srv.URL+"/", srv.Client())

	want, err := e.s.Authenticate(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := a.Authenticate(ctx, key); err != nil || !reflect.DeepEqual(got, want) || got.Kind != auth.KindAPIKey {
		t.Fatalf("Authenticate = %+v, %v; in process %+v", got, err, want)
	}
	if _, err := a.Authenticate(ctx, SecretPrefix+"forged"); !apperr.Is(err, apperr.Unauthorized) {
		t.Fatalf("a forged key: %v", err)
	}
	srv.down.Store(true)
	if _, err := a.Authenticate(ctx, key); !apperr.Is(err, apperr.Unavailable) {
		t.Fatalf("identity down: %v", err)
	}
	if n := srv.count("/admin/auth/whoami"); n != 3 {
		t.Fatalf("whoami calls = %d, want 3 (no retries)", n)
	}
	gone := httptest.NewServer(nil)
	gone.Close()
	if _, err := NewHTTPAuthenticator(gone.URL, nil).Authenticate(ctx, key); !apperr.Is(err, apperr.Unavailable) {
		t.Fatalf("identity unreachable: %v", err)
	}
}
