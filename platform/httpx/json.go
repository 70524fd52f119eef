package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/soukhq/souk/platform/apperr"
)

// JSON writes v as application/json with the status.
func JSON(w http.ResponseWriter, status int, v any) {
	writeJSON(w, status, "application/json", v)
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"type":"` + ProblemTypeBase + `internal","title":"Internal Server Error","status":500,"code":"internal"}` + "\n")
		contentType = "application/problem+json"
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// Decode reads the request body into v strictly: the body must be one JSON
// value, with no unknown fields and no trailing data. Every failure is an
// *apperr.Error naming the problem (and the field, where there is one):
// bad_request (400), payload_too_large (413) or unsupported_media_type (415).
func Decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return apperr.New(apperr.UnsupportedMedia, "request body must be application/json, not %q", ct)
		}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return decodeError(err)
		}
		return apperr.New(apperr.BadRequest, "request body must hold a single JSON value")
	}
	return nil
}

func decodeError(err error) error {
	var (
		syntax    *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		tooBig    *http.MaxBytesError
		badTarget *json.InvalidUnmarshalError
	)
	switch {
	case errors.Is(err, io.EOF):
		return apperr.New(apperr.BadRequest, "request body is empty; a JSON object is required")
	case errors.As(err, &tooBig):
		return apperr.New(apperr.PayloadTooLarge, "request body exceeds %d bytes", tooBig.Limit)
	case errors.As(err, &syntax):
		return apperr.New(apperr.BadRequest, "malformed JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apperr.New(apperr.BadRequest, "malformed JSON: unexpected end of body")
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return apperr.New(apperr.BadRequest, "request body must be a JSON %s, not %s", typeErr.Type.Kind(), typeErr.Value)
		}
		return &apperr.Error{
			Code:    apperr.BadRequest,
			Message: fmt.Sprintf("field %q must be %s, not %s", field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value),
			Fields:  []apperr.FieldError{{Field: field, Code: "invalid_type", Message: fmt.Sprintf("must be %s", jsonKind(typeErr.Type.Kind().String()))}},
		}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &apperr.Error{
			Code:    apperr.BadRequest,
			Message: fmt.Sprintf("unknown field %q", field),
			Fields:  []apperr.FieldError{{Field: field, Code: "unknown_field", Message: "is not a field of this request"}},
		}
	case errors.As(err, &badTarget):
		return fmt.Errorf("decode request: %w", err) // programming error: internal
	}
	return apperr.Wrap(err, apperr.BadRequest, "malformed JSON request body")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	}
	return "a " + goKind
}
