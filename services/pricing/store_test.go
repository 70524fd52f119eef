package pricing

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/apperr/apperrtest"
	"github.com/soukhq/souk/platform/bus/bustest"
	"github.com/soukhq/souk/platform/money"
)

// The store conformance suite: every test here runs on SQLite and, when
// SOUK_TEST_POSTGRES_URL is set, on PostgreSQL.

const (
	varA = "var_01JD3Q0000000000000000000A"
	varB = "var_01JD3Q0000000000000000000B"
	varC = "var_01JD3Q0000000000000000000C"
)

func TestPriceResolutionMostSpecific(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		before, after := testNow.Add(-time.Hour), testNow.Add(time.Hour)
		longAgo := testNow.Add(-48 * time.Hour)
		vip, staff := "vip", "staff"
		MustCreatePriceList(t, s, PriceListInput{Name: "Base", Currency: "EUR", PricesIncludeTax: true,
			Prices: []Price{{varA, 1000}, {varB, 2000}, {varC, 3000}}})
		MustCreatePriceList(t, s, PriceListInput{Name: "Base GBP", Currency: "GBP", PricesIncludeTax: true, Prices: []Price{{varA, 900}}})
		MustCreatePriceList(t, s, PriceListInput{Name: "High priority", Currency: "EUR", Priority: 5, Prices: []Price{{varA, 950}, {varC, 2900}}})
		MustCreatePriceList(t, s, PriceListInput{Name: "Sale (window)", Currency: "EUR", StartsAt: &before, EndsAt: &after, Prices: []Price{{varA, 800}}})
		MustCreatePriceList(t, s, PriceListInput{Name: "Expired sale", Currency: "EUR", StartsAt: &longAgo, EndsAt: &before, Prices: []Price{{varA, 1}, {varB, 1}}})
		MustCreatePriceList(t, s, PriceListInput{Name: "Future sale", Currency: "EUR", StartsAt: &after, Prices: []Price{{varB, 2}}})
		MustCreatePriceList(t, s, PriceListInput{Name: "VIP", Currency: "EUR", CustomerGroup: &vip, Prices: []Price{{varA, 700}, {varB, 1700}}})
		MustCreatePriceList(t, s, PriceListInput{Name: "Staff low priority", Currency: "EUR", CustomerGroup: &staff, Priority: -1, Prices: []Price{{varC, 100}}})
		MustCreatePriceList(t, s, PriceListInput{Name: "Staff newer", Currency: "EUR", CustomerGroup: &staff, Priority: -1, Prices: []Price{{varC, 90}}})

		for _, tt := range []struct {
			name     string
			currency string
			groups   []string
			want     map[string]int64
		}{
			// A: window beats priority beats base; B: only base is valid; C: priority beats base.
			{"anonymous", "EUR", nil, map[string]int64{varA: 800, varB: 2000, varC: 2900}},
			// The group list beats the window list.
			{"vip", "EUR", []string{"VIP"}, map[string]int64{varA: 700, varB: 1700, varC: 2900}},
			// Between two group lists alike, the newer wins.
			{"staff", "EUR", []string{"staff"}, map[string]int64{varA: 800, varB: 2000, varC: 90}},
			{"gbp", "GBP", nil, map[string]int64{varA: 900}},
			{"no list in the currency", "USD", nil, map[string]int64{}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.Prices(ctx, tt.currency, tt.groups, []string{varA, varB, varC})
				if err != nil {
					t.Fatal(err)
				}
				want := map[string]money.Money{}
				for v, a := range tt.want {
					want[v] = money.New(a, tt.currency)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("Prices = %v, want %v", got, want)
				}
			})
		}

		t.Run("quote uses the same rule and the list's tax mode", func(t *testing.T) {
			q := MustQuote(t, s, QuoteRequest{Currency: "EUR", CustomerGroups: []string{"vip"},
				Lines: []QuoteLine{{ID: "1", VariantID: varA, Quantity: 1}, {ID: "2", VariantID: varC, Quantity: 2}, {ID: "3", VariantID: "var_unknown", Quantity: 1}}})
			// varA from VIP (tax incl.), varC from "High priority" (net: 2900 × 1.21 = 3509 gross, as the quote is inclusive)
			if q.Lines[0].UnitPrice.Amount != 700 || q.Lines[1].UnitPrice.Amount != 2900 || q.Lines[2].Problem != ProblemPriceMissing {
				t.Fatalf("lines = %+v", q.Lines)
			}
		})
	})
}

