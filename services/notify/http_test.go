package notify

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/store"
)

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

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	c := apitest.MustContract(t)
	s := MustNewService(t, mustSQLite(t), Config{})
	ops := c.MustDocumentRoutes(t, s.Routes())
	for _, r := range s.Routes() {
		if r.Permission != PermissionManage {
			t.Errorf("%s: permission %q, want %s", r.Pattern(), r.Permission, PermissionManage)
		}
		if op, ok := ops[r.Pattern()]; ok && op.Public() {
			t.Errorf("%s: documented as public", r.Pattern())
		}
	}
	// Every documented webhook operation is a route.
	routed := map[string]bool{}
	for _, r := range s.Routes() {
		routed[r.Pattern()] = true
	}
	for _, op := range c.Operations("/admin/webhooks") {
		if !routed[op.Pattern()] {
			t.Errorf("%s is documented but not routed", op.Pattern())
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
		contract := apitest.MustContract(t)
		clk := newClock()
		rcv := newReceiver(t, clk)
		rcv.setRespond(status(http.StatusServiceUnavailable))
		s := MustNewService(t, db, devConfig(Config{}), WithClock(clk.Now))
		c := contractChecker{t: t, contract: contract, handler: apitest.Mount(s.Routes())}
		invalid := map[string]string{apitest.InvalidRequestHeader: "1"}

		created := apitest.MustDecode[WebhookWithSecret](t, c.check(request{method: "POST", path: "/admin/webhooks",
			body: `{"url": "` + rcv.URL + `/hooks", "event_types": ["souk.orders.order_confirmed.v1"], "description": "ERP"}`}))
		c.check(request{method: "POST", path: "/admin/webhooks", body: `{"url": "` + rcv.URL + `/all", "event_types": ["*"]}`})
		c.check(request{method: "GET", path: "/admin/webhooks"})
		c.check(request{method: "GET", path: "/admin/webhooks?limit=1"})
		c.check(request{method: "GET", path: "/admin/webhooks/" + created.ID})
		c.check(request{method: "PATCH", path: "/admin/webhooks/" + created.ID, body: `{"description": "ERP sync", "event_types": ["*"]}`,
			header: map[string]string{"If-Match": `"1"`}})

		MustHandle(t, db, s.handleEvent, MustOrderEvent(t, orderData("ada@example.com")))
		MustDeliverPending(t, s)
		page := apitest.MustDecode[httpx.Page[Delivery]](t, c.check(request{method: "GET", path: "/admin/webhooks/" + created.ID + "/deliveries"}))
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
		for _, op := range contract.Operations("/admin/webhooks") {
			if !contract.Exercised(op.Method, op.Path) {
				t.Errorf("%s was not exercised", op.Pattern())
			}
		}
	})
}

// contractChecker serves test requests through the Contract.
type contractChecker struct {
	t        *testing.T
	contract *apitest.Contract
	handler  http.Handler
}

func (c contractChecker) check(rq request) *httptest.ResponseRecorder {
	c.t.Helper()
	return c.contract.Serve(c.t, c.handler, rq.build())
}

func TestWebhookHTTP(t *testing.T) {
	db := mustSQLite(t)
	clk := newClock()
	s := MustNewService(t, db, Config{}, WithClock(clk.Now))
	s.lookupIP = fakeDNS(map[string]string{"hooks.example.com": "93.184.216.34", "localhost": "127.0.0.1"})
	h := apitest.Mount(s.Routes())

	w := MustServe(t, h, http.StatusCreated, request{method: "POST", path: "/admin/webhooks",
		body: `{"url": "https://hooks.example.com/souk", "event_types": ["souk.orders.order_confirmed.v1"]}`})
	created := apitest.MustDecode[WebhookWithSecret](t, w)
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
		apitest.WantProblem(t, MustServe(t, h, http.StatusBadRequest, request{method: "POST", path: "/admin/webhooks",
			body: `{"url": "` + u + `", "event_types": ["*"]}`}), http.StatusBadRequest, "validation_failed", "url")
	}
	apitest.WantProblem(t, MustServe(t, h, http.StatusBadRequest, request{method: "POST", path: "/admin/webhooks",
		body: `{"url": "https://hooks.example.com/", "event_types": ["*"], "enabled": false}`}), http.StatusBadRequest, "bad_request", "enabled")
	apitest.WantProblem(t, MustServe(t, h, http.StatusBadRequest, request{method: "GET", path: "/admin/webhooks?limit=0"}), http.StatusBadRequest, "validation_failed", "limit")
	apitest.WantProblem(t, MustServe(t, h, http.StatusConflict, request{method: "PATCH", path: "/admin/webhooks/" + created.ID,
		body: `{"enabled": false}`, header: map[string]string{"If-Match": `"9"`}}), http.StatusConflict, "version_conflict")
	apitest.WantProblem(t, MustServe(t, h, http.StatusBadRequest, request{method: "PATCH", path: "/admin/webhooks/" + created.ID,
		body: `{"enabled": false}`, header: map[string]string{"If-Match": "latest"}}), http.StatusBadRequest, "bad_request", "If-Match")
	apitest.WantProblem(t, MustServe(t, h, http.StatusNotFound, request{method: "GET", path: "/admin/webhooks/nope"}), http.StatusNotFound, "not_found")

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
	contract := apitest.MustContract(t)
	db := mustSQLite(t)
	clk := newClock()
	rcv := newReceiver(t, clk)
	s := MustNewService(t, db, devConfig(Config{}), WithClock(clk.Now))
	h := apitest.Mount(s.Routes())
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
			contract.MustRejectDrift(t, rq.build(), w, tt.mutate)
		})
	}
}
