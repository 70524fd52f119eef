package cart

import (
	"strings"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/apperr/apperrtest"
)

func TestValidCountry(t *testing.T) {
	for _, tt := range []struct {
		code string
		want bool
	}{
		{"NL", true}, {"DE", true}, {"US", true}, {"GB", true}, {"JP", true}, {"XK", true}, {"SS", true}, {"CW", true},
		{"nl", false},                // callers upper-case first
		{"UK", false},                // CLDR replaces it by GB
		{"ZR", false},                // now CD
		{"SU", false}, {"YU", false}, // former countries
		{"EU", false}, {"UN", false}, {"AC", false}, {"EA", false}, // reserved, not countries
		{"ZZ", false}, {"AA", false}, {"QO", false}, {"XA", false}, // unknown and private use
		{"NLD", false}, {"528", false}, {"N", false}, {"", false}, {"N1", false},
	} {
		if got := ValidCountry(tt.code); got != tt.want {
			t.Errorf("ValidCountry(%q) = %v, want %v", tt.code, got, tt.want)
		}
	}
}

func TestValidateEmail(t *testing.T) {
	for _, tt := range []struct {
		email string
		ok    bool
	}{
		{"ada@example.com", true},
		{"ada+shop@example.co.uk", true},
		{"a@b", true},
		{"", false},
		{"ada", false},
		{"ada@", false},
		{"@example.com", false},
		{"Ada <ada@example.com>", false},
		{"<ada@example.com>", false},
		{"ada@example.com, bob@example.com", false},
		{"ada @example.com", false},
		{strings.Repeat("a", 243) + "@example.com", false}, // 255 characters
		{strings.Repeat("a", 242) + "@example.com", true},  // 254
	} {
		var v apperr.Validation
		validateEmail(&v, "email", tt.email)
		if v.Empty() != tt.ok {
			t.Errorf("validateEmail(%q): ok = %v, want %v (%v)", tt.email, v.Empty(), tt.ok, v.Err())
		}
	}
}

func TestValidateAddress(t *testing.T) {
	ok := normalizeAddress(validAddress())
	var v apperr.Validation
	validateAddress(&v, "a", ok)
	if err := v.Err(); err != nil {
		t.Fatalf("a valid address: %v", err)
	}
	n := normalizeAddress(Address{FirstName: " Ada ", LastName: "L", Line1: "x", City: "y", PostalCode: "1", Country: " de "})
	if n.FirstName != "Ada" || n.Country != "DE" {
		t.Fatalf("normalized = %+v", n)
	}
	for _, tt := range []struct {
		mod   func(a *Address)
		field string
	}{
		{func(a *Address) { a.FirstName = "" }, "a.first_name"},
		{func(a *Address) { a.LastName = strings.Repeat("é", MaxNameLen+1) }, "a.last_name"},
		{func(a *Address) { a.Company = strings.Repeat("c", MaxCompanyLen+1) }, "a.company"},
		{func(a *Address) { a.Line1 = "" }, "a.line1"},
		{func(a *Address) { a.Line2 = "tab\there" }, "a.line2"},
		{func(a *Address) { a.City = "" }, "a.city"},
		{func(a *Address) { a.PostalCode = strings.Repeat("9", MaxPostalLen+1) }, "a.postal_code"},
		{func(a *Address) { a.Region = "\x00" }, "a.region"},
		{func(a *Address) { a.Phone = "12" }, "a.phone"},
		{func(a *Address) { a.Phone = "+31 (0)20-123.4567 ext" }, "a.phone"},
		{func(a *Address) { a.Phone = strings.Repeat("1", MaxPhoneLen+1) }, "a.phone"},
		{func(a *Address) { a.Country = "XX" }, "a.country"},
	} {
		a := ok
		tt.mod(&a)
		var v apperr.Validation
		validateAddress(&v, "a", a)
		apperrtest.Want(t, v.Err(), apperr.ValidationFailed, tt.field)
	}
}

func TestConfig(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("the zero config: %v", err)
	}
	c := Config{IdleTTL: 48 * time.Hour}
	c.setDefaults()
	if c.AnonymousIdleTTL != 48*time.Hour || c.MaxQuantity != 999 || c.MaxLines != 100 || c.ExpiryInterval != DefaultExpiryInterval {
		t.Fatalf("defaults = %+v", c)
	}
	for _, bad := range []Config{
		{MaxQuantity: -1}, {MaxQuantity: maxMaxQuantity + 1}, {MaxLines: -5}, {MaxLines: maxMaxLines + 1},
		{IdleTTL: time.Second}, {AnonymousIdleTTL: -time.Hour}, {ExpiryInterval: time.Millisecond},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) passed", bad)
		}
	}
}

func TestTokens(t *testing.T) {
	a, da := newToken()
	b, _ := newToken()
	if a == b || !strings.HasPrefix(a, tokenPrefix) || len(a) != len(tokenPrefix)+43 {
		t.Fatalf("tokens %q, %q", a, b)
	}
	if !tokenMatches(da, a) || tokenMatches(da, b) || tokenMatches(da, "") || tokenMatches("not hex", a) || tokenMatches(da, a+"x") {
		t.Fatal("tokenMatches is wrong")
	}
}
