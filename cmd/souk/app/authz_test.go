package app

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/services/identity"
)

// TestAuthorizationMatrix calls every Admin route of every service this
// binary runs, with no token and with an API key of every role, and checks
// the answer against identity's one permission matrix: 401 without a token,
// 403 when the role lacks the route's permission, neither when it holds it.
// A route whose permission is not in the matrix fails the test, so a new
// route cannot ship without a decision about who may call it.
func TestAuthorizationMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole app")
	}
	a := mustStartApp(t)
	base := "http://" + a.Addr()
	known := identity.Permissions()

	// An admin key (bootstrapped) creates one key per role.
	admin := mustBootstrapKey(t, a)
	keys := map[identity.Role]string{}
	for _, role := range identity.Roles {
		body, _ := json.Marshal(map[string]string{"name": "matrix " + string(role), "role": string(role)})
		resp := mustDo(t, http.MethodPost, base+"/admin/api-keys", admin, body)
		var k struct {
			Secret string `json:"secret"`
		}
		if resp.code != http.StatusCreated || json.Unmarshal(resp.body, &k) != nil {
			t.Fatalf("create %s key: %d %s", role, resp.code, resp.body)
		}
		keys[role] = k.Secret
	}

	// A customer's access token opens no Admin route.
	reg, _ := json.Marshal(map[string]string{"email": "matrix@example.com", "password": "a long enough secret", "name": "Matrix"})
	if r := mustDo(t, http.MethodPost, base+"/store/customers", "", reg); r.code != http.StatusCreated {
		t.Fatalf("register customer: %d %s", r.code, r.body)
	}
	login, _ := json.Marshal(map[string]string{"email": "matrix@example.com", "password": "a long enough secret"})
	tok := mustDo(t, http.MethodPost, base+"/store/auth/token", "", login)
	var session struct {
		AccessToken string `json:"access_token"`
	}
	if tok.code != http.StatusOK || json.Unmarshal(tok.body, &session) != nil || session.AccessToken == "" {
		t.Fatalf("customer login: %d %s", tok.code, tok.body)
	}

	routes := 0
	for _, name := range a.selected {
		for _, rt := range a.units[name].routes {
			if !strings.HasPrefix(rt.Path, "/admin/") || publicAdminRoutes[rt.Pattern()] {
				continue
			}
			routes++
			t.Run(rt.Pattern(), func(t *testing.T) {
				if !slices.Contains(known, rt.Permission) {
					t.Fatalf("permission %q is not in identity's matrix: decide which roles hold it", rt.Permission)
				}
				url := base + fillPath(rt.Path)
				body := []byte(nil)
				if rt.Method == http.MethodPost || rt.Method == http.MethodPatch || rt.Method == http.MethodPut {
					body = []byte(`{}`)
				}
				if r := mustDo(t, rt.Method, url, "", body); r.code != http.StatusUnauthorized {
					t.Errorf("no token: %d, want 401", r.code)
				}
				if r := mustDo(t, rt.Method, url, session.AccessToken, body); r.code != http.StatusForbidden {
					t.Errorf("customer token: %d, want 403", r.code)
				}
				for _, role := range identity.Roles {
					r := mustDo(t, rt.Method, url, keys[role], body)
					allowed := identity.Policy{}.Allowed(auth.Principal{Kind: auth.KindAPIKey, Role: string(role)}, rt.Permission)
					switch {
					case r.code == http.StatusUnauthorized:
						t.Errorf("%s: 401 with a valid key", role)
					case allowed && r.code == http.StatusForbidden:
						t.Errorf("%s holds %s but got 403", role, rt.Permission)
					case !allowed && r.code != http.StatusForbidden:
						t.Errorf("%s lacks %s but got %d", role, rt.Permission, r.code)
					}
				}
			})
		}
	}
	if routes < 10 {
		t.Fatalf("only %d admin routes found", routes)
	}
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// fillPath puts a well-formed but unknown value in every path parameter.
func fillPath(p string) string {
	return pathParam.ReplaceAllString(p, "x_01JD3Q0000000000000000000A")
}

type answer struct {
	code int
	body []byte
}

func mustDo(t *testing.T, method, url, token string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return answer{code: resp.StatusCode, body: buf.Bytes()}
}

// mustBootstrapKey returns an admin API key secret for the app.
func mustBootstrapKey(t *testing.T, a *App) string {
	t.Helper()
	secret := identity.NewSecret()
	u := a.units["identity"]
	svc := identity.New(u.db, u.outbox, discardLogger(), identity.Config{})
	if _, err := svc.Bootstrap(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	return secret
}

// TestCredentialsAreNeverReplayed: a response that carries a credential is
// not kept for Idempotency-Key replay (it would sit in clear in the
// database); the same key simply runs the request again.
func TestCredentialsAreNeverReplayed(t *testing.T) {
	a := mustStartApp(t)
	base := "http://" + a.Addr()
	admin := mustBootstrapKey(t, a)
	send := func(path, token string, body []byte) (string, http.Header) {
		req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "same-key")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		return buf.String(), resp.Header
	}
	body, _ := json.Marshal(map[string]string{"name": "twice", "role": "viewer"})
	first, _ := send("/admin/api-keys", admin, body)
	second, h := send("/admin/api-keys", admin, body)
	if first == second || h.Get("Idempotent-Replayed") != "" {
		t.Fatalf("an API key secret was replayed from storage:\n%s\n%s", first, second)
	}
	var n int
	if err := a.units["identity"].db.QueryRow(context.Background(), `SELECT COUNT(*) FROM souk_idempotency_keys`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d idempotency rows kept for credential responses (%v)", n, err)
	}
}
