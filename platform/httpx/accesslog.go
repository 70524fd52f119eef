package httpx

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/soukhq/souk/platform/telemetry"
)

// AccessLog writes one line per request, "http request", on logger (or, when
// nil, the request's logger) once the handler has returned: method, route
// (the route pattern, or "unmatched"), path, status, bytes, duration,
// request_id, trace_id and remote_addr. 5xx responses log at error level, 4xx
// at warn, everything else at info. A request whose handler panics through it
// is logged with status 500 before the panic continues.
//
// Mount it inside Tracing and RequestID so the ids come from the context; it
// falls back to the X-Request-Id and traceparent response headers when they
// run inside it. Unless the context has a logger already, it also installs a
// request-scoped logger derived from logger (see RequestID) for the handler.
func AccessLog(logger *slog.Logger) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			r, slot := withRouteSlot(r)
			r = withRequestLogger(r, logger)
			rec := recordOf(w)
			done := false
			defer func() {
				status := rec.code()
				if !done && !rec.wrote() {
					status = http.StatusInternalServerError
				}
				level := slog.LevelInfo
				switch {
				case status >= 500:
					level = slog.LevelError
				case status >= 400:
					level = slog.LevelWarn
				}
				l := logger
				if l == nil {
					l = Logger(r.Context())
				}
				if !l.Enabled(r.Context(), level) {
					return
				}
				l.LogAttrs(r.Context(), level, "http request",
					slog.String("method", r.Method),
					slog.String("route", routeOf(r, slot)),
					slog.String("path", r.URL.Path),
					slog.Int("status", status),
					slog.Int64("bytes", rec.bytes),
					slog.Duration("duration", time.Since(start)),
					slog.String(telemetry.KeyRequestID, requestIDOf(r, rec)),
					slog.String(telemetry.KeyTraceID, traceIDOf(r, rec)),
					slog.String("remote_addr", r.RemoteAddr),
				)
			}()
			next.ServeHTTP(rec, r)
			done = true
		})
	}
}
