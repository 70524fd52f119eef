package id_test

import (
	"sort"
	"testing"

	"github.com/soukhq/souk/platform/id"
)

func TestNewIsValidUniqueAndSorted(t *testing.T) {
	const n = 1000
	ids := make([]string, n)
	seen := make(map[string]bool, n)
	for i := range ids {
		ids[i] = id.New("prod")
		if !id.Valid("prod", ids[i]) {
			t.Fatalf("%q is not valid", ids[i])
		}
		if seen[ids[i]] {
			t.Fatalf("duplicate id %q", ids[i])
		}
		seen[ids[i]] = true
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("ids made in sequence must sort in creation order")
	}
}

func TestValid(t *testing.T) {
	good := id.New("var")
	for _, tt := range []struct {
		s    string
		want bool
	}{
		{good, true},
		{"prod" + good[3:], false},
		{"var_", false},
		{"var_not-a-ulid", false},
		{"", false},
	} {
		if got := id.Valid("var", tt.s); got != tt.want {
			t.Errorf("Valid(var, %q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}
