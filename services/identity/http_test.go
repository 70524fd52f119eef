package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/httpx"
)

// jsonKeys returns the sorted top-level keys of a JSON object.
func jsonKeys(t testing.TB, body []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestHTTPCustomerJourney(t *testing.T) {
	runEnvs(t, Config{}, func(t *testing.T, e testEnv) {
		h := mount(e.s, e.s)

		w := apitest.MustServe(t, h, http.StatusCreated, request{method: "POST", path: "/store/customers",
			body: `{"email": "Ada@Example.com", "password": "correct-horse-battery", "name": "Ada Lovelace"}`})
		if got := strings.Join(jsonKeys(t, w.Body.Bytes()), ","); got != "created_at,email,groups,id,name,updated_at,version" {
			t.Fatalf("customer fields = %s", got)
		}
		if w.Header().Get("Location") != "/store/customers/me" || w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("headers = %v", w.Header())
		}
		c := apitest.MustDecode[Customer](t, w)

		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/store/customers",
			body: `{"email": "ADA@example.com", "password": "correct-horse-battery", "name": "Ada"}`}), 409, "conflict", "email")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/store/customers",
			body: `{"email": "x", "password": "short", "name": ""}`}), 400, "validation_failed", "email", "password", "name")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/store/customers",
			body: `{"email": "b@example.com", "password": "correct-horse-battery", "name": "B", "groups": ["vip"]}`}), 400, "bad_request", "groups")

		w = apitest.MustServe(t, h, http.StatusOK, request{method: "POST", path: "/store/auth/token",
			body: `{"email": "ada@example.com", "password": "correct-horse-battery"}`})
		if got := strings.Join(jsonKeys(t, w.Body.Bytes()), ","); got != "access_token,expires_in,refresh_token,token_type" {
			t.Fatalf("token fields = %s", got)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Fatal("tokens must not be cached")
		}
		pair := apitest.MustDecode[TokenPair](t, w)

		me := apitest.MustDecode[Customer](t, apitest.MustServe(t, h, http.StatusOK, request{method: "GET", path: "/store/customers/me", token: pair.AccessToken}))
		if me.ID != c.ID || me.Email != "ada@example.com" {
			t.Fatalf("me = %+v", me)
		}
		apitest.MustServe(t, h, http.StatusOK, request{method: "GET", path: "/store/customers/" + c.ID, token: pair.AccessToken})
		w = apitest.Serve(h, request{method: "GET", path: "/store/customers/me"})
		apitest.WantProblem(t, w, 401, "unauthorized")
		if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("401 without a challenge: %v", w.Header())
		}
		apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/store/customers/me", token: pair.AccessToken + "x"}), 401, "unauthorized")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/store/customers/me", token: MustAdminKey(t, e.s, RoleAdmin)}), 403, "forbidden")

		w = apitest.MustServe(t, h, http.StatusOK, request{method: "POST", path: "/store/auth/refresh", body: `{"refresh_token": "` + pair.RefreshToken + `"}`})
		next := apitest.MustDecode[TokenPair](t, w)
		apitest.MustServe(t, h, http.StatusOK, request{method: "GET", path: "/store/customers/me", token: next.AccessToken})
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/store/auth/refresh", body: `{"refresh_token": "` + pair.RefreshToken + `"}`}), 401, "unauthorized")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/store/auth/refresh", body: `{"refresh_token": "` + next.RefreshToken + `"}`}), 401, "unauthorized")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/store/auth/refresh", body: `{}`}), 401, "unauthorized")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/store/auth/refresh", body: `{"token": "x"}`}), 400, "bad_request", "token")

		again := apitest.MustDecode[TokenPair](t, apitest.MustServe(t, h, http.StatusOK, request{method: "POST", path: "/store/auth/token",
			body: `{"email": "ada@example.com", "password": "correct-horse-battery"}`}))
		apitest.MustServe(t, h, http.StatusNoContent, request{method: "POST", path: "/store/auth/logout", body: `{"refresh_token": "` + again.RefreshToken + `"}`})
		apitest.MustServe(t, h, http.StatusNoContent, request{method: "POST", path: "/store/auth/logout", body: `{"refresh_token": "rt_whatever"}`})
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/store/auth/refresh", body: `{"refresh_token": "` + again.RefreshToken + `"}`}), 401, "unauthorized")
	})
}

