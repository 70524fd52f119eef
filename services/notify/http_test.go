package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/soukhq/souk/api"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/store"
)

// mount serves the routes on a plain ServeMux, without the gateway's
// middleware: what the tests need to reach the handlers.
func mount(routes []httpx.Route) *http.ServeMux {
	mux := http.NewServeMux()
	for _, r := range routes {
		mux.HandleFunc(r.Pattern(), r.Handler)
	}
	return mux
}

// request is one HTTP exchange of a test.
type request struct {
	method, path, body string
	header             map[string]string
}

func (rq request) build() *http.Request {
	var r *http.Request
	if rq.body != "" {
		r = httptest.NewRequest(rq.method, rq.path, strings.NewReader(rq.body))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(rq.method, rq.path, nil)
	}
	for k, v := range rq.header {
		r.Header.Set(k, v)
	}
	return r
}

// MustServe performs the request and fails unless the status is want.
func MustServe(t testing.TB, h http.Handler, want int, rq request) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, rq.build())
	if w.Code != want {
		t.Fatalf("%s %s = %d, want %d\n%s", rq.method, rq.path, w.Code, want, w.Body)
	}
	return w
}

func MustDecode[T any](t testing.TB, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, w.Body)
	}
	return v
}

// wantProblem checks a problem+json answer: status, code and field names.
func wantProblem(t testing.TB, w *httptest.ResponseRecorder, status int, code string, fields ...string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d\n%s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	p := MustDecode[httpx.Problem](t, w)
	if string(p.Code) != code {
		t.Fatalf("code = %q, want %q (%s)", p.Code, code, p.Detail)
	}
	var got []string
	for _, f := range p.Errors {
		got = append(got, f.Field)
	}
	for _, f := range fields {
		if !slices.Contains(got, f) {
			t.Errorf("problem fields %v lack %q", got, f)
		}
	}
}

// MustLoadOpenAPI loads the merged OpenAPI document with a router over it.
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

// contractChecker validates requests and responses of the handlers against
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
	// Requests the tests send wrong on purpose are not checked; their answers are.
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

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc, _ := MustLoadOpenAPI(t)
	s := MustNewService(t, mustSQLite(t), Config{})
	for _, r := range s.Routes() {
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
		if perm, _ := op.Extensions["x-permission"].(string); perm != string(PermissionManage) || r.Permission != PermissionManage {
			t.Errorf("%s: x-permission %q, route permission %q; want %s for both", r.Pattern(), perm, r.Permission, PermissionManage)
		}
		if op.Security != nil && len(*op.Security) == 0 {
			t.Errorf("%s: documented as public", r.Pattern())
		}
	}
	// The create answer carries the secret: never replayed from storage.
	for _, r := range s.Routes() {
		if r.NoReplay != (r.Method == http.MethodPost && r.Path == "/admin/webhooks") {
			t.Errorf("%s: NoReplay = %v", r.Pattern(), r.NoReplay)
		}
	}
}

