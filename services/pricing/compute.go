package pricing

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/money"
)

// Input is everything Compute needs to price a cart. It is plain data: the
// service loads it (unit prices resolved from the price lists, the
// promotions that may apply, the request's codes checked against their
// usage, the tax rate of the address, the chosen shipping method) and
// Compute does no I/O and reads no clock.
type Input struct {
	Currency       string
	CustomerID     string
	CustomerGroups []string
	// Lines are the cart lines with their resolved prices, in cart order.
	Lines []InputLine
	// Promotions are the candidates: the automatic promotions and those
	// of Codes. Compute checks each again (active, window, codes,
	// conditions, currency, targets), so passing more is harmless.
	Promotions []Promotion
	// Codes are the request's voucher codes, in request order.
	Codes []CodeInput
	// TaxRateBps is the tax rate of the shipping address (basis points).
	TaxRateBps int64
	// Shipping is the chosen shipping method, nil when none is chosen;
	// ShippingCountry the country it must serve.
	Shipping        *ShippingMethod
	ShippingCountry string
	// At is the instant promotions are evaluated at.
	At time.Time
}

// InputLine is a cart line with its resolved price (nil: no price list
// prices the variant in the currency).
type InputLine struct {
	QuoteLine
	Price *LinePrice
}

// LinePrice is a resolved unit price: Amount minor units of the quote's
// currency, gross when IncludesTax, net otherwise.
type LinePrice struct {
	Amount      int64
	IncludesTax bool
	PriceListID string
}

// CodeInput is a voucher code of the request as the store found it:
// PromotionID is "" for a code that does not exist; Problem is the store's
// verdict ("" when it has nothing against the code, or code_invalid,
// code_exhausted, code_not_applicable).
type CodeInput struct {
	Code        string
	PromotionID string
	Problem     string
}

// Shipping problems reported in Quote.ShippingProblem.
const (
	// ShippingUnavailable: the chosen method does not serve the address
	// or has no rate in the currency; the quote carries no shipping.
	ShippingUnavailable = "shipping_unavailable"
)

// lineState is a cart line during the computation.
type lineState struct {
	in       InputLine
	priced   bool
	unit     int64
	subtotal int64
}

func (l lineState) matches(p Promotion) bool {
	if !l.priced {
		return false
	}
	switch p.Target {
	case TargetProduct:
		return slices.Contains(p.TargetIDs, l.in.ProductID)
	case TargetCategory:
		for _, c := range l.in.CategoryIDs {
			if slices.Contains(p.TargetIDs, c) {
				return true
			}
		}
		return false
	}
	return true
}

