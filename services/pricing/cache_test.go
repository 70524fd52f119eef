package pricing

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

// The quote cache (ADR 0017): a quote reflects every committed definition
// write, of this process or another one; use counts are never cached.

// MustNewReplica returns a second pricing service on s's database, with a
// connection pool and a cache of its own: what another process of a
// replicated pricing has.
func MustNewReplica(t testing.TB, s *Service) *Service {
	t.Helper()
	return newTestService(storetest.MustOpenAgain(t, s.db))
}

// lookups returns the cache's lookup count of the part with the result.
func lookups(t testing.TB, s *Service, part, result string) float64 {
	t.Helper()
	var m dto.Metric
	if err := s.cache.lookups.WithLabelValues(part, result).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// misses counts the cache's misses of every part so far.
func misses(t testing.TB, s *Service) float64 {
	t.Helper()
	var n float64
	for _, part := range []string{cacheTables, cachePrices, cacheCodes, cachePromotions} {
		n += lookups(t, s, part, "miss")
	}
	return n
}

// MustNotMiss fails the test when the cache missed since it counted before.
func MustNotMiss(t testing.TB, s *Service, before float64, why string) {
	t.Helper()
	if m := misses(t, s); m != before {
		t.Fatalf("%v cache misses: %s", m-before, why)
	}
}

// cartOfA asks for the quote of one varA in EUR.
func cartOfA() QuoteRequest {
	return QuoteRequest{Currency: "EUR", Lines: []QuoteLine{{ID: "1", VariantID: varA, Quantity: 1}}}
}

// seen is what a test quote shows of the definitions.
type seen struct {
	unit     int64  // varA's unit price; -1 when it has none
	taxBps   int64  // the address's tax rate
	discount int64  // the discount total
	codes    string // the code problems, "CODE:problem …"
	shipping string // the shipping options, "Name:price …"
}

// look quotes a cart of one varA with the codes SPRING and SUMMER, shipped
// to NL, and lists its shipping options.
func look(t testing.TB, s *Service) seen {
	t.Helper()
	req := cartOfA()
	req.Codes, req.ShippingAddress = []string{"SPRING", "SUMMER"}, &Address{Country: "NL"}
	q := MustQuote(t, s, req)
	out := seen{unit: q.Lines[0].UnitPrice.Amount, taxBps: q.TaxRateBps, discount: q.DiscountTotal.Amount}
	if q.Lines[0].Problem == ProblemPriceMissing {
		out.unit = -1
	}
	var codes, shipping []string
	for _, p := range q.CodeProblems {
		codes = append(codes, p.Code+":"+p.Problem)
	}
	opts, err := s.ShippingOptions(context.Background(), req)
	if err != nil {
		t.Fatalf("ShippingOptions: %v", err)
	}
	for _, o := range opts {
		shipping = append(shipping, fmt.Sprintf("%s:%d", o.Name, o.Price.Amount))
	}
	out.codes, out.shipping = strings.Join(codes, " "), strings.Join(shipping, " ")
	return out
}

// TestQuoteSeesEveryCommittedWrite writes every kind of definition, through
// the service and the Admin API of this process or of another replica on
// the same database, and quotes after each write with a warm cache: every
// quote shows the write.
func TestQuoteSeesEveryCommittedWrite(t *testing.T) {
	for _, writer := range []string{"same process", "another replica"} {
		t.Run(writer, func(t *testing.T) {
			runStores(t, func(t *testing.T, s *Service) {
				ctx := context.Background()
				w := s
				if writer == "another replica" {
					w = MustNewReplica(t, s)
				}
				admin := apitest.Mount(w.Routes())
				var retail, vip PriceList
				var nl TaxRate
				var std ShippingMethod
				var auto, voucher Promotion
				must := func(err error) {
					t.Helper()
					if err != nil {
						t.Fatal(err)
					}
				}
				want := seen{unit: -1, codes: "SPRING:code_invalid SUMMER:code_invalid"}
				if got := look(t, s); got != want {
					t.Fatalf("before any write: %+v, want %+v", got, want)
				}
				for _, step := range []struct {
					name  string
					write func()
					want  func(*seen)
				}{
					{"create a price list", func() {
						retail = MustCreatePriceList(t, w, PriceListInput{Name: "Retail", Currency: "EUR", PricesIncludeTax: true, Prices: []Price{{varA, 1000}}})
					}, func(s *seen) { s.unit = 1000 }},
					{"change its prices through the Admin API", func() {
						apitest.MustServe(t, admin, http.StatusOK, request{method: "PATCH", path: "/admin/price-lists/" + retail.ID,
							body: fmt.Sprintf(`{"prices": [{"variant_id": %q, "amount": 1200}]}`, varA)})
					}, func(s *seen) { s.unit = 1200 }},
					{"a more specific list", func() {
						vip = MustCreatePriceList(t, w, PriceListInput{Name: "Priority", Currency: "EUR", PricesIncludeTax: true, Priority: 5, Prices: []Price{{varA, 900}}})
					}, func(s *seen) { s.unit = 900 }},
					{"which becomes a group's", func() {
						_, err := w.UpdatePriceList(ctx, vip.ID, PriceListPatch{CustomerGroup: Some("vip")}, 0)
						must(err)
					}, func(s *seen) { s.unit = 1200 }},
					{"create a tax rate", func() {
						nl = MustCreateTaxRate(t, w, TaxRateInput{Country: "NL", RateBps: 2100, Name: "BTW"})
					}, func(s *seen) { s.taxBps = 2100 }},
					{"change it", func() {
						_, err := w.UpdateTaxRate(ctx, nl.ID, TaxRatePatch{RateBps: ptr(int64(900))}, 0)
						must(err)
					}, func(s *seen) { s.taxBps = 900 }},
					{"create a shipping method", func() {
						std = MustCreateShippingMethod(t, w, ShippingMethodInput{Name: "Standard", Rates: []ShippingRate{{Currency: "EUR", Amount: 495}}})
					}, func(s *seen) { s.shipping = "Standard:495" }},
					{"change its rate", func() {
						_, err := w.UpdateShippingMethod(ctx, std.ID, ShippingMethodPatch{Rates: &[]ShippingRate{{Currency: "EUR", Amount: 595}}}, 0)
						must(err)
					}, func(s *seen) { s.shipping = "Standard:595" }},
					{"deactivate it", func() {
						_, err := w.UpdateShippingMethod(ctx, std.ID, ShippingMethodPatch{Active: ptr(false)}, 0)
						must(err)
					}, func(s *seen) { s.shipping = "" }},
					{"an automatic promotion", func() {
						auto = MustCreatePromotion(t, w, PromotionInput{Name: "10 % off", Type: TypePercentage, Value: &PromotionValue{Percent: 10}})
					}, func(s *seen) { s.discount = 120 }},
					{"deactivate it", func() {
						_, err := w.UpdatePromotion(ctx, auto.ID, PromotionPatch{Active: ptr(false)}, 0)
						must(err)
					}, func(s *seen) { s.discount = 0 }},
					{"a voucher once unknown", func() {
						voucher = MustCreatePromotion(t, w, PromotionInput{Name: "Spring", Type: TypePercentage, Value: &PromotionValue{Percent: 20}, Codes: []string{"SPRING"}})
					}, func(s *seen) { s.discount, s.codes = 240, "SUMMER:code_invalid" }},
					{"its codes replaced", func() {
						_, err := w.UpdatePromotion(ctx, voucher.ID, PromotionPatch{Codes: &[]string{"SUMMER"}}, 0)
						must(err)
					}, func(s *seen) { s.codes = "SPRING:code_invalid" }},
					{"its value changed", func() {
						_, err := w.UpdatePromotion(ctx, voucher.ID, PromotionPatch{Value: Some(PromotionValue{Percent: 25})}, 0)
						must(err)
					}, func(s *seen) { s.discount = 300 }},
				} {
					step.write()
					step.want(&want)
					if got := look(t, s); got != want {
						t.Fatalf("after %q: %+v, want %+v", step.name, got, want)
					}
				}
				if err := s.CheckCode(ctx, "SPRING", "EUR", ""); err == nil {
					t.Fatal("CheckCode accepts a code its promotion no longer has")
				}
				if err := s.CheckCode(ctx, "SUMMER", "EUR", ""); err != nil {
					t.Fatalf("CheckCode(SUMMER) = %v", err)
				}
				if p, err := s.Prices(ctx, "EUR", []string{"vip"}, []string{varA}); err != nil || p[varA].Amount != 900 {
					t.Fatalf("Prices for vip = %v, %v", p, err)
				}
			})
		})
	}
}

// TestVoucherUseCountsAreNeverCached: the uses another replica takes and
// gives back show in the next quote and code check, while the codes'
// definitions come from the cache.
func TestVoucherUseCountsAreNeverCached(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		r := MustNewReplica(t, s)
		MustCreatePriceList(t, r, PriceListInput{Name: "Retail", Currency: "EUR", PricesIncludeTax: true, Prices: []Price{{varA, 1000}}})
		for code, limits := range map[string][2]*int64{"ONCE": {ptr(int64(1)), nil}, "PERCUS": {nil, ptr(int64(1))}} {
			MustCreatePromotion(t, r, PromotionInput{Name: code, Type: TypePercentage, Value: &PromotionValue{Percent: 10}, Combinable: true,
				Codes: []string{code}, UsageLimit: limits[0], UsageLimitPerCustomer: limits[1]})
		}
		req := cartOfA()
		req.CustomerID, req.Codes = "cus_1", []string{"ONCE", "PERCUS"}
		problems := func() string {
			t.Helper()
			var out []string
			for _, p := range MustQuote(t, s, req).CodeProblems {
				out = append(out, p.Code+":"+p.Problem)
			}
			return strings.Join(out, " ")
		}
		if got := problems(); got != "" {
			t.Fatalf("fresh codes: %q", got)
		}
		before := misses(t, s)

		if _, err := r.Redeem(ctx, RedeemRequest{Key: "k1", OrderID: "ord_1", CustomerID: "cus_1", Codes: []string{"ONCE", "PERCUS"}}); err != nil {
			t.Fatal(err)
		}
		if got := problems(); got != "ONCE:code_exhausted PERCUS:code_exhausted" {
			t.Fatalf("after another replica redeemed: %q", got)
		}
		for code, customer := range map[string]string{"ONCE": "", "PERCUS": "cus_1"} {
			if err := s.CheckCode(ctx, code, "EUR", customer); err == nil {
				t.Fatalf("CheckCode(%s) accepts a used-up code", code)
			}
		}
		if err := r.Release(ctx, "k1"); err != nil {
			t.Fatal(err)
		}
		if got := problems(); got != "" {
			t.Fatalf("after another replica released: %q", got)
		}
		MustNotMiss(t, s, before, "the counts must be read, not the definitions")
	})
}