func TestHandlersMatchOpenAPI(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		_, router := MustLoadOpenAPI(t)
		clk := newClock()
		rcv := newReceiver(t, clk)
		rcv.setRespond(status(http.StatusServiceUnavailable))
		s := MustNewService(t, db, devConfig(Config{}), WithClock(clk.Now))
		c := contractChecker{t: t, router: router, handler: mount(s.Routes())}
		invalid := map[string]string{"X-Test-Invalid-Request": "1"}

		created := MustDecode[WebhookWithSecret](t, c.check(request{method: "POST", path: "/admin/webhooks",
			body: `{"url": "` + rcv.URL + `/hooks", "event_types": ["souk.orders.order_confirmed.v1"], "description": "ERP"}`}))
		c.check(request{method: "POST", path: "/admin/webhooks", body: `{"url": "` + rcv.URL + `/all", "event_types": ["*"]}`})
		c.check(request{method: "GET", path: "/admin/webhooks"})
		c.check(request{method: "GET", path: "/admin/webhooks?limit=1"})
		c.check(request{method: "GET", path: "/admin/webhooks/" + created.ID})
		c.check(request{method: "PATCH", path: "/admin/webhooks/" + created.ID, body: `{"description": "ERP sync", "event_types": ["*"]}`,
			header: map[string]string{"If-Match": `"1"`}})

		MustHandle(t, db, s.handleEvent, MustOrderEvent(t, orderData("ada@example.com")))
		MustDeliverPending(t, s)
		page := MustDecode[httpx.Page[Delivery]](t, c.check(request{method: "GET", path: "/admin/webhooks/" + created.ID + "/deliveries"}))
		if len(page.Data) != 1 {
			t.Fatalf("%d deliveries", len(page.Data))
		}
		d := page.Data[0]
		c.check(request{method: "GET", path: "/admin/webhooks/" + created.ID + "/deliveries?status=retrying&limit=5"})
		c.check(request{method: "GET", path: "/admin/webhooks/" + created.ID + "/deliveries/" + d.ID})
		c.check(request{method: "POST", path: "/admin/webhooks/" + created.ID + "/deliveries/" + d.ID + "/retry"})
		rcv.setRespond(nil)
		MustDeliverPending(t, s)
		c.check(request{method: "GET", path: "/admin/webhooks/" + created.ID + "/deliveries/" + d.ID})
		c.check(request{method: "PATCH", path: "/admin/webhooks/" + created.ID, body: `{"enabled": false}`})
		c.check(request{method: "GET", path: "/admin/webhooks/" + created.ID + "/deliveries"})

		// Errors are problem documents too.
		c.check(request{method: "POST", path: "/admin/webhooks/" + created.ID + "/deliveries/" + d.ID + "/retry"}) // disabled: 409
		c.check(request{method: "POST", path: "/admin/webhooks", body: `{"url": "ftp://x", "event_types": []}`, header: invalid})
		c.check(request{method: "POST", path: "/admin/webhooks", body: `{"url": "https://x.example", "event_types": ["*"], "secret": "mine"}`, header: invalid})
		c.check(request{method: "PATCH", path: "/admin/webhooks/" + created.ID, body: `{"enabled": true}`, header: map[string]string{"If-Match": "1"}})
		c.check(request{method: "GET", path: "/admin/webhooks/wh_01JD3Q7W0000000000000000XX"})
		c.check(request{method: "GET", path: "/admin/webhooks/" + created.ID + "/deliveries/dlv_01JD3Q7W0000000000000000XX"})
		c.check(request{method: "GET", path: "/admin/webhooks/" + created.ID + "/deliveries?status=lost", header: invalid})
		c.check(request{method: "DELETE", path: "/admin/webhooks/" + created.ID, header: map[string]string{"If-Match": "1"}})
		c.check(request{method: "DELETE", path: "/admin/webhooks/" + created.ID})
		c.check(request{method: "DELETE", path: "/admin/webhooks/" + created.ID})
	})
}

