package pricing

import (
	"encoding/binary"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/money"
)

// checkInvariants fails the test unless the quote keeps every promise
// Compute makes, whatever the input: no amount is negative, a discount never
// exceeds what it discounts, the lines add up to the totals, the line
// discounts add up to discount_total, the tax shares add up to tax_total,
// the total follows API.md's formula, and every amount is in the quote's
// currency.
func checkInvariants(t testing.TB, in Input, q Quote) {
	t.Helper()
	cur := q.Currency
	var sub, disc, totals, tax int64
	amounts := []money.Money{q.Subtotal, q.DiscountTotal, q.ShippingTotal, q.TaxTotal, q.Total, q.ShippingTax}
	if len(q.Lines) != len(in.Lines) {
		t.Fatalf("%d lines for %d", len(q.Lines), len(in.Lines))
	}
	for i, l := range q.Lines {
		amounts = append(amounts, l.UnitPrice, l.Subtotal, l.Discount, l.Tax, l.Total)
		if l.ID != in.Lines[i].ID || l.Quantity != in.Lines[i].Quantity {
			t.Errorf("line %d is not the input's line: %+v", i, l)
		}
		if in.Lines[i].Price == nil {
			if l.Problem != ProblemPriceMissing || l.Subtotal.Amount != 0 || l.Total.Amount != 0 || l.Tax.Amount != 0 || l.Discount.Amount != 0 {
				t.Errorf("line %d without a price: %+v", i, l)
			}
		} else if l.Problem != "" {
			t.Errorf("line %d has problem %q", i, l.Problem)
		}
		if l.Discount.Amount > l.Subtotal.Amount {
			t.Errorf("line %d: discount %d exceeds subtotal %d", i, l.Discount.Amount, l.Subtotal.Amount)
		}
		if l.Subtotal.Amount != l.UnitPrice.Amount*l.Quantity && l.Problem == "" {
			t.Errorf("line %d: subtotal %d ≠ %d × %d", i, l.Subtotal.Amount, l.UnitPrice.Amount, l.Quantity)
		}
		if l.Total.Amount != l.Subtotal.Amount-l.Discount.Amount {
			t.Errorf("line %d: total %d ≠ %d − %d", i, l.Total.Amount, l.Subtotal.Amount, l.Discount.Amount)
		}
		sub += l.Subtotal.Amount
		disc += l.Discount.Amount
		totals += l.Total.Amount
		tax += l.Tax.Amount
	}
	for _, m := range amounts {
		if m.Amount < 0 {
			t.Errorf("negative amount %v in %+v", m, q)
		}
		if m.Currency != cur {
			t.Errorf("amount %v not in %s", m, cur)
		}
	}
	if sub != q.Subtotal.Amount {
		t.Errorf("Σ line subtotals %d ≠ subtotal %d", sub, q.Subtotal.Amount)
	}
	if disc != q.DiscountTotal.Amount {
		t.Errorf("Σ line discounts %d ≠ discount_total %d", disc, q.DiscountTotal.Amount)
	}
	if q.DiscountTotal.Amount > q.Subtotal.Amount {
		t.Errorf("discount_total %d exceeds subtotal %d", q.DiscountTotal.Amount, q.Subtotal.Amount)
	}
	if totals != q.Subtotal.Amount-q.DiscountTotal.Amount {
		t.Errorf("Σ line totals %d ≠ subtotal − discount_total %d", totals, q.Subtotal.Amount-q.DiscountTotal.Amount)
	}
	if tax+q.ShippingTax.Amount != q.TaxTotal.Amount {
		t.Errorf("Σ line tax %d + shipping tax %d ≠ tax_total %d", tax, q.ShippingTax.Amount, q.TaxTotal.Amount)
	}
	if base := totals + q.ShippingTotal.Amount; q.TaxTotal.Amount > base {
		t.Errorf("tax %d exceeds its base %d", q.TaxTotal.Amount, base)
	}
	want := q.Subtotal.Amount - q.DiscountTotal.Amount + q.ShippingTotal.Amount
	if !q.PricesIncludeTax {
		want += q.TaxTotal.Amount
	}
	if q.Total.Amount != want {
		t.Errorf("total %d ≠ subtotal − discount_total + shipping_total (+ tax) = %d", q.Total.Amount, want)
	}
	var promoLines int64
	for _, p := range q.Promotions {
		if p.Amount.Amount < 0 || p.Amount.Currency != cur {
			t.Errorf("promotion amount %v", p.Amount)
		}
		var typ PromotionType
		for _, c := range in.Promotions {
			if c.ID == p.PromotionID {
				typ = c.Type
			}
		}
		if typ != TypeFreeShipping {
			promoLines += p.Amount.Amount
		}
	}
	if promoLines != q.DiscountTotal.Amount {
		t.Errorf("Σ promotion amounts %d ≠ discount_total %d", promoLines, q.DiscountTotal.Amount)
	}
	if q.Shipping != nil && (q.Shipping.Price != q.ShippingTotal || q.Shipping.Free != (q.Shipping.Price.Amount == 0 && q.Shipping.Free)) {
		t.Errorf("shipping %+v vs shipping_total %v", q.Shipping, q.ShippingTotal)
	}
	if q.Promotions == nil || q.CodeProblems == nil {
		t.Error("nil promotions or code problems: JSON would say null")
	}
}

