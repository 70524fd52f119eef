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

// WantIfMatchUpdates checks the If-Match protocol of an Admin definition's
// update on a row at version 1: rename(rowID, name, ifMatch) changes the
// row's name and returns its new version. A malformed id or a well-formed
// unknown one is not_found, a stale If-Match a version conflict (once the
// row moved on too), a change that changes nothing keeps the version, and
// a change without If-Match (0) moves it on by one. It leaves the row at
// version 3.
func WantIfMatchUpdates(t testing.TB, id, unknown string, rename func(rowID, name string, ifMatch int64) (int64, error)) {
	t.Helper()
	_, err := rename("nope", "X", 0)
	Want(t, err, apperr.NotFound)
	_, err = rename(unknown, "X", 0)
	Want(t, err, apperr.NotFound)
	_, err = rename(id, "X", 7)
	Want(t, err, apperr.VersionConflict)
	if v, err := rename(id, "Renamed", 1); err != nil || v != 2 {
		t.Fatalf("rename at If-Match 1 = version %d, %v; want 2", v, err)
	}
	_, err = rename(id, "Renamed", 1)
	Want(t, err, apperr.VersionConflict)
	if v, err := rename(id, "Renamed", 0); err != nil || v != 2 {
		t.Fatalf("no-op rename = version %d, %v; want 2 kept", v, err)
	}
	if v, err := rename(id, "Again", 0); err != nil || v != 3 {
		t.Fatalf("rename without If-Match = version %d, %v; want 3", v, err)
	}
}