// Compute prices a cart. It is a pure function: the same Input always gives
// the same Quote, and it never panics on any input (errors are
// validation_failed for an input outside the package's limits).
//
// The rules, in the order they apply:
//
//  1. Tax mode. The quote is tax-exclusive when every priced line's price
//     list is; otherwise it is tax-inclusive, and net prices are converted
//     to gross at the tax rate (and gross to net in an exclusive quote),
//     per unit, through mulDivRound.
//  2. Lines. A line without a price gets Problem "price_missing" and zero
//     amounts, and is left out of every total. Subtotal = unit × quantity.
//  3. Eligibility. A promotion may apply when it is active, At is within
//     [starts_at, ends_at), its customer groups (if any) meet the
//     customer's, the subtotal before discounts reaches min_subtotal (in
//     that currency only), a fixed value is in the quote's currency, some
//     priced line matches its target, and — for a promotion with codes —
//     one of its codes is in the request and usable. A code that does not
//     apply is reported in CodeProblems, never as an error.
//  4. Stacking. Eligible promotions are ordered by priority (highest
//     first), then id. The options are: all combinable promotions together
//     (each applied in that order to what the ones before left), or any one
//     non-combinable promotion alone. The option leaving the customer the
//     lowest subtotal − discounts + shipping wins; a tie goes to the option
//     that comes first in the order (the combinable set counting at its
//     first member's place).
//  5. Discounts. Percentages are taken off the target lines' remaining
//     amount, once per promotion, through mulDivRound, then allocated to
//     the lines (allocate: largest remainder) so that the line discounts
//     add up exactly; fixed amounts come off the order once (allocated the
//     same way) or off every matching unit (product and category targets);
//     buy X get Y discounts the cheapest matching units. No discount
//     exceeds what it discounts.
//  6. Shipping. The method's rate in the currency, free when the
//     subtotal after discounts reaches its threshold, or waived by a
//     free_shipping promotion (shown as shipping 0, the promotion's Amount
//     being the waived price; the waiver is not part of discount_total).
//  7. Tax. One rounding on the whole taxable amount (lines after discount
//     plus shipping, shipping taxed at the address's rate like the goods):
//     extracted when inclusive (gross × r / (10000 + r)), added when
//     exclusive (net × r / 10000); then allocated to the lines and the
//     shipping.
//  8. Totals: total = subtotal − discount_total + shipping_total
//     (+ tax_total when prices exclude tax).
func Compute(in Input) (Quote, error) {
	cur, err := money.ParseCurrency(in.Currency)
	if err != nil {
		return Quote{}, &apperr.Error{Code: apperr.ValidationFailed, Message: err.Error(),
			Fields: []apperr.FieldError{{Field: "currency", Code: "invalid", Message: err.Error()}}}
	}
	var v apperr.Validation
	if in.TaxRateBps < 0 || in.TaxRateBps > MaxRateBps {
		v.Addf("tax_rate_bps", "out_of_range", "a tax rate is from 0 to %d basis points", MaxRateBps)
	}
	if len(in.Lines) > MaxLines {
		v.Addf("lines", "too_many", "at most %d lines", MaxLines)
	}
	for i, l := range in.Lines {
		if l.Quantity < 1 || l.Quantity > MaxQuantity {
			v.Addf(fmt.Sprintf("lines[%d].quantity", i), "out_of_range", "quantity must be from 1 to %d", MaxQuantity)
		}
		if l.Price != nil && (l.Price.Amount < 0 || l.Price.Amount > MaxAmount) {
			v.Addf(fmt.Sprintf("lines[%d].price", i), "out_of_range", "a price is from 0 to %d minor units", int64(MaxAmount))
		}
	}
	if in.Shipping != nil {
		for i, r := range in.Shipping.Rates {
			if r.Amount < 0 || r.Amount > MaxAmount || (r.FreeOver != nil && *r.FreeOver < 0) {
				v.Addf(fmt.Sprintf("shipping.rates[%d]", i), "out_of_range", "a shipping rate is from 0 to %d minor units", int64(MaxAmount))
			}
		}
	}
	if err := v.Err(); err != nil {
		return Quote{}, err
	}
	c := computation{in: in, cur: cur, rate: in.TaxRateBps}
	out, err := c.run()
	if err != nil {
		return Quote{}, fmt.Errorf("compute quote: %w", err)
	}
	return out, nil
}

// computation is one run of Compute.
type computation struct {
	in       Input
	cur      string
	rate     int64
	incl     bool
	lines    []lineState
	subtotal int64
}

// option is one way of stacking promotions, and what it gives.
type option struct {
	promos   []Promotion
	perPromo [][]int64 // line discounts of each promotion
	lineDisc []int64   // per line, all promotions
	discount int64
	shipping int64 // the price charged
	waived   int64 // the price a free_shipping promotion waived
	free     bool
	cost     int64 // subtotal − discount + shipping
}

