package catalog

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

type fakePrices struct{ calls int }

func (f *fakePrices) Prices(_ context.Context, currency string, groups []string, ids []string) (map[string]money.Money, error) {
	f.calls++
	out := map[string]money.Money{}
	amount := int64(2999)
	if slices.Contains(groups, "vip") {
		amount = 2499
	}
	for i, id := range ids {
		if i == 0 { // the first variant has no price in this currency
			continue
		}
		out[id] = money.New(amount, currency)
	}
	return out, nil
}

type fakeStock struct{}

func (fakeStock) InStock(_ context.Context, skus []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, s := range skus {
		out[s] = s != "SF-2"
	}
	return out, nil
}

func TestStorefrontPricesAndStock(t *testing.T) {
	db := storetest.MustOpen(t, store.SQLite, bus.Migrations, Migrations)
	prices := &fakePrices{}
	s := New(db, nil, nil, WithStorefront(prices, fakeStock{}, "EUR"))
	ctx := context.Background()
	p, err := s.CreateProduct(ctx, ProductInput{Title: "Storefront Tee", Status: StatusPublished,
		Options: []Option{{Name: "size", Values: []string{"S", "M", "L"}}},
		Variants: []VariantInput{
			{SKU: "SF-1", Options: map[string]string{"size": "S"}},
			{SKU: "SF-2", Options: map[string]string{"size": "M"}},
			{SKU: "SF-3", Options: map[string]string{"size": "L"}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	h := apitest.Mount(s.Routes())
	get := func(path string, p *auth.Principal) (int, StoreProduct) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if p != nil {
			req = req.WithContext(auth.WithPrincipal(req.Context(), *p))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var out StoreProduct
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Code, out
	}

	code, got := get("/store/products/"+p.ID+"?currency=gbp", nil)
	if code != 200 {
		t.Fatalf("GET = %d", code)
	}
	v := got.Variants
	if v[0].Price != nil || v[1].Price == nil || *v[1].Price != money.New(2999, "GBP") {
		t.Fatalf("prices = %+v %+v", v[0].Price, v[1].Price)
	}
	if v[0].InStock == nil || !*v[0].InStock || *v[1].InStock {
		t.Fatalf("in_stock = %v %v", *v[0].InStock, *v[1].InStock)
	}

	// A VIP customer sees the group price: the cache keeps the two apart.
	vip := &auth.Principal{Kind: auth.KindCustomer, Subject: "cus_1", Groups: []string{"vip"}}
	if _, got := get("/store/products/"+p.ID+"?currency=GBP", vip); *got.Variants[1].Price != money.New(2499, "GBP") {
		t.Fatalf("vip price = %v", got.Variants[1].Price)
	}
	if _, got := get("/store/products/"+p.ID+"?currency=GBP", nil); *got.Variants[1].Price != money.New(2999, "GBP") {
		t.Fatalf("anonymous price after vip = %v", got.Variants[1].Price)
	}
	if code, _ := get("/store/products?currency=EURO", nil); code != http.StatusBadRequest {
		t.Fatalf("bad currency = %d, want 400", code)
	}
	// Default currency.
	if _, got := get("/store/products/"+p.ID, nil); got.Variants[1].Price.Currency != "EUR" {
		t.Fatalf("default currency = %v", got.Variants[1].Price)
	}
}
