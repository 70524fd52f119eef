package pricing

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/money"
)

// normalizeQuote checks a quote request and returns it normalised: currency
// and codes upper-case, groups lower-case, the address's country and region
// in ISO form. Errors: validation_failed naming each bad field.
func normalizeQuote(req QuoteRequest) (QuoteRequest, error) {
	var v apperr.Validation
	validateCurrency(&v, "currency", &req.Currency)
	validateExternalID(&v, "customer_id", req.CustomerID, false)
	req.CustomerGroups = validateGroups(&v, "customer_groups", req.CustomerGroups)
	if len(req.Lines) > MaxLines {
		v.Addf("lines", "too_many", "at most %d lines", MaxLines)
	} else {
		req.Lines = slices.Clone(req.Lines)
		for i, l := range req.Lines {
			f := fmt.Sprintf("lines[%d]", i)
			validateExternalID(&v, f+".id", l.ID, false)
			validateExternalID(&v, f+".variant_id", l.VariantID, true)
			validateExternalID(&v, f+".product_id", l.ProductID, false)
			if l.Quantity < 1 || l.Quantity > MaxQuantity {
				v.Addf(f+".quantity", "out_of_range", "quantity must be from 1 to %d", MaxQuantity)
			}
			if len(l.CategoryIDs) > MaxTargetIDs {
				v.Addf(f+".category_ids", "too_many", "at most %d categories", MaxTargetIDs)
			}
		}
	}
	req.Codes = normalizeCodes(&v, "codes", req.Codes)
	if a := req.ShippingAddress; a != nil {
		addr := *a
		validateCountry(&v, "shipping_address.country", &addr.Country)
		addr.Region = normalizeRegion(addr.Country, addr.Region)
		if addr.Region != "" && !regionPattern.MatchString(addr.Region) {
			v.Add("shipping_address.region", "invalid", "want an ISO 3166-2 subdivision code such as \"US-CA\"")
		}
		req.ShippingAddress = &addr
	}
	validateExternalID(&v, "shipping_method_id", req.ShippingMethodID, false)
	return req, v.Err()
}

// normalizeCodes upper-cases the codes and drops blanks and repeats.
func normalizeCodes(v *apperr.Validation, field string, codes []string) []string {
	if len(codes) > MaxCodes {
		v.Addf(field, "too_many", "at most %d codes", MaxCodes)
		return nil
	}
	out := make([]string, 0, len(codes))
	for i, c := range codes {
		c = NormalizeCode(c)
		switch {
		case c == "" || slices.Contains(out, c):
		case len(c) > MaxCodeLen:
			v.Addf(fmt.Sprintf("%s[%d]", field, i), "too_long", "a code has at most %d characters", MaxCodeLen)
		default:
			out = append(out, c)
		}
	}
	return out
}

// country returns the request's country and region, or the store's
// default country when there is no address yet.
func (s *Service) country(req QuoteRequest) (string, string) {
	if a := req.ShippingAddress; a != nil && a.Country != "" {
		return a.Country, a.Region
	}
	return s.cfg.DefaultCountry, ""
}

// input loads what Compute needs for a normalised request, reading
// definitions through vw.
func (s *Service) input(ctx context.Context, vw *view, req QuoteRequest) (Input, error) {
	at := req.At
	if at.IsZero() {
		at = s.now()
	}
	in := Input{Currency: req.Currency, CustomerID: req.CustomerID, CustomerGroups: req.CustomerGroups, At: at}
	in.ShippingCountry, _ = s.country(req)

	// Prices.
	var variants []string
	for _, l := range req.Lines {
		if !slices.Contains(variants, l.VariantID) {
			variants = append(variants, l.VariantID)
		}
	}
	rows, err := vw.priceRows(ctx, req.Currency, variants)
	if err != nil {
		return Input{}, err
	}
	prices := resolvePrices(rows, req.Currency, req.CustomerGroups, at)
	in.Lines = make([]InputLine, len(req.Lines))
	for i, l := range req.Lines {
		in.Lines[i] = InputLine{QuoteLine: l}
		if r, ok := prices[l.VariantID]; ok {
			in.Lines[i].Price = &LinePrice{Amount: r.amount, IncludesTax: r.list.PricesIncludeTax, PriceListID: r.list.ID}
		}
	}

	// Promotions: the automatic ones, and those of the codes.
	t, err := vw.tables(ctx)
	if err != nil {
		return Input{}, err
	}
	in.Promotions = t.automatic
	if in.Codes, err = s.codeInputs(ctx, vw, req.Codes, req.CustomerID, &in.Promotions); err != nil {
		return Input{}, err
	}

	// Tax.
	if rate, found := t.taxRate(s.country(req)); found {
		in.TaxRateBps = rate.RateBps
	}

	// The chosen shipping method. One that is unknown or inactive is
	// passed as a method without rates, which Compute reports as
	// shipping_unavailable.
	if req.ShippingMethodID != "" {
		m, ok := t.shipping[req.ShippingMethodID]
		switch {
		case !ok:
			m = ShippingMethod{ID: req.ShippingMethodID}
		case !m.Active:
			m.Rates = nil
		}
		in.Shipping = &m
	}
	return in, nil
}

