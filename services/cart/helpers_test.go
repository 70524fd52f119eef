package cart

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/clocktest"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
	"github.com/soukhq/souk/services/catalog"
	"github.com/soukhq/souk/services/pricing"
)

// testMigrations is what the cart's database carries in production.
var testMigrations = []store.Migrations{bus.Migrations, Migrations}

// fakeCatalog is a catalogue of variants in memory. Hidden variants answer
// not_found, as unpublished ones do; err, when set, is every answer.
// singles and batches count the calls of GetVariant and GetVariants.
type fakeCatalog struct {
	mu       sync.Mutex
	variants map[string]catalog.VariantRef
	hidden   map[string]bool
	err      error
	singles  int
	batches  int
}

var _ Catalog = (*fakeCatalog)(nil)

func newFakeCatalog() *fakeCatalog {
	return &fakeCatalog{variants: map[string]catalog.VariantRef{}, hidden: map[string]bool{}}
}

// add puts a published variant into the catalogue.
func (f *fakeCatalog) add(sku string) catalog.VariantRef {
	f.mu.Lock()
	defer f.mu.Unlock()
	ref := catalog.VariantRef{
		Variant:            catalog.Variant{ID: id.New("var"), SKU: sku, Title: "Size M", Options: map[string]string{"size": "M"}},
		ProductID:          id.New("prod"),
		ProductTitle:       "Product " + sku,
		ProductHandle:      strings.ToLower(sku),
		ProductStatus:      catalog.StatusPublished,
		ProductCategoryIDs: []string{id.New("cat")},
	}
	f.variants[ref.ID] = ref
	return ref
}

func (f *fakeCatalog) hide(variantID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hidden[variantID] = true
}

// calls returns how many times GetVariant and GetVariants were called.
func (f *fakeCatalog) calls() (singles, batches int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.singles, f.batches
}

func (f *fakeCatalog) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeCatalog) GetVariant(_ context.Context, variantID string) (catalog.VariantRef, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.singles++
	return f.variant(variantID)
}

// variant answers as GetVariant, with f.mu held.
func (f *fakeCatalog) variant(variantID string) (catalog.VariantRef, error) {
	if f.err != nil {
		return catalog.VariantRef{}, f.err
	}
	ref, ok := f.variants[variantID]
	if !ok || f.hidden[variantID] {
		return catalog.VariantRef{}, apperr.New(apperr.NotFound, "variant %q not found", variantID)
	}
	return ref, nil
}

// GetVariants answers as GetVariant would for each id, and refuses more
// than catalog.MaxVariantBatch distinct ids as the catalogue does.
func (f *fakeCatalog) GetVariants(_ context.Context, variantIDs []string) (map[string]catalog.VariantRef, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches++
	distinct := map[string]bool{}
	for _, vid := range variantIDs {
		distinct[vid] = true
	}
	if len(distinct) > catalog.MaxVariantBatch {
		return nil, apperr.New(apperr.ValidationFailed, "at most %d variant ids at once", catalog.MaxVariantBatch)
	}
	out := map[string]catalog.VariantRef{}
	for _, vid := range variantIDs {
		ref, err := f.variant(vid)
		switch {
		case apperr.Is(err, apperr.NotFound):
		case err != nil:
			return nil, err
		default:
			out[vid] = ref
		}
	}
	return out, nil
}

// fakePricing prices carts by simple, known rules: a line costs its unit
// price times its quantity, tax included at 1/11 of it; each valid code
// takes 100 off the first priced line; the chosen method's price is the
// shipping. override, when set, rewrites every quote.
type fakePricing struct {
	mu       sync.Mutex
	prices   map[string]int64                    // "EUR/var_…" → unit price
	codes    map[string]apperr.Code              // CheckCode: "" valid, else the refusal
	stale    map[string]string                   // codes Quote reports as no longer applying
	methods  map[string][]pricing.ShippingOption // country → methods
	override func(*pricing.Quote)
	err      error
	quotes   []pricing.QuoteRequest
}

var _ Pricing = (*fakePricing)(nil)