func (c *computation) run() (Quote, error) {
	// 1. Tax mode.
	priced, exclusive := 0, 0
	for _, l := range c.in.Lines {
		if l.Price != nil {
			priced++
			if !l.Price.IncludesTax {
				exclusive++
			}
		}
	}
	c.incl = !(priced > 0 && exclusive == priced)

	// 2. Lines.
	c.lines = make([]lineState, len(c.in.Lines))
	for i, l := range c.in.Lines {
		st := lineState{in: l}
		if l.Price != nil {
			unit, err := c.convert(l.Price.Amount, l.Price.IncludesTax)
			if err != nil {
				return Quote{}, err
			}
			sub, err := checkedMul(unit, l.Quantity)
			if err != nil {
				return Quote{}, err
			}
			if c.subtotal, err = checkedAdd(c.subtotal, sub); err != nil {
				return Quote{}, err
			}
			st.priced, st.unit, st.subtotal = true, unit, sub
		}
		c.lines[i] = st
	}

	// 3. Eligibility, and the codes' fate.
	eligible, codeOf, problems, codeOrder := c.eligible()

	// 4. Stacking: build the options, evaluate them, keep the best.
	var comb []Promotion
	type ranked struct {
		promos []Promotion
		rank   int
	}
	var opts []ranked
	for i, p := range eligible {
		if p.Combinable {
			if len(comb) == 0 {
				opts = append(opts, ranked{rank: i})
			}
			comb = append(comb, p)
			continue
		}
		opts = append(opts, ranked{promos: []Promotion{p}, rank: i})
	}
	for i := range opts {
		if opts[i].promos == nil {
			opts[i].promos = comb
		}
	}
	best, err := c.evaluate(nil)
	if err != nil {
		return Quote{}, err
	}
	for i, o := range opts {
		res, err := c.evaluate(o.promos)
		if err != nil {
			return Quote{}, err
		}
		// opts are in rank order: only a strictly lower cost displaces an
		// earlier option.
		if i == 0 || res.cost < best.cost {
			best = res
		}
	}

	// 5–8. The quote of the chosen option.
	return c.quote(best, codeOf, problems, codeOrder)
}

// convert returns a unit price in the quote's tax mode.
func (c *computation) convert(amount int64, includesTax bool) (int64, error) {
	switch {
	case includesTax == c.incl || c.rate == 0:
		return amount, nil
	case c.incl: // net → gross
		return mulDivRound(amount, 10_000+c.rate, 10_000)
	default: // gross → net
		return mulDivRound(amount, 10_000, 10_000+c.rate)
	}
}

// eligible returns the promotions that may apply, ordered by priority then
// id; the code applied for each promotion that has codes; the problem of
// each code that cannot apply; and the request's codes in order.
func (c *computation) eligible() ([]Promotion, map[string]string, map[string]string, []string) {
	byID := map[string]Promotion{}
	var all []Promotion
	for _, p := range c.in.Promotions {
		if _, dup := byID[p.ID]; !dup {
			byID[p.ID] = p
			all = append(all, p)
		}
	}
	slices.SortFunc(all, func(a, b Promotion) int {
		return cmp.Or(cmp.Compare(b.Priority, a.Priority), cmp.Compare(a.ID, b.ID))
	})

	codeOf := map[string]string{}   // promotion id → the code applied
	problems := map[string]string{} // code → problem
	var order []string
	for _, ci := range c.in.Codes {
		code := NormalizeCode(ci.Code)
		if code == "" || slices.Contains(order, code) {
			continue
		}
		order = append(order, code)
		p, known := byID[ci.PromotionID]
		switch {
		case ci.Problem != "":
			problems[code] = ci.Problem
		case ci.PromotionID == "" || !known || !p.Active || !slices.Contains(p.Codes, code):
			problems[code] = string(CodeInvalid)
		case p.StartsAt != nil && c.in.At.Before(*p.StartsAt):
			problems[code] = string(CodeInvalid) // not yet: do not reveal it
		case p.EndsAt != nil && !c.in.At.Before(*p.EndsAt):
			problems[code] = string(CodeExpired)
		case codeOf[p.ID] != "":
			problems[code] = string(CodeNotApplicable) // another code of the same promotion applies
		default:
			codeOf[p.ID] = code
		}
	}

	var out []Promotion
	for _, p := range all {
		if !p.Active || (p.StartsAt != nil && c.in.At.Before(*p.StartsAt)) || (p.EndsAt != nil && !c.in.At.Before(*p.EndsAt)) {
			continue
		}
		if len(p.Codes) > 0 && codeOf[p.ID] == "" {
			continue
		}
		if !c.conditionsHold(p) {
			if code := codeOf[p.ID]; code != "" {
				problems[code] = string(CodeNotApplicable)
				delete(codeOf, p.ID)
			}
			continue
		}
		out = append(out, p)
	}
	return out, codeOf, problems, order
}