func TestPriceListLifecycle(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		pl := MustCreatePriceList(t, s, PriceListInput{Name: " Retail ", Currency: "eur", PricesIncludeTax: true,
			Prices: []Price{{varB, 2000}, {varA, 1000}}})
		if pl.Version != 1 || pl.Name != "Retail" || pl.Currency != "EUR" || pl.Prices[0].VariantID != varA {
			t.Fatalf("created = %+v", pl)
		}
		got, err := s.GetPriceList(ctx, pl.ID)
		if err != nil || !reflect.DeepEqual(got, pl) {
			t.Fatalf("get = %+v, %v\nwant %+v", got, err, pl)
		}

		t.Run("patch replaces prices, bumps the version, announces changed variants", func(t *testing.T) {
			p, err := s.UpdatePriceList(ctx, pl.ID, PriceListPatch{Prices: &[]Price{{varA, 1100}, {varC, 3000}}}, 1)
			if err != nil {
				t.Fatal(err)
			}
			if p.Version != 2 || !reflect.DeepEqual(p.Prices, []Price{{varA, 1100}, {varC, 3000}}) {
				t.Fatalf("patched = %+v", p)
			}
			changes := priceChanges(t, s, pl.ID)
			if len(changes) != 2 || !slices.Equal(changes[1].VariantIDs, []string{varA, varB, varC}) || changes[1].Version != 2 {
				t.Fatalf("changes = %+v", changes)
			}
		})
		t.Run("a stale If-Match is a version conflict", func(t *testing.T) {
			_, err := s.UpdatePriceList(ctx, pl.ID, PriceListPatch{Name: ptr("X")}, 1)
			apperrtest.Want(t, err, apperr.VersionConflict)
		})
		t.Run("a patch that changes nothing keeps the version and says nothing", func(t *testing.T) {
			p, err := s.UpdatePriceList(ctx, pl.ID, PriceListPatch{Name: ptr("Retail")}, 0)
			if err != nil || p.Version != 2 {
				t.Fatalf("no-op patch = %+v, %v", p, err)
			}
			if n := len(priceChanges(t, s, pl.ID)); n != 2 {
				t.Fatalf("%d price_changed events", n)
			}
		})
		t.Run("a rename is not a price change", func(t *testing.T) {
			p, err := s.UpdatePriceList(ctx, pl.ID, PriceListPatch{Name: ptr("Retail 2026")}, 0)
			if err != nil || p.Version != 3 {
				t.Fatalf("rename = %+v, %v", p, err)
			}
			if n := len(priceChanges(t, s, pl.ID)); n != 2 {
				t.Fatalf("%d price_changed events", n)
			}
		})
		t.Run("a window change announces every variant", func(t *testing.T) {
			end := testNow.Add(time.Hour)
			if _, err := s.UpdatePriceList(ctx, pl.ID, PriceListPatch{EndsAt: Some(end)}, 0); err != nil {
				t.Fatal(err)
			}
			ch := priceChanges(t, s, pl.ID)
			if last := ch[len(ch)-1]; !slices.Equal(last.VariantIDs, []string{varA, varC}) || last.EndsAt == nil || !last.EndsAt.Equal(end) {
				t.Fatalf("last change = %+v", last)
			}
			p, err := s.UpdatePriceList(ctx, pl.ID, PriceListPatch{EndsAt: Null[time.Time]()}, 0)
			if err != nil || p.EndsAt != nil {
				t.Fatalf("clear ends_at = %+v, %v", p, err)
			}
		})
		t.Run("validation names the fields", func(t *testing.T) {
			start := testNow
			_, err := s.CreatePriceList(ctx, PriceListInput{Name: "", Currency: "EURO", StartsAt: &start, EndsAt: &start,
				Prices: []Price{{varA, -1}, {varA, 5}, {"", 1}}})
			apperrtest.Want(t, err, apperr.ValidationFailed, "name", "currency", "ends_at", "prices[0].amount", "prices[1].variant_id", "prices[2].variant_id")
			_, err = s.UpdatePriceList(ctx, pl.ID, PriceListPatch{Prices: &[]Price{{varA, MaxAmount + 1}}}, 0)
			apperrtest.Want(t, err, apperr.ValidationFailed, "prices[0].amount")
		})
		t.Run("not found", func(t *testing.T) {
			_, err := s.GetPriceList(ctx, "pl_01JD3Q0000000000000000000A")
			apperrtest.Want(t, err, apperr.NotFound)
			_, err = s.GetPriceList(ctx, "nope")
			apperrtest.Want(t, err, apperr.NotFound)
			_, err = s.UpdatePriceList(ctx, "pl_01JD3Q0000000000000000000A", PriceListPatch{}, 0)
			apperrtest.Want(t, err, apperr.NotFound)
		})
		t.Run("list pages in creation order", func(t *testing.T) {
			second := MustCreatePriceList(t, s, PriceListInput{Name: "Second", Currency: "GBP"})
			var ids []string
			cursor := ""
			for {
				p, err := s.ListPriceLists(ctx, 1, cursor)
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range p.Data {
					ids = append(ids, x.ID)
				}
				if p.NextCursor == nil {
					break
				}
				cursor = *p.NextCursor
			}
			if !slices.Equal(ids, []string{pl.ID, second.ID}) {
				t.Fatalf("ids = %v", ids)
			}
			_, err := s.ListPriceLists(ctx, 1, "bm9wZQ")
			apperrtest.Want(t, err, apperr.ValidationFailed, "cursor")
		})
	})
}

// priceChanges decodes the price_changed events of a list, in order.
func priceChanges(t testing.TB, s *Service, listID string) []PriceChange {
	t.Helper()
	var out []PriceChange
	for _, r := range bustest.MustOutbox(t, s.db) {
		if r.Type == EventPriceChanged && r.Aggregate == listID {
			var c PriceChange
			mustEventData(t, r.Payload, &c)
			out = append(out, c)
		}
	}
	return out
}

