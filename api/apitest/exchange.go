package apitest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
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

// Request is one HTTP exchange of a test: Build makes it an
// *http.Request with Body as its JSON body and the headers.
type Request struct {
	Method, Path, Body string
	Header             map[string]string
}

// Build returns the request to serve: a body, when there is one, as
// application/json; then the headers.
func (rq Request) Build() *http.Request {
	var r *http.Request
	if rq.Body != "" {
		r = httptest.NewRequest(rq.Method, rq.Path, strings.NewReader(rq.Body))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(rq.Method, rq.Path, nil)
	}
	for k, v := range rq.Header {
		r.Header.Set(k, v)
	}
	return r
}

// Builder describes a request of a test: Request, or a service's own type
// that adds its credentials.
type Builder interface {
	Build() *http.Request
}

// Serve performs the request against h and returns the response.
func Serve(h http.Handler, rq Builder) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, rq.Build())
	return w
}

// MustServe performs the request against h and fails unless the status
// is want.
func MustServe(t testing.TB, h http.Handler, want int, rq Builder) *httptest.ResponseRecorder {
	t.Helper()
	req := rq.Build()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != want {
		t.Fatalf("%s %s = %d, want %d\n%s", req.Method, req.URL, w.Code, want, w.Body)
	}
	return w
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
