package apitest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/httpx"
)

// recordingTB is a testing.TB that records failures instead of failing.
type recordingTB struct {
	testing.TB
	errors []string
}

func (r *recordingTB) Helper()                   {}
func (r *recordingTB) Errorf(f string, a ...any) { r.errors = append(r.errors, fmt.Sprintf(f, a...)) }

func TestContractChecksExchanges(t *testing.T) {
	c := apitest.MustContract(t)
	healthz := func(body string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = fmt.Fprint(w, body)
		})
	}
	for _, tt := range []struct {
		name, body string
		wantErrors int
	}{
		{"a documented answer", `{"status": "ok"}`, 0},
		{"an undocumented answer", `{"status": "fine"}`, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recordingTB{TB: t}
			w := c.Serve(rec, healthz(tt.body), httptest.NewRequest("GET", "/healthz", nil))
			if len(rec.errors) != tt.wantErrors || w.Code != 200 {
				t.Fatalf("errors = %q, status %d", rec.errors, w.Code)
			}
		})
	}
	if !c.Exercised("GET", "/healthz") || c.Exercised("GET", "/readyz") {
		t.Fatal("Exercised does not tell what was checked")
	}

	// Through Handler, as a real client would call it.
	rec := &recordingTB{TB: t}
	srv := httptest.NewServer(c.Handler(rec, healthz(`{"status": 1}`)))
	defer srv.Close()
	res, err := srv.Client().Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if len(rec.errors) != 1 || res.StatusCode != 200 {
		t.Fatalf("errors = %q, status %d", rec.errors, res.StatusCode)
	}

	w := c.Serve(t, healthz(`{"status": "ok"}`), httptest.NewRequest("GET", "/healthz", nil))
	c.MustRejectDrift(t, httptest.NewRequest("GET", "/healthz", nil), w, func(m map[string]any) { delete(m, "status") })
}

func TestContractDocumentsRoutes(t *testing.T) {
	c := apitest.MustContract(t)
	ops := c.Operations("/admin/products")
	if len(ops) == 0 {
		t.Fatal("no /admin/products operations")
	}
	for _, op := range ops {
		if op.Permission() == "" || op.Public() {
			t.Errorf("%s: permission %q, public %v", op.Pattern(), op.Permission(), op.Public())
		}
	}
	rec := &recordingTB{TB: t}
	got := c.MustDocumentRoutes(rec, []httpx.Route{
		{Method: "GET", Path: "/healthz"},
		{Method: ops[0].Method, Path: ops[0].Path, Permission: "catalog:nothing"},
		{Method: "GET", Path: "/nowhere"},
	})
	if len(rec.errors) != 2 || !got["GET /healthz"].Public() {
		t.Fatalf("errors = %q, operations %v", rec.errors, got)
	}
	// A public route named as needing a token, and an admin route without
	// a permission, are not documented as they are.
	rec = &recordingTB{TB: t}
	got = c.MustDocumentRoutes(rec, []httpx.Route{{Method: "GET", Path: "/healthz"}, {Method: ops[0].Method, Path: ops[0].Path}}, "GET /healthz")
	if len(rec.errors) != 3 {
		t.Fatalf("errors = %q, operations %v", rec.errors, got)
	}
}

func TestEventSchemas(t *testing.T) {
	const typ = "souk.identity.customer_registered.v1"
	s := apitest.MustEventSchemas(t, typ)
	event := []byte(`{"specversion": "1.0", "datacontenttype": "application/json", "id": "evt_01JD3Q0000000000000000000A", "type": "` + typ + `", "source": "identity",
		"subject": "cus_01JD3Q0000000000000000000A", "time": "2026-11-21T12:00:00Z",
		"data": {"id": "cus_01JD3Q0000000000000000000A", "email": "ada@example.com", "name": "Ada", "groups": [],
		"created_at": "2026-11-21T12:00:00Z"}}`)
	if err := s.ValidateAs(typ, event); err != nil {
		t.Fatalf("a valid event: %v", err)
	}
	s.Validate(t, event)
	s.MustRejectDrift(t, typ, event, func(e map[string]any) { delete(e["data"].(map[string]any), "email") })
	if err := s.ValidateAs("souk.nothing.v1", event); err == nil {
		t.Fatal("validated against a schema never compiled")
	}
}

func TestRequestAndServe(t *testing.T) {
	var got *http.Request
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r; w.WriteHeader(http.StatusCreated) })
	w := apitest.MustServe(t, h, http.StatusCreated, apitest.Request{Method: "POST", Path: "/w?x=1", Body: `{}`, Header: map[string]string{"If-Match": "1"}})
	if w.Code != http.StatusCreated || got.Method != "POST" || got.URL.String() != "/w?x=1" ||
		got.Header.Get("Content-Type") != "application/json" || got.Header.Get("If-Match") != "1" {
		t.Fatalf("served %+v", got)
	}
	apitest.Serve(h, apitest.Request{Method: "GET", Path: "/w"})
	if got.Header.Get("Content-Type") != "" {
		t.Fatalf("a GET without a body has Content-Type %q", got.Header.Get("Content-Type"))
	}
}
