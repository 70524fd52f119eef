package catalog

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/money"
)

// PriceSource gives the shopper's display prices of variants (pricing
// implements it). A variant without a price in the currency is absent from
// the result.
type PriceSource interface {
	Prices(ctx context.Context, currency string, customerGroups []string, variantIDs []string) (map[string]money.Money, error)
}

// StockSource tells whether SKUs can be ordered now (inventory, through a
// small adapter in the composition root).
type StockSource interface {
	InStock(ctx context.Context, skus []string) (map[string]bool, error)
}

// WithStorefront makes Store API products show each variant's price in the
// requested currency (?currency=, default defaultCurrency) for the caller's
// customer groups, and whether it is in stock. Either source may be nil.
func WithStorefront(prices PriceSource, stock StockSource, defaultCurrency string) ServiceOption {
	return func(s *Service) {
		s.prices, s.stock, s.defaultCurrency = prices, stock, defaultCurrency
	}
}

// StoreVariant is a variant as the storefront sees it.
type StoreVariant struct {
	Variant
	Price   *money.Money `json:"price,omitempty"`
	InStock *bool        `json:"in_stock,omitempty"`
}

// StoreProduct is a published product as the storefront sees it.
type StoreProduct struct {
	Product
	Variants []StoreVariant `json:"variants"`
}

// storeCurrency reads ?currency=; a bad one is a 400 naming it.
func (s *Service) storeCurrency(r *http.Request) (string, error) {
	c := r.URL.Query().Get("currency")
	if c == "" {
		return s.defaultCurrency, nil
	}
	code, err := money.ParseCurrency(c)
	if err != nil {
		var v apperr.Validation
		v.Add("currency", "invalid", err.Error())
		return "", v.Err()
	}
	return code, nil
}

// groupsOf returns the caller's customer groups, sorted.
func groupsOf(ctx context.Context) []string {
	p, ok := auth.FromContext(ctx)
	if !ok || p.Kind != auth.KindCustomer {
		return nil
	}
	g := slices.Clone(p.Groups)
	slices.Sort(g)
	return g
}

// storeKeySuffix makes the cache key depend on what changes the answer
// besides the URL: the currency and the caller's groups.
func (s *Service) storeKeySuffix(r *http.Request) string {
	if s.prices == nil && s.stock == nil {
		return ""
	}
	return "|" + strings.Join(groupsOf(r.Context()), ",")
}

// decorate turns products into their storefront view.
func (s *Service) decorate(ctx context.Context, currency string, ps []Product) ([]StoreProduct, error) {
	out := make([]StoreProduct, len(ps))
	var ids, skus []string
	for i, p := range ps {
		out[i] = StoreProduct{Product: p, Variants: make([]StoreVariant, len(p.Variants))}
		for j, v := range p.Variants {
			out[i].Variants[j] = StoreVariant{Variant: v}
			ids = append(ids, v.ID)
			skus = append(skus, v.SKU)
		}
	}
	if len(ids) == 0 {
		return out, nil
	}
	var (
		prices map[string]money.Money
		stock  map[string]bool
		err    error
	)
	if s.prices != nil && currency != "" {
		if prices, err = s.prices.Prices(ctx, currency, groupsOf(ctx), ids); err != nil {
			return nil, fmt.Errorf("storefront prices: %w", err)
		}
	}
	if s.stock != nil {
		if stock, err = s.stock.InStock(ctx, skus); err != nil {
			return nil, fmt.Errorf("storefront stock: %w", err)
		}
	}
	for i := range out {
		for j := range out[i].Variants {
			v := &out[i].Variants[j]
			if p, ok := prices[v.ID]; ok {
				v.Price = &p
			}
			if stock != nil {
				in := stock[v.SKU]
				v.InStock = &in
			}
		}
	}
	return out, nil
}