// TestHTTPLoginFailuresAreIdentical: byte for byte, at both doors.
func TestHTTPLoginFailuresAreIdentical(t *testing.T) {
	e := MustNewSQLiteEnv(t, Config{})
	MustRegister(t, e.s, "ada@example.com", "Ada")
	MustCreateStaff(t, e.s, "grace@example.com", RoleAdmin)
	h := mount(e.s, e.s)
	for _, door := range []struct{ path, known string }{{"/store/auth/token", "ada@example.com"}, {"/admin/auth/token", "grace@example.com"}} {
		wrong := apitest.Serve(h, request{method: "POST", path: door.path, body: `{"email": "` + door.known + `", "password": "wrong-password-1"}`})
		unknown := apitest.Serve(h, request{method: "POST", path: door.path, body: `{"email": "nobody@example.com", "password": "wrong-password-1"}`})
		p := apitest.WantProblem(t, wrong, 401, "invalid_credentials")
		apitest.WantProblem(t, unknown, 401, "invalid_credentials")
		if !bytes.Equal(wrong.Body.Bytes(), unknown.Body.Bytes()) {
			t.Fatalf("%s: bodies differ:\n%s\n%s", door.path, wrong.Body, unknown.Body)
		}
		for _, k := range []string{"Content-Type", "Cache-Control", "WWW-Authenticate", "Retry-After"} {
			if wrong.Header().Get(k) != unknown.Header().Get(k) {
				t.Errorf("%s: header %s differs", door.path, k)
			}
		}
		if p.Title != "Unauthorized" || p.Detail == "" || p.Instance != door.path {
			t.Errorf("problem = %+v", p)
		}
	}
}

func TestHTTPThrottling(t *testing.T) {
	runEnvs(t, Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, func(t *testing.T, e testEnv) {
		MustRegister(t, e.s, "ada@example.com", "Ada")
		h := mount(e.s, e.s)
		bad := request{method: "POST", path: "/store/auth/token", body: `{"email": "ada@example.com", "password": "wrong-password-1"}`}
		good := request{method: "POST", path: "/store/auth/token", body: `{"email": "ada@example.com", "password": "correct-horse-battery"}`}
		for range 5 {
			apitest.WantProblem(t, apitest.Serve(h, bad), 401, "invalid_credentials")
		}
		w := apitest.Serve(h, good)
		apitest.WantProblem(t, w, 429, "rate_limited")
		if ra := w.Header().Get("Retry-After"); ra != "900" {
			t.Fatalf("Retry-After = %q, want 900", ra)
		}
		e.clock.Advance(15 * time.Minute)
		apitest.MustServe(t, h, http.StatusOK, good)

		// Per client IP: behind the trusted proxy, X-Forwarded-For names the
		// client (the proxy appends the address it saw; what the client
		// wrote to the left of it is not believed).
		from := func(rq request, ip string) request {
			rq.header = map[string]string{"X-Forwarded-For": "198.51.100.1, " + ip}
			rq.remoteAddr = "10.1.2.3:40000"
			return rq
		}
		for i := range 20 {
			rq := request{method: "POST", path: "/store/auth/token", body: `{"email": "u` + string(rune('a'+i)) + `@example.com", "password": "nope-nope-nope"}`}
			apitest.WantProblem(t, apitest.Serve(h, from(rq, "203.0.113.9")), 401, "invalid_credentials")
		}
		apitest.WantProblem(t, apitest.Serve(h, from(good, "203.0.113.9")), 429, "rate_limited")
		apitest.MustServe(t, h, http.StatusOK, from(good, "203.0.113.10"))
	})
}