// fuzzSource turns fuzz bytes into choices; when the bytes run out every
// choice is 0.
type fuzzSource struct{ b []byte }

func (f *fuzzSource) byte() byte {
	if len(f.b) == 0 {
		return 0
	}
	x := f.b[0]
	f.b = f.b[1:]
	return x
}

func (f *fuzzSource) intn(n int) int { return int(f.byte()) % n }

func (f *fuzzSource) bool() bool { return f.byte()&1 == 1 }

// amount is a non-negative amount up to max, usually small.
func (f *fuzzSource) amount(max int64) int64 {
	switch f.intn(4) {
	case 0:
		return int64(f.byte()) % (max + 1)
	case 1, 2:
		return int64(binary.BigEndian.Uint16([]byte{f.byte(), f.byte()})) % (max + 1)
	}
	var b [8]byte
	for i := range b {
		b[i] = f.byte()
	}
	return int64(binary.BigEndian.Uint64(b[:])>>1) % (max + 1)
}

// buildInput makes a valid, random-looking Compute input from the source.
func buildInput(f *fuzzSource) Input {
	currencies := []string{"EUR", "EUR", "JPY", "BHD"}
	in := Input{Currency: currencies[f.intn(len(currencies))], At: at, ShippingCountry: "NL"}
	in.TaxRateBps = []int64{0, 2100, 900, MaxRateBps, int64(f.intn(256)) * 39}[f.intn(5)]
	if f.bool() {
		in.CustomerGroups = []string{"vip"}
	}
	products := []string{p1, p2, p3, ""}
	for i := range f.intn(9) {
		l := gross(string(rune('a'+i)), products[f.intn(len(products))], f.amount(MaxAmount), 1)
		l.Price.IncludesTax = f.intn(4) != 0
		if f.intn(8) == 0 {
			l.Price = nil
		}
		if f.intn(8) == 0 {
			l.Quantity = 1 + f.amount(MaxQuantity-1)
		} else {
			l.Quantity = 1 + int64(f.intn(5))
		}
		in.Lines = append(in.Lines, l)
	}
	before, after := at.Add(-time.Hour), at.Add(time.Hour)
	for i := range f.intn(7) {
		p := Promotion{ID: "promo_" + string(rune('a'+i)), Name: "p", Active: f.intn(8) != 0, Target: TargetOrder,
			Combinable: f.bool(), Priority: f.intn(3) - 1}
		switch f.intn(4) {
		case 0:
			p.Type, p.Value = TypePercentage, &PromotionValue{Percent: 1 + int64(f.intn(100))}
		case 1:
			c := in.Currency
			if f.intn(6) == 0 {
				c = "GBP"
			}
			p.Type, p.Value = TypeFixed, &PromotionValue{Amount: &money.Money{Amount: 1 + f.amount(MaxAmount-1), Currency: c}}
		case 2:
			p.Type, p.BuyXGetY = TypeBuyXGetY, &BuyXGetY{BuyQuantity: 1 + int64(f.intn(4)), GetQuantity: 1 + int64(f.intn(3)), DiscountPercent: 1 + int64(f.intn(100))}
		case 3:
			p.Type = TypeFreeShipping
		}
		if p.Type != TypeFreeShipping {
			switch f.intn(3) {
			case 1:
				p.Target, p.TargetIDs = TargetProduct, []string{products[f.intn(3)]}
			case 2:
				p.Target, p.TargetIDs = TargetCategory, []string{[]string{c1, c2}[f.intn(2)]}
			}
		}
		switch f.intn(6) {
		case 0:
			p.StartsAt = &after
		case 1:
			p.EndsAt = &before
		case 2:
			p.StartsAt, p.EndsAt = &before, &after
		}
		if f.intn(4) == 0 {
			p.Conditions.MinSubtotal = &money.Money{Amount: f.amount(100_000), Currency: in.Currency}
		}
		if f.intn(4) == 0 {
			p.Conditions.CustomerGroups = []string{"vip"}
		}
		if f.intn(3) == 0 {
			code := "CODE" + string(rune('A'+i))
			p.Codes = []string{code}
			if f.intn(4) != 0 {
				ci := CodeInput{Code: code, PromotionID: p.ID}
				if f.intn(5) == 0 {
					ci.Problem = string(CodeExhausted)
				}
				in.Codes = append(in.Codes, ci)
			}
		}
		in.Promotions = append(in.Promotions, p)
	}
	if f.intn(4) == 0 {
		in.Codes = append(in.Codes, CodeInput{Code: "NOSUCH", Problem: string(CodeInvalid)})
	}
	if f.intn(3) != 0 {
		m := &ShippingMethod{ID: "ship_x", Name: "X", Active: true, Rates: []ShippingRate{{Currency: in.Currency, Amount: f.amount(MaxAmount)}}}
		if f.bool() {
			m.Rates[0].FreeOver = ptr(f.amount(100_000))
		}
		if f.intn(5) == 0 {
			m.Countries = []string{"DE"}
		}
		in.Shipping = m
	}
	return in
}

