// Package apperr is Souk's one coded application error. Every layer returns
// plain Go errors; the ones a client may see carry a Code (a stable machine
// string such as "out_of_stock") and a human Message. The HTTP layer
// (platform/httpx) maps a Code to a status and an RFC 9457 problem document
// in exactly one place; any error without a Code is reported as internal and
// its text never reaches a client.
package apperr

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable error code. Clients switch on it, so a
// code, once published, never changes meaning.
type Code string

// The codes shared by every service. Services may define more codes of their
// own (for example "out_of_stock"); httpx maps unknown codes to 400 unless a
// status is registered for them.
const (
	Internal             Code = "internal"
	BadRequest           Code = "bad_request"            // malformed request: bad JSON, unknown field, bad query parameter
	ValidationFailed     Code = "validation_failed"      // well-formed request with invalid field values
	Unauthorized         Code = "unauthorized"           // no or invalid credentials
	Forbidden            Code = "forbidden"              // valid credentials, missing permission
	NotFound             Code = "not_found"              // no such resource (or not visible to the caller)
	MethodNotAllowed     Code = "method_not_allowed"     // route exists, verb does not
	Conflict             Code = "conflict"               // state conflict, e.g. a unique handle already taken
	VersionConflict      Code = "version_conflict"       // If-Match names a stale version
	PayloadTooLarge      Code = "payload_too_large"      // request body over the limit
	UnsupportedMedia     Code = "unsupported_media_type" // body is not application/json
	IdempotencyKeyReused Code = "idempotency_key_reused" // same Idempotency-Key, different request
	IdempotencyInFlight  Code = "idempotency_key_in_use" // same Idempotency-Key, first request still running
	RateLimited          Code = "rate_limited"
	Unavailable          Code = "unavailable" // a dependency is down; retry later
)

// FieldError names one invalid field of a request. Field is a JSON pointer-ish
// dotted path ("variants[1].sku").
type FieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error is the coded application error. Err, when set, is the underlying cause:
// it is kept for logs and errors.Is/As, never shown to clients.
type Error struct {
	Code    Code
	Message string
	Fields  []FieldError
	Err     error
}

func (e *Error) Error() string {
	msg := string(e.Code)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// New returns an *Error with the code and a formatted message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with the code and message whose cause is err.
func Wrap(err error, code Code, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// CodeOf returns the Code of the first *Error in err's chain, or Internal when
// there is none (and "" when err is nil).
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// Is reports whether err carries the code.
func Is(err error, code Code) bool { return CodeOf(err) == code }

// Validation collects field errors. The zero value is ready to use; Err
// returns nil when nothing was added, so a validator reads:
//
//	var v apperr.Validation
//	if p.Title == "" { v.Add("title", "required", "title is required") }
//	return v.Err()
type Validation struct {
	fields []FieldError
}

// Add records one invalid field.
func (v *Validation) Add(field, code, message string) {
	v.fields = append(v.fields, FieldError{Field: field, Code: code, Message: message})
}

// Addf records one invalid field with a formatted message.
func (v *Validation) Addf(field, code, format string, args ...any) {
	v.Add(field, code, fmt.Sprintf(format, args...))
}

// Merge adds another validation's fields under a path prefix ("variants[0]").
func (v *Validation) Merge(prefix string, other *Validation) {
	for _, f := range other.fields {
		if prefix != "" {
			f.Field = prefix + "." + f.Field
		}
		v.fields = append(v.fields, f)
	}
}

// Empty reports whether no field error was recorded.
func (v *Validation) Empty() bool { return len(v.fields) == 0 }

// Err returns a ValidationFailed *Error listing the fields, or nil.
func (v *Validation) Err() error {
	if len(v.fields) == 0 {
		return nil
	}
	msg := v.fields[0].Message
	if len(v.fields) > 1 {
		msg = fmt.Sprintf("%s (and %d more)", msg, len(v.fields)-1)
	}
	return &Error{Code: ValidationFailed, Message: msg, Fields: append([]FieldError(nil), v.fields...)}
}
