package cart

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/services/catalog"
	"github.com/soukhq/souk/services/pricing"
)

// resolve asks the catalogue about every line of r: lines come back with
// the catalogue's current description, and gone[i] is true when the
// catalogue no longer sells line i (not_found: unpublished, archived,
// deleted). Any failure of the catalogue is unavailable. It asks for all
// the lines at once, catalog.MaxVariantBatch at a time: one read of the
// catalogue's revision per batch instead of one per line (ADR 0019).
func (s *Service) resolve(ctx context.Context, r record) (lines []line, gone []bool, err error) {
	lines = slices.Clone(r.Items)
	gone = make([]bool, len(lines))
	ids := make([]string, len(lines))
	for i, l := range lines {
		ids[i] = l.VariantID
	}
	refs := make(map[string]catalog.VariantRef, len(ids))
	for batch := range slices.Chunk(ids, catalog.MaxVariantBatch) {
		found, err := s.catalog.GetVariants(ctx, batch)
		if err != nil {
			return nil, nil, dependencyError("catalog", err)
		}
		maps.Copy(refs, found)
	}
	for i := range lines {
		ref, ok := refs[lines[i].VariantID]
		if !ok {
			gone[i] = true
			continue
		}
		l := lineOf(ref, lines[i].Quantity)
		l.ID = lines[i].ID
		lines[i] = l
	}
	return lines, gone, nil
}

// groups returns the customer groups of the cart's customer: asked with the
// caller's principal when the caller is that customer, else with a
// principal naming the customer (and no groups of its own).
func (s *Service) groups(ctx context.Context, r record, c Caller) []string {
	if r.CustomerID == "" {
		return nil
	}
	p := c.Principal
	if c.customerID() != r.CustomerID {
		p = customerPrincipal(r.CustomerID)
	}
	if s.cfg.CustomerGroups == nil {
		return slices.Clone(p.Groups)
	}
	return s.cfg.CustomerGroups(ctx, p)
}

// quoteRequest is the pricing request of the cart: every line the
// catalogue still sells, the codes, the shipping address and method, the
// customer and their groups.
func (s *Service) quoteRequest(ctx context.Context, r record, c Caller, lines []line, gone []bool) pricing.QuoteRequest {
	req := pricing.QuoteRequest{
		Currency:         r.Currency,
		CustomerID:       PricingCustomerKey(r.CustomerID, r.Email),
		CustomerGroups:   s.groups(ctx, r, c),
		Lines:            []pricing.QuoteLine{},
		Codes:            slices.Clone(r.Codes),
		ShippingMethodID: r.ShippingMethodID,
	}
	for i, l := range lines {
		if gone[i] {
			continue
		}
		req.Lines = append(req.Lines, pricing.QuoteLine{ID: l.ID, VariantID: l.VariantID, SKU: l.SKU,
			ProductID: l.ProductID, CategoryIDs: slices.Clone(l.CategoryIDs), Quantity: l.Quantity})
	}
	if a := r.ShippingAddress; a != nil {
		req.ShippingAddress = &pricing.Address{Country: a.Country, Region: a.Region, PostalCode: a.PostalCode}
	}
	return req
}

// price returns the cart as the API shows it, priced now by pricing.
// Errors: unavailable when the catalogue or pricing cannot answer.
func (s *Service) price(ctx context.Context, r record, c Caller) (Cart, error) {
	lines, gone, err := s.resolve(ctx, r)
	if err != nil {
		return Cart{}, err
	}
	q, err := s.pricing.Quote(ctx, s.quoteRequest(ctx, r, c, lines, gone))
	if err != nil {
		return Cart{}, dependencyError("pricing", err)
	}
	return buildView(r, lines, gone, q), nil
}

// viewAfterWrite prices a cart that was just written. A change that was
// saved must not answer 5xx (a client, and the idempotency layer, would
// take it for "nothing happened" and repeat it), so when the catalogue or
// pricing fails the cart is shown unpriced, with the problem
// pricing_unavailable (which also stops checkout).
func (s *Service) viewAfterWrite(ctx context.Context, r record, c Caller) Cart {
	out, err := s.price(ctx, r, c)
	if err == nil {
		return out
	}
	s.log.WarnContext(ctx, "cart saved but not priced", "cart_id", r.ID, "error", err)
	gone := make([]bool, len(r.Items))
	out = buildView(r, r.Items, gone, pricing.Quote{})
	for i := range out.Items {
		out.Items[i].Problem = ""
	}
	out.Problems = []Problem{{Code: ProblemPricingUnavailable,
		Message: "the cart was saved, but could not be priced just now; fetch it again for its totals"}}
	return out
}

