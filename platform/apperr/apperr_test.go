package apperr_test

import (
	"database/sql"
	"fmt"
	"testing"

	"github.com/soukhq/souk/platform/apperr"
)

func TestCodeOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want apperr.Code
	}{
		{"nil", nil, ""},
		{"plain", sql.ErrNoRows, apperr.Internal},
		{"coded", apperr.New(apperr.NotFound, "no product %q", "x"), apperr.NotFound},
		{"wrapped", fmt.Errorf("get product: %w", apperr.New(apperr.Conflict, "taken")), apperr.Conflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := apperr.CodeOf(tt.err); got != tt.want {
				t.Fatalf("CodeOf = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidation(t *testing.T) {
	var v apperr.Validation
	if v.Err() != nil {
		t.Fatal("empty validation must not be an error")
	}
	v.Add("title", "required", "title is required")
	var inner apperr.Validation
	inner.Add("sku", "required", "sku is required")
	v.Merge("variants[0]", &inner)
	err := v.Err()
	var e *apperr.Error
	if !asErr(err, &e) || e.Code != apperr.ValidationFailed {
		t.Fatalf("Err() = %v, want validation_failed", err)
	}
	if len(e.Fields) != 2 || e.Fields[1].Field != "variants[0].sku" {
		t.Fatalf("fields = %+v", e.Fields)
	}
}

func asErr(err error, target **apperr.Error) bool {
	e, ok := err.(*apperr.Error)
	if ok {
		*target = e
	}
	return ok
}
