package httpx

import (
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
// carries it on), and in the context (RequestIDFrom). It also installs a
// request-scoped logger (Logger) derived from logger with request_id — and,
// when a span is already in the context (Tracing runs outside), trace_id and
// span_id — attached. A nil logger derives from the logger already in the
// context, if any.
func RequestID(logger *slog.Logger) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rid := r.Header.Get(HeaderRequestID)
			if !validRequestID(rid) {
				rid = id.New("req")
				r.Header.Set(HeaderRequestID, rid)
			}
			w.Header().Set(HeaderRequestID, rid)
			ctx := WithRequestID(r.Context(), rid)
			base := logger
			if base == nil {
				base = Logger(ctx)
			}
			attrs := make([]any, 0, 3)
			attrs = append(attrs, slog.String(telemetry.KeyRequestID, rid))
			if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
				attrs = append(attrs,
					slog.String(telemetry.KeyTraceID, sc.TraceID().String()),
					slog.String(telemetry.KeySpanID, sc.SpanID().String()))
			}
			ctx = WithLogger(ctx, base.With(attrs...))
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}