func newFakePricing() *fakePricing {
	return &fakePricing{
		prices: map[string]int64{},
		codes:  map[string]apperr.Code{"WINTER10": "", "OLD": pricing.CodeExpired, "USEDUP": pricing.CodeExhausted},
		stale:  map[string]string{},
		methods: map[string][]pricing.ShippingOption{
			"NL": {{ID: "ship_standard", Name: "Standard"}, {ID: "ship_express", Name: "Express"}},
			"DE": {{ID: "ship_standard", Name: "Standard"}},
		},
	}
}

func (f *fakePricing) setPrice(currency, variantID string, amount int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prices[currency+"/"+variantID] = amount
}

func (f *fakePricing) removePrice(currency, variantID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.prices, currency+"/"+variantID)
}

func (f *fakePricing) setOverride(fn func(*pricing.Quote)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.override = fn
}

func (f *fakePricing) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakePricing) lastQuote() pricing.QuoteRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.quotes[len(f.quotes)-1]
}

func shippingPrice(methodID string) int64 {
	if methodID == "ship_express" {
		return 1500
	}
	return 495
}

func (f *fakePricing) Quote(_ context.Context, req pricing.QuoteRequest) (pricing.Quote, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return pricing.Quote{}, f.err
	}
	f.quotes = append(f.quotes, req)
	cur := req.Currency
	z := money.Zero(cur)
	q := pricing.Quote{Currency: cur, PricesIncludeTax: true, Lines: []pricing.QuotedLine{},
		Subtotal: z, DiscountTotal: z, ShippingTotal: z, TaxTotal: z, Total: z,
		Promotions: []pricing.AppliedPromotion{}, CodeProblems: []pricing.CodeProblem{}}
	first := -1
	for _, l := range req.Lines {
		ql := pricing.QuotedLine{ID: l.ID, VariantID: l.VariantID, Quantity: l.Quantity, UnitPrice: z, Subtotal: z, Discount: z, Tax: z, Total: z}
		if p, ok := f.prices[cur+"/"+l.VariantID]; ok {
			sub := money.New(p*l.Quantity, cur)
			ql.UnitPrice, ql.Subtotal, ql.Total, ql.Tax = money.New(p, cur), sub, sub, money.New(sub.Amount/11, cur)
			q.Subtotal.Amount += sub.Amount
			q.TaxTotal.Amount += ql.Tax.Amount
			if first < 0 {
				first = len(q.Lines)
			}
		} else {
			ql.Problem = pricing.ProblemPriceMissing
		}
		q.Lines = append(q.Lines, ql)
	}
	for _, code := range req.Codes {
		if problem, ok := f.stale[strings.ToUpper(code)]; ok {
			q.CodeProblems = append(q.CodeProblems, pricing.CodeProblem{Code: code, Problem: problem})
			continue
		}
		if first >= 0 {
			q.Lines[first].Discount.Amount += 100
			q.Lines[first].Total.Amount -= 100
			q.DiscountTotal.Amount += 100
			q.Promotions = append(q.Promotions, pricing.AppliedPromotion{PromotionID: "promo_" + code, Name: "Code " + code, Code: code, Amount: money.New(100, cur)})
		}
	}
	if req.ShippingMethodID != "" && req.ShippingAddress != nil {
		for _, m := range f.methods[req.ShippingAddress.Country] {
			if m.ID == req.ShippingMethodID {
				m.Price = money.New(shippingPrice(m.ID), cur)
				q.Shipping = &m
				q.ShippingTotal = m.Price
			}
		}
	}
	q.Total.Amount = q.Subtotal.Amount - q.DiscountTotal.Amount + q.ShippingTotal.Amount
	if f.override != nil {
		f.override(&q)
	}
	return q, nil
}

func (f *fakePricing) ShippingOptions(_ context.Context, req pricing.QuoteRequest) ([]pricing.ShippingOption, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if req.ShippingAddress == nil {
		return nil, apperr.New(apperr.ValidationFailed, "shipping_address is required")
	}
	out := []pricing.ShippingOption{}
	for _, m := range f.methods[req.ShippingAddress.Country] {
		m.Price = money.New(shippingPrice(m.ID), req.Currency)
		out = append(out, m)
	}
	return out, nil
}

