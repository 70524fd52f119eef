package httpx_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/telemetry"
)

var traceparentRE = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$`)

const incomingTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// MustTracer returns a tracer provider that records ended spans in memory.
func MustTracer(t testing.TB) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, sr
}

func attrOf(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func TestTracing(t *testing.T) {
	tests := []struct {
		name        string
		traceparent string
		baggage     string
		route       string // mounted pattern; "" = unmatched
		path        string
		status      int
		panics      bool
		wantName    string
		wantError   bool
	}{
		{name: "new trace", route: "GET /store/products/{id}", path: "/store/products/prod_1", status: 200, wantName: "GET /store/products/{id}"},
		{name: "continues the incoming trace", traceparent: incomingTraceparent, baggage: "tenant=acme", route: "POST /store/carts", path: "/store/carts", status: 201, wantName: "POST /store/carts"},
		{name: "5xx marks the span", route: "GET /readyz", path: "/readyz", status: 503, wantName: "GET /readyz", wantError: true},
		{name: "4xx does not", route: "GET /store/products/{id}", path: "/store/products/nope", status: 404, wantName: "GET /store/products/{id}"},
		{name: "unmatched named by method", path: "/nowhere", status: 404, wantName: "GET"},
		{name: "panic marks the span", route: "GET /boom", path: "/boom", panics: true, wantName: "GET /boom", wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, sr := MustTracer(t)
			var inner trace.SpanContext
			var innerBaggage string
			mux := http.NewServeMux()
			if tt.route != "" {
				// Mounted per route with Authorize, as the gateway does: it
				// tells the outer Tracing which route matched.
				mux.Handle(tt.route, httpx.Authorize(testAuthn, testAuthz, "")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					inner = trace.SpanContextFromContext(r.Context())
					innerBaggage = r.Header.Get("Baggage")
					if tt.panics {
						panic("boom")
					}
					w.WriteHeader(tt.status)
				})))
			}
			h := httpx.Chain(mux, httpx.Tracing(tp, nil), httpx.Recover(nil))
			r := httptest.NewRequest("GET", tt.path, nil)
			if strings.HasPrefix(tt.route, "POST") {
				r.Method = "POST"
			}
			if tt.traceparent != "" {
				r.Header.Set("Traceparent", tt.traceparent)
				r.Header.Set("Baggage", tt.baggage)
			}
			res := MustServe(t, h, r)
			wantStatus := tt.status
			if tt.panics {
				wantStatus = 500
			}
			if res.StatusCode != wantStatus {
				t.Fatalf("status = %d, want %d", res.StatusCode, wantStatus)
			}
			m := traceparentRE.FindStringSubmatch(res.Header.Get("Traceparent"))
			if m == nil {
				t.Fatalf("response traceparent = %q, want a W3C traceparent", res.Header.Get("Traceparent"))
			}
			if res.Header.Get("Baggage") != "" {
				t.Fatalf("baggage leaked to the response: %q", res.Header.Get("Baggage"))
			}
			spans := sr.Ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans ended, want 1", len(spans))
			}
			s := spans[0]
			if m[1] != s.SpanContext().TraceID().String() || m[2] != s.SpanContext().SpanID().String() {
				t.Fatalf("traceparent %s is not the server span %s", m[0], s.SpanContext().SpanID())
			}
			if tt.traceparent != "" {
				if m[1] != "4bf92f3577b34da6a3ce929d0e0e4736" || s.Parent().SpanID().String() != "00f067aa0ba902b7" || !s.Parent().IsRemote() {
					t.Fatalf("span does not continue the incoming trace: trace %s parent %s", m[1], s.Parent().SpanID())
				}
				if innerBaggage != tt.baggage {
					t.Fatalf("request baggage = %q", innerBaggage)
				}
			}
			if tt.route != "" && inner.SpanID() != s.SpanContext().SpanID() {
				t.Fatal("the handler's context does not carry the server span")
			}
			if s.Name() != tt.wantName || s.SpanKind() != trace.SpanKindServer {
				t.Fatalf("span %q kind %v, want %q server", s.Name(), s.SpanKind(), tt.wantName)
			}
			if got := attrOf(s, "http.response.status_code").AsInt64(); got != int64(wantStatus) {
				t.Fatalf("http.response.status_code = %d", got)
			}
			if tt.route != "" {
				_, path, _ := strings.Cut(tt.route, " ")
				if got := attrOf(s, "http.route").AsString(); got != path {
					t.Fatalf("http.route = %q, want %q", got, path)
				}
			}
			if got := attrOf(s, "url.path").AsString(); got != tt.path {
				t.Fatalf("url.path = %q", got)
			}
			if (s.Status().Code == codes.Error) != tt.wantError {
				t.Fatalf("span status = %v, want error %v", s.Status(), tt.wantError)
			}
		})
	}
}

func TestTracingWithoutExporterStillGivesIDs(t *testing.T) {
	tp, shutdown, err := telemetry.NewTracerProvider(context.Background(), telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	h := httpx.Tracing(tp, telemetry.Propagator())(okHandler)
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Traceparent", incomingTraceparent)
	m := traceparentRE.FindStringSubmatch(MustServe(t, h, r).Header.Get("Traceparent"))
	if m == nil || m[1] != "4bf92f3577b34da6a3ce929d0e0e4736" || m[2] == "00f067aa0ba902b7" {
		t.Fatalf("traceparent = %v, want the incoming trace with a new span", m)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := httpx.NewHTTPMetrics(reg)
	httpx.NewHTTPMetrics(reg) // a second one on the same registry shares the collectors

	const route = "GET /admin/products/{id}"
	mux := http.NewServeMux()
	mux.Handle(route, m.Middleware("catalog", route)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("id") {
		case "missing":
			httpx.Error(w, r, apperr.New(apperr.NotFound, "no such product"))
		case "boom":
			panic("boom")
		case "slow":
			time.Sleep(30 * time.Millisecond)
			fallthrough
		default:
			httpx.JSON(w, 200, map[string]string{"id": r.PathValue("id")})
		}
	})))
	mux.Handle("/", m.Middleware("catalog", httpx.Unmatched)(http.NotFoundHandler()))
	h := httpx.Recover(nil)(mux)

	requests := []struct{ method, path string }{
		{"GET", "/admin/products/p1"},
		{"GET", "/admin/products/p2"},
		{"GET", "/admin/products/slow"},
		{"GET", "/admin/products/missing"},
		{"GET", "/admin/products/boom"},
		{"GET", "/nowhere"},
		{"PURGE", "/nowhere"},
	}
	for _, rq := range requests {
		MustServe(t, h, httptest.NewRequest(rq.method, rq.path, nil))
	}

	tests := []struct {
		labels []string // service, route, method, code
		want   float64
	}{
		{[]string{"catalog", route, "GET", "200"}, 3},
		{[]string{"catalog", route, "GET", "404"}, 1},
		{[]string{"catalog", route, "GET", "500"}, 1},
		{[]string{"catalog", "unmatched", "GET", "404"}, 1},
		{[]string{"catalog", "unmatched", "OTHER", "404"}, 1},
	}
	series := MustSeries(t, reg, "souk_http_requests_total")
	for _, tt := range tests {
		l := tt.labels
		if got := series[requestsKey(l[0], l[1], l[2], l[3])].GetCounter().GetValue(); got != tt.want {
			t.Errorf("souk_http_requests_total%v = %v, want %v", tt.labels, got, tt.want)
		}
	}
	if len(series) != len(tests) {
		t.Errorf("%d request series, want %d (raw paths must never become labels): %v", len(series), len(tests), series)
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "souk_http_request_duration_seconds":
			for _, metric := range mf.GetMetric() {
				if labelOf(metric.GetLabel(), "route") == route && labelOf(metric.GetLabel(), "method") == "GET" {
					if h := metric.GetHistogram(); h.GetSampleCount() != 5 || h.GetSampleSum() < 0.03 {
						t.Errorf("duration histogram count %d sum %v, want 5 observations summing ≥ 30ms", h.GetSampleCount(), h.GetSampleSum())
					}
				}
			}
		case "souk_http_requests_in_flight":
			for _, metric := range mf.GetMetric() {
				if v := metric.GetGauge().GetValue(); v != 0 {
					t.Errorf("in flight = %v after all requests ended", v)
				}
			}
		}
	}
}

func TestMetricsInFlight(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := httpx.NewHTTPMetrics(reg)
	entered, release := make(chan struct{}), make(chan struct{})
	h := m.Middleware("cart", "POST /store/carts")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		entered <- struct{}{}
		<-release
	}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/store/carts", nil))
	}()
	<-entered
	const key = "route=POST /store/carts,service=cart"
	if got := MustSeries(t, reg, "souk_http_requests_in_flight")[key].GetGauge().GetValue(); got != 1 {
		t.Errorf("in flight during the request = %v, want 1", got)
	}
	close(release)
	<-done
	if got := MustSeries(t, reg, "souk_http_requests_in_flight")[key].GetGauge().GetValue(); got != 0 {
		t.Errorf("in flight after = %v, want 0", got)
	}
}

func labelOf(pairs []*dto.LabelPair, name string) string {
	for _, p := range pairs {
		if p.GetName() == name {
			return p.GetValue()
		}
	}
	return ""
}

// MustSeries gathers reg and returns the metrics of the family name, keyed
// by their label values joined with "|" in the family's label order.
func MustSeries(t testing.TB, reg *prometheus.Registry, name string) map[string]*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.Metric{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var vals []string
			for _, l := range m.GetLabel() {
				vals = append(vals, l.GetName()+"="+l.GetValue())
			}
			out[strings.Join(vals, ",")] = m
		}
	}
	return out
}

// requestsKey is the MustSeries key of a souk_http_requests_total series
// (labels sorted by name: code, method, route, service).
func requestsKey(service, route, method, code string) string {
	return "code=" + code + ",method=" + method + ",route=" + route + ",service=" + service
}

func TestAccessLog(t *testing.T) {
	tests := []struct {
		name      string
		path      string
		status    int
		wantLevel string
		wantRoute string
	}{
		{"ok at info", "/store/products/p1", 200, "INFO", "GET /store/products/{id}"},
		{"4xx at warn", "/store/products/missing", 404, "WARN", "GET /store/products/{id}"},
		{"5xx at error", "/store/products/broken", 500, "ERROR", "GET /store/products/{id}"},
		{"unmatched", "/nope", 404, "WARN", "unmatched"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, _ := MustTracer(t)
			logger, logs := MustLogger(t)
			mux := http.NewServeMux()
			mux.Handle("GET /store/products/{id}", httpx.Authorize(testAuthn, testAuthz, "")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte("12345"))
			})))
			h := httpx.Chain(mux, httpx.Tracing(tp, nil), httpx.RequestID(), httpx.AccessLog(logger))
			r := httptest.NewRequest("GET", tt.path, nil)
			r.RemoteAddr = "203.0.113.7:5555"
			res := MustServe(t, h, r)
			lines := logs.Lines(t)
			if len(lines) != 1 {
				t.Fatalf("lines = %v, want one", lines)
			}
			l := lines[0]
			tp2 := traceparentRE.FindStringSubmatch(res.Header.Get("Traceparent"))
			want := map[string]any{
				"msg": "http request", "level": tt.wantLevel, "method": "GET", "route": tt.wantRoute, "path": tt.path,
				"status": float64(tt.status), "remote_addr": "203.0.113.7:5555",
				"request_id": res.Header.Get("X-Request-Id"), "trace_id": tp2[1], "service": "test",
			}
			if tt.wantRoute != "unmatched" {
				want["bytes"] = float64(5)
			}
			for k, v := range want {
				if l[k] != v {
					t.Errorf("%s = %v, want %v", k, l[k], v)
				}
			}
			if _, ok := l["duration"].(float64); !ok {
				t.Errorf("duration = %v, want a number", l["duration"])
			}
		})
	}

	t.Run("ids from response headers when their middleware runs inside", func(t *testing.T) {
		tp, _ := MustTracer(t)
		logger, logs := MustLogger(t)
		h := httpx.Chain(okHandler, httpx.AccessLog(logger), httpx.Tracing(tp, nil), httpx.RequestID())
		res := MustServe(t, h, httptest.NewRequest("GET", "/", nil))
		l := logs.Lines(t)[0]
		if l["request_id"] != res.Header.Get("X-Request-Id") || l["trace_id"] != res.Header.Get("Traceparent")[3:35] {
			t.Fatalf("line %v lacks the response's ids", l)
		}
	})
}

// TestGatewayStack mounts routes the way the gateway does and checks the
// cross-cutting promises of API.md on every kind of response: traceparent and
// X-Request-Id out, an access-log line with request_id, trace_id and the
// route pattern, the RED counter labelled by route.
func TestGatewayStack(t *testing.T) {
	tp, _ := MustTracer(t)
	logger, logs := MustLogger(t)
	reg := prometheus.NewRegistry()
	metrics := httpx.NewHTTPMetrics(reg)

	routes := []httpx.Route{
		{Method: "GET", Path: "/store/products/{id}", Handler: func(w http.ResponseWriter, r *http.Request) {
			httpx.Logger(r.Context()).InfoContext(r.Context(), "handler ran")
			httpx.JSON(w, 200, map[string]string{"id": r.PathValue("id")})
		}},
		{Method: "POST", Path: "/admin/products", Permission: "catalog:write", Handler: func(w http.ResponseWriter, r *http.Request) {
			var p product
			if err := httpx.Decode(r, &p); err != nil {
				httpx.Error(w, r, err)
				return
			}
			httpx.JSON(w, 201, p)
		}},
		{Method: "GET", Path: "/boom", Handler: func(http.ResponseWriter, *http.Request) { panic("secret") }},
	}
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.Handle(rt.Pattern(), httpx.Chain(rt.Handler,
			metrics.Middleware("catalog", rt.Pattern()),
			httpx.Authorize(testAuthn, testAuthz, rt.Permission)))
	}
	mux.Handle("/", metrics.Middleware("catalog", httpx.Unmatched)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.Error(w, r, apperr.New(apperr.NotFound, "no such route"))
	})))
	srv := httptest.NewServer(httpx.Chain(mux,
		httpx.Tracing(tp, telemetry.Propagator()),
		httpx.RequestID(),
		httpx.AccessLog(logger),
		httpx.Recover(logger),
		httpx.BodyLimit(0)))
	defer srv.Close()

	tests := []struct {
		name, method, path, token, body string
		status                          int
		route                           string
	}{
		{"ok", "GET", "/store/products/p1", "", "", 200, "GET /store/products/{id}"},
		{"created", "POST", "/admin/products", "admin-token", `{"title":"x"}`, 201, "POST /admin/products"},
		{"unauthorized", "POST", "/admin/products", "", `{"title":"x"}`, 401, "POST /admin/products"},
		{"forbidden", "POST", "/admin/products", "viewer-token", `{"title":"x"}`, 403, "POST /admin/products"},
		{"too large", "POST", "/admin/products", "admin-token", `{"title":"` + strings.Repeat("x", 2<<20) + `"}`, 413, "unmatched"},
		{"panic", "GET", "/boom", "", "", 500, "GET /boom"},
		{"unmatched", "GET", "/nowhere", "", "", 404, "unmatched"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			req.Header.Set("Traceparent", incomingTraceparent)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.status {
				t.Fatalf("status = %d (%s), want %d", res.StatusCode, body, tt.status)
			}
			if strings.Contains(string(body), "secret") {
				t.Fatalf("body leaks the panic: %s", body)
			}
			rid := res.Header.Get("X-Request-Id")
			m := traceparentRE.FindStringSubmatch(res.Header.Get("Traceparent"))
			if !generatedID.MatchString(rid) || m == nil || m[1] != "4bf92f3577b34da6a3ce929d0e0e4736" {
				t.Fatalf("X-Request-Id %q, traceparent %q: want both, continuing the incoming trace", rid, res.Header.Get("Traceparent"))
			}
			var access map[string]any
			for _, l := range logs.Lines(t) {
				if l["msg"] == "http request" && l["request_id"] == rid {
					access = l
				}
			}
			if access == nil || access["trace_id"] != m[1] || access["route"] != tt.route || access["status"] != float64(tt.status) {
				t.Fatalf("access line = %v, want request_id %s trace_id %s route %q", access, rid, m[1], tt.route)
			}
		})
	}

	// The handler's own line carries the same ids as the access line.
	for _, l := range logs.Lines(t) {
		if l["msg"] == "handler ran" && (l["request_id"] == nil || l["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736") {
			t.Fatalf("handler line lacks ids: %v", l)
		}
		if l["msg"] == "panic serving request" && l["route"] == nil {
			t.Fatalf("panic line lacks route: %v", l)
		}
	}
	series := MustSeries(t, reg, "souk_http_requests_total")
	for labels, want := range map[[4]string]float64{
		{"catalog", "GET /store/products/{id}", "GET", "200"}: 1,
		{"catalog", "POST /admin/products", "POST", "201"}:    1,
		{"catalog", "POST /admin/products", "POST", "401"}:    1,
		{"catalog", "GET /boom", "GET", "500"}:                1,
		{"catalog", "unmatched", "GET", "404"}:                1,
	} {
		if got := series[requestsKey(labels[0], labels[1], labels[2], labels[3])].GetCounter().GetValue(); got != want {
			t.Errorf("requests%v = %v, want %v", labels, got, want)
		}
	}
}

// BenchmarkStack measures the per-request cost of the gateway's middleware
// around a trivial handler, with tracing on but nothing exported.
func BenchmarkStack(b *testing.B) {
	tp, shutdown, err := telemetry.NewTracerProvider(context.Background(), telemetry.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer shutdown(context.Background())
	logger := telemetry.NewLogger(telemetry.Config{}, io.Discard)
	metrics := httpx.NewHTTPMetrics(prometheus.NewRegistry())
	const route = "GET /store/products/{id}"
	mux := http.NewServeMux()
	mux.Handle(route, httpx.Chain(okHandler, metrics.Middleware("catalog", route), httpx.Authorize(testAuthn, testAuthz, "")))
	h := httpx.Chain(mux, httpx.Tracing(tp, nil), httpx.RequestID(), httpx.AccessLog(logger), httpx.Recover(logger), httpx.BodyLimit(0))
	r := httptest.NewRequest("GET", "/store/products/p1", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
}