// problemMessages explains the line problems.
var problemMessages = map[string]string{
	ProblemUnpublished:  "this product is no longer for sale; remove it to check out",
	ProblemPriceMissing: "this product has no price in the cart's currency any more; remove it to check out",
}

// buildView assembles the API's cart from the record, the lines as the
// catalogue described them (gone: no longer sold) and pricing's quote.
// Every amount comes from the quote; lines with a problem show zero and
// count in no total.
func buildView(r record, lines []line, gone []bool, q pricing.Quote) Cart {
	zero := money.Zero(r.Currency)
	orZero := func(m money.Money) money.Money {
		if m.Currency == "" {
			return zero
		}
		return m
	}
	out := Cart{
		ID: r.ID, Status: r.Status, Currency: r.Currency,
		Items:            make([]Item, len(lines)),
		DiscountCodes:    slices.Clone(r.Codes),
		ShippingAddress:  r.ShippingAddress,
		BillingAddress:   r.BillingAddress,
		Subtotal:         orZero(q.Subtotal),
		DiscountTotal:    orZero(q.DiscountTotal),
		ShippingTotal:    orZero(q.ShippingTotal),
		TaxTotal:         orZero(q.TaxTotal),
		Total:            orZero(q.Total),
		PricesIncludeTax: q.PricesIncludeTax,
		Promotions:       []Promotion{},
		CodeProblems:     []CodeProblem{},
		Problems:         []Problem{},
		Version:          r.Version,
		CreatedAt:        r.CreatedAt,
		UpdatedAt:        r.UpdatedAt,
		ExpiresAt:        r.ExpiresAt,
	}
	if r.CustomerID != "" {
		out.CustomerID = &r.CustomerID
	}
	if r.Email != "" {
		out.Email = &r.Email
	}
	if r.ShippingMethodID != "" {
		out.ShippingMethodID = &r.ShippingMethodID
	}
	quoted := make(map[string]pricing.QuotedLine, len(q.Lines))
	for _, ql := range q.Lines {
		quoted[ql.ID] = ql
	}
	for i, l := range lines {
		it := Item{
			ID: l.ID, VariantID: l.VariantID, ProductID: l.ProductID, SKU: l.SKU, Title: l.Title,
			VariantTitle: l.VariantTitle, Quantity: l.Quantity,
			UnitPrice: zero, Subtotal: zero, Discount: zero, Tax: zero, Total: zero,
		}
		ql, ok := quoted[l.ID]
		switch {
		case gone[i]:
			it.Problem = ProblemUnpublished
		case !ok || ql.Problem != "":
			it.Problem = ProblemPriceMissing
		default:
			it.UnitPrice, it.Subtotal, it.Discount = orZero(ql.UnitPrice), orZero(ql.Subtotal), orZero(ql.Discount)
			it.Tax, it.Total = orZero(ql.Tax), orZero(ql.Total)
		}
		if it.Problem != "" {
			out.Problems = append(out.Problems, Problem{ItemID: l.ID, Code: it.Problem, Message: problemMessages[it.Problem]})
		}
		out.Items[i] = it
	}
	if q.Shipping != nil {
		m := shippingMethodOf(*q.Shipping)
		out.ShippingMethod = &m
	} else if r.ShippingMethodID != "" && q.Currency != "" {
		out.Problems = append(out.Problems, Problem{Field: "shipping_method_id", Code: ProblemShippingUnavailable,
			Message: "the chosen shipping method no longer serves this cart; choose another"})
	}
	for _, p := range q.Promotions {
		out.Promotions = append(out.Promotions, Promotion{PromotionID: p.PromotionID, Name: p.Name, Code: p.Code, Amount: p.Amount})
	}
	for _, p := range q.CodeProblems {
		out.CodeProblems = append(out.CodeProblems, CodeProblem{Code: strings.ToUpper(p.Code), Problem: p.Problem})
	}
	return out
}