// checkCompute computes twice and checks the invariants and determinism.
func checkCompute(t *testing.T, in Input) {
	t.Helper()
	q1, err := Compute(in)
	if err != nil {
		t.Fatalf("Compute(valid input) = %v\ninput: %+v", err, in)
	}
	checkInvariants(t, in, q1)
	q2, err := Compute(in)
	if err != nil || !reflect.DeepEqual(q1, q2) {
		t.Fatalf("Compute is not deterministic:\n%+v\n%+v (%v)", q1, q2, err)
	}
}

// FuzzCompute builds random carts and promotions from the fuzz input and
// checks Compute's invariants: run `go test -fuzz=FuzzCompute
// ./services/pricing`. The seed corpus runs under plain go test.
func FuzzCompute(f *testing.F) {
	for _, seed := range [][]byte{
		{},
		{0, 1, 1, 3, 1, 0, 200, 1, 1, 2, 2, 0, 10, 1, 0, 0, 0},
		{1, 0, 0, 8, 2, 0, 50, 60, 1, 3, 0, 2, 100, 0, 4, 6, 0, 1, 1, 0, 9, 9, 9, 1, 1},
		{2, 4, 1, 5, 3, 7, 255, 255, 255, 255, 255, 255, 255, 255, 1, 7, 6, 1, 2, 3, 1, 1, 0, 0, 3, 3, 3, 1, 2, 0},
		{3, 2, 0, 6, 0, 9, 1, 0, 3, 1, 1, 2, 1, 0, 0, 3, 2, 2, 1, 9, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13},
		[]byte("souk pricing: money is int64 minor units, rounding half up in one place"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkCompute(t, buildInput(&fuzzSource{b: data}))
	})
}

// TestComputeProperties checks the invariants on many pseudo-random carts
// (a fixed seed: the same carts every run).
func TestComputeProperties(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range n {
		b := make([]byte, 64+rng.IntN(192))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		checkCompute(t, buildInput(&fuzzSource{b: b}))
		if t.Failed() {
			t.Fatalf("input bytes: %v", b)
		}
	}
}

// TestComputeOrderIndependence: the promotions' order in the input does
// not change the quote (stacking sorts them by priority, then id).
func TestComputeOrderIndependence(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		b := make([]byte, 128)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		in := buildInput(&fuzzSource{b: b})
		q1, err := Compute(in)
		if err != nil {
			t.Fatal(err)
		}
		rng.Shuffle(len(in.Promotions), func(i, j int) { in.Promotions[i], in.Promotions[j] = in.Promotions[j], in.Promotions[i] })
		q2, err := Compute(in)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(q1, q2) {
			t.Fatalf("shuffling the promotions changed the quote:\n%+v\n%+v", q1, q2)
		}
	}
}
