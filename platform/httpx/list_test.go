package httpx_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/httpx"
)

func TestCursorKey(t *testing.T) {
	idKey := func(key string) (string, bool) { return strings.CutPrefix(key, "id:") }
	tests := []struct {
		name, cursor, want string
		bad                bool
	}{
		{"first page", "", "", false},
		{"a key parse accepts", httpx.EncodeCursor("id:prod_9"), "prod_9", false},
		{"a key parse rejects", httpx.EncodeCursor("rank:1:prod_9"), "", true},
		{"not base64", "***", "", true},
		{"empty key", httpx.EncodeCursor(""), "", false}, // encodes to "": the first page
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v apperr.Validation
			got := httpx.CursorKey(&v, tt.cursor, idKey)
			var e *apperr.Error
			bad := errors.As(v.Err(), &e)
			if got != tt.want || bad != tt.bad {
				t.Fatalf("CursorKey(%q) = %q, error %v; want %q, error %v", tt.cursor, got, v.Err(), tt.want, tt.bad)
			}
			if bad && (e.Code != apperr.ValidationFailed || len(e.Fields) != 1 || e.Fields[0].Field != "cursor" ||
				e.Fields[0].Code != "invalid" || e.Fields[0].Message != "cursor is not one this list returned") {
				t.Fatalf("CursorKey(%q) error = %+v", tt.cursor, e)
			}
		})
	}
}

func TestNextPage(t *testing.T) {
	key := func(s string) string { return "id:" + s }
	tests := []struct {
		items    []string
		limit    int
		want     []string
		wantNext string // the decoded cursor; "" for none
	}{
		{nil, 2, []string{}, ""},
		{[]string{"a", "b"}, 2, []string{"a", "b"}, ""},
		{[]string{"a", "b", "c"}, 2, []string{"a", "b"}, "id:b"},
	}
	for _, tt := range tests {
		p := httpx.NextPage(tt.items, tt.limit, key)
		next := ""
		if p.NextCursor != nil {
			var err error
			if next, err = httpx.DecodeCursor(*p.NextCursor); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(p.Data, tt.want) || next != tt.wantNext {
			t.Errorf("NextPage(%q, %d) = %q, next %q; want %q, next %q", tt.items, tt.limit, p.Data, next, tt.want, tt.wantNext)
		}
	}
}
