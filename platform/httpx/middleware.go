package httpx

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// Middleware decorates an HTTP handler: Souk's one decorator shape,
// func(next) next.
type Middleware func(http.Handler) http.Handler

// Chain wraps h in mws, the first outermost: Chain(h, a, b) is a(b(h)), so a
// request passes a, then b, then reaches h. Nil middleware are skipped.
func Chain(h http.Handler, mws ...Middleware) http.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		if mws[i] != nil {
			h = mws[i](h)
		}
	}
	return h
}

// recorder remembers the status and size of a response for the middleware
// that report on it. One recorder is shared by every middleware of a request
// (recordOf reuses it), so stacking them costs one allocation.
type recorder struct {
	http.ResponseWriter
	status int   // the final status written; 0 until the header is sent
	bytes  int64 // body bytes written
}

// recordOf returns w itself when it already is a recorder, else a new
// recorder wrapping w.
func recordOf(w http.ResponseWriter) *recorder {
	if rec, ok := w.(*recorder); ok {
		return rec
	}
	return &recorder{ResponseWriter: w}
}

// WriteHeader records the first final (non-1xx) status.
func (rw *recorder) WriteHeader(code int) {
	if rw.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		rw.status = code
	}
	rw.ResponseWriter.WriteHeader(code)
}

// Write counts the body bytes; a first Write implies status 200.
func (rw *recorder) Write(p []byte) (int, error) {
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	n, err := rw.ResponseWriter.Write(p)
	rw.bytes += int64(n)
	return n, err
}

// Flush sends buffered data to the client, as http.Flusher (handlers that
// stream type-assert it).
func (rw *recorder) Flush() {
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	_ = http.NewResponseController(rw.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (rw *recorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// wrote reports whether the response header has gone to the client.
func (rw *recorder) wrote() bool { return rw.status != 0 }

// code returns the status the client got: 200 when the handler wrote nothing.
func (rw *recorder) code() int {
	if rw.status == 0 {
		return http.StatusOK
	}
	return rw.status
}

// connWriter returns the server's own writer under any wrappers (they all
// implement Unwrap). http.MaxBytesReader is given it, because only that
// writer can mark the connection to be closed after a body over the limit —
// the rest of which nobody will read.
func connWriter(w http.ResponseWriter) http.ResponseWriter {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}

// traceIDOf returns the trace id of the request's span, or, when the tracing
// middleware runs inside the caller, the one of the traceparent it put on
// the response.
func traceIDOf(r *http.Request, w http.ResponseWriter) string {
	if sc := trace.SpanContextFromContext(r.Context()); sc.IsValid() {
		return sc.TraceID().String()
	}
	// 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>
	if tp := w.Header().Get("Traceparent"); len(tp) == 55 && strings.Count(tp, "-") == 3 {
		return tp[3:35]
	}
	return ""
}

// requestIDOf returns the request id from the context, or from the response
// header when the RequestID middleware runs inside the caller.
func requestIDOf(r *http.Request, w http.ResponseWriter) string {
	if id := RequestIDFrom(r.Context()); id != "" {
		return id
	}
	return w.Header().Get(HeaderRequestID)
}
