package e2e_test

import (
	"fmt"
	"net/http"
	"testing"
)

type money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

type cartBody struct {
	ID        string `json:"id"`
	CartToken string `json:"cart_token"`
	Version   int64  `json:"version"`
	Items     []struct {
		ID        string `json:"id"`
		VariantID string `json:"variant_id"`
		Quantity  int64  `json:"quantity"`
		UnitPrice money  `json:"unit_price"`
		Discount  money  `json:"discount"`
		Total     money  `json:"total"`
	} `json:"items"`
	DiscountCodes    []string `json:"discount_codes"`
	Subtotal         money    `json:"subtotal"`
	DiscountTotal    money    `json:"discount_total"`
	ShippingTotal    money    `json:"shipping_total"`
	TaxTotal         money    `json:"tax_total"`
	Total            money    `json:"total"`
	PricesIncludeTax bool     `json:"prices_include_tax"`
	CustomerID       *string  `json:"customer_id"`
}

// checkTotals holds the cart to API.md's formula.
func checkTotals(t *testing.T, c cartBody) {
	t.Helper()
	want := c.Subtotal.Amount - c.DiscountTotal.Amount + c.ShippingTotal.Amount
	if !c.PricesIncludeTax {
		want += c.TaxTotal.Amount
	}
	if c.Total.Amount != want {
		t.Fatalf("total %d ≠ subtotal %d − discount %d + shipping %d (+ tax %d when excluded)", c.Total.Amount, c.Subtotal.Amount, c.DiscountTotal.Amount, c.ShippingTotal.Amount, c.TaxTotal.Amount)
	}
	var sum int64
	for _, it := range c.Items {
		sum += it.UnitPrice.Amount * it.Quantity
	}
	if sum != c.Subtotal.Amount {
		t.Fatalf("line subtotals %d ≠ subtotal %d", sum, c.Subtotal.Amount)
	}
}

