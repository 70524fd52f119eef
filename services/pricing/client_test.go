package pricing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/apperr/apperrtest"
	"github.com/soukhq/souk/platform/money"
)

// clientImpls are the implementations of Client the contract suite runs:
// the service in process, and the HTTP client against the service's routes.
var clientImpls = []struct {
	name string
	new  func(t *testing.T, s *Service) Client
}{
	{"in-process", func(_ *testing.T, s *Service) Client { return s }},
	{"http", func(t *testing.T, s *Service) Client {
		srv := httptest.NewServer(apitest.Mount(s.Routes()))
		t.Cleanup(srv.Close)
		return NewHTTPClient(srv.URL, srv.Client(), WithBearerToken("sk_test"))
	}},
}

// TestClientContract: every implementation of Client answers alike.
func TestClientContract(t *testing.T) {
	for _, impl := range clientImpls {
		t.Run(impl.name, func(t *testing.T) {
			runStores(t, func(t *testing.T, s *Service) {
				testClientContract(t, s, impl.new(t, s))
			})
		})
	}
}

func testClientContract(t *testing.T, s *Service, c Client) {
	ctx := context.Background()
	vip := "vip"
	MustCreatePriceList(t, s, PriceListInput{Name: "Retail", Currency: "EUR", PricesIncludeTax: true, Prices: []Price{{varA, 2500}, {varB, 6000}}})
	MustCreatePriceList(t, s, PriceListInput{Name: "VIP", Currency: "EUR", PricesIncludeTax: true, CustomerGroup: &vip, Prices: []Price{{varA, 2000}}})
	MustCreateTaxRate(t, s, TaxRateInput{Country: "NL", RateBps: 2100, Name: "BTW"})
	MustCreateTaxRate(t, s, TaxRateInput{Country: "DE", RateBps: 1900, Name: "USt"})
	std := MustCreateShippingMethod(t, s, ShippingMethodInput{Name: "Standard", Rates: []ShippingRate{{Currency: "EUR", Amount: 495, FreeOver: ptr(int64(10000))}}})
	MustCreateShippingMethod(t, s, ShippingMethodInput{Name: "Express", Rates: []ShippingRate{{Currency: "EUR", Amount: 995}}})
	MustCreatePromotion(t, s, PromotionInput{Name: "10% over 100", Type: TypePercentage, Value: &PromotionValue{Percent: 10}, Combinable: true,
		Conditions: &Conditions{MinSubtotal: &money.Money{Amount: 10000, Currency: "EUR"}}})
	MustVoucher(t, s, "WELCOME10", ptr(int64(1000)), ptr(int64(1)))
	MustVoucher(t, s, "ONCE", ptr(int64(1)), nil)
	past := testNow.Add(-time.Hour)
	MustCreatePromotion(t, s, PromotionInput{Name: "Old", Type: TypeFreeShipping, Codes: []string{"OLD"}, EndsAt: &past})

	req := QuoteRequest{Currency: "eur", CustomerID: "cus_1", CustomerGroups: []string{"vip"}, Codes: []string{"welcome10", "nope"},
		Lines:           []QuoteLine{{ID: "1", VariantID: varA, ProductID: p1, Quantity: 2}, {ID: "2", VariantID: varB, Quantity: 1}, {ID: "3", VariantID: "var_x", Quantity: 1}},
		ShippingAddress: &Address{Country: "de", PostalCode: "10115"}, ShippingMethodID: std.ID}

	t.Run("Quote answers as the service does", func(t *testing.T) {
		for _, r := range []QuoteRequest{req, {Currency: "EUR"}, {Currency: "EUR", Lines: req.Lines[:1], At: testNow.Add(time.Hour)}} {
			got, err := c.Quote(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			want := MustQuote(t, s, r)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Quote =\n%+v\nwant\n%+v", got, want)
			}
		}
		got := MustQuote(t, c, req)
		// 2 × 2000 (VIP) + 6000 = 10000; WELCOME10 (exclusive) 1000 vs the automatic 10 % (1000): a tie goes to the smaller id,
		// the automatic one, created first; shipping free over 10000? 9000 after discount: no.
		if got.Subtotal.Amount != 10000 || got.DiscountTotal.Amount != 1000 || got.ShippingTotal.Amount != 495 || got.TaxRateBps != 1900 ||
			got.Lines[2].Problem != ProblemPriceMissing {
			t.Fatalf("quote = %+v", got)
		}
	})
	t.Run("Quote errors name the field", func(t *testing.T) {
		_, err := c.Quote(ctx, QuoteRequest{Currency: "EURO", Lines: []QuoteLine{{ID: "1", VariantID: varA, Quantity: 0}}})
		apperrtest.Want(t, err, apperr.ValidationFailed, "currency", "lines[0].quantity")
	})
	t.Run("ShippingOptions", func(t *testing.T) {
		got, err := c.ShippingOptions(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		want, err := s.ShippingOptions(ctx, req)
		if err != nil || !reflect.DeepEqual(got, want) || len(got) != 2 {
			t.Fatalf("ShippingOptions = %+v, want %+v (%v)", got, want, err)
		}
		none, err := c.ShippingOptions(ctx, QuoteRequest{Currency: "JPY"})
		if err != nil || none == nil || len(none) != 0 {
			t.Fatalf("no options = %#v, %v", none, err)
		}
	})
	t.Run("CheckCode", func(t *testing.T) {
		if err := c.CheckCode(ctx, "welcome10", "EUR", "cus_1"); err != nil {
			t.Fatal(err)
		}
		apperrtest.Want(t, c.CheckCode(ctx, "nope", "EUR", ""), CodeInvalid)
		apperrtest.Want(t, c.CheckCode(ctx, "", "EUR", ""), CodeInvalid)
		apperrtest.Want(t, c.CheckCode(ctx, "OLD", "EUR", ""), CodeExpired)
		apperrtest.Want(t, c.CheckCode(ctx, "a/b?c", "EUR", ""), CodeInvalid)
	})
	t.Run("Redeem and Release", func(t *testing.T) {
		key := "ord_1/redeem vouchers?" // any characters
		r, err := c.Redeem(ctx, RedeemRequest{Key: key, OrderID: "ord_1", CustomerID: "cus_1", Codes: []string{"welcome10", "once"}, Currency: "EUR"})
		if err != nil {
			t.Fatal(err)
		}
		if r.State != RedemptionRedeemed || r.Key != key || !reflect.DeepEqual(r.Codes, []string{"WELCOME10", "ONCE"}) {
			t.Fatalf("redemption = %+v", r)
		}
		again, err := c.Redeem(ctx, RedeemRequest{Key: key, OrderID: "ord_1", CustomerID: "cus_1", Codes: []string{"ONCE", "WELCOME10"}})
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("replay = %+v, %v", again, err)
		}
		_, err = c.Redeem(ctx, RedeemRequest{Key: key, OrderID: "ord_2", CustomerID: "cus_1", Codes: []string{"ONCE"}})
		apperrtest.Want(t, err, apperr.IdempotencyKeyReused)
		_, err = c.Redeem(ctx, RedeemRequest{Key: "other", OrderID: "ord_2", CustomerID: "cus_2", Codes: []string{"ONCE"}})
		apperrtest.Want(t, err, CodeExhausted, "code")
		apperrtest.Want(t, c.CheckCode(ctx, "welcome10", "EUR", "cus_1"), CodeExhausted)
		_, err = c.Redeem(ctx, RedeemRequest{OrderID: "ord_2"})
		apperrtest.Want(t, err, apperr.ValidationFailed, "key", "codes")

		for range 2 {
			if err := c.Release(ctx, key); err != nil {
				t.Fatal(err)
			}
		}
		if codeUsed(t, s, "ONCE") != 0 || codeUsed(t, s, "WELCOME10") != 0 {
			t.Fatal("release did not give the uses back")
		}
		if err := c.Release(ctx, "never-redeemed"); err != nil {
			t.Fatal(err)
		}
		apperrtest.Want(t, c.Release(ctx, ""), apperr.ValidationFailed, "key")
	})
	t.Run("Prices", func(t *testing.T) {
		got, err := c.Prices(ctx, "EUR", []string{"vip"}, []string{varA, varB, "var_none"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]money.Money{varA: money.New(2000, "EUR"), varB: money.New(6000, "EUR")}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Prices = %v", got)
		}
		empty, err := c.Prices(ctx, "EUR", nil, nil)
		if err != nil || empty == nil || len(empty) != 0 {
			t.Fatalf("no variants = %#v, %v", empty, err)
		}
		_, err = c.Prices(ctx, "EURO", nil, []string{varA})
		apperrtest.Want(t, err, apperr.ValidationFailed, "currency")
	})
}