func TestPromotionLifecycle(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		p := MustCreatePromotion(t, s, PromotionInput{Name: "Winter 10", Type: TypePercentage, Value: &PromotionValue{Percent: 10},
			Codes: []string{"winter10", "Winter-B"}, UsageLimit: ptr(int64(5)), UsageLimitPerCustomer: ptr(int64(1))})
		if p.Target != TargetOrder || !slices.Equal(p.Codes, []string{"WINTER10", "WINTER-B"}) || !p.Active || p.Version != 1 ||
			!reflect.DeepEqual(p.Usage, []CodeUsage{{"WINTER10", 0}, {"WINTER-B", 0}}) {
			t.Fatalf("created = %+v", p)
		}
		got, err := s.GetPromotion(ctx, p.ID)
		if err != nil || !reflect.DeepEqual(got, p) {
			t.Fatalf("get = %+v, %v\nwant %+v", got, err, p)
		}

		t.Run("codes are unique case-insensitively", func(t *testing.T) {
			_, err := s.CreatePromotion(ctx, PromotionInput{Name: "Clash", Type: TypeFreeShipping, Codes: []string{"NEW1", "Winter10"}})
			apperrtest.Want(t, err, apperr.Conflict, "codes[1]")
			_, err = s.CreatePromotion(ctx, PromotionInput{Name: "Dup", Type: TypeFreeShipping, Codes: []string{"abc", "ABC"}})
			apperrtest.Want(t, err, apperr.ValidationFailed, "codes[1]")
			if n := countRows(t, s, `SELECT COUNT(*) FROM pricing_promotion_codes WHERE code = ?`, "NEW1"); n != 0 {
				t.Fatal("a failed create left a code behind")
			}
		})
		t.Run("deactivate with If-Match; codes stop working", func(t *testing.T) {
			off, err := s.UpdatePromotion(ctx, p.ID, PromotionPatch{Active: ptr(false)}, 1)
			if err != nil || off.Active || off.Version != 2 {
				t.Fatalf("deactivate = %+v, %v", off, err)
			}
			apperrtest.Want(t, s.CheckCode(ctx, "winter10", "EUR", ""), CodeInvalid, "code")
			_, err = s.UpdatePromotion(ctx, p.ID, PromotionPatch{Active: ptr(true)}, 1)
			apperrtest.Want(t, err, apperr.VersionConflict)
			on, err := s.UpdatePromotion(ctx, p.ID, PromotionPatch{Active: ptr(true)}, 2)
			if err != nil || !on.Active {
				t.Fatalf("reactivate = %+v, %v", on, err)
			}
			if err := s.CheckCode(ctx, "WINTER10", "EUR", ""); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("patch replaces codes and limits", func(t *testing.T) {
			up, err := s.UpdatePromotion(ctx, p.ID, PromotionPatch{Codes: &[]string{"WINTER10", "WINTER-C"}, UsageLimit: Null[int64](),
				Value: Some(PromotionValue{Percent: 15})}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(up.Codes, []string{"WINTER10", "WINTER-C"}) || up.UsageLimit != nil || up.Value.Percent != 15 {
				t.Fatalf("patched = %+v", up)
			}
			apperrtest.Want(t, s.CheckCode(ctx, "WINTER-B", "", ""), CodeInvalid)
			if n := countRows(t, s, `SELECT COUNT(*) FROM pricing_promotion_codes WHERE promotion_id = ? AND usage_limit IS NULL`, p.ID); n != 2 {
				t.Fatalf("%d code rows without limit", n)
			}
		})
		t.Run("validation names the fields", func(t *testing.T) {
			for _, tt := range []struct {
				in     PromotionInput
				fields []string
			}{
				{PromotionInput{Type: "bogus"}, []string{"name", "type"}},
				{PromotionInput{Name: "x", Type: TypePercentage, Value: &PromotionValue{Percent: 101}}, []string{"value"}},
				{PromotionInput{Name: "x", Type: TypePercentage}, []string{"value"}},
				{PromotionInput{Name: "x", Type: TypeFixed, Value: &PromotionValue{Amount: &money.Money{Amount: 0, Currency: "XYZ"}}}, []string{"value.currency", "value.amount"}},
				{PromotionInput{Name: "x", Type: TypePercentage, Value: &PromotionValue{Percent: 5}, Target: TargetProduct}, []string{"target_ids"}},
				{PromotionInput{Name: "x", Type: TypePercentage, Value: &PromotionValue{Percent: 5}, Target: TargetCategory, TargetIDs: []string{"prod_x"}}, []string{"target_ids[0]"}},
				{PromotionInput{Name: "x", Type: TypeBuyXGetY}, []string{"buy_x_get_y"}},
				{PromotionInput{Name: "x", Type: TypeBuyXGetY, BuyXGetY: &BuyXGetY{0, 1, 101}}, []string{"buy_x_get_y.buy_quantity", "buy_x_get_y.discount_percent"}},
				{PromotionInput{Name: "x", Type: TypeFreeShipping, UsageLimit: ptr(int64(0))}, []string{"usage_limit", "codes"}},
				{PromotionInput{Name: "x", Type: TypeFreeShipping, Codes: []string{"a b"}}, []string{"codes[0]"}},
				{PromotionInput{Name: "x", Type: TypeFreeShipping, StartsAt: &testNow, EndsAt: &testNow}, []string{"ends_at"}},
				{PromotionInput{Name: "x", Type: TypeFreeShipping, Conditions: &Conditions{MinSubtotal: &money.Money{Amount: 1, Currency: "??"}, CustomerGroups: []string{""}}},
					[]string{"conditions.min_subtotal.currency", "conditions.customer_groups[0]"}},
			} {
				_, err := s.CreatePromotion(ctx, tt.in)
				apperrtest.Want(t, err, apperr.ValidationFailed, tt.fields...)
			}
		})
		t.Run("list", func(t *testing.T) {
			page, err := s.ListPromotions(ctx, 10, "")
			if err != nil || len(page.Data) != 1 || page.Data[0].ID != p.ID || page.NextCursor != nil {
				t.Fatalf("list = %+v, %v", page, err)
			}
		})
	})
}

// MustVoucher creates a percentage voucher.
func MustVoucher(t testing.TB, s *Service, code string, limit, perCustomer *int64) Promotion {
	t.Helper()
	return MustCreatePromotion(t, s, PromotionInput{Name: "Voucher " + code, Type: TypePercentage, Value: &PromotionValue{Percent: 10},
		Codes: []string{code}, UsageLimit: limit, UsageLimitPerCustomer: perCustomer})
}

func codeUsed(t testing.TB, s *Service, code string) int {
	t.Helper()
	return countRows(t, s, `SELECT used FROM pricing_promotion_codes WHERE code = ?`, code)
}

func TestVoucherUsageLimitUnderConcurrency(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		MustVoucher(t, s, "FLASH5", ptr(int64(5)), nil)
		const n = 100
		var ok, exhausted atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Redeem(context.Background(), RedeemRequest{Key: fmt.Sprintf("k%d", i), OrderID: fmt.Sprintf("ord_%d", i),
					CustomerID: fmt.Sprintf("cus_%d", i), Codes: []string{"flash5"}})
				switch {
				case err == nil:
					ok.Add(1)
				case apperr.Is(err, CodeExhausted):
					exhausted.Add(1)
				default:
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("unexpected error: %v", err)
		}
		if ok.Load() != 5 || exhausted.Load() != n-5 {
			t.Fatalf("%d redeemed, %d exhausted; want 5 and %d", ok.Load(), exhausted.Load(), n-5)
		}
		if u := codeUsed(t, s, "FLASH5"); u != 5 {
			t.Fatalf("used = %d", u)
		}
		if r := countRows(t, s, `SELECT COUNT(*) FROM pricing_redemptions WHERE state = 'redeemed'`); r != 5 {
			t.Fatalf("%d redemptions recorded", r)
		}
		if e := countRows(t, s, `SELECT COUNT(*) FROM souk_outbox WHERE event_type = ?`, EventVoucherRedeemed); e != 5 {
			t.Fatalf("%d voucher_redeemed events", e)
		}
		t.Logf("%s: %d of %d concurrent redemptions succeeded", s.db.Engine(), ok.Load(), n)
	})
}