// TestHTTPAuthorization: who may call which identity route, as the gateway
// enforces it with Policy. A customer token is refused on every Admin route
// (403); a customer reading another customer's id gets 404.
func TestHTTPAuthorization(t *testing.T) {
	e := MustNewSQLiteEnv(t, Config{})
	s := e.s
	ada := MustRegister(t, s, "ada@example.com", "Ada")
	bob := MustRegister(t, s, "bob@example.com", "Bob")
	h := mount(s, s)
	customer := MustLogin(t, s, auth.KindCustomer, "ada@example.com").AccessToken

	for _, rt := range s.Routes() {
		if !strings.HasPrefix(rt.Path, "/admin/") || rt.Permission == "" {
			continue
		}
		path := strings.ReplaceAll(rt.Path, "{id}", bob.ID)
		w := apitest.Serve(h, request{method: rt.Method, path: path, body: `{}`, token: customer})
		if w.Code != http.StatusForbidden {
			t.Errorf("%s with a customer token = %d, want 403", rt.Pattern(), w.Code)
		}
	}
	w := apitest.Serve(h, request{method: "GET", path: "/store/customers/" + bob.ID, token: customer})
	apitest.WantProblem(t, w, 404, "not_found")
	missing := apitest.Serve(h, request{method: "GET", path: "/store/customers/cus_01JD3Q0000000000000000000A", token: customer})
	apitest.WantProblem(t, missing, 404, "not_found")
	apitest.MustServe(t, h, http.StatusOK, request{method: "GET", path: "/store/customers/" + ada.ID, token: customer})

	keys := map[Role]string{}
	for _, r := range Roles {
		keys[r] = MustAdminKey(t, s, r)
	}
	MustCreateStaff(t, s, "viewer@example.com", RoleViewer)
	viewerSession := MustLogin(t, s, auth.KindStaff, "viewer@example.com").AccessToken
	for _, tt := range []struct {
		rq   request
		role Role
		want int
	}{
		{request{method: "GET", path: "/admin/customers"}, RoleViewer, 200},
		{request{method: "GET", path: "/admin/customers/" + ada.ID}, RoleMerchandiser, 200},
		{request{method: "GET", path: "/admin/customers"}, RoleFulfilment, 403},
		{request{method: "PATCH", path: "/admin/customers/" + ada.ID, body: `{"groups": ["vip"]}`}, RoleSupport, 200},
		{request{method: "PATCH", path: "/admin/customers/" + ada.ID, body: `{"groups": ["vip"]}`}, RoleMerchandiser, 403},
		{request{method: "GET", path: "/admin/staff"}, RoleAdmin, 200},
		{request{method: "GET", path: "/admin/staff"}, RoleSupport, 403},
		{request{method: "POST", path: "/admin/auth/keys/rotate"}, RoleMerchandiser, 403},
		{request{method: "POST", path: "/admin/auth/keys/rotate"}, RoleAdmin, 200},
		{request{method: "GET", path: "/admin/auth/whoami"}, RoleViewer, 200},
	} {
		tt.rq.token = keys[tt.role]
		if w := apitest.Serve(h, tt.rq); w.Code != tt.want {
			t.Errorf("%s %s as %s = %d, want %d\n%s", tt.rq.method, tt.rq.path, tt.role, w.Code, tt.want, w.Body)
		}
	}
	// A staff session authenticates like an API key of its role.
	apitest.MustServe(t, h, http.StatusOK, request{method: "GET", path: "/admin/customers", token: viewerSession})
	apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/staff", token: viewerSession,
		body: `{"email": "x@example.com", "name": "X", "role": "admin", "password": "correct-horse-battery"}`}), 403, "forbidden")
	who := apitest.MustDecode[WhoAmI](t, apitest.MustServe(t, h, http.StatusOK, request{method: "GET", path: "/admin/auth/whoami", token: viewerSession}))
	if who.Kind != "staff" || who.Role != "viewer" || !strings.HasPrefix(who.Subject, "usr_") {
		t.Fatalf("whoami = %+v", who)
	}
}

