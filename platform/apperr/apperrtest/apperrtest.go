// Package apperrtest checks, in tests, the coded errors (apperr) that
// services promise their callers — in process and, through their HTTP
// clients, across the wire alike.
package apperrtest

import (
	"errors"
	"slices"
	"testing"

	"github.com/soukhq/souk/platform/apperr"
)

// Want fails the test unless err carries code and, when fields are given,
// names each of them among its field errors. It returns the error's
// *apperr.Error (nil for an uncoded error when code is apperr.Internal).
func Want(t testing.TB, err error, code apperr.Code, fields ...string) *apperr.Error {
	t.Helper()
	if !apperr.Is(err, code) {
		t.Fatalf("err = %v, want code %s", err, code)
	}
	var e *apperr.Error
	errors.As(err, &e)
	var got []string
	if e != nil {
		for _, f := range e.Fields {
			got = append(got, f.Field)
		}
	}
	for _, f := range fields {
		if !slices.Contains(got, f) {
			t.Errorf("err fields = %v, want %q among them (err: %v)", got, f, err)
		}
	}
	return e
}