// TestShopperFlow is the commerce core over HTTP: a shopper browses priced
// products, fills an anonymous cart, registers, logs in, merges the cart,
// applies a voucher, gives an address and picks a shipping method; every
// total comes from pricing and adds up.
func TestShopperFlow(t *testing.T) {
	for name, topology := range topologies(t) {
		t.Run(name, func(t *testing.T) {
			s := mustStart(t, append(topology(t), "--demo")...)

			// Priced, in-stock products in the requested currency.
			var page struct {
				Data []struct {
					ID       string `json:"id"`
					Variants []struct {
						ID      string `json:"id"`
						SKU     string `json:"sku"`
						Price   *money `json:"price"`
						InStock *bool  `json:"in_stock"`
					} `json:"variants"`
				} `json:"data"`
			}
			r := s.do(http.MethodGet, "/store/products?currency=EUR&limit=100", nil)
			wantStatus(t, r, http.StatusOK)
			r.decode(t, &page)
			var variants []string
			for _, p := range page.Data {
				for _, v := range p.Variants {
					// Cheap ones: under the demo's automatic 10 % off orders
					// over 100 EUR, which would beat the voucher below.
					if v.Price != nil && v.Price.Currency == "EUR" && v.Price.Amount < 3000 && v.InStock != nil && *v.InStock && len(variants) < 2 {
						variants = append(variants, v.ID)
						break
					}
				}
			}
			if len(variants) < 2 {
				t.Fatalf("the demo shows fewer than 2 products in stock under 30 EUR: %s", r.body)
			}

			// An anonymous cart with two lines; the same variant twice merges.
			r = s.do(http.MethodPost, "/store/carts", map[string]any{"currency": "EUR"})
			wantStatus(t, r, http.StatusCreated)
			var c cartBody
			r.decode(t, &c)
			token := c.CartToken
			for _, v := range []string{variants[0], variants[1], variants[0]} {
				r = s.do(http.MethodPost, "/store/carts/"+c.ID+"/items", map[string]any{"variant_id": v, "quantity": 1}, "X-Cart-Token", token)
				wantStatus(t, r, http.StatusOK)
			}
			r.decode(t, &c)
			if len(c.Items) != 2 || c.Items[0].Quantity+c.Items[1].Quantity != 3 {
				t.Fatalf("cart items = %+v", c.Items)
			}
			checkTotals(t, c)

			// Without the token the cart does not exist; prices cannot be sent.
			if r := s.do(http.MethodGet, "/store/carts/"+c.ID, nil); r.StatusCode != http.StatusNotFound {
				t.Fatalf("cart without token: %d", r.StatusCode)
			}
			if r := s.do(http.MethodPost, "/store/carts/"+c.ID+"/items", map[string]any{"variant_id": variants[0], "quantity": 1, "unit_price": 1}, "X-Cart-Token", token); r.StatusCode != http.StatusBadRequest {
				t.Fatalf("a client-sent price: %d", r.StatusCode)
			}
			if r := s.do(http.MethodPost, "/store/carts/"+c.ID+"/items", map[string]any{"variant_id": variants[0], "quantity": 0}, "X-Cart-Token", token); r.StatusCode != http.StatusBadRequest || r.problemCode(t) != "validation_failed" {
				t.Fatalf("quantity 0: %d %s", r.StatusCode, r.body)
			}

			// Register, log in, take the cart over.
			wantStatus(t, s.do(http.MethodPost, "/store/customers", map[string]any{"email": "grace@example.com", "password": "a long enough secret", "name": "Grace"}), http.StatusCreated)
			r = s.do(http.MethodPost, "/store/auth/token", map[string]any{"email": "grace@example.com", "password": "a long enough secret"})
			wantStatus(t, r, http.StatusOK)
			var session struct {
				AccessToken  string `json:"access_token"`
				RefreshToken string `json:"refresh_token"`
			}
			r.decode(t, &session)
			bearer := "Bearer " + session.AccessToken
			wantStatus(t, s.do(http.MethodGet, "/store/customers/me", nil, "Authorization", bearer), http.StatusOK)
			r = s.do(http.MethodPost, "/store/carts/"+c.ID+"/merge", map[string]any{}, "Authorization", bearer, "X-Cart-Token", token)
			wantStatus(t, r, http.StatusOK)
			r.decode(t, &c)
			if c.CustomerID == nil {
				t.Fatalf("merged cart is not bound to the customer: %s", r.body)
			}

			// Staff switch the automatic promotions off (they would beat the
			// voucher under the stacking rule); then the voucher takes exactly
			// 10 % off, rounded half-up, and totals still add up.
			var promos struct {
				Data []struct {
					ID      string   `json:"id"`
					Codes   []string `json:"codes"`
					Version int64    `json:"version"`
				} `json:"data"`
			}
			r = s.admin(http.MethodGet, "/admin/promotions?limit=100", nil)
			wantStatus(t, r, http.StatusOK)
			r.decode(t, &promos)
			for _, p := range promos.Data {
				if len(p.Codes) == 0 {
					wantStatus(t, s.admin(http.MethodPatch, "/admin/promotions/"+p.ID, map[string]any{"active": false}, "If-Match", fmt.Sprint(p.Version)), http.StatusOK)
				}
			}
			before := int64(0)
			r = s.do(http.MethodPost, "/store/carts/"+c.ID+"/discount-codes", map[string]any{"code": "WELCOME10"}, "Authorization", bearer)
			wantStatus(t, r, http.StatusOK)
			r.decode(t, &c)
			if want := (c.Subtotal.Amount*10 + 50) / 100; c.DiscountTotal.Amount != want || want <= before {
				t.Fatalf("WELCOME10 discount %d, want 10%% of %d = %d\n%s", c.DiscountTotal.Amount, c.Subtotal.Amount, want, r.body)
			}
			checkTotals(t, c)
			if r := s.do(http.MethodPost, "/store/carts/"+c.ID+"/discount-codes", map[string]any{"code": "NOPE"}, "Authorization", bearer); r.StatusCode != http.StatusUnprocessableEntity || r.problemCode(t) != "code_invalid" {
				t.Fatalf("unknown code: %d %s", r.StatusCode, r.body)
			}

			// An address, then a shipping method among those offered.
			addr := map[string]any{"first_name": "Grace", "last_name": "Hopper", "line1": "Keizersgracht 1", "city": "Amsterdam", "postal_code": "1015 AA", "country": "NL"}
			r = s.do(http.MethodPatch, "/store/carts/"+c.ID, map[string]any{"email": "grace@example.com", "shipping_address": addr}, "Authorization", bearer)
			wantStatus(t, r, http.StatusOK)
			if r := s.do(http.MethodPatch, "/store/carts/"+c.ID, map[string]any{"shipping_address": map[string]any{"first_name": "G", "last_name": "H", "line1": "x", "city": "y", "postal_code": "1", "country": "XX"}}, "Authorization", bearer); r.StatusCode != http.StatusBadRequest || r.problemCode(t) != "validation_failed" {
				t.Fatalf("unknown country: %d %s", r.StatusCode, r.body)
			}
			var methods struct {
				Data []struct {
					ID    string `json:"id"`
					Price money  `json:"price"`
				} `json:"data"`
			}
			r = s.do(http.MethodGet, "/store/carts/"+c.ID+"/shipping-methods", nil, "Authorization", bearer)
			wantStatus(t, r, http.StatusOK)
			r.decode(t, &methods)
			if len(methods.Data) == 0 {
				t.Fatalf("no shipping methods for NL: %s", r.body)
			}
			r = s.do(http.MethodPatch, "/store/carts/"+c.ID, map[string]any{"shipping_method_id": methods.Data[0].ID}, "Authorization", bearer)
			wantStatus(t, r, http.StatusOK)
			r.decode(t, &c)
			if c.ShippingTotal.Amount != methods.Data[0].Price.Amount {
				t.Fatalf("shipping total %d, method price %d", c.ShippingTotal.Amount, methods.Data[0].Price.Amount)
			}
			checkTotals(t, c)

			// Another customer cannot see the cart: 404, not 403.
			wantStatus(t, s.do(http.MethodPost, "/store/customers", map[string]any{"email": "eve@example.com", "password": "another long secret", "name": "Eve"}), http.StatusCreated)
			r = s.do(http.MethodPost, "/store/auth/token", map[string]any{"email": "eve@example.com", "password": "another long secret"})
			var eve struct {
				AccessToken string `json:"access_token"`
			}
			r.decode(t, &eve)
			if r := s.do(http.MethodGet, "/store/carts/"+c.ID, nil, "Authorization", "Bearer "+eve.AccessToken); r.StatusCode != http.StatusNotFound {
				t.Fatalf("another customer's cart: %d", r.StatusCode)
			}

			// Wrong password and unknown account answer alike.
			a := s.do(http.MethodPost, "/store/auth/token", map[string]any{"email": "grace@example.com", "password": "wrong password!!"})
			b := s.do(http.MethodPost, "/store/auth/token", map[string]any{"email": "nobody@example.com", "password": "wrong password!!"})
			if a.StatusCode != http.StatusUnauthorized || b.StatusCode != http.StatusUnauthorized || a.problemCode(t) != b.problemCode(t) {
				t.Fatalf("login failures differ: %d %s / %d %s", a.StatusCode, a.body, b.StatusCode, b.body)
			}

			// Refresh rotates; the old refresh token is then refused.
			r = s.do(http.MethodPost, "/store/auth/refresh", map[string]any{"refresh_token": session.RefreshToken})
			wantStatus(t, r, http.StatusOK)
			if r := s.do(http.MethodPost, "/store/auth/refresh", map[string]any{"refresh_token": session.RefreshToken}); r.StatusCode != http.StatusUnauthorized {
				t.Fatalf("reused refresh token: %d", r.StatusCode)
			}

			// Staff see stock per location; a merchandiser may not change it.
			var stock struct {
				Available int64 `json:"available"`
				Levels    []any `json:"levels"`
			}
			r = s.admin(http.MethodGet, "/admin/inventory/"+page.Data[0].Variants[0].SKU, nil)
			wantStatus(t, r, http.StatusOK)
			r.decode(t, &stock)
			if len(stock.Levels) == 0 {
				t.Fatalf("no stock levels: %s", r.body)
			}
		})
	}
}