// conditionsHold reports whether the promotion's conditions, currency and
// target fit the cart.
func (c *computation) conditionsHold(p Promotion) bool {
	if gs := p.Conditions.CustomerGroups; len(gs) > 0 {
		member := false
		for _, g := range c.in.CustomerGroups {
			if slices.Contains(gs, normalizeGroup(g)) {
				member = true
				break
			}
		}
		if !member {
			return false
		}
	}
	if m := p.Conditions.MinSubtotal; m != nil && (m.Currency != c.cur || c.subtotal < m.Amount) {
		return false
	}
	switch p.Type {
	case TypePercentage:
		if p.Value == nil || p.Value.Percent < 1 || p.Value.Percent > 100 {
			return false
		}
	case TypeFixed:
		if p.Value == nil || p.Value.Amount == nil || p.Value.Amount.Currency != c.cur || p.Value.Amount.Amount < 0 {
			return false
		}
	case TypeBuyXGetY:
		if b := p.BuyXGetY; b == nil || b.BuyQuantity < 1 || b.GetQuantity < 1 || b.DiscountPercent < 1 || b.DiscountPercent > 100 {
			return false
		}
	case TypeFreeShipping:
		return true
	default:
		return false
	}
	for _, l := range c.lines {
		if l.matches(p) {
			return true
		}
	}
	return false
}

// evaluate applies the promotions in order and prices shipping.
func (c *computation) evaluate(promos []Promotion) (option, error) {
	o := option{promos: promos, perPromo: make([][]int64, len(promos)), lineDisc: make([]int64, len(c.lines))}
	remaining := make([]int64, len(c.lines))
	for i, l := range c.lines {
		remaining[i] = l.subtotal
	}
	freeShipping := false
	for k, p := range promos {
		d, err := c.discounts(p, remaining)
		if err != nil {
			return option{}, err
		}
		for i, x := range d {
			remaining[i] -= x
			o.lineDisc[i] += x
			o.discount += x
		}
		o.perPromo[k] = d
		if p.Type == TypeFreeShipping {
			freeShipping = true
		}
	}
	if m := c.in.Shipping; m != nil && m.shipsTo(c.in.ShippingCountry) {
		// Shipping rates are read in the quote's tax mode: no conversion.
		if amount, freeOver, ok := m.rateFor(c.cur); ok {
			switch {
			case freeOver != nil && c.subtotal-o.discount >= *freeOver:
				o.free = true
			case freeShipping:
				o.free, o.waived = true, amount
			default:
				o.shipping = amount
			}
		}
	}
	var err error
	if o.cost, err = checkedAdd(c.subtotal-o.discount, o.shipping); err != nil {
		return option{}, err
	}
	return o, nil
}

// discounts returns what promotion p takes off each line, given what the
// promotions before it left (remaining); each is at most remaining[i].
func (c *computation) discounts(p Promotion, remaining []int64) ([]int64, error) {
	d := make([]int64, len(c.lines))
	var idx []int
	var base int64
	for i, l := range c.lines {
		if l.matches(p) {
			idx = append(idx, i)
			base += remaining[i] // ≤ subtotal: cannot overflow
		}
	}
	spread := func(total int64) error {
		w := make([]int64, len(idx))
		for k, i := range idx {
			w[k] = remaining[i]
		}
		shares, err := allocate(min(total, base), w)
		if err != nil {
			return err
		}
		for k, i := range idx {
			d[i] = shares[k]
		}
		return nil
	}
	switch p.Type {
	case TypePercentage:
		total, err := mulDivRound(base, p.Value.Percent, 100)
		if err != nil {
			return nil, err
		}
		return d, spread(total)
	case TypeFixed:
		amount := p.Value.Amount.Amount
		if p.Target == TargetOrder {
			return d, spread(amount)
		}
		for _, i := range idx {
			per, err := checkedMul(amount, c.lines[i].in.Quantity)
			if err != nil {
				per = remaining[i]
			}
			d[i] = min(per, remaining[i])
		}
	case TypeBuyXGetY:
		b := p.BuyXGetY
		var units int64
		for _, i := range idx {
			units += c.lines[i].in.Quantity
		}
		free := units / (b.BuyQuantity + b.GetQuantity) * b.GetQuantity
		// The cheapest matching units are the discounted ones.
		cheap := slices.Clone(idx)
		slices.SortStableFunc(cheap, func(a, b int) int { return cmp.Compare(c.lines[a].unit, c.lines[b].unit) })
		for _, i := range cheap {
			if free == 0 {
				break
			}
			n := min(free, c.lines[i].in.Quantity)
			free -= n
			full, err := checkedMul(c.lines[i].unit, n)
			if err != nil {
				return nil, err
			}
			x, err := mulDivRound(full, b.DiscountPercent, 100)
			if err != nil {
				return nil, err
			}
			d[i] = min(x, remaining[i])
		}
	}
	return d, nil
}

