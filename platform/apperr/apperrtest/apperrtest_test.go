package apperrtest_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/apperr/apperrtest"
)

// recordingTB records failures instead of failing.
type recordingTB struct {
	testing.TB
	failed, fatal bool
}

func (r *recordingTB) Helper()                   {}
func (r *recordingTB) Errorf(string, ...any)     { r.failed = true }
func (r *recordingTB) Fatalf(f string, a ...any) { r.fatal = true; panic(fmt.Sprintf(f, a...)) }

func want(err error, code apperr.Code, fields ...string) (r *recordingTB, e *apperr.Error) {
	r = &recordingTB{}
	defer func() { _ = recover() }()
	return r, apperrtest.Want(r, err, code, fields...)
}

func TestWant(t *testing.T) {
	var v apperr.Validation
	v.Add("limit", "out_of_range", "must be 1 to 100")
	wrapped := fmt.Errorf("list: %w", v.Err())
	for _, tt := range []struct {
		name          string
		err           error
		code          apperr.Code
		fields        []string
		failed, fatal bool
	}{
		{"code and field", wrapped, apperr.ValidationFailed, []string{"limit"}, false, false},
		{"code only", wrapped, apperr.ValidationFailed, nil, false, false},
		{"another code", wrapped, apperr.NotFound, nil, false, true},
		{"a field not named", wrapped, apperr.ValidationFailed, []string{"cursor"}, true, false},
		{"an uncoded error is internal", errors.New("disk on fire"), apperr.Internal, nil, false, false},
		{"nil is no code", nil, apperr.Internal, nil, false, true},
	} {
		r, e := want(tt.err, tt.code, tt.fields...)
		if r.failed != tt.failed || r.fatal != tt.fatal {
			t.Errorf("%s: failed %v fatal %v, want %v %v", tt.name, r.failed, r.fatal, tt.failed, tt.fatal)
		}
		if !r.fatal && tt.err != nil && apperr.CodeOf(tt.err) == apperr.ValidationFailed && e == nil {
			t.Errorf("%s: no *apperr.Error returned", tt.name)
		}
	}
}

// memRow is a definition kept in memory that follows the If-Match protocol,
// or, with bumpOnNoop, moves its version on for a change that changes
// nothing.
type memRow struct {
	name       string
	version    int64
	bumpOnNoop bool
}

func (m *memRow) rename(rowID, name string, ifMatch int64) (int64, error) {
	switch {
	case rowID != "row_1":
		return 0, apperr.New(apperr.NotFound, "no %s", rowID)
	case ifMatch != 0 && ifMatch != m.version:
		return 0, apperr.New(apperr.VersionConflict, "at %d", m.version)
	case name == m.name && !m.bumpOnNoop:
		return m.version, nil
	}
	m.name = name
	m.version++
	return m.version, nil
}

func TestWantIfMatchUpdates(t *testing.T) {
	for _, tt := range []struct {
		name string
		row  *memRow
		fail bool
	}{
		{"protocol kept", &memRow{name: "A", version: 1}, false},
		{"no-op moves the version", &memRow{name: "A", version: 1, bumpOnNoop: true}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &recordingTB{}
			func() {
				defer func() { _ = recover() }()
				apperrtest.WantIfMatchUpdates(r, "row_1", "row_2", tt.row.rename)
			}()
			if got := r.failed || r.fatal; got != tt.fail {
				t.Fatalf("failed = %v, want %v", got, tt.fail)
			}
		})
	}
}