// TestQuoteCacheServesDefinitions proves that repeated quotes read their
// definitions from memory: no miss after the first, and a change made
// behind the revision's back (never done outside tests) is not seen until
// the revision moves.
func TestQuoteCacheServesDefinitions(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		MustCreatePriceList(t, s, PriceListInput{Name: "Retail", Currency: "EUR", PricesIncludeTax: true, Prices: []Price{{varA, 1000}, {varB, 500}}})
		MustCreateTaxRate(t, s, TaxRateInput{Country: "NL", RateBps: 2100, Name: "BTW"})
		m := MustCreateShippingMethod(t, s, ShippingMethodInput{Name: "Standard", Rates: []ShippingRate{{Currency: "EUR", Amount: 495}}})
		MustCreatePromotion(t, s, PromotionInput{Name: "Auto", Type: TypeFreeShipping})
		MustVoucher(t, s, "SAVE", ptr(int64(10)), nil)
		req := QuoteRequest{Currency: "EUR", Lines: []QuoteLine{{ID: "1", VariantID: varA, Quantity: 1}, {ID: "2", VariantID: varB, Quantity: 2}},
			Codes: []string{"SAVE", "NOPE"}, ShippingMethodID: m.ID}
		first := MustQuote(t, s, req)
		cold := misses(t, s)
		if cold == 0 {
			t.Fatal("the first quote missed nothing")
		}
		for range 3 {
			if q := MustQuote(t, s, req); q.Total != first.Total {
				t.Fatalf("total %v, then %v", first.Total, q.Total)
			}
		}
		MustNotMiss(t, s, cold, "after the first quote")
		for part, want := range map[string]float64{cacheTables: 3, cachePrices: 6, cacheCodes: 6, cachePromotions: 3} {
			if got := lookups(t, s, part, "hit"); got != want {
				t.Errorf("%s: %v hits, want %v", part, got, want)
			}
		}

		if _, err := s.db.Exec(ctx, `UPDATE pricing_prices SET amount = 1 WHERE variant_id = ?`, varA); err != nil {
			t.Fatal(err)
		}
		if q := MustQuote(t, s, req); q.Lines[0].UnitPrice.Amount != 1000 {
			t.Fatalf("unit price %d: the price was read from SQL, not from the cache", q.Lines[0].UnitPrice.Amount)
		}
		if _, err := s.db.Exec(ctx, `UPDATE pricing_revision SET n = n + 1`); err != nil {
			t.Fatal(err)
		}
		if q := MustQuote(t, s, req); q.Lines[0].UnitPrice.Amount != 1 {
			t.Fatalf("unit price %d after the revision moved", q.Lines[0].UnitPrice.Amount)
		}
	})
}

