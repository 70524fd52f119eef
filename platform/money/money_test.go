package money_test

import (
	"errors"
	"math"
	"testing"

	"github.com/soukhq/souk/platform/money"
)

func TestDigitsComeFromCLDR(t *testing.T) {
	for code, want := range map[string]int{"EUR": 2, "USD": 2, "JPY": 0, "KRW": 0, "BHD": 3, "KWD": 3, "GBP": 2} {
		got, err := money.Digits(code)
		if err != nil || got != want {
			t.Errorf("Digits(%s) = %d, %v; want %d", code, got, err, want)
		}
	}
	if _, err := money.Digits("ZZZ"); err == nil {
		t.Error("Digits(ZZZ) must fail")
	}
}

func TestParseCurrency(t *testing.T) {
	if c, err := money.ParseCurrency("eur"); err != nil || c != "EUR" {
		t.Fatalf("ParseCurrency(eur) = %q, %v", c, err)
	}
	for _, bad := range []string{"", "EU", "EURO", "ZZZ", "XXX", "12A"} {
		if _, err := money.ParseCurrency(bad); err == nil {
			t.Errorf("ParseCurrency(%q) must fail", bad)
		}
	}
}

func TestArithmetic(t *testing.T) {
	a, b := money.New(1999, "EUR"), money.New(1, "EUR")
	if s, err := a.Add(b); err != nil || s.Amount != 2000 {
		t.Fatalf("Add = %v, %v", s, err)
	}
	if s, err := a.Sub(b); err != nil || s.Amount != 1998 {
		t.Fatalf("Sub = %v, %v", s, err)
	}
	if _, err := a.Add(money.New(1, "USD")); !errors.Is(err, money.ErrCurrencyMismatch) {
		t.Fatalf("Add across currencies = %v", err)
	}
	if _, err := money.New(math.MaxInt64, "EUR").Add(b); !errors.Is(err, money.ErrOverflow) {
		t.Fatalf("overflow not detected: %v", err)
	}
	if _, err := money.New(math.MaxInt64/2+1, "EUR").Mul(2); !errors.Is(err, money.ErrOverflow) {
		t.Fatalf("Mul overflow not detected: %v", err)
	}
	if m, err := a.Mul(3); err != nil || m.Amount != 5997 {
		t.Fatalf("Mul = %v, %v", m, err)
	}
}

func TestString(t *testing.T) {
	for _, tt := range []struct {
		m    money.Money
		want string
	}{
		{money.New(1999, "EUR"), "19.99 EUR"},
		{money.New(-5, "EUR"), "-0.05 EUR"},
		{money.New(1500, "JPY"), "1500 JPY"},
		{money.New(1234, "BHD"), "1.234 BHD"},
	} {
		if got := tt.m.String(); got != tt.want {
			t.Errorf("%v.String() = %q, want %q", tt.m, got, tt.want)
		}
	}
}
