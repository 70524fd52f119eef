// Package money is Souk's representation of amounts: int64 minor units plus an
// ISO 4217 currency code, never floating point. The number of minor-unit digits
// per currency comes from the Unicode CLDR data shipped in golang.org/x/text
// (maintained upstream, updated with the module), not from a hand-typed table.
//
// Rounding of computed amounts (percentages, tax) is pricing's business and
// happens there, in one place; this package only adds, subtracts, compares and
// validates.
package money

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"golang.org/x/text/currency"
)

// Money is an amount in minor units of a currency (cents for EUR, yen for JPY).
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Errors returned by the arithmetic.
var (
	ErrCurrencyMismatch = errors.New("money: currency mismatch")
	ErrOverflow         = errors.New("money: amount overflow")
)

// New returns amount minor units of the currency (code upper-cased).
func New(amount int64, code string) Money {
	return Money{Amount: amount, Currency: strings.ToUpper(code)}
}

// ParseCurrency validates an ISO 4217 code and returns it upper-case. Codes
// that are not active tender currencies (XXX, XTS) are refused.
func ParseCurrency(code string) (string, error) {
	if len(code) != 3 {
		return "", fmt.Errorf("currency %q: want a three-letter ISO 4217 code", code)
	}
	u, err := currency.ParseISO(code)
	if err != nil {
		return "", fmt.Errorf("currency %q: not an ISO 4217 code", code)
	}
	s := u.String()
	if s == "XXX" || s == "XTS" {
		return "", fmt.Errorf("currency %q: not a tender currency", code)
	}
	return s, nil
}

// Digits returns the number of minor-unit digits of the currency (2 for EUR,
// 0 for JPY, 3 for BHD), from CLDR's standard rounding data.
func Digits(code string) (int, error) {
	u, err := currency.ParseISO(code)
	if err != nil {
		return 0, fmt.Errorf("currency %q: not an ISO 4217 code", code)
	}
	scale, _ := currency.Standard.Rounding(u)
	return scale, nil
}

// Zero returns zero of the currency.
func Zero(code string) Money { return Money{Currency: code} }

// IsZero reports whether the amount is zero.
func (m Money) IsZero() bool { return m.Amount == 0 }

// Add returns m+o; both must share a currency.
func (m Money) Add(o Money) (Money, error) {
	if m.Currency != o.Currency {
		return Money{}, fmt.Errorf("%w: %s + %s", ErrCurrencyMismatch, m.Currency, o.Currency)
	}
	if (o.Amount > 0 && m.Amount > math.MaxInt64-o.Amount) || (o.Amount < 0 && m.Amount < math.MinInt64-o.Amount) {
		return Money{}, ErrOverflow
	}
	return Money{Amount: m.Amount + o.Amount, Currency: m.Currency}, nil
}

// Sub returns m-o; both must share a currency.
func (m Money) Sub(o Money) (Money, error) {
	if o.Amount == math.MinInt64 {
		return Money{}, ErrOverflow
	}
	return m.Add(Money{Amount: -o.Amount, Currency: o.Currency})
}

// Mul returns m multiplied by an integer quantity.
func (m Money) Mul(q int64) (Money, error) {
	if m.Amount != 0 && q != 0 {
		r := m.Amount * q
		if r/q != m.Amount || (m.Amount == -1 && q == math.MinInt64) || (q == -1 && m.Amount == math.MinInt64) {
			return Money{}, ErrOverflow
		}
		return Money{Amount: r, Currency: m.Currency}, nil
	}
	return Money{Currency: m.Currency}, nil
}

// String formats the amount with the currency's minor-unit digits
// ("19.99 EUR", "1500 JPY"). It is for logs and emails, not for parsing.
func (m Money) String() string {
	d, err := Digits(m.Currency)
	if err != nil || d == 0 {
		return fmt.Sprintf("%d %s", m.Amount, m.Currency)
	}
	neg := m.Amount < 0
	a := m.Amount
	if neg {
		a = -a
	}
	p := int64(math.Pow10(d))
	s := fmt.Sprintf("%d.%0*d %s", a/p, d, a%p, m.Currency)
	if neg {
		s = "-" + s
	}
	return s
}
