package httpx

import (
	"context"
	"log/slog"
	"net/http"

	"go.opentelemetry.io/otel/trace"

	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/telemetry"
)

// HeaderRequestID is the header a request id travels in, both ways.
const HeaderRequestID = "X-Request-Id"

// maxRequestIDLen bounds an accepted incoming request id: long enough for a
// UUID, a ULID or a prefixed id, short enough to keep log lines sane.
const maxRequestIDLen = 128

// validRequestID reports whether an incoming request id is safe to adopt:
// 1–128 characters of letters, digits and - _ . : ~ + / =, which covers
// UUIDs, ULIDs, hex and base64 ids and keeps log injection out.
func validRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '~', c == '+', c == '/', c == '=':
		default:
			return false
		}
	}
	return true
}

// RequestID gives every request an id: the incoming X-Request-Id when it is
// sane (1–128 characters of letters, digits and -_.:~+/=), otherwise a new
// "req_<ULID>". The id is set on the response's X-Request-Id before the
// handler runs, on the request's X-Request-Id header (so a proxied call
// carries it on), and in the context (RequestIDFrom), where loggers made by
// telemetry.NewLogger pick it up.
//
// When the context already holds a logger (installed by http.Server's
// BaseContext, or by an AccessLog or Recover outside), RequestID replaces it
// with one carrying request_id, and trace_id/span_id when a span is already
// in the context. Otherwise the request-scoped logger is installed by the
// first of AccessLog(logger) and Recover(logger) inside it, which derive it
// from their logger the same way.
func RequestID() Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rid := r.Header.Get(HeaderRequestID)
			if !validRequestID(rid) {
				rid = id.New("req")
				r.Header.Set(HeaderRequestID, rid)
			}
			w.Header().Set(HeaderRequestID, rid)
			ctx := WithRequestID(r.Context(), rid)
			if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
				ctx = WithLogger(ctx, requestLogger(ctx, l))
			}
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// requestLogger derives a request-scoped logger from base, carrying the
// request id and trace ids the context holds.
func requestLogger(ctx context.Context, base *slog.Logger) *slog.Logger {
	attrs := make([]any, 0, 3)
	if rid := RequestIDFrom(ctx); rid != "" {
		attrs = append(attrs, slog.String(telemetry.KeyRequestID, rid))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		attrs = append(attrs,
			slog.String(telemetry.KeyTraceID, sc.TraceID().String()),
			slog.String(telemetry.KeySpanID, sc.SpanID().String()))
	}
	if len(attrs) == 0 {
		return base
	}
	return base.With(attrs...)
}

// withRequestLogger returns r with a request-scoped logger derived from base
// in its context, unless base is nil or the context has a logger already.
func withRequestLogger(r *http.Request, base *slog.Logger) *http.Request {
	if base == nil {
		return r
	}
	if _, ok := r.Context().Value(loggerKey{}).(*slog.Logger); ok {
		return r
	}
	return r.WithContext(WithLogger(r.Context(), requestLogger(r.Context(), base)))
}
