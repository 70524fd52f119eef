package identity

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/auth"
)

// publicRoutes are the routes a caller reaches without a token; every
// other route without a permission (the customer's own profile) needs a
// customer token, checked by its handler.
var publicRoutes = map[string]bool{
	"POST /store/customers":      true,
	"POST /store/auth/token":     true,
	"POST /store/auth/refresh":   true,
	"POST /store/auth/logout":    true,
	"POST /admin/auth/token":     true,
	"POST /admin/auth/refresh":   true,
	"POST /admin/auth/logout":    true,
	"GET /.well-known/jwks.json": true,
}

// TestOpenAPIDocumentsEveryRoute: every route is in the document with its
// permission; the public ones say so, and nothing else does.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	c := apitest.MustContract(t)
	e := MustNewSQLiteEnv(t, Config{})
	ops := c.MustDocumentRoutes(t, e.s.Routes(), "GET /store/customers/me", "GET /store/customers/{id}")
	for _, r := range e.s.Routes() {
		op, ok := ops[r.Pattern()]
		if !ok {
			continue
		}
		if _, hasPerm := op.Extensions["x-permission"].(string); strings.HasPrefix(r.Path, "/admin/") && !hasPerm {
			t.Errorf("%s: no x-permission", r.Pattern())
		}
		if op.Public() != publicRoutes[r.Pattern()] {
			t.Errorf("%s: documented public=%v", r.Pattern(), op.Public())
		}
		if publicRoutes[r.Pattern()] && r.Permission != "" {
			t.Errorf("%s: a public route with permission %q", r.Pattern(), r.Permission)
		}
	}
}

// TestHandlersMatchOpenAPI drives every identity operation, successes and
// errors, through the handlers (behind the gateway's authorization) and
// validates each request and response against the document.
func TestHandlersMatchOpenAPI(t *testing.T) {
	c := apitest.MustContract(t)
	e := MustNewSQLiteEnv(t, Config{})
	s := e.s
	h := mount(s, s)
	check := func(rq request) *httptest.ResponseRecorder { t.Helper(); return c.Serve(t, h, rq.Build()) }
	invalid := map[string]string{apitest.InvalidRequestHeader: "1"}
	admin := MustAdminKey(t, s, RoleAdmin)
	viewer := MustAdminKey(t, s, RoleViewer)

	// Customers and their sessions.
	cust := apitest.MustDecode[Customer](t, check(request{method: "POST", path: "/store/customers",
		body: `{"email": "ada@example.com", "password": "correct-horse-battery", "name": "Ada"}`}))
	check(request{method: "POST", path: "/store/customers", body: `{"email": "ada@example.com", "password": "correct-horse-battery", "name": "Ada"}`})
	check(request{method: "POST", path: "/store/customers", body: `{"email": "nope", "password": "x", "name": ""}`, header: invalid})
	pair := apitest.MustDecode[TokenPair](t, check(request{method: "POST", path: "/store/auth/token", body: `{"email": "ada@example.com", "password": "correct-horse-battery"}`}))
	check(request{method: "POST", path: "/store/auth/token", body: `{"email": "ada@example.com", "password": "wrong-password"}`})
	check(request{method: "GET", path: "/store/customers/me", token: pair.AccessToken})
	check(request{method: "GET", path: "/store/customers/me"})
	check(request{method: "GET", path: "/store/customers/me", token: viewer})
	check(request{method: "GET", path: "/store/customers/" + cust.ID, token: pair.AccessToken})
	check(request{method: "GET", path: "/store/customers/cus_01JD3Q0000000000000000000A", token: pair.AccessToken})
	next := apitest.MustDecode[TokenPair](t, check(request{method: "POST", path: "/store/auth/refresh", body: `{"refresh_token": "` + pair.RefreshToken + `"}`}))
	check(request{method: "POST", path: "/store/auth/refresh", body: `{"refresh_token": "` + pair.RefreshToken + `"}`})
	check(request{method: "POST", path: "/store/auth/logout", body: `{"refresh_token": "` + next.RefreshToken + `"}`})
	check(request{method: "POST", path: "/store/auth/logout", body: `{"refresh_token": 5}`, header: invalid})
	for range 4 {
		check(request{method: "POST", path: "/store/auth/token", body: `{"email": "ada@example.com", "password": "wrong-password"}`})
	}
	w := check(request{method: "POST", path: "/store/auth/token", body: `{"email": "ada@example.com", "password": "wrong-password"}`})
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("sixth failure = %d, want 429", w.Code)
	}

	// Customers, as staff see them.
	check(request{method: "GET", path: "/admin/customers?limit=1", token: viewer})
	check(request{method: "GET", path: "/admin/customers?email=ada@example.com", token: viewer})
	check(request{method: "GET", path: "/admin/customers/" + cust.ID, token: viewer})
	check(request{method: "GET", path: "/admin/customers/cus_01JD3Q0000000000000000000A", token: viewer})
	check(request{method: "GET", path: "/admin/customers", token: pair.AccessToken})
	check(request{method: "GET", path: "/admin/customers"})
	check(request{method: "PATCH", path: "/admin/customers/" + cust.ID, token: admin, body: `{"groups": ["vip"], "name": "Ada L."}`, header: map[string]string{"If-Match": `"1"`}})
	check(request{method: "PATCH", path: "/admin/customers/" + cust.ID, token: admin, body: `{"name": "Stale"}`, header: map[string]string{"If-Match": `"1"`}})
	check(request{method: "PATCH", path: "/admin/customers/" + cust.ID, token: viewer, body: `{"name": "No"}`})

	// Staff.
	u := apitest.MustDecode[Staff](t, check(request{method: "POST", path: "/admin/staff", token: admin,
		body: `{"email": "grace@example.com", "name": "Grace", "role": "support", "password": "correct-horse-battery"}`}))
	check(request{method: "POST", path: "/admin/staff", token: admin, header: map[string]string{"Idempotency-Key": "k1"},
		body: `{"email": "grace@example.com", "name": "Grace", "role": "support", "password": "correct-horse-battery"}`})
	check(request{method: "GET", path: "/admin/staff?limit=5", token: admin})
	check(request{method: "GET", path: "/admin/staff/" + u.ID, token: admin})
	check(request{method: "GET", path: "/admin/staff/usr_01JD3Q0000000000000000000A", token: admin})
	check(request{method: "PATCH", path: "/admin/staff/" + u.ID, token: admin, body: `{"role": "viewer", "disabled": false}`, header: map[string]string{"If-Match": "1"}})
	staffPair := apitest.MustDecode[TokenPair](t, check(request{method: "POST", path: "/admin/auth/token", body: `{"email": "grace@example.com", "password": "correct-horse-battery"}`}))
	check(request{method: "POST", path: "/admin/auth/token", body: `{"email": "nobody@example.com", "password": "correct-horse-battery"}`})
	check(request{method: "GET", path: "/admin/auth/whoami", token: staffPair.AccessToken})
	check(request{method: "POST", path: "/admin/auth/refresh", body: `{"refresh_token": "` + staffPair.RefreshToken + `"}`})
	check(request{method: "POST", path: "/admin/auth/logout", body: `{"refresh_token": "rt_x"}`})
	check(request{method: "GET", path: "/admin/staff", token: staffPair.AccessToken})

	// Keys.
	check(request{method: "GET", path: JWKSPath})
	check(request{method: "POST", path: "/admin/auth/keys/rotate", token: admin})
	check(request{method: "POST", path: "/admin/auth/keys/rotate", token: viewer})
	check(request{method: "GET", path: JWKSPath})
	k := apitest.MustDecode[APIKey](t, check(request{method: "POST", path: "/admin/api-keys", token: admin, body: `{"name": "ERP", "role": "merchandiser"}`}))
	check(request{method: "GET", path: "/admin/api-keys?limit=1", token: admin})
	check(request{method: "DELETE", path: "/admin/api-keys/" + k.ID, token: admin})
	check(request{method: "DELETE", path: "/admin/api-keys/" + k.ID, token: admin})
}

