package pricing

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

func demoVariants() []SeedVariant {
	var out []SeedVariant
	for p := range 6 {
		for v := range 3 {
			out = append(out, SeedVariant{
				VariantID:   fmt.Sprintf("var_01JD3Q00000000000000000%d%02d", p, v),
				SKU:         fmt.Sprintf("SKU-%d-%d", p, v),
				ProductID:   fmt.Sprintf("prod_01JD3Q000000000000000000%02d", p),
				CategoryIDs: []string{fmt.Sprintf("cat_01JD3Q00000000000000000%03d", p%2)},
			})
		}
	}
	return out
}

func TestSeed(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		variants := demoVariants()
		// Warm the quote cache first: the seed must invalidate it.
		if prices, err := s.Prices(ctx, "EUR", nil, variantIDs(variants)); err != nil || len(prices) != 0 {
			t.Fatalf("prices before the seed: %v, %v", prices, err)
		}
		seeded, err := Seed(ctx, s, variants)
		if err != nil || !seeded {
			t.Fatalf("Seed = %v, %v", seeded, err)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM pricing_price_lists`); n != 3 {
			t.Fatalf("%d price lists", n)
		}
		for _, cur := range []string{"EUR", "GBP"} {
			prices, err := s.Prices(ctx, cur, nil, variantIDs(variants))
			if err != nil || len(prices) != len(variants) {
				t.Fatalf("%s: %d prices for %d variants (%v)", cur, len(prices), len(variants), err)
			}
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM pricing_tax_rates`); n != 5 {
			t.Fatalf("%d tax rates", n)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM pricing_promotions`); n != 3 {
			t.Fatalf("%d promotions", n)
		}

		t.Run("twice loads nothing more", func(t *testing.T) {
			seeded, err := Seed(ctx, s, variants)
			if err != nil || seeded {
				t.Fatalf("second Seed = %v, %v", seeded, err)
			}
			if n := countRows(t, s, `SELECT COUNT(*) FROM pricing_price_lists`); n != 3 {
				t.Fatalf("%d price lists", n)
			}
		})
		t.Run("the demo works end to end", func(t *testing.T) {
			v := variants[0]
			eur, _ := s.Prices(ctx, "EUR", nil, []string{v.VariantID})
			vip, _ := s.Prices(ctx, "EUR", []string{"vip"}, []string{v.VariantID})
			if vip[v.VariantID].Amount >= eur[v.VariantID].Amount {
				t.Fatalf("vip %v is not below %v", vip, eur)
			}
			if err := s.CheckCode(ctx, "welcome10", "EUR", "cus_1"); err != nil {
				t.Fatal(err)
			}
			opts, err := s.ShippingOptions(ctx, QuoteRequest{Currency: "EUR", Lines: []QuoteLine{{ID: "1", VariantID: v.VariantID, Quantity: 1}}, ShippingAddress: &Address{Country: "NL"}})
			if err != nil || len(opts) != 3 {
				t.Fatalf("NL EUR options = %+v, %v", opts, err)
			}
			opts, err = s.ShippingOptions(ctx, QuoteRequest{Currency: "GBP", ShippingAddress: &Address{Country: "GB"}})
			if err != nil || len(opts) != 2 {
				t.Fatalf("GB GBP options = %+v, %v", opts, err)
			}
			q := MustQuote(t, s, QuoteRequest{Currency: "EUR", CustomerID: "cus_1", Codes: []string{"WELCOME10"},
				Lines: []QuoteLine{{ID: "1", VariantID: v.VariantID, ProductID: v.ProductID, CategoryIDs: v.CategoryIDs, Quantity: 1}}})
			if q.DiscountTotal.Amount == 0 || q.TaxRateBps != 2100 || !q.PricesIncludeTax {
				t.Fatalf("demo quote = %+v", q)
			}
		})
	})
}

func TestSeedConcurrently(t *testing.T) {
	s := MustNewSQLiteService(t)
	var wg sync.WaitGroup
	var loaded atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seeded, err := Seed(context.Background(), s, demoVariants())
			if err != nil {
				t.Error(err)
			}
			if seeded {
				loaded.Add(1)
			}
		}()
	}
	wg.Wait()
	if loaded.Load() != 1 || countRows(t, s, `SELECT COUNT(*) FROM pricing_price_lists`) != 3 {
		t.Fatalf("%d seeds loaded", loaded.Load())
	}
}

func variantIDs(vs []SeedVariant) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.VariantID
	}
	return out
}
