package httpx

import (
	"net/http"

	"github.com/soukhq/souk/platform/auth"
)

// Route is one endpoint a service offers. Services describe their routes as
// data; the gateway mounts them, wrapping each with the shared middleware
// (metrics labelled by Path, authorization by Permission, idempotency for
// POST). Keeping routes as data is what lets the gateway forward a route to a
// remote service and lets the authorization matrix test enumerate them.
type Route struct {
	Method string // GET, POST, PATCH, PUT, DELETE
	Path   string // a net/http pattern path: "/admin/products/{id}"
	// Permission is what the caller must hold. Empty means public (Store API
	// and operations endpoints); every /admin route must name one.
	Permission auth.Permission
	// NoReplay marks a POST whose response carries a credential (a token, a
	// key's secret): Idempotency-Key is not honoured on it, because keeping
	// the response for replay would store the credential in clear.
	NoReplay bool
	Handler  http.HandlerFunc
}

// Pattern is the net/http ServeMux pattern of the route ("GET /store/products").
func (r Route) Pattern() string { return r.Method + " " + r.Path }
