// Package id makes Souk's identifiers: a short type prefix, an underscore and
// a ULID ("prod_01JD3Q…"). They are opaque to clients, unique without
// coordination between processes, and sort by creation time, which keeps
// cursor pagination and B-tree inserts cheap.
package id

import (
	"fmt"
	"strings"

	"github.com/oklog/ulid/v2"
)

// New returns a new identifier with the prefix. It is safe for concurrent use:
// ulid.Make draws from a per-process monotonic, cryptographically seeded source.
func New(prefix string) string {
	return prefix + "_" + ulid.Make().String()
}

// Valid reports whether s is an identifier with the prefix.
func Valid(prefix, s string) bool {
	rest, ok := strings.CutPrefix(s, prefix+"_")
	if !ok {
		return false
	}
	_, err := ulid.ParseStrict(rest)
	return err == nil
}

// Check returns an error naming the expected prefix when s is not a valid
// identifier of that type.
func Check(prefix, s string) error {
	if !Valid(prefix, s) {
		return fmt.Errorf("%q is not a valid %s_… id", s, prefix)
	}
	return nil
}