func TestHTTPAdminCustomersAndStaff(t *testing.T) {
	runEnvs(t, Config{}, func(t *testing.T, e testEnv) {
		s := e.s
		h := mount(s, s)
		admin := MustAdminKey(t, s, RoleAdmin)
		ada := MustRegister(t, s, "ada@example.com", "Ada")
		MustRegister(t, s, "bob@example.com", "Bob")

		page := apitest.MustDecode[httpx.Page[Customer]](t, apitest.MustServe(t, h, 200, request{method: "GET", path: "/admin/customers?limit=1", token: admin}))
		if len(page.Data) != 1 || page.NextCursor == nil || page.Data[0].ID != ada.ID {
			t.Fatalf("page = %+v", page)
		}
		rest := apitest.MustDecode[httpx.Page[Customer]](t, apitest.MustServe(t, h, 200, request{method: "GET", path: "/admin/customers?limit=1&cursor=" + *page.NextCursor, token: admin}))
		if len(rest.Data) != 1 || rest.NextCursor != nil || rest.Data[0].Email != "bob@example.com" {
			t.Fatalf("second page = %+v", rest)
		}
		one := apitest.MustDecode[httpx.Page[Customer]](t, apitest.MustServe(t, h, 200, request{method: "GET", path: "/admin/customers?email=BOB@example.com", token: admin}))
		if len(one.Data) != 1 || one.Data[0].Email != "bob@example.com" {
			t.Fatalf("email filter = %+v", one)
		}
		apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/admin/customers?limit=0", token: admin}), 400, "validation_failed", "limit")

		w := apitest.MustServe(t, h, 200, request{method: "GET", path: "/admin/customers/" + ada.ID, token: admin})
		if w.Header().Get("ETag") != `"1"` {
			t.Fatalf("ETag = %q", w.Header().Get("ETag"))
		}
		apitest.WantProblem(t, apitest.Serve(h, request{method: "GET", path: "/admin/customers/cus_01JD3Q0000000000000000000A", token: admin}), 404, "not_found")
		w = apitest.MustServe(t, h, 200, request{method: "PATCH", path: "/admin/customers/" + ada.ID, token: admin,
			body: `{"groups": ["vip"]}`, header: map[string]string{"If-Match": `"1"`}})
		if c := apitest.MustDecode[Customer](t, w); w.Header().Get("ETag") != `"2"` || strings.Join(c.Groups, ",") != "vip" {
			t.Fatalf("patched = %s %v", w.Body, w.Header())
		}
		apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: "/admin/customers/" + ada.ID, token: admin,
			body: `{"name": "Stale"}`, header: map[string]string{"If-Match": "1"}}), 409, "version_conflict")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: "/admin/customers/" + ada.ID, token: admin,
			body: `{"groups": ["VIP"]}`}), 400, "validation_failed", "groups[0]")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "PATCH", path: "/admin/customers/" + ada.ID, token: admin,
			body: `{"email": "x@example.com"}`}), 400, "bad_request", "email")

		// Staff: create, log in at the staff door, change, disable.
		w = apitest.MustServe(t, h, 201, request{method: "POST", path: "/admin/staff", token: admin,
			body: `{"email": "Grace@Example.com", "name": "Grace", "role": "merchandiser", "password": "correct-horse-battery"}`})
		if got := strings.Join(jsonKeys(t, w.Body.Bytes()), ","); got != "created_at,disabled,email,id,name,role,updated_at,version" {
			t.Fatalf("staff fields = %s", got)
		}
		if strings.Contains(w.Body.String(), "argon2") || strings.Contains(w.Body.String(), "password") {
			t.Fatal("a staff response must not carry the password or its hash")
		}
		grace := apitest.MustDecode[Staff](t, w)
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/staff", token: admin,
			body: `{"email": "grace@example.com", "name": "G", "role": "viewer", "password": "correct-horse-battery"}`}), 409, "conflict", "email")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/staff", token: admin,
			body: `{"email": "h@example.com", "name": "H", "role": "root", "password": "correct-horse-battery"}`}), 400, "validation_failed", "role")

		pair := apitest.MustDecode[TokenPair](t, apitest.MustServe(t, h, 200, request{method: "POST", path: "/admin/auth/token",
			body: `{"email": "grace@example.com", "password": "correct-horse-battery"}`}))
		claims, err := s.VerifyAccessToken(context.Background(), pair.AccessToken)
		if err != nil || claims.Kind != auth.KindStaff || claims.Role != "merchandiser" || claims.Subject != grace.ID {
			t.Fatalf("staff claims = %+v, %v", claims, err)
		}
		// The staff door does not take customers, nor customer refresh tokens.
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/auth/token",
			body: `{"email": "ada@example.com", "password": "correct-horse-battery"}`}), 401, "invalid_credentials")
		customerPair := MustLogin(t, s, auth.KindCustomer, "ada@example.com")
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/auth/refresh", body: `{"refresh_token": "` + customerPair.RefreshToken + `"}`}), 401, "unauthorized")

		apitest.MustServe(t, h, 200, request{method: "GET", path: "/admin/staff/" + grace.ID, token: admin})
		apitest.MustServe(t, h, 200, request{method: "PATCH", path: "/admin/staff/" + grace.ID, token: admin,
			body: `{"role": "support"}`, header: map[string]string{"If-Match": "1"}})
		pair = apitest.MustDecode[TokenPair](t, apitest.MustServe(t, h, 200, request{method: "POST", path: "/admin/auth/refresh", body: `{"refresh_token": "` + pair.RefreshToken + `"}`}))
		if c, _ := s.VerifyAccessToken(context.Background(), pair.AccessToken); c.Role != "support" {
			t.Fatalf("role after refresh = %q", c.Role)
		}
		apitest.MustServe(t, h, 200, request{method: "PATCH", path: "/admin/staff/" + grace.ID, token: admin, body: `{"disabled": true}`})
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/auth/refresh", body: `{"refresh_token": "` + pair.RefreshToken + `"}`}), 401, "unauthorized")
		list := apitest.MustDecode[httpx.Page[Staff]](t, apitest.MustServe(t, h, 200, request{method: "GET", path: "/admin/staff", token: admin}))
		if len(list.Data) != 1 || !list.Data[0].Disabled {
			t.Fatalf("staff list = %+v", list)
		}
	})
}

