package cart

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/apperr/apperrtest"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/services/pricing"
)

func TestLifecycle(t *testing.T) {
	runStores(t, func(t *testing.T, e *env) {
		created, c := e.MustCreate(t, Caller{})
		if !strings.HasPrefix(created.CartToken, tokenPrefix) || len(created.CartToken) != len(tokenPrefix)+43 {
			t.Fatalf("cart token = %q", created.CartToken)
		}
		if created.Version != 1 || created.Status != StatusActive || created.Currency != "EUR" || len(created.Items) != 0 ||
			created.CustomerID != nil || !created.ExpiresAt.Equal(testStart.Add(DefaultAnonymousIdleTTL)) {
			t.Fatalf("created = %+v", created)
		}
		// Only the digest is stored.
		if n := countRows(t, e.db, `SELECT COUNT(*) FROM cart_carts WHERE token_digest = ?`, tokenDigest(created.CartToken)); n != 1 {
			t.Fatalf("%d rows hold the token's digest", n)
		}
		if n := countRows(t, e.db, `SELECT COUNT(*) FROM cart_carts WHERE token_digest = ? OR items LIKE ?`, created.CartToken, "%"+created.CartToken+"%"); n != 0 {
			t.Fatal("the token itself is stored")
		}
		if got := e.MustGet(t, c, created.ID); got.CartToken != "" {
			t.Fatal("the token is shown again")
		}

		cart := e.MustAdd(t, c, created.ID, e.shirt.ID, 2)
		cart = e.MustAdd(t, c, created.ID, e.shirt.ID, 1) // merges
		if len(cart.Items) != 1 || cart.Items[0].Quantity != 3 || cart.Version != 3 {
			t.Fatalf("after adding the same variant twice: %s", describe(cart))
		}
		shirtItem := cart.Items[0]
		if !strings.HasPrefix(shirtItem.ID, "item_") || shirtItem.SKU != "LIN-M" || shirtItem.Title != "Product LIN-M" ||
			shirtItem.VariantTitle != "Size M" || shirtItem.ProductID != e.shirt.ProductID {
			t.Fatalf("item = %+v", shirtItem)
		}
		cart = e.MustAdd(t, c, created.ID, e.mug.ID, 1)
		if len(cart.Items) != 2 || cart.Items[0].ID != shirtItem.ID {
			t.Fatalf("after adding a mug: %s", describe(cart))
		}
		mugItem := cart.Items[1]

		cart, err := e.s.UpdateItem(bg, c, created.ID, shirtItem.ID, 5, 0)
		if err != nil || quantities(cart)[e.shirt.ID] != 5 {
			t.Fatalf("UpdateItem = %s, %v", describe(cart), err)
		}
		cart, err = e.s.UpdateItem(bg, c, created.ID, mugItem.ID, 0, 0)
		if err != nil || len(cart.Items) != 1 || cart.Items[0].ID != shirtItem.ID {
			t.Fatalf("UpdateItem to 0 = %s, %v", describe(cart), err)
		}
		cart, err = e.s.RemoveItem(bg, c, created.ID, shirtItem.ID, 0)
		if err != nil || len(cart.Items) != 0 || cart.Version != 7 {
			t.Fatalf("RemoveItem = %s, %v", describe(cart), err)
		}
		_, err = e.s.RemoveItem(bg, c, created.ID, shirtItem.ID, 0)
		apperrtest.Want(t, err, apperr.NotFound)
		_, err = e.s.UpdateItem(bg, c, created.ID, "item_nope", 1, 0)
		apperrtest.Want(t, err, apperr.NotFound)
		if got := e.MustGet(t, c, created.ID); got.Version != 7 {
			t.Fatalf("failed changes moved the version to %d", got.Version)
		}
	})
}

func TestAccess(t *testing.T) {
	runStores(t, func(t *testing.T, e *env) {
		anonCart, owner := e.MustCreate(t, Caller{})
		other, otherCaller := e.MustCreate(t, Caller{})
		custCart, ada := e.MustCreate(t, customer("cus_ada"))
		e.MustAdd(t, owner, anonCart.ID, e.shirt.ID, 1)

		if custCart.CustomerID == nil || *custCart.CustomerID != "cus_ada" || custCart.CartToken == "" ||
			!custCart.ExpiresAt.Equal(testStart.Add(DefaultIdleTTL)) {
			t.Fatalf("customer cart = %+v", custCart)
		}

		for _, tt := range []struct {
			name   string
			cartID string
			c      Caller
			ok     bool
		}{
			{"anonymous cart with its token", anonCart.ID, owner, true},
			{"anonymous cart without a token", anonCart.ID, Caller{}, false},
			{"anonymous cart with a wrong token", anonCart.ID, anon("ct_" + strings.Repeat("A", 43)), false},
			{"anonymous cart with another cart's token", anonCart.ID, anon(other.CartToken), false},
			{"anonymous cart with a huge token", anonCart.ID, anon(strings.Repeat("x", 5000)), false},
			{"anonymous cart with a customer token and no cart token", anonCart.ID, customer("cus_ada"), false},
			{"anonymous cart with a customer token and its cart token", anonCart.ID, Caller{CartToken: owner.CartToken, Principal: ada.Principal}, true},
			{"customer cart by its customer", custCart.ID, ada, true},
			{"customer cart by its customer with a wrong cart token", custCart.ID, Caller{CartToken: other.CartToken, Principal: ada.Principal}, true},
			{"customer cart by another customer", custCart.ID, customer("cus_bob"), false},
			{"customer cart by another customer with its cart token", custCart.ID, Caller{CartToken: custCart.CartToken, Principal: customer("cus_bob").Principal}, false},
			{"customer cart with only its cart token", custCart.ID, anon(custCart.CartToken), false},
			{"customer cart by staff", custCart.ID, staff(), false},
			{"unknown id", "cart_01JD3Q0000000000000000000A", owner, false},
			{"malformed id", "nope", owner, false},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := e.s.Get(bg, tt.c, tt.cartID)
				_, addErr := e.s.AddItem(bg, tt.c, tt.cartID, ItemInput{VariantID: e.mug.ID, Quantity: 1}, 0)
				_, methodsErr := e.s.ShippingMethods(bg, tt.c, tt.cartID)
				if tt.ok {
					if err != nil || addErr != nil {
						t.Fatalf("Get: %v, AddItem: %v", err, addErr)
					}
					return
				}
				apperrtest.Want(t, err, apperr.NotFound)
				apperrtest.Want(t, addErr, apperr.NotFound)
				apperrtest.Want(t, methodsErr, apperr.NotFound)
			})
		}
		// The refused callers changed nothing.
		if got := e.MustGet(t, otherCaller, other.ID); got.Version != 1 {
			t.Fatalf("other cart at version %d", got.Version)
		}
	})
}

