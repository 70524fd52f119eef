package identity

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/soukhq/souk/api"
	"github.com/soukhq/souk/platform/auth"
)

// MustLoadOpenAPI loads the merged OpenAPI document with a router.
func MustLoadOpenAPI(t testing.TB) (*openapi3.T, routers.Router) {
	t.Helper()
	doc, err := api.LoadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	return doc, router
}

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
	doc, _ := MustLoadOpenAPI(t)
	e := MustNewSQLiteEnv(t, Config{})
	for _, r := range e.s.Routes() {
		item := doc.Paths.Value(r.Path)
		if item == nil {
			t.Errorf("%s: path not documented", r.Pattern())
			continue
		}
		op := item.GetOperation(r.Method)
		if op == nil {
			t.Errorf("%s: operation not documented", r.Pattern())
			continue
		}
		perm, hasPerm := op.Extensions["x-permission"].(string)
		if strings.HasPrefix(r.Path, "/admin/") && !hasPerm {
			t.Errorf("%s: no x-permission", r.Pattern())
		}
		if perm != string(r.Permission) {
			t.Errorf("%s: x-permission %q, route permission %q", r.Pattern(), perm, r.Permission)
		}
		public := op.Security != nil && len(*op.Security) == 0
		if public != publicRoutes[r.Pattern()] {
			t.Errorf("%s: documented public=%v", r.Pattern(), public)
		}
		if publicRoutes[r.Pattern()] && r.Permission != "" {
			t.Errorf("%s: a public route with permission %q", r.Pattern(), r.Permission)
		}
	}
}

// contractChecker validates requests and responses of a handler against
// the OpenAPI document.
type contractChecker struct {
	t       *testing.T
	router  routers.Router
	handler http.Handler
}

func (c contractChecker) check(rq request) *httptest.ResponseRecorder {
	c.t.Helper()
	req := rq.build()
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Fatalf("%s %s: no operation in the document: %v", rq.method, rq.path, err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
	if rq.header["X-Test-Invalid-Request"] == "" {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			c.t.Errorf("%s %s: request does not match the document: %v", rq.method, rq.path, err)
		}
	}
	if rq.body != "" {
		req.Body = io.NopCloser(strings.NewReader(rq.body))
	}
	w := httptest.NewRecorder()
	c.handler.ServeHTTP(w, req)
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 w.Code,
		Header:                 w.Header(),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(w.Body.Bytes())
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.t.Errorf("%s %s → %d: response does not match the document: %v\n%s", rq.method, rq.path, w.Code, err, w.Body)
	}
	return w
}