func (f *fakePricing) CheckCode(_ context.Context, code, currency, customerID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	refusal, ok := f.codes[strings.ToUpper(code)]
	switch {
	case !ok:
		return apperr.New(pricing.CodeInvalid, "no such code %q", code)
	case refusal != "":
		return apperr.New(refusal, "code %q cannot be used: %s", code, refusal)
	}
	return nil
}

// env is a cart service on fakes, with a catalogue of three priced
// variants (shirt, mug, lamp: 2999, 1250, 8900 EUR).
type env struct {
	s                *Service
	db               *store.DB
	cat              *fakeCatalog
	pr               *fakePricing
	clock            *clocktest.Clock
	shirt, mug, lamp catalog.VariantRef
}

var testStart = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func newEnv(t testing.TB, db *store.DB, cfg Config) *env {
	t.Helper()
	e := &env{db: db, cat: newFakeCatalog(), pr: newFakePricing(), clock: clocktest.New(testStart)}
	e.s = New(db, bus.NewOutbox(nil), nil, e.cat, e.pr, cfg)
	e.s.now = e.clock.Now
	e.shirt, e.mug, e.lamp = e.cat.add("LIN-M"), e.cat.add("MUG-1"), e.cat.add("LAMP-1")
	e.pr.setPrice("EUR", e.shirt.ID, 2999)
	e.pr.setPrice("EUR", e.mug.ID, 1250)
	e.pr.setPrice("EUR", e.lamp.ID, 8900)
	return e
}

// runStores runs test against a fresh cart service on every engine.
func runStores(t *testing.T, test func(t *testing.T, e *env)) {
	t.Helper()
	storetest.Run(t, testMigrations, func(t *testing.T, db *store.DB) {
		test(t, newEnv(t, db, Config{}))
	})
}

// MustNewSQLiteEnv returns an env on a fresh SQLite database.
func MustNewSQLiteEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	return newEnv(t, storetest.MustOpen(t, store.SQLite, testMigrations...), cfg)
}

var bg = context.Background()

func anon(token string) Caller { return Caller{CartToken: token} }

func customer(subject string) Caller {
	return Caller{Principal: auth.Principal{Subject: subject, Kind: auth.KindCustomer, Name: subject}}
}

func staff() Caller {
	return Caller{Principal: auth.Principal{Subject: "usr_support", Kind: auth.KindStaff, Role: "support"}}
}

// MustCreate makes a EUR cart for the caller and returns it with the
// caller that opens it (the token added for an anonymous one).
func (e *env) MustCreate(t testing.TB, c Caller) (Cart, Caller) {
	t.Helper()
	created, err := e.s.Create(bg, c, CreateInput{Currency: "EUR"})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if c.Principal.Kind != auth.KindCustomer {
		c.CartToken = created.CartToken
	}
	return created, c
}

func (e *env) MustAdd(t testing.TB, c Caller, cartID, variantID string, q int64) Cart {
	t.Helper()
	out, err := e.s.AddItem(bg, c, cartID, ItemInput{VariantID: variantID, Quantity: q}, 0)
	if err != nil {
		t.Fatalf("AddItem(%s × %d): %v", variantID, q, err)
	}
	return out
}

func (e *env) MustGet(t testing.TB, c Caller, cartID string) Cart {
	t.Helper()
	out, err := e.s.Get(bg, c, cartID)
	if err != nil {
		t.Fatalf("Get(%s): %v", cartID, err)
	}
	return out
}

// quantities maps variant id → quantity of a cart's lines.
func quantities(c Cart) map[string]int64 {
	out := map[string]int64{}
	for _, it := range c.Items {
		out[it.VariantID] = it.Quantity
	}
	return out
}

func eur(amount int64) money.Money { return money.New(amount, "EUR") }

func ptr[T any](v T) *T { return &v }

func validAddress() Address {
	return Address{FirstName: "Ada", LastName: "Lovelace", Line1: "Keizersgracht 1", City: "Amsterdam",
		PostalCode: "1015 CJ", Country: "NL", Phone: "+31 20 123 4567"}
}

// countRows counts rows of a query.
func countRows(t testing.TB, db *store.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(bg, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func orderID() string { return id.New("ord") }

func describe(c Cart) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cart %s v%d:", c.ID, c.Version)
	for _, it := range c.Items {
		fmt.Fprintf(&b, " %s×%d", it.SKU, it.Quantity)
	}
	return b.String()
}
