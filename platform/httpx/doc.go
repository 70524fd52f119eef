// Package httpx is Souk's HTTP layer, shared by every service and the
// gateway: errors as RFC 9457 problems from the one code→status map (Error),
// strict JSON decoding (Decode), list pagination (ParseList, Page), resource
// versions (IfMatch, SetETag), routes as data (Route) and the middleware
// every route is served through — and, on the calling side, Client, the
// JSON client every service's HTTPClient is built on.
//
// Middleware have one shape, func(http.Handler) http.Handler, composed with
// Chain (first listed outermost). The gateway wraps the whole mux in the
// per-request middleware, outermost first:
//
//	h := httpx.Chain(mux,
//		httpx.Tracing(tp, telemetry.Propagator()), // span, traceparent out
//		httpx.RequestID(),                         // X-Request-Id in and out
//		httpx.AccessLog(logger),                   // one line a request; request logger
//		httpx.Recover(logger),                     // panic → 500 problem
//		httpx.BodyLimit(0),                        // 1 MiB
//	)
//
// and mounts each Route with the per-route ones, which know the route:
//
//	mux.Handle(rt.Pattern(), httpx.Chain(rt.Handler,
//		metrics.Middleware("catalog", rt.Pattern()), // RED metrics
//		httpx.Authorize(authn, authz, rt.Permission),
//		idem.Middleware(),                           // POST routes only
//	))
//
// plus a catch-all mux.Handle("/", …) with metrics.Middleware(service,
// httpx.Unmatched). The per-route middleware also tell the outer ones which
// route matched, so spans and access-log lines are named by the pattern
// ("GET /admin/products/{id}"), never by the raw path.
package httpx