// quote assembles the Quote of the chosen option: tax, totals, lines,
// applied promotions, code problems.
func (c *computation) quote(o option, codeOf, problems map[string]string, codeOrder []string) (Quote, error) {
	zero := money.Zero(c.cur)
	m := func(a int64) money.Money { return money.Money{Amount: a, Currency: c.cur} }
	q := Quote{
		Currency: c.cur, PricesIncludeTax: c.incl, TaxRateBps: c.rate,
		Lines:        make([]QuotedLine, len(c.lines)),
		Promotions:   []AppliedPromotion{},
		CodeProblems: []CodeProblem{},
	}

	// Tax: one rounding on the taxable amount, then allocated.
	weights := make([]int64, 0, len(c.lines)+1)
	var taxable int64
	for i, l := range c.lines {
		w := l.subtotal - o.lineDisc[i]
		weights = append(weights, w)
		taxable += w
	}
	weights = append(weights, o.shipping)
	taxable, err := checkedAdd(taxable, o.shipping)
	if err != nil {
		return Quote{}, err
	}
	den := int64(10_000)
	if c.incl {
		den += c.rate
	}
	tax, err := mulDivRound(taxable, c.rate, den)
	if err != nil {
		return Quote{}, err
	}
	taxShares, err := allocate(tax, weights)
	if err != nil {
		return Quote{}, err
	}

	for i, l := range c.lines {
		ql := QuotedLine{ID: l.in.ID, VariantID: l.in.VariantID, Quantity: l.in.Quantity,
			UnitPrice: zero, Subtotal: zero, Discount: zero, Tax: zero, Total: zero}
		if !l.priced {
			ql.Problem = ProblemPriceMissing
		} else {
			ql.UnitPrice, ql.Subtotal = m(l.unit), m(l.subtotal)
			ql.Discount, ql.Tax = m(o.lineDisc[i]), m(taxShares[i])
			ql.Total = m(l.subtotal - o.lineDisc[i])
		}
		q.Lines[i] = ql
	}
	q.Subtotal, q.DiscountTotal = m(c.subtotal), m(o.discount)
	q.ShippingTotal, q.ShippingTax, q.TaxTotal = m(o.shipping), m(taxShares[len(c.lines)]), m(tax)
	total := o.cost
	if !c.incl {
		if total, err = checkedAdd(total, tax); err != nil {
			return Quote{}, err
		}
	}
	q.Total = m(total)

	if sm := c.in.Shipping; sm != nil {
		if _, _, ok := sm.rateFor(c.cur); ok && sm.shipsTo(c.in.ShippingCountry) {
			q.Shipping = &ShippingOption{ID: sm.ID, Name: sm.Name, Price: m(o.shipping), Free: o.free}
		} else {
			q.ShippingProblem = ShippingUnavailable
		}
	}

	waived := false
	applied := map[string]bool{}
	for k, p := range o.promos {
		var amount int64
		for _, x := range o.perPromo[k] {
			amount += x
		}
		if p.Type == TypeFreeShipping && !waived && o.waived > 0 {
			amount, waived = o.waived, true
		}
		q.Promotions = append(q.Promotions, AppliedPromotion{PromotionID: p.ID, Name: p.Name, Code: codeOf[p.ID], Amount: m(amount)})
		applied[p.ID] = true
	}
	for pid, code := range codeOf {
		if !applied[pid] {
			problems[code] = string(CodeNotApplicable) // lost to a better option
		}
	}
	for _, code := range codeOrder {
		if pr := problems[code]; pr != "" {
			q.CodeProblems = append(q.CodeProblems, CodeProblem{Code: code, Problem: pr})
		}
	}
	return q, nil
}
