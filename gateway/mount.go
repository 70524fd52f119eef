package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/httpx"
)

// Decorator wraps one route's handler with the middleware that route needs
// (metrics labelled by its pattern, authorization by its permission,
// idempotency for POST). The composition root supplies it.
type Decorator func(route httpx.Route, h http.Handler) http.Handler

// Mount builds a handler serving the routes on a net/http ServeMux, each
// wrapped by decorate. Requests matching no route get a problem+json 404, and
// a known path with the wrong method a problem+json 405 with Allow.
func Mount(routes []httpx.Route, decorate Decorator) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range routes {
		var h http.Handler = rt.Handler
		if decorate != nil {
			h = decorate(rt, h)
		}
		mux.Handle(rt.Pattern(), h)
	}
	return &problemMux{mux: mux}
}

type problemMux struct{ mux *http.ServeMux }

func (m *problemMux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, pattern := m.mux.Handler(r)
	if pattern != "" {
		m.mux.ServeHTTP(w, r)
		return
	}
	// No pattern matched: let the mux decide between 404 and 405 (and its
	// redirects), but answer in problem+json.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	switch rec.Code {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", rec.Header().Get("Allow"))
		httpx.Error(w, r, apperr.New(apperr.MethodNotAllowed, "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.TrimSpace(rec.Header().Get("Allow"))))
	case http.StatusNotFound:
		httpx.Error(w, r, apperr.New(apperr.NotFound, "no route for %s %s", r.Method, r.URL.Path))
	default:
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}
}