func TestVoucherPerCustomerLimitUnderConcurrency(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		MustVoucher(t, s, "ONCE", ptr(int64(1000)), ptr(int64(1)))
		const n = 20
		var ok, exhausted atomic.Int64
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Redeem(context.Background(), RedeemRequest{Key: fmt.Sprintf("k%d", i), OrderID: fmt.Sprintf("ord_%d", i),
					CustomerID: "cus_same", Codes: []string{"ONCE"}})
				switch {
				case err == nil:
					ok.Add(1)
				case apperr.Is(err, CodeExhausted):
					exhausted.Add(1)
				default:
					t.Errorf("unexpected error: %v", err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 || exhausted.Load() != n-1 {
			t.Fatalf("%d redeemed, %d exhausted; want 1 and %d", ok.Load(), exhausted.Load(), n-1)
		}
		if u := codeUsed(t, s, "ONCE"); u != 1 {
			t.Fatalf("used = %d (failed attempts must give their use back)", u)
		}
		// Another customer still can.
		if _, err := s.Redeem(context.Background(), RedeemRequest{Key: "other", OrderID: "ord_x", CustomerID: "cus_other", Codes: []string{"ONCE"}}); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d of %d concurrent redemptions of one customer succeeded", s.db.Engine(), ok.Load(), n)
	})
}