// TestHandlersMatchOpenAPI drives every identity operation, successes and
// errors, through the handlers (behind the gateway's authorization) and
// validates each request and response against the document.
func TestHandlersMatchOpenAPI(t *testing.T) {
	_, router := MustLoadOpenAPI(t)
	e := MustNewSQLiteEnv(t, Config{})
	s := e.s
	c := contractChecker{t: t, router: router, handler: mount(s, s)}
	invalid := map[string]string{"X-Test-Invalid-Request": "1"}
	admin := MustAdminKey(t, s, RoleAdmin)
	viewer := MustAdminKey(t, s, RoleViewer)

	// Customers and their sessions.
	cust := MustDecode[Customer](t, c.check(request{method: "POST", path: "/store/customers",
		body: `{"email": "ada@example.com", "password": "correct-horse-battery", "name": "Ada"}`}))
	c.check(request{method: "POST", path: "/store/customers", body: `{"email": "ada@example.com", "password": "correct-horse-battery", "name": "Ada"}`})
	c.check(request{method: "POST", path: "/store/customers", body: `{"email": "nope", "password": "x", "name": ""}`, header: invalid})
	pair := MustDecode[TokenPair](t, c.check(request{method: "POST", path: "/store/auth/token", body: `{"email": "ada@example.com", "password": "correct-horse-battery"}`}))
	c.check(request{method: "POST", path: "/store/auth/token", body: `{"email": "ada@example.com", "password": "wrong-password"}`})
	c.check(request{method: "GET", path: "/store/customers/me", token: pair.AccessToken})
	c.check(request{method: "GET", path: "/store/customers/me"})
	c.check(request{method: "GET", path: "/store/customers/me", token: viewer})
	c.check(request{method: "GET", path: "/store/customers/" + cust.ID, token: pair.AccessToken})
	c.check(request{method: "GET", path: "/store/customers/cus_01JD3Q0000000000000000000A", token: pair.AccessToken})
	next := MustDecode[TokenPair](t, c.check(request{method: "POST", path: "/store/auth/refresh", body: `{"refresh_token": "` + pair.RefreshToken + `"}`}))
	c.check(request{method: "POST", path: "/store/auth/refresh", body: `{"refresh_token": "` + pair.RefreshToken + `"}`})
	c.check(request{method: "POST", path: "/store/auth/logout", body: `{"refresh_token": "` + next.RefreshToken + `"}`})
	c.check(request{method: "POST", path: "/store/auth/logout", body: `{"refresh_token": 5}`, header: invalid})
	for range 4 {
		c.check(request{method: "POST", path: "/store/auth/token", body: `{"email": "ada@example.com", "password": "wrong-password"}`})
	}
	w := c.check(request{method: "POST", path: "/store/auth/token", body: `{"email": "ada@example.com", "password": "wrong-password"}`})
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("sixth failure = %d, want 429", w.Code)
	}

	// Customers, as staff see them.
	c.check(request{method: "GET", path: "/admin/customers?limit=1", token: viewer})
	c.check(request{method: "GET", path: "/admin/customers?email=ada@example.com", token: viewer})
	c.check(request{method: "GET", path: "/admin/customers/" + cust.ID, token: viewer})
	c.check(request{method: "GET", path: "/admin/customers/cus_01JD3Q0000000000000000000A", token: viewer})
	c.check(request{method: "GET", path: "/admin/customers", token: pair.AccessToken})
	c.check(request{method: "GET", path: "/admin/customers"})
	c.check(request{method: "PATCH", path: "/admin/customers/" + cust.ID, token: admin, body: `{"groups": ["vip"], "name": "Ada L."}`, header: map[string]string{"If-Match": `"1"`}})
	c.check(request{method: "PATCH", path: "/admin/customers/" + cust.ID, token: admin, body: `{"name": "Stale"}`, header: map[string]string{"If-Match": `"1"`}})
	c.check(request{method: "PATCH", path: "/admin/customers/" + cust.ID, token: viewer, body: `{"name": "No"}`})

	// Staff.
	u := MustDecode[Staff](t, c.check(request{method: "POST", path: "/admin/staff", token: admin,
		body: `{"email": "grace@example.com", "name": "Grace", "role": "support", "password": "correct-horse-battery"}`}))
	c.check(request{method: "POST", path: "/admin/staff", token: admin, header: map[string]string{"Idempotency-Key": "k1"},
		body: `{"email": "grace@example.com", "name": "Grace", "role": "support", "password": "correct-horse-battery"}`})
	c.check(request{method: "GET", path: "/admin/staff?limit=5", token: admin})
	c.check(request{method: "GET", path: "/admin/staff/" + u.ID, token: admin})
	c.check(request{method: "GET", path: "/admin/staff/usr_01JD3Q0000000000000000000A", token: admin})
	c.check(request{method: "PATCH", path: "/admin/staff/" + u.ID, token: admin, body: `{"role": "viewer", "disabled": false}`, header: map[string]string{"If-Match": "1"}})
	staffPair := MustDecode[TokenPair](t, c.check(request{method: "POST", path: "/admin/auth/token", body: `{"email": "grace@example.com", "password": "correct-horse-battery"}`}))
	c.check(request{method: "POST", path: "/admin/auth/token", body: `{"email": "nobody@example.com", "password": "correct-horse-battery"}`})
	c.check(request{method: "GET", path: "/admin/auth/whoami", token: staffPair.AccessToken})
	c.check(request{method: "POST", path: "/admin/auth/refresh", body: `{"refresh_token": "` + staffPair.RefreshToken + `"}`})
	c.check(request{method: "POST", path: "/admin/auth/logout", body: `{"refresh_token": "rt_x"}`})
	c.check(request{method: "GET", path: "/admin/staff", token: staffPair.AccessToken})

	// Keys.
	c.check(request{method: "GET", path: JWKSPath})
	c.check(request{method: "POST", path: "/admin/auth/keys/rotate", token: admin})
	c.check(request{method: "POST", path: "/admin/auth/keys/rotate", token: viewer})
	c.check(request{method: "GET", path: JWKSPath})
	k := MustDecode[APIKey](t, c.check(request{method: "POST", path: "/admin/api-keys", token: admin, body: `{"name": "ERP", "role": "merchandiser"}`}))
	c.check(request{method: "GET", path: "/admin/api-keys?limit=1", token: admin})
	c.check(request{method: "DELETE", path: "/admin/api-keys/" + k.ID, token: admin})
	c.check(request{method: "DELETE", path: "/admin/api-keys/" + k.ID, token: admin})
}

// TestOpenAPICatchesDrift: the schemas are precise enough that a response
// which lost or changed a field fails validation.
func TestOpenAPICatchesDrift(t *testing.T) {
	_, router := MustLoadOpenAPI(t)
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
			w := MustServe(t, h, tt.status, tt.rq)
			var m map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			tt.mutate(m)
			b, _ := json.Marshal(m)
			req := tt.rq.build()
			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatal(err)
			}
			out := &openapi3filter.ResponseValidationInput{
				RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
				Status:                 w.Code,
				Header:                 w.Header(),
			}
			out.SetBodyBytes(b)
			if err := openapi3filter.ValidateResponse(context.Background(), out); err == nil {
				t.Fatalf("a drifted response passed validation:\n%s", b)
			}
		})
	}
}