func TestHTTPJWKS(t *testing.T) {
	e := MustNewSQLiteEnv(t, Config{})
	h := mount(e.s, e.s)
	w := apitest.MustServe(t, h, 200, request{method: "GET", path: JWKSPath})
	if cc := w.Header().Get("Cache-Control"); cc != "public, max-age=300" {
		t.Fatalf("Cache-Control = %q", cc)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks = %s", w.Body)
	}
	k := set.Keys[0]
	if k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["alg"] != "EdDSA" || k["use"] != "sig" || !strings.HasPrefix(k["kid"].(string), "sig_") {
		t.Fatalf("key = %v", k)
	}
	if _, private := k["d"]; private {
		t.Fatal("the JWKS must not publish the private key")
	}

	admin := MustAdminKey(t, e.s, RoleAdmin)
	rotated := apitest.MustDecode[SigningKey](t, apitest.MustServe(t, h, 200, request{method: "POST", path: "/admin/auth/keys/rotate", token: admin}))
	if !rotated.Active || rotated.KID == k["kid"] || rotated.RetireAt != nil {
		t.Fatalf("rotated = %+v", rotated)
	}
	if err := json.Unmarshal(apitest.MustServe(t, h, 200, request{method: "GET", path: JWKSPath}).Body.Bytes(), &set); err != nil || len(set.Keys) != 2 {
		t.Fatalf("jwks after rotation: %v %v", set, err)
	}
	keys, err := e.s.SigningKeys(context.Background())
	if err != nil || len(keys) != 2 || keys[0].Active || keys[0].RetireAt == nil || !keys[1].Active {
		t.Fatalf("SigningKeys = %+v, %v", keys, err)
	}
	e.clock.Advance(e.s.cfg.AccessTTL + e.s.cfg.Leeway + e.s.cfg.KeyRetireMargin)
	if err := json.Unmarshal(apitest.MustServe(t, h, 200, request{method: "GET", path: JWKSPath}).Body.Bytes(), &set); err != nil || len(set.Keys) != 1 || set.Keys[0]["kid"] != rotated.KID {
		t.Fatalf("jwks after retirement: %v %v", set, err)
	}
}
