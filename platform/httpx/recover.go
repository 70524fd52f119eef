package httpx

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/telemetry"
)

// Recover turns a panic in the handler into a 500 application/problem+json
// response whose detail says nothing about the cause, and logs the panic
// value and stack at error level on logger (or, when nil, the request's
// logger) with the request and trace ids. A panic with http.ErrAbortHandler
// is re-panicked untouched (the server aborts the response quietly). When
// the handler had already started the response, nothing can be sent any
// more: the panic is logged and the connection aborted with
// http.ErrAbortHandler, so the client sees a broken response rather than a
// truncated one that looks complete.
//
// Mount Recover inside AccessLog and Tracing, so that they report the 500.
// Unless the context has a logger already, it installs a request-scoped
// logger derived from logger (see RequestID) for the handler.
func Recover(logger *slog.Logger) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r = withRequestLogger(r, logger)
			rec := recordOf(w)
			defer func() {
				p := recover()
				if p == nil {
					return
				}
				if err, ok := p.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(p)
				}
				l := logger
				if l == nil {
					l = Logger(r.Context())
				}
				l.LogAttrs(r.Context(), slog.LevelError, "panic serving request",
					slog.String("panic", fmt.Sprint(p)),
					slog.String("stack", string(debug.Stack())),
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.String("route", routeOf(r, nil)),
					slog.String(telemetry.KeyRequestID, requestIDOf(r, rec)),
					slog.String(telemetry.KeyTraceID, traceIDOf(r, rec)),
				)
				if rec.wrote() {
					panic(http.ErrAbortHandler)
				}
				// Drop representation headers the handler may have set for
				// the response it never sent.
				for _, h := range []string{"Content-Length", "Content-Encoding", "Content-Disposition", "ETag", "Last-Modified", "Location"} {
					rec.Header().Del(h)
				}
				p500 := ProblemFor(apperr.New(apperr.Internal, "panic"))
				p500.Instance = r.URL.Path
				p500.RequestID = requestIDOf(r, rec)
				writeJSON(rec, p500.Status, "application/problem+json", p500)
			}()
			next.ServeHTTP(rec, r)
		})
	}
}