func TestRedeemIdempotentByKey(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		MustVoucher(t, s, "SAVE", ptr(int64(10)), nil)
		MustVoucher(t, s, "MORE", nil, nil)
		req := RedeemRequest{Key: "ord_1:vouchers", OrderID: "ord_1", CustomerID: "cus_1", Codes: []string{"save", "MORE"}}
		first, err := s.Redeem(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if first.State != RedemptionRedeemed || !slices.Equal(first.Codes, []string{"SAVE", "MORE"}) || first.Key != req.Key {
			t.Fatalf("first = %+v", first)
		}
		again, err := s.Redeem(ctx, RedeemRequest{Key: "ord_1:vouchers", OrderID: "ord_1", CustomerID: "cus_1", Codes: []string{"MORE", "SAVE"}})
		if err != nil || !reflect.DeepEqual(again, first) {
			t.Fatalf("again = %+v, %v", again, err)
		}
		if codeUsed(t, s, "SAVE") != 1 || codeUsed(t, s, "MORE") != 1 {
			t.Fatal("a replay used a code again")
		}
		_, err = s.Redeem(ctx, RedeemRequest{Key: "ord_1:vouchers", OrderID: "ord_2", CustomerID: "cus_1", Codes: []string{"SAVE"}})
		apperrtest.Want(t, err, apperr.IdempotencyKeyReused)

		t.Run("concurrent redemptions with one key redeem once", func(t *testing.T) {
			var wg sync.WaitGroup
			ids := make([]string, 20)
			for i := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := s.Redeem(ctx, RedeemRequest{Key: "same", OrderID: "ord_9", Codes: []string{"SAVE"}})
					if err != nil {
						t.Errorf("redeem: %v", err)
						return
					}
					ids[i] = r.ID
				}()
			}
			wg.Wait()
			for _, x := range ids {
				if x != ids[0] || x == "" {
					t.Fatalf("ids = %v", ids)
				}
			}
			if u := codeUsed(t, s, "SAVE"); u != 2 {
				t.Fatalf("used = %d, want 2", u)
			}
		})
		t.Run("all or nothing", func(t *testing.T) {
			_, err := s.Redeem(ctx, RedeemRequest{Key: "mixed", OrderID: "ord_3", Codes: []string{"MORE", "NOSUCH"}})
			apperrtest.Want(t, err, CodeInvalid, "code")
			if u := codeUsed(t, s, "MORE"); u != 1 {
				t.Fatalf("MORE used = %d after a failed redemption", u)
			}
			if n := countRows(t, s, `SELECT COUNT(*) FROM pricing_redemptions WHERE idem_key = ?`, "mixed"); n != 0 {
				t.Fatal("a failed redemption was recorded")
			}
		})
		t.Run("validation", func(t *testing.T) {
			_, err := s.Redeem(ctx, RedeemRequest{})
			apperrtest.Want(t, err, apperr.ValidationFailed, "key", "order_id", "codes")
		})
		t.Run("a per-customer code needs a customer", func(t *testing.T) {
			MustVoucher(t, s, "PERCUS", nil, ptr(int64(1)))
			_, err := s.Redeem(ctx, RedeemRequest{Key: "anon", OrderID: "ord_4", Codes: []string{"PERCUS"}})
			apperrtest.Want(t, err, apperr.ValidationFailed, "customer_id")
		})
	})
}