func TestMergeOnLogin(t *testing.T) {
	runStores(t, func(t *testing.T, e *env) {
		t.Run("binds the cart when the customer has none", func(t *testing.T) {
			src, shopper := e.MustCreate(t, Caller{})
			e.MustAdd(t, shopper, src.ID, e.shirt.ID, 2)
			e.clock.Advance(time.Hour)
			login := Caller{CartToken: shopper.CartToken, Principal: customer("cus_bind").Principal}
			got, err := e.s.Merge(bg, login, src.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != src.ID || got.CustomerID == nil || *got.CustomerID != "cus_bind" || got.Version != 3 ||
				!got.ExpiresAt.Equal(e.clock.Now().Add(DefaultIdleTTL)) || quantities(got)[e.shirt.ID] != 2 {
				t.Fatalf("bound = %+v", got)
			}
			// Now the customer's: their token opens it, the cart token alone no longer does.
			e.MustGet(t, customer("cus_bind"), src.ID)
			_, err = e.s.Get(bg, shopper, src.ID)
			apperrtest.Want(t, err, apperr.NotFound)
			// Merging it again is harmless.
			again, err := e.s.Merge(bg, customer("cus_bind"), src.ID, 0)
			if err != nil || again.Version != got.Version {
				t.Fatalf("merge of an own cart = %+v, %v", again, err)
			}
		})

		t.Run("merges into the customer's cart", func(t *testing.T) {
			into, ada := e.MustCreate(t, customer("cus_merge"))
			e.MustAdd(t, ada, into.ID, e.shirt.ID, 2)
			e.MustAdd(t, ada, into.ID, e.lamp.ID, 1)
			if _, err := e.s.AddCode(bg, ada, into.ID, "WINTER10", 0); err != nil {
				t.Fatal(err)
			}
			if _, err := e.s.Update(bg, ada, into.ID, Patch{Email: Value("old@example.com"), BillingAddress: Value(validAddress())}, 0); err != nil {
				t.Fatal(err)
			}
			src, shopper := e.MustCreate(t, Caller{})
			e.MustAdd(t, shopper, src.ID, e.shirt.ID, 3)
			e.MustAdd(t, shopper, src.ID, e.mug.ID, 1)
			if _, err := e.s.AddCode(bg, shopper, src.ID, "winter10", 0); err != nil {
				t.Fatal(err)
			}
			de := validAddress()
			de.Country, de.City = "DE", "Berlin"
			if _, err := e.s.Update(bg, shopper, src.ID, Patch{Email: Value("new@example.com"),
				ShippingAddress: Value(de), ShippingMethodID: Value("ship_standard")}, 0); err != nil {
				t.Fatal(err)
			}
			login := Caller{CartToken: shopper.CartToken, Principal: ada.Principal}
			got, err := e.s.Merge(bg, login, src.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]int64{e.shirt.ID: 5, e.lamp.ID: 1, e.mug.ID: 1}
			if got.ID != into.ID || !reflect.DeepEqual(quantities(got), want) {
				t.Fatalf("survivor = %s, want %s with %v", describe(got), into.ID, want)
			}
			if !slices.Equal(got.DiscountCodes, []string{"WINTER10"}) || *got.Email != "new@example.com" ||
				got.ShippingAddress == nil || got.ShippingAddress.Country != "DE" || *got.ShippingMethodID != "ship_standard" ||
				got.BillingAddress == nil || got.BillingAddress.Country != "NL" {
				t.Fatalf("survivor details = %+v", got)
			}
			// The anonymous cart is gone for its token, and marked merged.
			_, err = e.s.Get(bg, shopper, src.ID)
			apperrtest.Want(t, err, apperr.NotFound)
			var status, mergedInto string
			if err := e.db.QueryRow(bg, `SELECT status, merged_into FROM cart_carts WHERE id = ?`, src.ID).Scan(&status, &mergedInto); err != nil {
				t.Fatal(err)
			}
			if status != string(StatusExpired) || mergedInto != into.ID {
				t.Fatalf("merged cart: status %s, merged_into %s", status, mergedInto)
			}
			// A retried merge answers with the survivor again, changing nothing.
			again, err := e.s.Merge(bg, login, src.ID, 0)
			if err != nil || again.ID != into.ID || again.Version != got.Version {
				t.Fatalf("retried merge = %s, %v", describe(again), err)
			}
		})

		t.Run("caps quantities and lines", func(t *testing.T) {
			into, bob := e.MustCreate(t, customer("cus_cap"))
			e.MustAdd(t, bob, into.ID, e.shirt.ID, 998)
			src, shopper := e.MustCreate(t, Caller{})
			e.MustAdd(t, shopper, src.ID, e.shirt.ID, 5)
			got, err := e.s.Merge(bg, Caller{CartToken: shopper.CartToken, Principal: bob.Principal}, src.ID, 0)
			if err != nil || quantities(got)[e.shirt.ID] != DefaultMaxQuantity {
				t.Fatalf("merged = %s, %v", describe(got), err)
			}
		})

		t.Run("leaves carts in another currency alone", func(t *testing.T) {
			usd, err := e.s.Create(bg, customer("cus_usd"), CreateInput{Currency: "USD"})
			if err != nil {
				t.Fatal(err)
			}
			src, shopper := e.MustCreate(t, Caller{})
			e.MustAdd(t, shopper, src.ID, e.mug.ID, 1)
			got, err := e.s.Merge(bg, Caller{CartToken: shopper.CartToken, Principal: customer("cus_usd").Principal}, src.ID, 0)
			if err != nil || got.ID != src.ID || *got.CustomerID != "cus_usd" {
				t.Fatalf("merge = %+v, %v", got, err)
			}
			if still := e.MustGet(t, customer("cus_usd"), usd.ID); still.Version != 1 {
				t.Fatalf("the USD cart changed: %+v", still)
			}
		})

		t.Run("refusals", func(t *testing.T) {
			src, shopper := e.MustCreate(t, Caller{})
			_, err := e.s.Merge(bg, shopper, src.ID, 0)
			apperrtest.Want(t, err, apperr.Unauthorized)
			_, err = e.s.Merge(bg, Caller{CartToken: shopper.CartToken, Principal: staff().Principal}, src.ID, 0)
			apperrtest.Want(t, err, apperr.Forbidden)
			_, err = e.s.Merge(bg, customer("cus_x"), src.ID, 0) // no cart token
			apperrtest.Want(t, err, apperr.NotFound)
			theirs, _ := e.MustCreate(t, customer("cus_other"))
			_, err = e.s.Merge(bg, Caller{CartToken: theirs.CartToken, Principal: customer("cus_x").Principal}, theirs.ID, 0)
			apperrtest.Want(t, err, apperr.NotFound)
			_, err = e.s.Merge(bg, Caller{CartToken: shopper.CartToken, Principal: customer("cus_x").Principal}, src.ID, 7)
			apperrtest.Want(t, err, apperr.VersionConflict)
			if got := e.MustGet(t, shopper, src.ID); got.CustomerID != nil || got.Version != 1 {
				t.Fatalf("refused merges changed the cart: %+v", got)
			}
		})
	})
}

func TestIfMatch(t *testing.T) {
	runStores(t, func(t *testing.T, e *env) {
		cart, c := e.MustCreate(t, Caller{})
		cart = e.MustAdd(t, c, cart.ID, e.shirt.ID, 1)
		if _, err := e.s.AddCode(bg, c, cart.ID, "WINTER10", 0); err != nil {
			t.Fatal(err)
		}
		cart = e.MustGet(t, c, cart.ID)
		item := cart.Items[0].ID
		stale := cart.Version - 1
		for _, tt := range []struct {
			name string
			do   func(ifMatch int64) (Cart, error)
		}{
			{"add item", func(v int64) (Cart, error) {
				return e.s.AddItem(bg, c, cart.ID, ItemInput{VariantID: e.mug.ID, Quantity: 1}, v)
			}},
			{"update item", func(v int64) (Cart, error) { return e.s.UpdateItem(bg, c, cart.ID, item, 4, v) }},
			{"remove item", func(v int64) (Cart, error) { return e.s.RemoveItem(bg, c, cart.ID, item, v) }},
			{"add code", func(v int64) (Cart, error) { return e.s.AddCode(bg, c, cart.ID, "OTHER", v) }},
			{"remove code", func(v int64) (Cart, error) { return e.s.RemoveCode(bg, c, cart.ID, "WINTER10", v) }},
			{"patch", func(v int64) (Cart, error) {
				return e.s.Update(bg, c, cart.ID, Patch{Email: Value("a@example.com")}, v)
			}},
			{"merge", func(v int64) (Cart, error) {
				return e.s.Merge(bg, Caller{CartToken: c.CartToken, Principal: customer("cus_im").Principal}, cart.ID, v)
			}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := tt.do(stale)
				apperrtest.Want(t, err, apperr.VersionConflict)
				if got := e.MustGet(t, c, cart.ID); !reflect.DeepEqual(got, cart) {
					t.Fatalf("a stale If-Match changed the cart:\n got %+v\nwant %+v", got, cart)
				}
			})
		}
		e.pr.codes["OTHER"] = ""
		got, err := e.s.AddCode(bg, c, cart.ID, "OTHER", cart.Version)
		if err != nil || got.Version != cart.Version+1 {
			t.Fatalf("a current If-Match = %+v, %v", got, err)
		}
	})
}

