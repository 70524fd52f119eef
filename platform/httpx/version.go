package httpx

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/soukhq/souk/platform/apperr"
)

// IfMatch reads the If-Match precondition as a resource version. It accepts
// `3`, `"3"` and `W/"3"`. ok is false when the header is absent; a header
// that is not a version is a 400 naming If-Match.
func IfMatch(r *http.Request) (version int64, ok bool, err error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" {
		return 0, false, nil
	}
	h = strings.Trim(strings.TrimPrefix(h, "W/"), `"`)
	v, perr := strconv.ParseInt(h, 10, 64)
	if perr != nil || v < 1 {
		return 0, false, &apperr.Error{
			Code:    apperr.BadRequest,
			Message: "If-Match must be a resource version, such as \"3\"",
			Fields:  []apperr.FieldError{{Field: "If-Match", Code: "invalid", Message: "must be a positive integer version"}},
		}
	}
	return v, true, nil
}

// SetETag sets the ETag of a versioned resource, so clients can send it back
// in If-Match.
func SetETag(w http.ResponseWriter, version int64) {
	w.Header().Set("ETag", `"`+strconv.FormatInt(version, 10)+`"`)
}