// codeInputs looks the codes up, adds their promotions to promos, and says
// what the store has against each: unknown (code_invalid), a usage limit
// reached (code_exhausted), or a per-customer limit without a customer
// (code_not_applicable). Definitions come through vw; use counts are read
// from the database every time.
func (s *Service) codeInputs(ctx context.Context, vw *view, codes []string, customerID string, promos *[]Promotion) ([]CodeInput, error) {
	if len(codes) == 0 {
		return nil, nil
	}
	defs, err := vw.codes(ctx, codes)
	if err != nil {
		return nil, err
	}
	var ids, limited []string
	for _, c := range codes {
		d, ok := defs[c]
		if !ok {
			continue
		}
		if !slices.Contains(ids, d.promotionID) {
			ids = append(ids, d.promotionID)
		}
		if d.usageLimit != nil {
			limited = append(limited, c)
		}
	}
	slices.Sort(ids)
	coded, err := vw.promotions(ctx, ids)
	if err != nil {
		return nil, err
	}
	*promos = append(*promos, coded...)
	uses, err := codeRows(ctx, s.db, limited)
	if err != nil {
		return nil, err
	}
	out := make([]CodeInput, len(codes))
	for i, c := range codes {
		out[i] = CodeInput{Code: c}
		d, ok := defs[c]
		if !ok {
			out[i].Problem = string(CodeInvalid)
			continue
		}
		out[i].PromotionID = d.promotionID
		if d.usageLimit != nil && uses[c].used >= *d.usageLimit {
			out[i].Problem = string(CodeExhausted)
			continue
		}
		j := slices.IndexFunc(coded, func(p Promotion) bool { return p.ID == d.promotionID })
		if j < 0 || coded[j].UsageLimitPerCustomer == nil {
			continue
		}
		if customerID == "" {
			out[i].Problem = string(CodeNotApplicable)
			continue
		}
		used, err := customerUsed(ctx, s.db, d.promotionID, customerID)
		if err != nil {
			return nil, err
		}
		if used >= *coded[j].UsageLimitPerCustomer {
			out[i].Problem = string(CodeExhausted)
		}
	}
	return out, nil
}

// Quote implements Client: it loads the prices, promotions, codes, tax rate
// and shipping method of the request and calls Compute.
func (s *Service) Quote(ctx context.Context, req QuoteRequest) (Quote, error) {
	req, err := normalizeQuote(req)
	if err != nil {
		return Quote{}, fmt.Errorf("quote: %w", err)
	}
	vw, err := s.view(ctx)
	if err != nil {
		return Quote{}, fmt.Errorf("quote: %w", err)
	}
	in, err := s.input(ctx, vw, req)
	if err != nil {
		return Quote{}, fmt.Errorf("quote: %w", err)
	}
	q, err := Compute(in)
	if err != nil {
		return Quote{}, fmt.Errorf("quote: %w", err)
	}
	return q, nil
}

