package httpx

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/soukhq/souk/platform/apperr"
)

// statusOf is the one map from application error code to HTTP status. Codes
// not listed are domain rules that refused a well-formed request: 422.
var statusOf = map[apperr.Code]int{
	apperr.Internal:             http.StatusInternalServerError,
	apperr.BadRequest:           http.StatusBadRequest,
	apperr.ValidationFailed:     http.StatusBadRequest,
	apperr.Unauthorized:         http.StatusUnauthorized,
	apperr.Forbidden:            http.StatusForbidden,
	apperr.NotFound:             http.StatusNotFound,
	apperr.MethodNotAllowed:     http.StatusMethodNotAllowed,
	apperr.Conflict:             http.StatusConflict,
	apperr.VersionConflict:      http.StatusConflict,
	apperr.PayloadTooLarge:      http.StatusRequestEntityTooLarge,
	apperr.UnsupportedMedia:     http.StatusUnsupportedMediaType,
	apperr.IdempotencyKeyReused: http.StatusUnprocessableEntity,
	apperr.IdempotencyInFlight:  http.StatusConflict,
	apperr.RateLimited:          http.StatusTooManyRequests,
	apperr.Unavailable:          http.StatusServiceUnavailable,
	// Domain codes published in API.md.
	"out_of_stock":        http.StatusConflict,
	"invalid_credentials": http.StatusUnauthorized,
	"payment_declined":    http.StatusPaymentRequired,
	"code_invalid":        http.StatusUnprocessableEntity,
	"code_expired":        http.StatusUnprocessableEntity,
	"code_exhausted":      http.StatusUnprocessableEntity,
}

// StatusOf returns the HTTP status for an error code.
func StatusOf(code apperr.Code) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return http.StatusUnprocessableEntity
}

// ProblemTypeBase prefixes the code to make a problem's type URI.
const ProblemTypeBase = "https://souk.dev/problems/"

// Problem is an RFC 9457 problem document with Souk's extensions.
type Problem struct {
	Type      string              `json:"type"`
	Title     string              `json:"title"`
	Status    int                 `json:"status"`
	Detail    string              `json:"detail,omitempty"`
	Instance  string              `json:"instance,omitempty"`
	Code      apperr.Code         `json:"code"`
	Errors    []apperr.FieldError `json:"errors,omitempty"`
	RequestID string              `json:"request_id,omitempty"`
}

// ProblemFor turns err into the problem a client sees. Errors without a code
// become a bare 500 whose detail says nothing about the cause.
func ProblemFor(err error) Problem {
	var e *apperr.Error
	if !errors.As(err, &e) {
		e = &apperr.Error{Code: apperr.Internal, Message: "an internal error occurred; it has been logged"}
	}
	status := StatusOf(e.Code)
	detail := e.Message
	if e.Code == apperr.Internal {
		detail = "an internal error occurred; it has been logged"
	}
	return Problem{
		Type:   ProblemTypeBase + string(e.Code),
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Code:   e.Code,
		Errors: e.Fields,
	}
}

// Error writes err as application/problem+json. Internal errors (and every
// 5xx) are logged with the request's logger so a person can find the cause by
// the request id the client was given.
func Error(w http.ResponseWriter, r *http.Request, err error) {
	p := ProblemFor(err)
	p.Instance = r.URL.Path
	p.RequestID = RequestIDFrom(r.Context())
	if p.Status >= 500 {
		Logger(r.Context()).LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("error", err.Error()), slog.String("code", string(p.Code)),
			slog.String("method", r.Method), slog.String("path", r.URL.Path))
	}
	if p.Status == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, p.Status, "application/problem+json", p)
}