// TestCachedDefinitionsApplyAtTheQuotesInstant: the cache keeps rows, not
// resolved prices, so validity windows are evaluated at each quote's At.
func TestCachedDefinitionsApplyAtTheQuotesInstant(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		soon, later := testNow.Add(time.Hour), testNow.Add(2*time.Hour)
		MustCreatePriceList(t, s, PriceListInput{Name: "Retail", Currency: "EUR", PricesIncludeTax: true, Prices: []Price{{varA, 1000}}})
		MustCreatePriceList(t, s, PriceListInput{Name: "Sale", Currency: "EUR", PricesIncludeTax: true, StartsAt: &soon, Prices: []Price{{varA, 800}}})
		MustCreatePromotion(t, s, PromotionInput{Name: "Night", Type: TypeFixed, Value: &PromotionValue{Amount: &money.Money{Amount: 50, Currency: "EUR"}}, EndsAt: &soon})
		quote := func(at time.Time) Quote {
			req := cartOfA()
			req.At = at
			return MustQuote(t, s, req)
		}
		now := quote(testNow)
		warm := misses(t, s)
		then := quote(later)
		if now.Lines[0].UnitPrice.Amount != 1000 || now.DiscountTotal.Amount != 50 {
			t.Fatalf("now: %+v", now)
		}
		if then.Lines[0].UnitPrice.Amount != 800 || then.DiscountTotal.Amount != 0 {
			t.Fatalf("later: %+v", then)
		}
		MustNotMiss(t, s, warm, "the second instant was not served from the cache")
	})
}

