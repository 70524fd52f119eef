package httpx

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/telemetry"
)

// HTTPMetrics holds the RED metrics of HTTP routes:
//
//	souk_http_requests_total{service,route,method,code}           counter
//	souk_http_request_duration_seconds{service,route,method}      histogram
//	souk_http_requests_in_flight{service,route}                   gauge
//
// route is the route pattern ("GET /admin/products/{id}", or "unmatched"),
// never the raw path, so label cardinality stays bounded; method is the
// request method, or OTHER for a non-standard one. It is safe for concurrent
// use.
type HTTPMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
}

// NewHTTPMetrics registers the HTTP metrics on reg (never the global
// registry) and returns them. When reg already holds them (two gateways in
// one process), the registered collectors are shared. It panics when reg
// holds a different metric under one of the names: a wiring mistake.
func NewHTTPMetrics(reg prometheus.Registerer) *HTTPMetrics {
	return &HTTPMetrics{
		requests: telemetry.MustRegister(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "souk_http_requests_total",
			Help: "HTTP requests served, by service, route pattern, method and status code.",
		}, []string{"service", "route", "method", "code"})),
		duration: telemetry.MustRegister(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "souk_http_request_duration_seconds",
			Help:    "Time from receiving an HTTP request to its handler returning, by service, route pattern and method.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"service", "route", "method"})),
		inFlight: telemetry.MustRegister(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "souk_http_requests_in_flight",
			Help: "HTTP requests being served, by service and route pattern.",
		}, []string{"service", "route"})),
	}
}

// Middleware measures the requests of one route of a service. route is the
// route's pattern, as Route.Pattern gives it, or Unmatched for the gateway's
// catch-all. It also records route as the request's route for Tracing and
// AccessLog mounted around the mux. A request whose handler panics through
// it counts as a 500.
func (m *HTTPMetrics) Middleware(service, route string) Middleware {
	inFlight := m.inFlight.WithLabelValues(service, route)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			noteRoute(r, route)
			start := time.Now()
			inFlight.Inc()
			rec := recordOf(w)
			done := false
			defer func() {
				inFlight.Dec()
				status := rec.code()
				if !done && !rec.wrote() {
					status = http.StatusInternalServerError
				}
				method := methodLabel(r.Method)
				m.requests.WithLabelValues(service, route, method, strconv.Itoa(status)).Inc()
				m.duration.WithLabelValues(service, route, method).Observe(time.Since(start).Seconds())
			}()
			next.ServeHTTP(rec, r)
			done = true
		})
	}
}

// methodLabel keeps the method label to the standard methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}