func TestWebhookHTTP(t *testing.T) {
	db := mustSQLite(t)
	clk := newClock()
	s := MustNewService(t, db, Config{}, WithClock(clk.Now))
	s.lookupIP = fakeDNS(map[string]string{"hooks.example.com": "93.184.216.34", "localhost": "127.0.0.1"})
	h := mount(s.Routes())

	w := MustServe(t, h, http.StatusCreated, request{method: "POST", path: "/admin/webhooks",
		body: `{"url": "https://hooks.example.com/souk", "event_types": ["souk.orders.order_confirmed.v1"]}`})
	created := MustDecode[WebhookWithSecret](t, w)
	if w.Header().Get("Location") != "/admin/webhooks/"+created.ID || w.Header().Get("ETag") != `"1"` || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("headers: %v", w.Header())
	}
	if !strings.HasPrefix(created.Secret, "whsec_") {
		t.Errorf("secret %q", created.Secret)
	}
	// The secret is never shown again.
	for _, path := range []string{"/admin/webhooks/" + created.ID, "/admin/webhooks"} {
		body := MustServe(t, h, http.StatusOK, request{method: "GET", path: path}).Body.String()
		if strings.Contains(body, created.Secret) || strings.Contains(body, "secret") {
			t.Errorf("GET %s shows the secret: %s", path, body)
		}
	}

	// SSRF at creation: 400 naming url.
	for _, u := range []string{"https://127.0.0.1/", "https://localhost:8080/x", "https://169.254.169.254/latest", "http://hooks.example.com/"} {
		wantProblem(t, MustServe(t, h, http.StatusBadRequest, request{method: "POST", path: "/admin/webhooks",
			body: `{"url": "` + u + `", "event_types": ["*"]}`}), http.StatusBadRequest, "validation_failed", "url")
	}
	wantProblem(t, MustServe(t, h, http.StatusBadRequest, request{method: "POST", path: "/admin/webhooks",
		body: `{"url": "https://hooks.example.com/", "event_types": ["*"], "enabled": false}`}), http.StatusBadRequest, "bad_request", "enabled")
	wantProblem(t, MustServe(t, h, http.StatusBadRequest, request{method: "GET", path: "/admin/webhooks?limit=0"}), http.StatusBadRequest, "validation_failed", "limit")
	wantProblem(t, MustServe(t, h, http.StatusConflict, request{method: "PATCH", path: "/admin/webhooks/" + created.ID,
		body: `{"enabled": false}`, header: map[string]string{"If-Match": `"9"`}}), http.StatusConflict, "version_conflict")
	wantProblem(t, MustServe(t, h, http.StatusBadRequest, request{method: "PATCH", path: "/admin/webhooks/" + created.ID,
		body: `{"enabled": false}`, header: map[string]string{"If-Match": "latest"}}), http.StatusBadRequest, "bad_request", "If-Match")
	wantProblem(t, MustServe(t, h, http.StatusNotFound, request{method: "GET", path: "/admin/webhooks/nope"}), http.StatusNotFound, "not_found")

	clk.Advance(time.Minute)
	up := MustServe(t, h, http.StatusOK, request{method: "PATCH", path: "/admin/webhooks/" + created.ID,
		body: `{"enabled": false}`, header: map[string]string{"If-Match": `"1"`}})
	if up.Header().Get("ETag") != `"2"` {
		t.Errorf("ETag after PATCH %q", up.Header().Get("ETag"))
	}
	MustServe(t, h, http.StatusNoContent, request{method: "DELETE", path: "/admin/webhooks/" + created.ID, header: map[string]string{"If-Match": "2"}})
	MustServe(t, h, http.StatusNotFound, request{method: "GET", path: "/admin/webhooks/" + created.ID})
}

// TestOpenAPICatchesDrift makes sure the schemas are strict: a real
// response that lost, added or mistyped a field fails validation.
func TestOpenAPICatchesDrift(t *testing.T) {
	_, router := MustLoadOpenAPI(t)
	db := mustSQLite(t)
	clk := newClock()
	rcv := newReceiver(t, clk)
	s := MustNewService(t, db, devConfig(Config{}), WithClock(clk.Now))
	h := mount(s.Routes())
	wh := MustCreateWebhook(t, s, rcv.URL, "*")
	MustHandle(t, db, s.handleEvent, MustOrderEvent(t, orderData("ada@example.com")))
	MustDeliverPending(t, s)
	d := MustDelivery(t, s, wh.ID)

	for _, tt := range []struct {
		name, path string
		mutate     func(m map[string]any)
	}{
		{"webhook showing its secret", "/admin/webhooks/" + wh.ID, func(m map[string]any) { m["secret"] = wh.Secret }},
		{"webhook without enabled", "/admin/webhooks/" + wh.ID, func(m map[string]any) { delete(m, "enabled") }},
		{"webhook with a bad id", "/admin/webhooks/" + wh.ID, func(m map[string]any) { m["id"] = "hook_1" }},
		{"webhook with a string version", "/admin/webhooks/" + wh.ID, func(m map[string]any) { m["version"] = "1" }},
		{"webhook with a bad event type", "/admin/webhooks/" + wh.ID, func(m map[string]any) { m["event_types"] = []any{"orders"} }},
		{"delivery with an unknown status", "/admin/webhooks/" + wh.ID + "/deliveries/" + d.ID, func(m map[string]any) { m["status"] = "sent" }},
		{"delivery without attempts", "/admin/webhooks/" + wh.ID + "/deliveries/" + d.ID, func(m map[string]any) { delete(m, "attempts") }},
		{"delivery with a payload", "/admin/webhooks/" + wh.ID + "/deliveries/" + d.ID, func(m map[string]any) { m["payload"] = "{}" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rq := request{method: "GET", path: tt.path}
			w := MustServe(t, h, http.StatusOK, rq)
			var m map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			tt.mutate(m)
			b, _ := json.Marshal(m)
			req := rq.build()
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
				t.Fatalf("a drifted response passed validation:\n%s", bytes.TrimSpace(b))
			}
		})
	}
}