// TestOpenAPICatchesDrift: the schemas are precise enough that a response
// which lost or changed a field fails validation.
func TestOpenAPICatchesDrift(t *testing.T) {
	c := apitest.MustContract(t)
	e := MustNewSQLiteEnv(t, Config{})
	h := mount(e.s, e.s)
	MustRegister(t, e.s, "ada@example.com", "Ada")
	pair := MustLogin(t, e.s, auth.KindCustomer, "ada@example.com")
	for _, tt := range []struct {
		name   string
		rq     request
		status int
		mutate func(m map[string]any)
	}{
		{"customer with a password hash", request{method: "GET", path: "/store/customers/me", token: pair.AccessToken}, 200,
			func(m map[string]any) { m["password_hash"] = "$argon2id$…" }},
		{"customer without groups", request{method: "GET", path: "/store/customers/me", token: pair.AccessToken}, 200,
			func(m map[string]any) { delete(m, "groups") }},
		{"token pair without expires_in", request{method: "POST", path: "/store/auth/token", body: `{"email": "ada@example.com", "password": "correct-horse-battery"}`}, 200,
			func(m map[string]any) { delete(m, "expires_in") }},
		{"token type mac", request{method: "POST", path: "/store/auth/token", body: `{"email": "ada@example.com", "password": "correct-horse-battery"}`}, 200,
			func(m map[string]any) { m["token_type"] = "MAC" }},
		{"jwks with a private key", request{method: "GET", path: JWKSPath}, 200,
			func(m map[string]any) { m["keys"].([]any)[0].(map[string]any)["d"] = "secret" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c.MustRejectDrift(t, tt.rq.Build(), apitest.MustServe(t, h, tt.status, tt.rq), tt.mutate)
		})
	}
}