// ShippingOptions implements Client: the active methods that serve the
// request's country (the default country without an address) and have a
// rate in its currency, each priced for the cart as Quote would price it
// with that method chosen — 0 when its free-over threshold is met or a
// free_shipping promotion applies. Ordered by price, then name, then id.
func (s *Service) ShippingOptions(ctx context.Context, req QuoteRequest) ([]ShippingOption, error) {
	req, err := normalizeQuote(req)
	if err != nil {
		return nil, fmt.Errorf("shipping options: %w", err)
	}
	req.ShippingMethodID = ""
	vw, err := s.view(ctx)
	if err != nil {
		return nil, fmt.Errorf("shipping options: %w", err)
	}
	in, err := s.input(ctx, vw, req)
	if err != nil {
		return nil, fmt.Errorf("shipping options: %w", err)
	}
	t, err := vw.tables(ctx)
	if err != nil {
		return nil, fmt.Errorf("shipping options: %w", err)
	}
	out := []ShippingOption{}
	for _, m := range t.active {
		if _, _, ok := m.rateFor(in.Currency); !ok || !m.shipsTo(in.ShippingCountry) {
			continue
		}
		in.Shipping = &m
		q, err := Compute(in)
		if err != nil {
			return nil, fmt.Errorf("shipping options: %w", err)
		}
		if q.Shipping != nil {
			out = append(out, *q.Shipping)
		}
	}
	slices.SortFunc(out, func(a, b ShippingOption) int {
		return cmp.Or(cmp.Compare(a.Price.Amount, b.Price.Amount), strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Prices implements Client: the price of each variant for a shopper of the
// groups in the currency, now, by the most-specific rule, as stored in its
// list (gross or net as the list says). Errors: validation_failed.
func (s *Service) Prices(ctx context.Context, currency string, customerGroups []string, variantIDs []string) (map[string]money.Money, error) {
	var v apperr.Validation
	validateCurrency(&v, "currency", &currency)
	groups := validateGroups(&v, "groups", customerGroups)
	if len(variantIDs) > MaxVariantIDs {
		v.Addf("variant_ids", "too_many", "at most %d variants", MaxVariantIDs)
	}
	var ids []string
	for i, vid := range variantIDs {
		validateExternalID(&v, fmt.Sprintf("variant_ids[%d]", i), vid, true)
		if strings.Contains(vid, ",") {
			v.Add(fmt.Sprintf("variant_ids[%d]", i), "invalid", "a variant id has no commas")
		}
		if !slices.Contains(ids, vid) {
			ids = append(ids, vid)
		}
	}
	if err := v.Err(); err != nil {
		return nil, fmt.Errorf("prices: %w", err)
	}
	vw, err := s.view(ctx)
	if err != nil {
		return nil, fmt.Errorf("prices: %w", err)
	}
	rows, err := vw.priceRows(ctx, currency, ids)
	if err != nil {
		return nil, fmt.Errorf("prices: %w", err)
	}
	out := map[string]money.Money{}
	for vid, r := range resolvePrices(rows, currency, groups, s.now()) {
		out[vid] = money.Money{Amount: r.amount, Currency: currency}
	}
	return out, nil
}

// CheckCode implements Client: nil when the code exists, its promotion is
// active and within its window, and neither its usage limit nor — when
// customerID is given — the customer's limit is reached; otherwise
// code_invalid, code_expired or code_exhausted. Whether the code's
// conditions hold for a cart is the quote's business.
func (s *Service) CheckCode(ctx context.Context, code, currency, customerID string) error {
	code = NormalizeCode(code)
	var v apperr.Validation
	if currency != "" {
		validateCurrency(&v, "currency", &currency)
	}
	validateExternalID(&v, "customer_id", customerID, false)
	if err := v.Err(); err != nil {
		return fmt.Errorf("check code: %w", err)
	}
	if code == "" || len(code) > MaxCodeLen {
		return codeError(CodeInvalid, code)
	}
	vw, err := s.view(ctx)
	if err != nil {
		return fmt.Errorf("check code: %w", err)
	}
	var promos []Promotion
	ins, err := s.codeInputs(ctx, vw, []string{code}, customerID, &promos)
	if err != nil {
		return fmt.Errorf("check code: %w", err)
	}
	if ins[0].Problem == string(CodeInvalid) || len(promos) == 0 {
		return codeError(CodeInvalid, code)
	}
	if problem := usableAt(promos[0], s.now()); problem != "" {
		return codeError(problem, code)
	}
	if ins[0].Problem == string(CodeExhausted) {
		return codeError(CodeExhausted, code)
	}
	// code_not_applicable, a per-customer code without a customer, is
	// the quote's business.
	return nil
}

// usableAt returns "" when the promotion is active and within its window
// at the instant, else code_invalid (inactive or not started: an upcoming
// promotion is not revealed) or code_expired.
func usableAt(p Promotion, at time.Time) apperr.Code {
	switch {
	case !p.Active, p.StartsAt != nil && at.Before(*p.StartsAt):
		return CodeInvalid
	case p.EndsAt != nil && !at.Before(*p.EndsAt):
		return CodeExpired
	}
	return ""
}

// codeError is the error of a code that cannot be used.
func codeError(problem apperr.Code, code string) error {
	msg := map[apperr.Code]string{
		CodeInvalid:       "code %q is not valid",
		CodeExpired:       "code %q has expired",
		CodeExhausted:     "code %q has been used up",
		CodeNotApplicable: "code %q does not apply",
	}[problem]
	return &apperr.Error{Code: problem, Message: fmt.Sprintf(msg, code),
		Fields: []apperr.FieldError{{Field: "code", Code: string(problem), Message: fmt.Sprintf(msg, code)}}}
}