// TestConcurrentWrites races writers on one cart: without If-Match none of
// their changes is lost; with the same If-Match exactly one wins.
func TestConcurrentWrites(t *testing.T) {
	runStores(t, func(t *testing.T, e *env) {
		cart, c := e.MustCreate(t, Caller{})
		const writers, adds = 6, 5
		var wg sync.WaitGroup
		errs := make(chan error, writers*adds)
		for w := range writers {
			wg.Go(func() {
				variant := e.shirt.ID
				if w%2 == 1 {
					variant = e.mug.ID
				}
				for range adds {
					if _, err := e.s.AddItem(bg, c, cart.ID, ItemInput{VariantID: variant, Quantity: 1}, 0); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent add: %v", err)
		}
		got := e.MustGet(t, c, cart.ID)
		want := map[string]int64{e.shirt.ID: writers / 2 * adds, e.mug.ID: writers / 2 * adds}
		if !reflect.DeepEqual(quantities(got), want) || len(got.Items) != 2 || got.Version != 1+writers*adds {
			t.Fatalf("after %d concurrent adds: %s, want %v at version %d", writers*adds, describe(got), want, 1+writers*adds)
		}

		// Writers naming the same version: exactly one succeeds.
		var (
			mu       sync.Mutex
			won      int
			conflict int
		)
		for i := range writers {
			wg.Go(func() {
				_, err := e.s.Update(bg, c, cart.ID, Patch{Email: Value("w" + string(rune('a'+i)) + "@example.com")}, got.Version)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won++
				case apperr.Is(err, apperr.VersionConflict):
					conflict++
				default:
					t.Errorf("If-Match writer: %v", err)
				}
			})
		}
		wg.Wait()
		if won != 1 || conflict != writers-1 {
			t.Fatalf("%d writers won and %d conflicted, want 1 and %d", won, conflict, writers-1)
		}
	})
}

func TestItemValidation(t *testing.T) {
	runStores(t, func(t *testing.T, e *env) {
		cart, c := e.MustCreate(t, Caller{})
		e.MustAdd(t, c, cart.ID, e.shirt.ID, 990)
		unpriced := e.cat.add("NOPRICE-1")
		hidden := e.cat.add("HIDDEN-1")
		e.pr.setPrice("EUR", hidden.ID, 100)
		e.cat.hide(hidden.ID)
		for _, tt := range []struct {
			name  string
			in    ItemInput
			code  apperr.Code
			field string
		}{
			{"unknown variant", ItemInput{VariantID: "var_01JD3Q0000000000000000000A", Quantity: 1}, apperr.ValidationFailed, "variant_id"},
			{"unpublished variant", ItemInput{VariantID: hidden.ID, Quantity: 1}, apperr.ValidationFailed, "variant_id"},
			{"no variant", ItemInput{Quantity: 1}, apperr.ValidationFailed, "variant_id"},
			{"garbage variant", ItemInput{VariantID: "var\n1", Quantity: 1}, apperr.ValidationFailed, "variant_id"},
			{"no price in the currency", ItemInput{VariantID: unpriced.ID, Quantity: 1}, CodePriceMissing, "variant_id"},
			{"quantity 0", ItemInput{VariantID: e.mug.ID, Quantity: 0}, apperr.ValidationFailed, "quantity"},
			{"negative quantity", ItemInput{VariantID: e.mug.ID, Quantity: -1}, apperr.ValidationFailed, "quantity"},
			{"quantity over the limit", ItemInput{VariantID: e.mug.ID, Quantity: 1000}, apperr.ValidationFailed, "quantity"},
			{"merged quantity over the limit", ItemInput{VariantID: e.shirt.ID, Quantity: 10}, apperr.ValidationFailed, "quantity"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := e.s.AddItem(bg, c, cart.ID, tt.in, 0)
				apperrtest.Want(t, err, tt.code, tt.field)
				if got := e.MustGet(t, c, cart.ID); got.Version != 2 || len(got.Items) != 1 || got.Items[0].Quantity != 990 {
					t.Fatalf("bad input changed the cart: %s", describe(got))
				}
			})
		}
		_, err := e.s.UpdateItem(bg, c, cart.ID, e.MustGet(t, c, cart.ID).Items[0].ID, 1000, 0)
		apperrtest.Want(t, err, apperr.ValidationFailed, "quantity")
		_, err = e.s.UpdateItem(bg, c, cart.ID, e.MustGet(t, c, cart.ID).Items[0].ID, -1, 0)
		apperrtest.Want(t, err, apperr.ValidationFailed, "quantity")
	})

	t.Run("configured limits", func(t *testing.T) {
		e := MustNewSQLiteEnv(t, Config{MaxLines: 2, MaxQuantity: 3})
		cart, c := e.MustCreate(t, Caller{})
		e.MustAdd(t, c, cart.ID, e.shirt.ID, 3)
		e.MustAdd(t, c, cart.ID, e.mug.ID, 1)
		_, err := e.s.AddItem(bg, c, cart.ID, ItemInput{VariantID: e.lamp.ID, Quantity: 1}, 0)
		apperrtest.Want(t, err, apperr.ValidationFailed, "items")
		_, err = e.s.AddItem(bg, c, cart.ID, ItemInput{VariantID: e.mug.ID, Quantity: 3}, 0)
		apperrtest.Want(t, err, apperr.ValidationFailed, "quantity")
		_, err = e.s.AddItem(bg, c, cart.ID, ItemInput{VariantID: e.mug.ID, Quantity: 2}, 0) // 1 + 2 = 3 fits
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestDetailsValidation(t *testing.T) {
	e := MustNewSQLiteEnv(t, Config{})
	cart, c := e.MustCreate(t, Caller{})
	long := strings.Repeat("x", 300)
	with := func(mod func(a *Address)) Nullable[Address] {
		a := validAddress()
		mod(&a)
		return Value(a)
	}
	for _, tt := range []struct {
		name   string
		patch  Patch
		code   apperr.Code
		fields []string
	}{
		{"email without @", Patch{Email: Value("ada.example.com")}, apperr.ValidationFailed, []string{"email"}},
		{"email with a name", Patch{Email: Value("Ada <ada@example.com>")}, apperr.ValidationFailed, []string{"email"}},
		{"empty email", Patch{Email: Value("")}, apperr.ValidationFailed, []string{"email"}},
		{"email too long", Patch{Email: Value(strings.Repeat("a", 250) + "@example.com")}, apperr.ValidationFailed, []string{"email"}},
		{"address without required fields", Patch{ShippingAddress: Value(Address{Country: "NL"})}, apperr.ValidationFailed,
			[]string{"shipping_address.first_name", "shipping_address.last_name", "shipping_address.line1", "shipping_address.city", "shipping_address.postal_code"}},
		{"unknown country", Patch{ShippingAddress: with(func(a *Address) { a.Country = "ZZ" })}, apperr.ValidationFailed, []string{"shipping_address.country"}},
		{"UK is not ISO", Patch{BillingAddress: with(func(a *Address) { a.Country = "UK" })}, apperr.ValidationFailed, []string{"billing_address.country"}},
		{"alpha-3 country", Patch{ShippingAddress: with(func(a *Address) { a.Country = "NLD" })}, apperr.ValidationFailed, []string{"shipping_address.country"}},
		{"missing country", Patch{ShippingAddress: with(func(a *Address) { a.Country = "" })}, apperr.ValidationFailed, []string{"shipping_address.country"}},
		{"city too long", Patch{ShippingAddress: with(func(a *Address) { a.City = long })}, apperr.ValidationFailed, []string{"shipping_address.city"}},
		{"line2 too long", Patch{ShippingAddress: with(func(a *Address) { a.Line2 = long })}, apperr.ValidationFailed, []string{"shipping_address.line2"}},
		{"control characters", Patch{ShippingAddress: with(func(a *Address) { a.Line1 = "a\nb" })}, apperr.ValidationFailed, []string{"shipping_address.line1"}},
		{"bad phone", Patch{ShippingAddress: with(func(a *Address) { a.Phone = "call me" })}, apperr.ValidationFailed, []string{"shipping_address.phone"}},
		{"method not offered", Patch{ShippingAddress: Value(validAddress()), ShippingMethodID: Value("ship_drone")}, CodeShippingMethodUnavailable, []string{"shipping_method_id"}},
		{"method without an address", Patch{ShippingMethodID: Value("ship_standard")}, CodeShippingMethodUnavailable, []string{"shipping_method_id"}},
		{"express is not offered in DE", Patch{ShippingAddress: with(func(a *Address) { a.Country = "DE" }), ShippingMethodID: Value("ship_express")},
			CodeShippingMethodUnavailable, []string{"shipping_method_id"}},
		{"empty method", Patch{ShippingMethodID: Value("")}, apperr.ValidationFailed, []string{"shipping_method_id"}},
		{"every bad field at once", Patch{Email: Value("nope"), BillingAddress: with(func(a *Address) { a.Country = "XX" })},
			apperr.ValidationFailed, []string{"email", "billing_address.country"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.s.Update(bg, c, cart.ID, tt.patch, 0)
			apperrtest.Want(t, err, tt.code, tt.fields...)
			if got := e.MustGet(t, c, cart.ID); got.Version != 1 {
				t.Fatalf("bad input changed the cart to version %d", got.Version)
			}
		})
	}

	t.Run("codes", func(t *testing.T) {
		for code, want := range map[string]apperr.Code{"NOPE": pricing.CodeInvalid, "OLD": pricing.CodeExpired, "USEDUP": pricing.CodeExhausted} {
			_, err := e.s.AddCode(bg, c, cart.ID, code, 0)
			apperrtest.Want(t, err, want, "code")
		}
		_, err := e.s.AddCode(bg, c, cart.ID, "  ", 0)
		apperrtest.Want(t, err, apperr.ValidationFailed, "code")
		_, err = e.s.AddCode(bg, c, cart.ID, strings.Repeat("A", MaxCodeLen+1), 0)
		apperrtest.Want(t, err, apperr.ValidationFailed, "code")
	})

	t.Run("currency", func(t *testing.T) {
		for _, cur := range []string{"", "EURO", "ZZZ", "XXX"} {
			_, err := e.s.Create(bg, Caller{}, CreateInput{Currency: cur})
			apperrtest.Want(t, err, apperr.ValidationFailed, "currency")
		}
		_, err := e.s.Create(bg, Caller{}, CreateInput{Currency: "EUR", Email: "bad"})
		apperrtest.Want(t, err, apperr.ValidationFailed, "email")
		got, err := e.s.Create(bg, Caller{}, CreateInput{Currency: "jpy", Email: " ada@example.com "})
		if err != nil || got.Currency != "JPY" || *got.Email != "ada@example.com" {
			t.Fatalf("Create = %+v, %v", got, err)
		}
	})
}

func TestDetails(t *testing.T) {
	runStores(t, func(t *testing.T, e *env) {
		cart, c := e.MustCreate(t, Caller{})
		e.MustAdd(t, c, cart.ID, e.shirt.ID, 1)

		_, err := e.s.ShippingMethods(bg, c, cart.ID)
		apperrtest.Want(t, err, CodeShippingAddressRequired, "shipping_address")

		nl := validAddress()
		nl.Country = " nl "
		got, err := e.s.Update(bg, c, cart.ID, Patch{Email: Value("ada@example.com"), ShippingAddress: Value(nl), BillingAddress: Value(nl)}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got.ShippingAddress.Country != "NL" || got.BillingAddress.Country != "NL" || *got.Email != "ada@example.com" || got.ShippingMethodID != nil {
			t.Fatalf("patched = %+v", got)
		}
		methods, err := e.s.ShippingMethods(bg, c, cart.ID)
		want := []ShippingMethod{{ID: "ship_standard", Name: "Standard", Price: eur(495)}, {ID: "ship_express", Name: "Express", Price: eur(1500)}}
		if err != nil || !reflect.DeepEqual(methods, want) {
			t.Fatalf("ShippingMethods = %+v, %v", methods, err)
		}
		got, err = e.s.Update(bg, c, cart.ID, Patch{ShippingMethodID: Value("ship_express")}, 0)
		if err != nil || *got.ShippingMethodID != "ship_express" || got.ShippingMethod == nil || got.ShippingTotal != eur(1500) || got.Total != eur(2999+1500) {
			t.Fatalf("with express = %+v, %v", got, err)
		}
		version := got.Version

		// The same values again change nothing.
		same, err := e.s.Update(bg, c, cart.ID, Patch{Email: Value("ada@example.com"), ShippingMethodID: Value("ship_express")}, 0)
		if err != nil || same.Version != version {
			t.Fatalf("a no-op patch = v%d, %v", same.Version, err)
		}

		// Moving to DE, where express is not offered, drops the method.
		de := validAddress()
		de.Country = "DE"
		got, err = e.s.Update(bg, c, cart.ID, Patch{ShippingAddress: Value(de)}, 0)
		if err != nil || got.ShippingMethodID != nil || got.ShippingTotal != eur(0) {
			t.Fatalf("after moving to DE = %+v, %v", got, err)
		}
		got, err = e.s.Update(bg, c, cart.ID, Patch{ShippingMethodID: Value("ship_standard")}, 0)
		if err != nil || *got.ShippingMethodID != "ship_standard" {
			t.Fatalf("standard in DE = %+v, %v", got, err)
		}
		// Moving back to NL keeps standard, offered in both.
		got, err = e.s.Update(bg, c, cart.ID, Patch{ShippingAddress: Value(validAddress())}, 0)
		if err != nil || got.ShippingMethodID == nil || *got.ShippingMethodID != "ship_standard" {
			t.Fatalf("standard after moving back = %+v, %v", got, err)
		}
		// null clears; clearing the address clears the method.
		got, err = e.s.Update(bg, c, cart.ID, Patch{Email: Null[string](), ShippingAddress: Null[Address]()}, 0)
		if err != nil || got.Email != nil || got.ShippingAddress != nil || got.ShippingMethodID != nil || got.BillingAddress == nil {
			t.Fatalf("cleared = %+v, %v", got, err)
		}
		got, err = e.s.Update(bg, c, cart.ID, Patch{BillingAddress: Null[Address]()}, 0)
		if err != nil || got.BillingAddress != nil {
			t.Fatalf("billing cleared = %+v, %v", got, err)
		}

		// Codes: stored upper case, once; removed case-insensitively.
		got, err = e.s.AddCode(bg, c, cart.ID, " winter10 ", 0)
		if err != nil || !slices.Equal(got.DiscountCodes, []string{"WINTER10"}) || got.DiscountTotal != eur(100) ||
			len(got.Promotions) != 1 || got.Promotions[0].Code != "WINTER10" {
			t.Fatalf("with a code = %+v, %v", got, err)
		}
		again, err := e.s.AddCode(bg, c, cart.ID, "Winter10", 0)
		if err != nil || again.Version != got.Version {
			t.Fatalf("adding it again = v%d, %v", again.Version, err)
		}
		_, err = e.s.RemoveCode(bg, c, cart.ID, "OTHER", 0)
		apperrtest.Want(t, err, apperr.NotFound)
		got, err = e.s.RemoveCode(bg, c, cart.ID, "winter10", 0)
		if err != nil || len(got.DiscountCodes) != 0 {
			t.Fatalf("code removed = %+v, %v", got, err)
		}
		for i := range MaxCodes {
			code := "CODE" + string(rune('A'+i))
			e.pr.mu.Lock()
			e.pr.codes[code] = ""
			e.pr.mu.Unlock()
			if _, err := e.s.AddCode(bg, c, cart.ID, code, 0); err != nil {
				t.Fatal(err)
			}
		}
		e.pr.mu.Lock()
		e.pr.codes["ONEMORE"] = ""
		e.pr.mu.Unlock()
		_, err = e.s.AddCode(bg, c, cart.ID, "ONEMORE", 0)
		apperrtest.Want(t, err, apperr.ValidationFailed, "discount_codes")
	})
}

// TestTotalsComeFromPricing: whatever pricing answers is what the cart
// shows, and pricing is asked with the cart's own contents.
func TestTotalsComeFromPricing(t *testing.T) {
	runStores(t, func(t *testing.T, e *env) {
		var seen []auth.Principal
		e.s.cfg.CustomerGroups = func(_ context.Context, p auth.Principal) []string {
			seen = append(seen, p)
			return []string{"vip"}
		}
		cart, ada := e.MustCreate(t, customer("cus_totals"))
		e.MustAdd(t, ada, cart.ID, e.shirt.ID, 2)
		if _, err := e.s.AddCode(bg, ada, cart.ID, "WINTER10", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.Update(bg, ada, cart.ID, Patch{ShippingAddress: Value(validAddress()), ShippingMethodID: Value("ship_standard")}, 0); err != nil {
			t.Fatal(err)
		}
		odd := func(n int64) money.Money { return money.New(n, "EUR") }
		e.pr.setOverride(func(q *pricing.Quote) {
			q.Subtotal, q.DiscountTotal, q.ShippingTotal, q.TaxTotal, q.Total = odd(7001), odd(333), odd(17), odd(1234), odd(9999)
			q.PricesIncludeTax = false
			q.Lines[0].UnitPrice, q.Lines[0].Subtotal, q.Lines[0].Discount, q.Lines[0].Tax, q.Lines[0].Total = odd(3500), odd(7001), odd(333), odd(1200), odd(6668)
			q.Promotions = []pricing.AppliedPromotion{{PromotionID: "promo_x", Name: "Odd", Code: "WINTER10", Amount: odd(333)}}
			q.Shipping = &pricing.ShippingOption{ID: "ship_standard", Name: "Standard (odd)", Price: odd(17)}
		})
		got := e.MustGet(t, ada, cart.ID)
		it := got.Items[0]
		if got.Subtotal != odd(7001) || got.DiscountTotal != odd(333) || got.ShippingTotal != odd(17) || got.TaxTotal != odd(1234) ||
			got.Total != odd(9999) || got.PricesIncludeTax || it.UnitPrice != odd(3500) || it.Subtotal != odd(7001) ||
			it.Discount != odd(333) || it.Tax != odd(1200) || it.Total != odd(6668) || got.ShippingMethod.Name != "Standard (odd)" ||
			!reflect.DeepEqual(got.Promotions, []Promotion{{PromotionID: "promo_x", Name: "Odd", Code: "WINTER10", Amount: odd(333)}}) {
			t.Fatalf("the cart does not show pricing's numbers verbatim: %+v", got)
		}
		req := e.pr.lastQuote()
		if req.Currency != "EUR" || req.CustomerID != "cus_totals" || !slices.Equal(req.CustomerGroups, []string{"vip"}) ||
			len(req.Lines) != 1 || req.Lines[0].ID != it.ID || req.Lines[0].VariantID != e.shirt.ID || req.Lines[0].Quantity != 2 ||
			req.Lines[0].ProductID != e.shirt.ProductID || !slices.Equal(req.Lines[0].CategoryIDs, e.shirt.ProductCategoryIDs) ||
			!slices.Equal(req.Codes, []string{"WINTER10"}) || req.ShippingMethodID != "ship_standard" ||
			req.ShippingAddress == nil || req.ShippingAddress.Country != "NL" || req.ShippingAddress.PostalCode != "1015 CJ" {
			t.Fatalf("pricing was asked %+v", req)
		}
		if len(seen) == 0 || !reflect.DeepEqual(seen[len(seen)-1], ada.Principal) {
			t.Fatalf("CustomerGroups saw %+v", seen)
		}
		e.pr.setOverride(nil)
		// Staff reading the cart: groups are asked for the cart's customer.
		if _, err := e.s.AdminGet(bg, cart.ID); err != nil {
			t.Fatal(err)
		}
		if p := seen[len(seen)-1]; p.Subject != "cus_totals" || p.Kind != auth.KindCustomer {
			t.Fatalf("CustomerGroups for a staff read saw %+v", p)
		}
		// Anonymous carts have no customer and no groups.
		anonCart, shopper := e.MustCreate(t, Caller{})
		n := len(seen)
		e.MustAdd(t, shopper, anonCart.ID, e.mug.ID, 1)
		if req := e.pr.lastQuote(); req.CustomerID != "" || req.CustomerGroups != nil || len(seen) != n {
			t.Fatalf("anonymous cart priced with %+v (groups asked %d times)", req, len(seen)-n)
		}
	})
}

func TestPurchasability(t *testing.T) {
	runStores(t, func(t *testing.T, e *env) {
		cart, c := e.MustCreate(t, Caller{})
		err := e.s.Validate(bg, cart.ID)
		apperrtest.Want(t, err, CodeCartEmpty, "items")

		e.MustAdd(t, c, cart.ID, e.shirt.ID, 1)
		e.MustAdd(t, c, cart.ID, e.mug.ID, 2)
		e.MustAdd(t, c, cart.ID, e.lamp.ID, 1)
		if _, err := e.s.AddCode(bg, c, cart.ID, "WINTER10", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.Update(bg, c, cart.ID, Patch{ShippingAddress: Value(validAddress()), ShippingMethodID: Value("ship_express")}, 0); err != nil {
			t.Fatal(err)
		}
		if err := e.s.Validate(bg, cart.ID); err != nil {
			t.Fatalf("Validate of a good cart: %v", err)
		}

		// The mug's product is unpublished, the lamp loses its price, the
		// code stops applying and express is withdrawn from NL.
		e.cat.hide(e.mug.ID)
		e.pr.removePrice("EUR", e.lamp.ID)
		e.pr.stale["WINTER10"] = string(pricing.CodeExpired)
		e.pr.methods["NL"] = e.pr.methods["NL"][:1]

		got := e.MustGet(t, c, cart.ID)
		mug, lamp := got.Items[1], got.Items[2]
		if mug.Problem != ProblemUnpublished || lamp.Problem != ProblemPriceMissing || got.Items[0].Problem != "" {
			t.Fatalf("line problems: %+v", got.Items)
		}
		if mug.Total != eur(0) || mug.UnitPrice != eur(0) || lamp.Total != eur(0) || mug.Quantity != 2 || mug.SKU != "MUG-1" {
			t.Fatalf("problem lines = %+v, %+v", mug, lamp)
		}
		if got.Subtotal != eur(2999) || got.Total != eur(2999) || got.ShippingTotal != eur(0) || got.DiscountTotal != eur(0) {
			t.Fatalf("totals include lines with problems: %+v", got)
		}
		req := e.pr.lastQuote()
		if len(req.Lines) != 2 || req.Lines[0].VariantID != e.shirt.ID || req.Lines[1].VariantID != e.lamp.ID {
			t.Fatalf("pricing was asked about the unpublished line: %+v", req.Lines)
		}
		wantProblems := []Problem{
			{ItemID: mug.ID, Code: ProblemUnpublished, Message: problemMessages[ProblemUnpublished]},
			{ItemID: lamp.ID, Code: ProblemPriceMissing, Message: problemMessages[ProblemPriceMissing]},
			{Field: "shipping_method_id", Code: ProblemShippingUnavailable, Message: "the chosen shipping method no longer serves this cart; choose another"},
		}
		if !reflect.DeepEqual(got.Problems, wantProblems) {
			t.Fatalf("problems =\n%+v\nwant\n%+v", got.Problems, wantProblems)
		}
		if !reflect.DeepEqual(got.CodeProblems, []CodeProblem{{Code: "WINTER10", Problem: "code_expired"}}) {
			t.Fatalf("code problems = %+v", got.CodeProblems)
		}

		err = e.s.Validate(bg, cart.ID)
		apperrtest.Want(t, err, CodeNotPurchasable, "items[1]", "items[2]", "discount_codes[0]", "shipping_method_id")
		if apperr.Is(err, CodeNotPurchasable) && !strings.Contains(err.Error(), mug.ID) {
			t.Errorf("Validate does not name the item id: %v", err)
		}
		var ae *apperr.Error
		if errors.As(err, &ae); ae.Fields[0].Code != ProblemUnpublished || ae.Fields[1].Code != ProblemPriceMissing {
			t.Fatalf("field codes = %+v", ae.Fields)
		}

		// Removing what is broken makes the cart purchasable again.
		for _, id := range []string{mug.ID, lamp.ID} {
			if _, err := e.s.RemoveItem(bg, c, cart.ID, id, 0); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.s.RemoveCode(bg, c, cart.ID, "WINTER10", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.Update(bg, c, cart.ID, Patch{ShippingMethodID: Value("ship_standard")}, 0); err != nil {
			t.Fatal(err)
		}
		if err := e.s.Validate(bg, cart.ID); err != nil {
			t.Fatalf("Validate after the fixes: %v", err)
		}
		_, err = e.s.AddItem(bg, c, cart.ID, ItemInput{VariantID: e.mug.ID, Quantity: 1}, 0)
		apperrtest.Want(t, err, apperr.ValidationFailed, "variant_id")
		err = e.s.Validate(bg, "cart_01JD3Q0000000000000000000A")
		apperrtest.Want(t, err, apperr.NotFound)
	})
}

func TestDependencyFailures(t *testing.T) {
	e := MustNewSQLiteEnv(t, Config{})
	cart, c := e.MustCreate(t, Caller{})
	e.MustAdd(t, c, cart.ID, e.shirt.ID, 1)
	down := apperr.New(apperr.Unavailable, "down")

	t.Run("reads answer unavailable", func(t *testing.T) {
		e.cat.fail(down)
		defer e.cat.fail(nil)
		_, err := e.s.Get(bg, c, cart.ID)
		apperrtest.Want(t, err, apperr.Unavailable)
		_, err = e.s.AddItem(bg, c, cart.ID, ItemInput{VariantID: e.mug.ID, Quantity: 1}, 0)
		apperrtest.Want(t, err, apperr.Unavailable)
		err = e.s.Validate(bg, cart.ID)
		apperrtest.Want(t, err, apperr.Unavailable)
	})

	t.Run("pricing down before a change: unavailable, nothing changed", func(t *testing.T) {
		e.pr.fail(down)
		defer e.pr.fail(nil)
		_, err := e.s.AddItem(bg, c, cart.ID, ItemInput{VariantID: e.mug.ID, Quantity: 1}, 0)
		apperrtest.Want(t, err, apperr.Unavailable)
		_, err = e.s.AddCode(bg, c, cart.ID, "WINTER10", 0)
		apperrtest.Want(t, err, apperr.Unavailable)
		_, err = e.s.Update(bg, c, cart.ID, Patch{ShippingAddress: Value(validAddress()), ShippingMethodID: Value("ship_standard")}, 0)
		apperrtest.Want(t, err, apperr.Unavailable)
		e.pr.fail(nil)
		if got := e.MustGet(t, c, cart.ID); got.Version != 2 {
			t.Fatalf("failed changes moved the version to %d", got.Version)
		}
	})

	t.Run("a saved change answers unpriced, never 5xx", func(t *testing.T) {
		got, err := e.s.Update(bg, c, cart.ID, Patch{Email: Value("ada@example.com")}, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Pricing fails after the change was written.
		e.s.pricing = quoteDown{Pricing: e.pr, err: down}
		got, err = e.s.UpdateItem(bg, c, cart.ID, got.Items[0].ID, 4, 0)
		if err != nil {
			t.Fatalf("a saved change answered %v", err)
		}
		if got.Items[0].Quantity != 4 || got.Total != eur(0) ||
			!reflect.DeepEqual(got.Problems, []Problem{{Code: ProblemPricingUnavailable, Message: got.Problems[0].Message}}) {
			t.Fatalf("unpriced view = %+v", got)
		}
		e.s.pricing = e.pr
		if fresh := e.MustGet(t, c, cart.ID); fresh.Items[0].Quantity != 4 || fresh.Total != eur(4*2999) {
			t.Fatalf("after pricing is back: %+v", fresh)
		}
	})

	t.Run("the catalogue's other errors are unavailable", func(t *testing.T) {
		e.cat.fail(apperr.New(apperr.Internal, "boom"))
		defer e.cat.fail(nil)
		_, err := e.s.Get(bg, c, cart.ID)
		apperrtest.Want(t, err, apperr.Unavailable)
	})
}

// quoteDown is a Pricing whose Quote fails.
type quoteDown struct {
	Pricing
	err error
}

func (f quoteDown) Quote(context.Context, pricing.QuoteRequest) (pricing.Quote, error) {
	return pricing.Quote{}, f.err
}

func TestExpiry(t *testing.T) {
	runStores(t, func(t *testing.T, e *env) {
		anonCart, shopper := e.MustCreate(t, Caller{})
		custCart, ada := e.MustCreate(t, customer("cus_exp"))

		e.clock.Advance(6 * 24 * time.Hour)
		got := e.MustAdd(t, shopper, anonCart.ID, e.mug.ID, 1) // pushes the expiry
		if want := e.clock.Now().Add(DefaultAnonymousIdleTTL); !got.ExpiresAt.Equal(want) {
			t.Fatalf("expires_at = %v, want %v", got.ExpiresAt, want)
		}
		if n, err := e.s.ExpireStale(bg, e.clock.Now()); err != nil || n != 0 {
			t.Fatalf("ExpireStale = %d, %v; nothing is due", n, err)
		}
		e.MustGet(t, shopper, anonCart.ID) // reads do not push it
		e.clock.Advance(DefaultAnonymousIdleTTL)

		// Due: reads and writes see nothing even before the sweep.
		_, err := e.s.Get(bg, shopper, anonCart.ID)
		apperrtest.Want(t, err, apperr.NotFound)
		_, err = e.s.AddItem(bg, shopper, anonCart.ID, ItemInput{VariantID: e.mug.ID, Quantity: 1}, 0)
		apperrtest.Want(t, err, apperr.NotFound)
		e.MustGet(t, ada, custCart.ID) // 13 days idle: a customer cart lives 30

		n, err := e.s.ExpireStale(bg, e.clock.Now())
		if err != nil || n != 1 {
			t.Fatalf("ExpireStale = %d, %v; want 1", n, err)
		}
		if n, _ := e.s.ExpireStale(bg, e.clock.Now()); n != 0 {
			t.Fatalf("a second sweep expired %d", n)
		}
		admin, err := e.s.AdminGet(bg, anonCart.ID)
		if err != nil || admin.Status != StatusExpired {
			t.Fatalf("AdminGet = %+v, %v", admin, err)
		}
		e.clock.Advance(DefaultIdleTTL)
		_, err = e.s.Get(bg, ada, custCart.ID)
		apperrtest.Want(t, err, apperr.NotFound)
	})
}

// TestExpireStaleConcurrently: several sweepers at once expire each cart
// exactly once, across batches.
func TestExpireStaleConcurrently(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	runStores(t, func(t *testing.T, e *env) {
		const carts = expiryBatch + 37
		now := e.clock.Now()
		for i := range carts {
			r := record{ID: id.New(cartPrefix), Currency: "EUR", Status: StatusActive, TokenDigest: tokenDigest("t"), Items: []line{}, Codes: []string{},
				Version: 1, CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Duration(i) * time.Second)}
			if err := e.db.InTx(bg, func(tx *store.Tx) error { return insertCart(bg, tx, r) }); err != nil {
				t.Fatal(err)
			}
		}
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			total int
		)
		for range 3 {
			wg.Go(func() {
				n, err := e.s.ExpireStale(bg, now.Add(time.Hour))
				if err != nil {
					t.Errorf("ExpireStale: %v", err)
				}
				mu.Lock()
				total += n
				mu.Unlock()
			})
		}
		wg.Wait()
		if total != carts {
			t.Fatalf("sweepers expired %d carts in all, want %d", total, carts)
		}
		if n := countRows(t, e.db, `SELECT COUNT(*) FROM cart_carts WHERE status = ? AND version = 2`, string(StatusExpired)); n != carts {
			t.Fatalf("%d carts expired once, want %d", n, carts)
		}
	})
}

func TestRunSweeps(t *testing.T) {
	e := MustNewSQLiteEnv(t, Config{ExpiryInterval: 100 * time.Millisecond})
	cart, c := e.MustCreate(t, Caller{})
	e.clock.Advance(DefaultAnonymousIdleTTL)
	runCtx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- e.s.Run(runCtx) }()
	// Wait (no timing assertion) until a sweep has run.
	for countRows(t, e.db, `SELECT COUNT(*) FROM cart_carts WHERE status = ?`, string(StatusExpired)) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	_, err := e.s.Get(bg, c, cart.ID)
	apperrtest.Want(t, err, apperr.NotFound)

	bad := MustNewSQLiteEnv(t, Config{})
	bad.s.cfg.ExpiryInterval = time.Millisecond
	if err := bad.s.Run(bg); err == nil {
		t.Fatal("Run with an invalid config must fail")
	}
}