// TestQuotesRacingWritesAreNeverStale: while another replica raises a price
// step by step, quotes run concurrently; each shows at least the price
// committed before it started, whichever quote loaded the cache.
func TestQuotesRacingWritesAreNeverStale(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		r := MustNewReplica(t, s)
		pl := MustCreatePriceList(t, r, PriceListInput{Name: "Retail", Currency: "EUR", PricesIncludeTax: true, Prices: []Price{{varA, 1000}}})
		var committed atomic.Int64
		committed.Store(1000)
		const writes, readers = 20, 4
		done := make(chan struct{})
		var wg sync.WaitGroup
		for range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-done:
						return
					default:
					}
					floor := committed.Load()
					q, err := s.Quote(ctx, cartOfA())
					if err != nil {
						t.Errorf("quote: %v", err)
						return
					}
					if got := q.Lines[0].UnitPrice.Amount; got < floor {
						t.Errorf("quote shows %d after %d was committed", got, floor)
						return
					}
				}
			}()
		}
		for i := int64(1); i <= writes; i++ {
			if _, err := r.UpdatePriceList(ctx, pl.ID, PriceListPatch{Prices: &[]Price{{varA, 1000 + i}}}, 0); err != nil {
				t.Error(err)
				break
			}
			committed.Store(1000 + i)
		}
		close(done)
		wg.Wait()
		if q := MustQuote(t, s, cartOfA()); q.Lines[0].UnitPrice.Amount != 1000+writes {
			t.Fatalf("final quote shows %d", q.Lines[0].UnitPrice.Amount)
		}
	})
}

func TestCacheMetricsRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	db := storetest.MustOpen(t, store.SQLite, testMigrations...)
	s := New(db, nil, nil, Config{}, WithMetrics(reg))
	twin := New(db, nil, nil, Config{}, WithMetrics(reg)) // shares the collector
	MustQuote(t, s, cartOfA())
	MustQuote(t, twin, cartOfA())
	families, err := reg.Gather()
	if err != nil || len(families) != 1 || families[0].GetName() != "souk_pricing_cache_lookups_total" || len(families[0].GetMetric()) != 8 {
		t.Fatalf("gathered %v, %v; want hit and miss of 4 parts", families, err)
	}
	if got := lookups(t, twin, cachePrices, "miss"); got != 2 {
		t.Fatalf("price misses of both services = %v, want 2", got)
	}
}