func TestHTTPClientResilience(t *testing.T) {
	s := MustNewSQLiteService(t)
	h := apitest.Mount(s.Routes())
	ctx := context.Background()
	flaky := func(statuses ...int) (*httptest.Server, *atomic.Int64, *atomic.Value) {
		var calls atomic.Int64
		var auth atomic.Value
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			auth.Store(r.Header.Get("Authorization"))
			n := calls.Add(1)
			if int(n) <= len(statuses) {
				http.Error(w, "flaky", statuses[n-1])
				return
			}
			h.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		return srv, &calls, &auth
	}

	t.Run("retries 503 and 502, sends the bearer token", func(t *testing.T) {
		srv, calls, auth := flaky(http.StatusServiceUnavailable, http.StatusBadGateway)
		c := NewHTTPClient(srv.URL, srv.Client(), WithBearerToken("sk_svc"))
		if _, err := c.Quote(ctx, QuoteRequest{Currency: "EUR"}); err != nil {
			t.Fatal(err)
		}
		if calls.Load() != 3 || auth.Load() != "Bearer sk_svc" {
			t.Fatalf("calls = %d, auth = %v", calls.Load(), auth.Load())
		}
	})
	t.Run("gives up after three attempts as unavailable", func(t *testing.T) {
		srv, calls, _ := flaky(503, 503, 503, 503)
		err := NewHTTPClient(srv.URL, srv.Client()).Release(ctx, "k")
		apperrtest.Want(t, err, apperr.Unavailable)
		if calls.Load() != 3 {
			t.Fatalf("calls = %d", calls.Load())
		}
	})
	t.Run("does not retry a 4xx", func(t *testing.T) {
		srv, calls, _ := flaky(http.StatusForbidden)
		err := NewHTTPClient(srv.URL, srv.Client()).CheckCode(ctx, "X", "", "")
		apperrtest.Want(t, err, apperr.Forbidden)
		if calls.Load() != 1 {
			t.Fatalf("calls = %d", calls.Load())
		}
	})
	t.Run("an unreachable service is unavailable", func(t *testing.T) {
		srv := httptest.NewServer(h)
		srv.Close()
		_, err := NewHTTPClient(srv.URL, nil).Prices(ctx, "EUR", nil, []string{varA})
		apperrtest.Want(t, err, apperr.Unavailable)
	})
}
