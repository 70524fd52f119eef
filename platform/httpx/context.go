package httpx

import (
	"context"
	"io"
	"log/slog"
	"net/http"

	"github.com/soukhq/souk/platform/telemetry"
)

type loggerKey struct{}

// WithRequestID returns a context carrying the request id. It is
// telemetry.WithRequestID: loggers made by telemetry.NewLogger read the id
// from there, and that package must not import this one.
func WithRequestID(ctx context.Context, id string) context.Context {
	return telemetry.WithRequestID(ctx, id)
}

// RequestIDFrom returns the request id, or "".
func RequestIDFrom(ctx context.Context) string {
	return telemetry.RequestIDFrom(ctx)
}

// WithLogger returns a context carrying a request-scoped logger.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// Logger returns the request-scoped logger (with request and trace ids), or
// a logger that discards when none was installed.
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return discard
}

// routeSlot carries the matched route pattern from the middleware mounted
// per route (inside the ServeMux, where the pattern is known) out to the
// middleware wrapped around the whole mux (Tracing, AccessLog), which only
// see the request before it is matched. The outermost of those installs it;
// it is written and read by the goroutine serving the request.
type routeSlot struct{ route string }

type routeSlotKey struct{}

// withRouteSlot returns r with a route slot in its context, reusing the slot
// an outer middleware installed.
func withRouteSlot(r *http.Request) (*http.Request, *routeSlot) {
	if s, ok := r.Context().Value(routeSlotKey{}).(*routeSlot); ok {
		return r, s
	}
	s := &routeSlot{}
	return r.WithContext(context.WithValue(r.Context(), routeSlotKey{}, s)), s
}

// noteRoute records route (or, when empty, the ServeMux pattern the request
// was matched with) as the request's route for the outer middleware. The
// first route recorded wins.
func noteRoute(r *http.Request, route string) {
	if route == "" {
		route = r.Pattern
	}
	if route == "" {
		return
	}
	if s, ok := r.Context().Value(routeSlotKey{}).(*routeSlot); ok && s.route == "" {
		s.route = route
	}
}

// Unmatched is the route label of requests that matched no route.
const Unmatched = "unmatched"

// routeOf returns the route of a served request: the one recorded by the
// per-route middleware, else the request's own ServeMux pattern, else
// Unmatched.
func routeOf(r *http.Request, s *routeSlot) string {
	if s != nil && s.route != "" {
		return s.route
	}
	if r.Pattern != "" {
		return r.Pattern
	}
	return Unmatched
}
