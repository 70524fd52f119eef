package httpx

import (
	"net/http"

	"github.com/soukhq/souk/platform/apperr"
)

// DefaultBodyLimit is the largest request body accepted by default: 1 MiB,
// as API.md promises.
const DefaultBodyLimit int64 = 1 << 20

// BodyLimit caps request bodies at n bytes (DefaultBodyLimit when n <= 0). A
// request whose Content-Length already exceeds n gets a 413
// payload_too_large problem at once, without calling the handler. Any other
// body is wrapped in http.MaxBytesReader, so reading past n fails with
// *http.MaxBytesError — which Decode reports as the same 413 — and the
// server closes the connection after the response.
func BodyLimit(n int64) Middleware {
	if n <= 0 {
		n = DefaultBodyLimit
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > n {
				Error(w, r, apperr.New(apperr.PayloadTooLarge,
					"request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, n))
				return
			}
			if r.Body != nil && r.Body != http.NoBody {
				r2 := *r
				r2.Body = http.MaxBytesReader(connWriter(w), r.Body, n)
				r = &r2
			}
			next.ServeHTTP(w, r)
		})
	}
}
