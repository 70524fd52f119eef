package httpx

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/soukhq/souk/platform/telemetry"
)

// tracerName is the instrumentation scope of the server spans.
const tracerName = "github.com/soukhq/souk/platform/httpx"

// Tracing starts a server span for every request, as a child of the W3C
// trace context (traceparent, tracestate, baggage) that propagator extracts
// from the request headers, and puts it in the request context. The span's
// traceparent (the incoming trace id, this server's span id) is written on
// the response before the handler runs, so every response — errors
// included — carries it. The span is named by the route pattern
// ("GET /admin/products/{id}"; the method alone for unmatched requests) and
// carries the stable HTTP semantic-convention attributes; a 5xx response or a
// panic marks it as an error. A nil propagator means telemetry.Propagator().
//
// tp must not be nil; telemetry.NewTracerProvider makes one. Mount Tracing
// outermost, so the ids reach the logs of every later middleware.
func Tracing(tp trace.TracerProvider, propagator propagation.TextMapPropagator) Middleware {
	if tp == nil {
		panic("httpx.Tracing: nil TracerProvider")
	}
	if propagator == nil {
		propagator = telemetry.Propagator()
	}
	tracer := tp.Tracer(tracerName)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r, slot := withRouteSlot(r)
			ctx := propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			name := r.Method
			if r.Pattern != "" {
				name = r.Pattern
			}
			attrs := make([]attribute.KeyValue, 0, 8)
			attrs = append(attrs,
				attribute.String("http.request.method", r.Method),
				attribute.String("url.path", r.URL.Path),
				attribute.String("url.scheme", scheme(r)),
			)
			if r.Host != "" {
				attrs = append(attrs, attribute.String("server.address", r.Host))
			}
			if r.RemoteAddr != "" {
				attrs = append(attrs, attribute.String("client.address", r.RemoteAddr))
			}
			if ua := r.UserAgent(); ua != "" {
				attrs = append(attrs, attribute.String("user_agent.original", ua))
			}
			ctx, span := tracer.Start(ctx, name,
				trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
			// Only the trace context goes back to the client, never baggage.
			propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(w.Header()))

			rec := recordOf(w)
			done := false
			defer func() {
				route := routeOf(r, slot)
				if route != Unmatched {
					span.SetName(route)
					if _, path, ok := strings.Cut(route, " "); ok {
						span.SetAttributes(attribute.String("http.route", path))
					}
				}
				status := rec.code()
				if !done && !rec.wrote() {
					status = http.StatusInternalServerError
				}
				span.SetAttributes(attribute.Int("http.response.status_code", status))
				switch {
				case !done:
					span.SetStatus(codes.Error, "panic")
				case status >= 500:
					span.SetStatus(codes.Error, http.StatusText(status))
				}
				span.End()
			}()
			next.ServeHTTP(rec, r.WithContext(ctx))
			done = true
		})
	}
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}
