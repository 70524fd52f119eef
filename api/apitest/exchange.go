package apitest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/soukhq/souk/platform/httpx"
)

// Mount serves the routes on a plain ServeMux, without the gateway's
// middleware: what a service's tests need to reach its handlers.
func Mount(routes []httpx.Route) *http.ServeMux {
	mux := http.NewServeMux()
	for _, r := range routes {
		mux.HandleFunc(r.Pattern(), r.Handler)
	}
	return mux
}

// MustDecode decodes the response's JSON body into a T.
func MustDecode[T any](t testing.TB, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, w.Body)
	}
	return v
}

// MustStatus fails unless the response has the status.
func MustStatus(t testing.TB, want int, w *httptest.ResponseRecorder) *httptest.ResponseRecorder {
	t.Helper()
	if w.Code != want {
		t.Fatalf("status %d, want %d\n%s", w.Code, want, w.Body)
	}
	return w
}

// WantProblem checks an error answer: an application/problem+json document
// with the status, the code (and the type URI and status it implies) and,
// among its field errors, each of the fields. It returns the problem.
func WantProblem(t testing.TB, w *httptest.ResponseRecorder, status int, code string, fields ...string) httpx.Problem {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d\n%s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	p := MustDecode[httpx.Problem](t, w)
	if string(p.Code) != code || p.Status != status || p.Type != httpx.ProblemTypeBase+code {
		t.Fatalf("problem = %+v, want code %s\n%s", p, code, w.Body)
	}
	var got []string
	for _, f := range p.Errors {
		got = append(got, f.Field)
	}
	for _, f := range fields {
		if !slices.Contains(got, f) {
			t.Errorf("problem fields = %v, want %q among them", got, f)
		}
	}
	return p
}