func TestReleaseGivesUsesBackOnce(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		MustVoucher(t, s, "ONE", ptr(int64(1)), ptr(int64(1)))
		if _, err := s.Redeem(ctx, RedeemRequest{Key: "k1", OrderID: "ord_1", CustomerID: "cus_1", Codes: []string{"ONE"}}); err != nil {
			t.Fatal(err)
		}
		_, err := s.Redeem(ctx, RedeemRequest{Key: "k2", OrderID: "ord_2", CustomerID: "cus_2", Codes: []string{"ONE"}})
		apperrtest.Want(t, err, CodeExhausted)

		var wg sync.WaitGroup
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Release(ctx, "k1"); err != nil {
					t.Errorf("release: %v", err)
				}
			}()
		}
		wg.Wait()
		if u := codeUsed(t, s, "ONE"); u != 0 {
			t.Fatalf("used = %d after release", u)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM souk_outbox WHERE event_type = ?`, EventVoucherReleased); n != 1 {
			t.Fatalf("%d voucher_released events", n)
		}
		r, _, err := getRedemption(ctx, s.db, "k1")
		if err != nil || r.State != RedemptionReleased {
			t.Fatalf("redemption = %+v, %v", r, err)
		}
		// The use (and the customer's) is free again: the same customer may use it.
		if _, err := s.Redeem(ctx, RedeemRequest{Key: "k3", OrderID: "ord_3", CustomerID: "cus_1", Codes: []string{"ONE"}}); err != nil {
			t.Fatal(err)
		}
		// A replay of the released key returns it released and takes nothing.
		again, err := s.Redeem(ctx, RedeemRequest{Key: "k1", OrderID: "ord_1", CustomerID: "cus_1", Codes: []string{"ONE"}})
		if err != nil || again.State != RedemptionReleased || codeUsed(t, s, "ONE") != 1 {
			t.Fatalf("replay of a released key = %+v, %v", again, err)
		}

		t.Run("release before redeem: the late redemption takes nothing", func(t *testing.T) {
			MustVoucher(t, s, "LATE", nil, nil)
			if err := s.Release(ctx, "late-key"); err != nil {
				t.Fatal(err)
			}
			r, err := s.Redeem(ctx, RedeemRequest{Key: "late-key", OrderID: "ord_5", Codes: []string{"LATE"}})
			if err != nil || r.State != RedemptionReleased || codeUsed(t, s, "LATE") != 0 {
				t.Fatalf("late redeem = %+v, %v", r, err)
			}
		})
	})
}

func TestCodesExpiredAndInactive(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		past, future := testNow.Add(-time.Hour), testNow.Add(time.Hour)
		MustCreatePromotion(t, s, PromotionInput{Name: "Old", Type: TypeFreeShipping, Codes: []string{"OLD"}, EndsAt: &past})
		MustCreatePromotion(t, s, PromotionInput{Name: "Soon", Type: TypeFreeShipping, Codes: []string{"SOON"}, StartsAt: &future})
		MustCreatePromotion(t, s, PromotionInput{Name: "Off", Type: TypeFreeShipping, Codes: []string{"OFF"}, Active: ptr(false)})
		MustCreatePromotion(t, s, PromotionInput{Name: "Used", Type: TypeFreeShipping, Codes: []string{"USED"}, UsageLimit: ptr(int64(1))})
		if _, err := s.Redeem(ctx, RedeemRequest{Key: "u", OrderID: "ord_u", Codes: []string{"USED"}}); err != nil {
			t.Fatal(err)
		}
		for code, want := range map[string]apperr.Code{"OLD": CodeExpired, "SOON": CodeInvalid, "OFF": CodeInvalid, "NOPE": CodeInvalid, "USED": CodeExhausted, "": CodeInvalid} {
			apperrtest.Want(t, s.CheckCode(ctx, code, "EUR", ""), want)
			if code != "" {
				_, err := s.Redeem(ctx, RedeemRequest{Key: "k-" + code, OrderID: "ord_1", Codes: []string{code}})
				apperrtest.Want(t, err, want)
			}
		}
		q := MustQuote(t, s, QuoteRequest{Currency: "EUR", Codes: []string{"old", "soon", "off", "nope", "used"}})
		want := []CodeProblem{{"OLD", "code_expired"}, {"SOON", "code_invalid"}, {"OFF", "code_invalid"}, {"NOPE", "code_invalid"}, {"USED", "code_exhausted"}}
		if !reflect.DeepEqual(q.CodeProblems, want) {
			t.Fatalf("code problems = %+v", q.CodeProblems)
		}
	})
}

func TestQuoteThroughTheStore(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		MustCreatePriceList(t, s, PriceListInput{Name: "Retail", Currency: "EUR", PricesIncludeTax: true, Prices: []Price{{varA, 2500}, {varB, 6000}}})
		MustCreatePriceList(t, s, PriceListInput{Name: "B2B", Currency: "USD", Prices: []Price{{varA, 2000}}})
		MustCreateTaxRate(t, s, TaxRateInput{Country: "nl", RateBps: 2100, Name: "BTW"})
		MustCreateTaxRate(t, s, TaxRateInput{Country: "US", RateBps: 0, Name: "no federal sales tax"})
		MustCreateTaxRate(t, s, TaxRateInput{Country: "US", Region: ptr("ca"), RateBps: 725, Name: "California"})
		std := MustCreateShippingMethod(t, s, ShippingMethodInput{Name: "Standard", Rates: []ShippingRate{{Currency: "EUR", Amount: 495, FreeOver: ptr(int64(10000))}, {Currency: "USD", Amount: 500}}})
		exp := MustCreateShippingMethod(t, s, ShippingMethodInput{Name: "Express", Rates: []ShippingRate{{Currency: "EUR", Amount: 995}}})
		de := MustCreateShippingMethod(t, s, ShippingMethodInput{Name: "DE only", Countries: []string{"de"}, Rates: []ShippingRate{{Currency: "EUR", Amount: 100}}})
		MustCreateShippingMethod(t, s, ShippingMethodInput{Name: "Retired", Active: ptr(false), Rates: []ShippingRate{{Currency: "EUR", Amount: 1}}})
		MustVoucher(t, s, "WELCOME", ptr(int64(100)), ptr(int64(1)))
		lines := []QuoteLine{{ID: "1", VariantID: varA, Quantity: 2}}

		t.Run("no address: the default country's tax", func(t *testing.T) {
			q := MustQuote(t, s, QuoteRequest{Currency: "EUR", Lines: lines})
			// 5000 × 21/121 = 867.77 → 868
			if q.TaxRateBps != 2100 || q.TaxTotal.Amount != 868 || q.Total.Amount != 5000 || !q.PricesIncludeTax {
				t.Fatalf("quote = %+v", q)
			}
		})
		t.Run("region beats country", func(t *testing.T) {
			q := MustQuote(t, s, QuoteRequest{Currency: "USD", Lines: lines, ShippingAddress: &Address{Country: "us", Region: "CA"}})
			// net 4000 + 7.25 % = 290
			if q.TaxRateBps != 725 || q.TaxTotal.Amount != 290 || q.Total.Amount != 4290 || q.PricesIncludeTax {
				t.Fatalf("quote = %+v", q)
			}
			q = MustQuote(t, s, QuoteRequest{Currency: "USD", Lines: lines, ShippingAddress: &Address{Country: "US", Region: "US-NY"}})
			if q.TaxRateBps != 0 || q.Total.Amount != 4000 {
				t.Fatalf("quote = %+v", q)
			}
			q = MustQuote(t, s, QuoteRequest{Currency: "EUR", Lines: lines, ShippingAddress: &Address{Country: "JP"}})
			if q.TaxRateBps != 0 || q.TaxTotal.Amount != 0 {
				t.Fatalf("a country without a rate: %+v", q)
			}
		})
		t.Run("shipping options for the address, priced for the cart", func(t *testing.T) {
			opts, err := s.ShippingOptions(ctx, QuoteRequest{Currency: "EUR", Lines: lines, ShippingAddress: &Address{Country: "NL"}})
			if err != nil {
				t.Fatal(err)
			}
			want := []ShippingOption{{ID: std.ID, Name: "Standard", Price: money.New(495, "EUR")}, {ID: exp.ID, Name: "Express", Price: money.New(995, "EUR")}}
			if !reflect.DeepEqual(opts, want) {
				t.Fatalf("options = %+v", opts)
			}
			opts, err = s.ShippingOptions(ctx, QuoteRequest{Currency: "EUR", Lines: []QuoteLine{{ID: "1", VariantID: varB, Quantity: 2}}, ShippingAddress: &Address{Country: "DE"}})
			if err != nil {
				t.Fatal(err)
			}
			want = []ShippingOption{{ID: std.ID, Name: "Standard", Price: money.New(0, "EUR"), Free: true}, {ID: de.ID, Name: "DE only", Price: money.New(100, "EUR")},
				{ID: exp.ID, Name: "Express", Price: money.New(995, "EUR")}}
			if !reflect.DeepEqual(opts, want) {
				t.Fatalf("options over the threshold in DE = %+v", opts)
			}
			opts, err = s.ShippingOptions(ctx, QuoteRequest{Currency: "GBP", Lines: lines})
			if err != nil || len(opts) != 0 || opts == nil {
				t.Fatalf("no method in GBP = %#v, %v", opts, err)
			}
		})
		t.Run("the chosen method; an unavailable one is reported", func(t *testing.T) {
			q := MustQuote(t, s, QuoteRequest{Currency: "EUR", Lines: lines, ShippingMethodID: exp.ID})
			if q.Shipping == nil || q.ShippingTotal.Amount != 995 || q.Total.Amount != 5995 {
				t.Fatalf("quote = %+v", q)
			}
			for _, m := range []string{de.ID, "ship_01JD3Q0000000000000000000A", "garbage"} {
				q = MustQuote(t, s, QuoteRequest{Currency: "EUR", Lines: lines, ShippingMethodID: m})
				if q.Shipping != nil || q.ShippingProblem != ShippingUnavailable || q.Total.Amount != 5000 {
					t.Fatalf("quote with %s = %+v", m, q)
				}
			}
		})
		t.Run("a per-customer voucher: needs a customer, then counts", func(t *testing.T) {
			q := MustQuote(t, s, QuoteRequest{Currency: "EUR", Lines: lines, Codes: []string{"welcome"}})
			if !reflect.DeepEqual(q.CodeProblems, []CodeProblem{{"WELCOME", "code_not_applicable"}}) || q.DiscountTotal.Amount != 0 {
				t.Fatalf("anonymous quote = %+v", q)
			}
			q = MustQuote(t, s, QuoteRequest{Currency: "EUR", CustomerID: "cus_1", Lines: lines, Codes: []string{"welcome"}})
			if len(q.CodeProblems) != 0 || q.DiscountTotal.Amount != 500 || q.Promotions[0].Code != "WELCOME" {
				t.Fatalf("customer quote = %+v", q)
			}
			if _, err := s.Redeem(ctx, RedeemRequest{Key: "w1", OrderID: "ord_1", CustomerID: "cus_1", Codes: []string{"WELCOME"}}); err != nil {
				t.Fatal(err)
			}
			q = MustQuote(t, s, QuoteRequest{Currency: "EUR", CustomerID: "cus_1", Lines: lines, Codes: []string{"welcome"}})
			if !reflect.DeepEqual(q.CodeProblems, []CodeProblem{{"WELCOME", "code_exhausted"}}) {
				t.Fatalf("second quote = %+v", q)
			}
			apperrtest.Want(t, s.CheckCode(ctx, "welcome", "EUR", "cus_1"), CodeExhausted)
			if err := s.CheckCode(ctx, "welcome", "EUR", "cus_2"); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("validation", func(t *testing.T) {
			_, err := s.Quote(ctx, QuoteRequest{Currency: "EURO", Lines: []QuoteLine{{ID: "1", Quantity: 0}}, ShippingAddress: &Address{Country: "Netherlands"}})
			apperrtest.Want(t, err, apperr.ValidationFailed, "currency", "lines[0].variant_id", "lines[0].quantity", "shipping_address.country")
			_, err = s.Prices(ctx, "EUR", []string{"a,b"}, []string{"x,y"})
			apperrtest.Want(t, err, apperr.ValidationFailed, "groups[0]", "variant_ids[0]")
		})
	})
}

func TestTaxRatesAndShippingMethodsAdmin(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		nl := MustCreateTaxRate(t, s, TaxRateInput{Country: "NL", RateBps: 2100, Name: "BTW"})
		_, err := s.CreateTaxRate(ctx, TaxRateInput{Country: "nl", RateBps: 900, Name: "dup"})
		apperrtest.Want(t, err, apperr.Conflict, "country")
		_, err = s.CreateTaxRate(ctx, TaxRateInput{Country: "NLD", Region: ptr("DE-BY"), RateBps: 10001})
		apperrtest.Want(t, err, apperr.ValidationFailed, "country", "rate_bps", "name")
		up, err := s.UpdateTaxRate(ctx, nl.ID, TaxRatePatch{RateBps: ptr(int64(2000))}, 1)
		if err != nil || up.RateBps != 2000 || up.Version != 2 {
			t.Fatalf("update = %+v, %v", up, err)
		}
		_, err = s.UpdateTaxRate(ctx, nl.ID, TaxRatePatch{Name: ptr("x")}, 1)
		apperrtest.Want(t, err, apperr.VersionConflict)
		page, err := s.ListTaxRates(ctx, 0, "")
		if err != nil || len(page.Data) != 1 {
			t.Fatalf("list = %+v, %v", page, err)
		}

		m := MustCreateShippingMethod(t, s, ShippingMethodInput{Name: "Std", Countries: []string{"nl", "be"}, Rates: []ShippingRate{{Currency: "eur", Amount: 495}},
			FreeOver: &money.Money{Amount: 5000, Currency: "eur"}})
		if !slices.Equal(m.Countries, []string{"NL", "BE"}) || m.Rates[0].Currency != "EUR" || m.FreeOver.Currency != "EUR" || !m.Active {
			t.Fatalf("created = %+v", m)
		}
		got, err := s.GetShippingMethod(ctx, m.ID)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("get = %+v, %v", got, err)
		}
		_, err = s.CreateShippingMethod(ctx, ShippingMethodInput{Name: "", Countries: []string{"X"}, Rates: []ShippingRate{{Currency: "EUR", Amount: -1}, {Currency: "EUR"}}})
		apperrtest.Want(t, err, apperr.ValidationFailed, "name", "countries[0]", "rates[0].amount", "rates[1].currency")
		off, err := s.UpdateShippingMethod(ctx, m.ID, ShippingMethodPatch{Active: ptr(false), FreeOver: Null[money.Money]()}, 0)
		if err != nil || off.Active || off.FreeOver != nil || off.Version != 2 {
			t.Fatalf("update = %+v, %v", off, err)
		}
	})
}

// Every admin definition follows one update protocol (updateOne): a
// malformed or unknown id is not_found, a stale If-Match a version
// conflict, a patch that changes nothing keeps the version, and a change
// without If-Match moves it on by one.
func TestAdminUpdateProtocol(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		pl := MustCreatePriceList(t, s, PriceListInput{Name: "Retail", Currency: "EUR", Prices: []Price{{varA, 1000}}})
		promo := MustCreatePromotion(t, s, PromotionInput{Name: "Auto", Type: TypeFreeShipping})
		tax := MustCreateTaxRate(t, s, TaxRateInput{Country: "NL", RateBps: 2100, Name: "BTW"})
		ship := MustCreateShippingMethod(t, s, ShippingMethodInput{Name: "Standard", Rates: []ShippingRate{{Currency: "EUR", Amount: 495}}})
		tests := []struct {
			name    string
			id      string
			unknown string // a well-formed id of no row
			rename  func(rowID, name string, ifMatch int64) (int64, error)
		}{
			{"price list", pl.ID, priceListPrefix + "_01JD3Q0000000000000000000Z", func(rowID, name string, ifMatch int64) (int64, error) {
				v, err := s.UpdatePriceList(ctx, rowID, PriceListPatch{Name: &name}, ifMatch)
				return v.Version, err
			}},
			{"promotion", promo.ID, promotionPrefix + "_01JD3Q0000000000000000000Z", func(rowID, name string, ifMatch int64) (int64, error) {
				v, err := s.UpdatePromotion(ctx, rowID, PromotionPatch{Name: &name}, ifMatch)
				return v.Version, err
			}},
			{"tax rate", tax.ID, taxRatePrefix + "_01JD3Q0000000000000000000Z", func(rowID, name string, ifMatch int64) (int64, error) {
				v, err := s.UpdateTaxRate(ctx, rowID, TaxRatePatch{Name: &name}, ifMatch)
				return v.Version, err
			}},
			{"shipping method", ship.ID, shippingPrefix + "_01JD3Q0000000000000000000Z", func(rowID, name string, ifMatch int64) (int64, error) {
				v, err := s.UpdateShippingMethod(ctx, rowID, ShippingMethodPatch{Name: &name}, ifMatch)
				return v.Version, err
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				apperrtest.WantIfMatchUpdates(t, tt.id, tt.unknown, tt.rename)
			})
		}
	})
}
