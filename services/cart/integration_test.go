package cart

import (
	"slices"
	"testing"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/apperr/apperrtest"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
	"github.com/soukhq/souk/services/catalog"
	"github.com/soukhq/souk/services/pricing"
)

// TestWithRealServices runs the cart against the real catalogue and the
// real pricing service, each on its own database of the same engine, as
// they run in one process.
func TestWithRealServices(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	storetest.Run(t, testMigrations, func(t *testing.T, db *store.DB) {
		cat := catalog.New(storetest.MustOpen(t, db.Engine(), bus.Migrations, catalog.Migrations), nil, nil)
		pr := pricing.New(storetest.MustOpen(t, db.Engine(), bus.Migrations, pricing.Migrations), nil, nil, pricing.Config{})
		s := New(db, nil, nil, cat, pr, Config{})

		shirt, err := cat.CreateProduct(bg, catalog.ProductInput{Title: "Linen Shirt", Status: catalog.StatusPublished,
			Options:  []catalog.Option{{Name: "size", Values: []string{"S", "M"}}},
			Variants: []catalog.VariantInput{{SKU: "LIN-S", Options: map[string]string{"size": "S"}}, {SKU: "LIN-M", Options: map[string]string{"size": "M"}}}})
		if err != nil {
			t.Fatal(err)
		}
		mug, err := cat.CreateProduct(bg, catalog.ProductInput{Title: "Mug", Status: catalog.StatusPublished, Variants: []catalog.VariantInput{{SKU: "MUG-1"}}})
		if err != nil {
			t.Fatal(err)
		}
		lamp, err := cat.CreateProduct(bg, catalog.ProductInput{Title: "Lamp", Status: catalog.StatusDraft, Variants: []catalog.VariantInput{{SKU: "LAMP-1"}}})
		if err != nil {
			t.Fatal(err)
		}
		small, medium, cup := shirt.Variants[0].ID, shirt.Variants[1].ID, mug.Variants[0].ID

		prices := []pricing.Price{{VariantID: small, Amount: 2999}, {VariantID: cup, Amount: 1250}, {VariantID: lamp.Variants[0].ID, Amount: 5000}}
		list, err := pr.CreatePriceList(bg, pricing.PriceListInput{Name: "EUR retail", Currency: "EUR", PricesIncludeTax: true, Prices: prices})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pr.CreateTaxRate(bg, pricing.TaxRateInput{Country: "NL", RateBps: 2100, Name: "BTW"}); err != nil {
			t.Fatal(err)
		}
		method, err := pr.CreateShippingMethod(bg, pricing.ShippingMethodInput{Name: "Standard", Countries: []string{"NL"},
			Rates: []pricing.ShippingRate{{Currency: "EUR", Amount: 495}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pr.CreatePromotion(bg, pricing.PromotionInput{Name: "Winter 10", Type: pricing.TypePercentage,
			Value: &pricing.PromotionValue{Percent: 10}, Target: pricing.TargetOrder, Codes: []string{"WINTER10"}}); err != nil {
			t.Fatal(err)
		}

		cart, err := s.Create(bg, Caller{}, CreateInput{Currency: "EUR"})
		if err != nil {
			t.Fatal(err)
		}
		c := anon(cart.CartToken)
		add := func(variantID string, q int64) (Cart, error) {
			return s.AddItem(bg, c, cart.ID, ItemInput{VariantID: variantID, Quantity: q}, 0)
		}
		if _, err := add(small, 2); err != nil {
			t.Fatal(err)
		}
		if _, err := add(cup, 1); err != nil {
			t.Fatal(err)
		}
		_, err = add(lamp.Variants[0].ID, 1)
		apperrtest.Want(t, err, apperr.ValidationFailed, "variant_id") // a draft is not for sale
		_, err = add(medium, 1)
		apperrtest.Want(t, err, CodePriceMissing, "variant_id") // no price in EUR
		_, err = s.AddCode(bg, c, cart.ID, "NOPE", 0)
		apperrtest.Want(t, err, pricing.CodeInvalid, "code")
		if _, err := s.AddCode(bg, c, cart.ID, "winter10", 0); err != nil {
			t.Fatal(err)
		}
		methods, err := s.ShippingMethods(bg, c, cart.ID)
		if err == nil {
			t.Fatalf("shipping methods without an address: %+v", methods)
		}
		if _, err := s.Update(bg, c, cart.ID, Patch{ShippingAddress: Value(validAddress())}, 0); err != nil {
			t.Fatal(err)
		}
		methods, err = s.ShippingMethods(bg, c, cart.ID)
		if err != nil || len(methods) != 1 || methods[0].ID != method.ID || methods[0].Price != eur(495) {
			t.Fatalf("ShippingMethods = %+v, %v", methods, err)
		}
		got, err := s.Update(bg, c, cart.ID, Patch{ShippingMethodID: Value(method.ID)}, 0)
		if err != nil {
			t.Fatal(err)
		}

		// Pricing's numbers, consistent with API.md's formula.
		if got.Subtotal != eur(2*2999+1250) || got.ShippingTotal != eur(495) || got.DiscountTotal.Amount <= 0 || !got.PricesIncludeTax ||
			got.Total.Amount != got.Subtotal.Amount-got.DiscountTotal.Amount+got.ShippingTotal.Amount || got.TaxTotal.Amount <= 0 {
			t.Fatalf("totals = %+v", got)
		}
		if got.Items[0].UnitPrice != eur(2999) || got.Items[1].UnitPrice != eur(1250) || len(got.Promotions) != 1 || len(got.Problems) != 0 {
			t.Fatalf("lines = %+v, promotions %+v, problems %+v", got.Items, got.Promotions, got.Problems)
		}
		if err := s.Validate(bg, cart.ID); err != nil {
			t.Fatalf("Validate: %v", err)
		}

		// The mug is unpublished and the shirt loses its price.
		if _, err := cat.UpdateProduct(bg, mug.ID, catalog.ProductPatch{Status: ptr(catalog.StatusDraft)}, 0); err != nil {
			t.Fatal(err)
		}
		got, err = s.Get(bg, c, cart.ID)
		if err != nil || got.Items[1].Problem != ProblemUnpublished || got.Subtotal != eur(2*2999) {
			t.Fatalf("after unpublishing the mug: %+v, %v", got, err)
		}
		prices = slices.DeleteFunc(prices, func(p pricing.Price) bool { return p.VariantID == small })
		if _, err := pr.UpdatePriceList(bg, list.ID, pricing.PriceListPatch{Prices: &prices}, 0); err != nil {
			t.Fatal(err)
		}
		got, err = s.Get(bg, c, cart.ID)
		if err != nil || got.Items[0].Problem != ProblemPriceMissing || got.Items[0].Total != eur(0) || got.Subtotal != eur(0) {
			t.Fatalf("after removing the shirt's price: %+v, %v", got, err)
		}
		err = s.Validate(bg, cart.ID)
		apperrtest.Want(t, err, CodeNotPurchasable, "items[0]", "items[1]")
	})
}
