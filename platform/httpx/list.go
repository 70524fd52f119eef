package httpx

import (
	"encoding/base64"
	"net/http"
	"strconv"

	"github.com/soukhq/souk/platform/apperr"
)

// List limits, from API.md.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// Page is the shape of every list response. NextCursor is null on the last page.
type Page[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// NewPage returns a page; next is the cursor of the following page or "".
func NewPage[T any](data []T, next string) Page[T] {
	if data == nil {
		data = []T{}
	}
	p := Page[T]{Data: data}
	if next != "" {
		c := EncodeCursor(next)
		p.NextCursor = &c
	}
	return p
}

// ListParams are the ?limit= and ?cursor= of a list request. After is the
// decoded cursor: the sort key of the last item of the previous page.
type ListParams struct {
	Limit int
	After string
}

// ParseList reads ?limit= (1–100, default 20) and ?cursor=; a bad value is a
// 400 naming the parameter.
func ParseList(r *http.Request) (ListParams, error) {
	p := ListParams{Limit: DefaultLimit}
	q := r.URL.Query()
	var v apperr.Validation
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			v.Addf("limit", "out_of_range", "limit must be an integer from 1 to %d", MaxLimit)
		}
		p.Limit = n
	}
	if s := q.Get("cursor"); s != "" {
		after, err := DecodeCursor(s)
		if err != nil {
			v.Add("cursor", "invalid", "cursor is not one this API returned")
		}
		p.After = after
	}
	if err := v.Err(); err != nil {
		return ListParams{}, err
	}
	return p, nil
}

// CheckLimit returns the page size a service's list method was given: 0
// (not said) is DefaultLimit, and a value outside 1–MaxLimit adds the same
// out_of_range error for "limit" to v that ParseList reports, returning
// limit as it was. The caller reports v's error once it has checked the
// rest of the request.
func CheckLimit(v *apperr.Validation, limit int) int {
	switch {
	case limit == 0:
		return DefaultLimit
	case limit < 1 || limit > MaxLimit:
		v.Addf("limit", "out_of_range", "limit must be an integer from 1 to %d", MaxLimit)
	}
	return limit
}

// CursorKey returns the sort key a service's list method was given as its
// cursor, a previous page's NextCursor: parse checks the decoded key and
// converts it (strings.CutPrefix-like: false rejects it). An empty cursor,
// the first page, is the zero K. A cursor that does not decode or that
// parse rejects adds an invalid error for "cursor" to v and returns the
// zero K; the caller reports v's error once it has checked the rest of the
// request.
func CursorKey[K any](v *apperr.Validation, cursor string, parse func(key string) (K, bool)) K {
	var zero K
	if cursor == "" {
		return zero
	}
	key, err := DecodeCursor(cursor)
	if err != nil {
		v.Add("cursor", "invalid", "cursor is not one this list returned")
		return zero
	}
	k, ok := parse(key)
	if !ok {
		v.Add("cursor", "invalid", "cursor is not one this list returned")
		return zero
	}
	return k
}

// NextPage returns the first limit of items as a page. items are what a
// list read with a limit of limit+1, one more than a page, to learn whether
// another page follows: when one does, the page's cursor holds key of the
// page's last item.
func NextPage[T any](items []T, limit int, key func(T) string) Page[T] {
	next := ""
	if len(items) > limit {
		items = items[:limit]
		next = key(items[limit-1])
	}
	return NewPage(items, next)
}

// EncodeCursor makes an opaque cursor of a sort key.
func EncodeCursor(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(key))
}

// DecodeCursor reverses EncodeCursor.
func DecodeCursor(cursor string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) == 0 || len(b) > 512 {
		return "", apperr.New(apperr.BadRequest, "invalid cursor")
	}
	return string(b), nil
}
