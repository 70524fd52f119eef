package orders

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/clocktest"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
	"github.com/soukhq/souk/services/cart"
	"github.com/soukhq/souk/services/catalog"
	"github.com/soukhq/souk/services/inventory"
	"github.com/soukhq/souk/services/payments"
	"github.com/soukhq/souk/services/pricing"
)

var bg = context.Background()

// testMigrations is what the orders database carries in production, plus
// the idempotency table the gateway's middleware uses in the HTTP tests.
var testMigrations = []store.Migrations{bus.Migrations, Migrations, httpx.IdempotencyMigrations}

var testStart = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// world is a set of real participants — catalogue, pricing, inventory,
// cart and payments with its test provider — each on its own database of
// one engine, as one process runs them, with a shop in them (NL tax, a
// shipping method, a EUR price list, a stock location). Opening and
// migrating five databases is most of an env's cost, PostgreSQL's above
// all, so tests share a world per engine and clock mode; each env keeps to
// its own SKUs and voucher codes (suffixed with the env's number) and
// counts the provider's work from where it began. Tests never run in
// parallel, so the shared fake clock only ever moves forward.
type world struct {
	clock  *clocktest.Clock // nil: real time
	cat    *catalog.Service
	pr     *pricing.Service
	inv    *inventory.Service
	carts  *cart.Service
	pay    *payments.Service
	tp     *payments.TestProvider
	loc    inventory.Location
	method pricing.ShippingMethod

	mu     sync.Mutex
	list   pricing.PriceList
	prices []pricing.Price
}

type worldKey struct {
	engine store.Engine
	fake   bool
}

var (
	worldsMu sync.Mutex
	worlds   = map[worldKey]*world{}
	cleanups []func()
	envSeq   atomic.Int64
)

// TestMain closes the shared worlds' databases (and drops their
// PostgreSQL schemas) after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, f := range cleanups {
		f()
	}
	os.Exit(code)
}

// openShared opens a database that outlives the test that first needs it.
func openShared(t testing.TB, engine store.Engine, ms ...store.Migrations) *store.DB {
	t.Helper()
	cfg := store.Config{}
	switch engine {
	case store.SQLite:
		dir, err := os.MkdirTemp("", "orders-world-")
		if err != nil {
			t.Fatal(err)
		}
		cleanups = append(cleanups, func() { _ = os.RemoveAll(dir) })
		cfg.URL = "sqlite:" + filepath.Join(dir, "test.db")
	case store.Postgres:
		url := os.Getenv(storetest.PostgresURLEnv)
		if url == "" {
			t.Skipf("PostgreSQL suite skipped: set %s", storetest.PostgresURLEnv)
		}
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		cfg.URL, cfg.Schema = url, "t_"+hex.EncodeToString(b)
	}
	// Small pools: the tests share one PostgreSQL server (and its
	// max_connections) with every other package's tests.
	cfg.MaxOpenConns = 12
	db, err := store.Open(bg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	db.SQL().SetMaxIdleConns(2)
	cleanups = append(cleanups, func() {
		if engine == store.Postgres {
			_, _ = db.Exec(bg, `DROP SCHEMA IF EXISTS `+cfg.Schema+` CASCADE`)
		}
		db.Close()
	})
	if err := db.Migrate(bg, append([]store.Migrations{bus.Migrations}, ms...)...); err != nil {
		t.Fatal(err)
	}
	return db
}

// worldFor returns the engine's shared world on a real or a fake clock.
func worldFor(t testing.TB, engine store.Engine, fake bool) *world {
	t.Helper()
	worldsMu.Lock()
	defer worldsMu.Unlock()
	key := worldKey{engine, fake}
	if w := worlds[key]; w != nil {
		return w
	}
	w := &world{}
	var (
		invOpts []inventory.Option
		payOpts []payments.Option
	)
	if fake {
		w.clock = clocktest.New(testStart)
		invOpts = append(invOpts, inventory.WithClock(w.clock.Now))
		payOpts = append(payOpts, payments.WithClock(w.clock.Now))
	}
	w.cat = catalog.New(openShared(t, engine, catalog.Migrations), nil, nil)
	w.pr = pricing.New(openShared(t, engine, pricing.Migrations), nil, nil, pricing.Config{})
	w.inv = inventory.New(openShared(t, engine, inventory.Migrations), nil, nil, inventory.Config{}, invOpts...)
	w.carts = cart.New(openShared(t, engine, cart.Migrations), nil, nil, w.cat, w.pr, cart.Config{})
	w.tp = payments.NewTestProvider(10 * time.Millisecond)
	var err error
	w.pay, err = payments.New(openShared(t, engine, payments.Migrations), nil, nil,
		payments.Config{Timeout: 100 * time.Millisecond, ProviderMaxAttempts: 1, TestProviderSlowDelay: 10 * time.Millisecond,
			BreakerFailureThreshold: 1000}, // tok_timeout tests must not open the shared provider's breaker
		append(payOpts, payments.WithProvider(w.tp))...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = w.pr.CreateTaxRate(bg, pricing.TaxRateInput{Country: "NL", RateBps: 2100, Name: "BTW"}); err != nil {
		t.Fatal(err)
	}
	if w.method, err = w.pr.CreateShippingMethod(bg, pricing.ShippingMethodInput{Name: "Standard", Countries: []string{"NL"},
		Rates: []pricing.ShippingRate{{Currency: "EUR", Amount: 495}}}); err != nil {
		t.Fatal(err)
	}
	if w.list, err = w.pr.CreatePriceList(bg, pricing.PriceListInput{Name: "EUR retail", Currency: "EUR", PricesIncludeTax: true,
		Prices: []pricing.Price{}}); err != nil {
		t.Fatal(err)
	}
	if w.loc, err = w.inv.CreateLocation(bg, inventory.LocationInput{Code: "DC", Name: "Warehouse"}); err != nil {
		t.Fatal(err)
	}
	worlds[key] = w
	return w
}

// env is the orders service, on a database of its own, with a world's
// real participants.
type env struct {
	*world
	t     testing.TB
	db    *store.DB
	s     *Service
	cfg   Config
	deps  Deps
	wrap  func(Deps) Deps
	fake  bool
	hooks hooks
	reg   prometheus.Registerer
	ns    string                     // suffix of this env's SKUs and codes
	base  map[payments.Operation]int // the provider's totals when the env began

	mu       sync.Mutex
	variants map[string]string // SKU (as the test names it) → variant id
	stops    []func()
}

// envOption tunes newEnv.
type envOption func(*env)

// withConfig sets the orders' Config (merged over the test defaults).
func withConfig(f func(c *Config)) envOption { return func(e *env) { f(&e.cfg) } }

// withFakeClock puts the env on its world's settable clock.
func withFakeClock() envOption { return func(e *env) { e.fake = true } }

// withDeps wraps the real participants (to make them fail).
func withDeps(wrap func(real Deps) Deps) envOption {
	return func(e *env) { e.wrap = wrap }
}

// withRegistry makes the env's services export their metrics on reg.
func withRegistry(reg prometheus.Registerer) envOption { return func(e *env) { e.reg = reg } }

// withTestHooks installs crash hooks.
func withTestHooks(h hooks) envOption { return func(e *env) { e.hooks = h } }

// testConfig is the orders' Config of the tests: quick polls and backoffs,
// generous timeouts (the flash sale runs 32 checkouts at once on SQLite).
func testConfig() Config {
	return Config{
		WaitBudget: 10 * time.Second, CallTimeout: 10 * time.Second, StepTimeout: 30 * time.Second, SagaDeadline: 2 * time.Minute,
		LeaseTTL: 30 * time.Second, PollInterval: 20 * time.Millisecond, RetryBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Workers: 16,
	}
}

// newEnv makes an orders service on a fresh database, with the engine's
// shared participants, and runs its executor until the test ends.
func newEnv(t testing.TB, engine store.Engine, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, cfg: testConfig(), variants: map[string]string{}, ns: fmt.Sprint(envSeq.Add(1))}
	for _, o := range opts {
		o(e)
	}
	e.world = worldFor(t, engine, e.fake)
	e.base = map[payments.Operation]int{}
	for _, op := range []payments.Operation{payments.OpAuthorize, payments.OpCapture, payments.OpVoid, payments.OpRefund} {
		e.base[op] = e.tp.Total(op)
	}
	e.deps = Deps{Carts: e.carts, Pricing: e.pr, Inventory: e.inv, Payments: e.pay}
	if e.wrap != nil {
		e.deps = e.wrap(e.deps)
	}
	e.db = storetest.MustOpen(t, engine, testMigrations...)
	if engine == store.Postgres {
		e.db.SQL().SetMaxOpenConns(12)
		e.db.SQL().SetMaxIdleConns(2)
	}
	e.s = e.newService()
	e.start(e.s)
	return e
}

// newService makes another orders Service on the env's database (another
// process, as far as leases go).
func (e *env) newService() *Service {
	e.t.Helper()
	var opts []Option
	if e.clock != nil {
		opts = append(opts, WithClock(e.clock.Now))
	}
	opts = append(opts, withHooks(e.hooks), WithMetrics(e.reg))
	s, err := New(e.db, nil, nil, e.cfg, e.deps, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// start runs s's executor until stop (or the end of the test).
func (e *env) start(s *Service) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			e.t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	e.mu.Lock()
	e.stops = append(e.stops, stop)
	e.mu.Unlock()
	e.t.Cleanup(stop)
	return stop
}

// sku is the env's own name of the SKU the test calls name.
func (e *env) sku(name string) string { return name + "-" + e.ns }

// code is the env's own voucher code of the one the test calls name.
func (e *env) code(name string) string { return name + e.ns }

// MustProduct adds a published product with one variant of the SKU,
// priced (minor units, tax included) and stocked.
func (e *env) MustProduct(t testing.TB, sku string, price, stock int64) string {
	t.Helper()
	p, err := e.cat.CreateProduct(bg, catalog.ProductInput{Title: "Product " + sku, Status: catalog.StatusPublished,
		Variants: []catalog.VariantInput{{SKU: e.sku(sku)}}})
	if err != nil {
		t.Fatal(err)
	}
	variant := p.Variants[0].ID
	e.mu.Lock()
	e.variants[sku] = variant
	e.mu.Unlock()
	e.world.mu.Lock()
	e.prices = append(e.prices, pricing.Price{VariantID: variant, Amount: price})
	prices := append([]pricing.Price(nil), e.prices...)
	_, err = e.pr.UpdatePriceList(bg, e.list.ID, pricing.PriceListPatch{Prices: &prices}, 0)
	e.world.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.inv.SetLevel(bg, e.sku(sku), e.loc.ID, inventory.LevelInput{OnHand: stock}, 0); err != nil {
		t.Fatal(err)
	}
	return variant
}

// MustVoucher creates a 10 %-off voucher code with a usage limit.
func (e *env) MustVoucher(t testing.TB, code string, limit int64) pricing.Promotion {
	t.Helper()
	p, err := e.pr.CreatePromotion(bg, pricing.PromotionInput{Name: "Voucher " + code, Type: pricing.TypePercentage,
		Value: &pricing.PromotionValue{Percent: 10}, Target: pricing.TargetOrder, Codes: []string{e.code(code)}, UsageLimit: &limit})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// voucherUsed is how often the promotion's first code is redeemed now.
func (e *env) voucherUsed(t testing.TB, promoID string) int64 {
	t.Helper()
	p, err := e.pr.GetPromotion(bg, promoID)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Usage) == 0 {
		return 0
	}
	return p.Usage[0].Used
}

// stock returns a SKU's stock.
func (e *env) stock(t testing.TB, sku string) inventory.StockItem {
	t.Helper()
	it, err := e.inv.GetStock(bg, e.sku(sku))
	if err != nil {
		t.Fatal(err)
	}
	return it
}

func wantStock(t testing.TB, e *env, sku string, onHand, reserved int64) {
	t.Helper()
	if it := e.stock(t, sku); it.OnHand != onHand || it.Reserved != reserved {
		t.Fatalf("%s: on_hand %d reserved %d available %d, want on_hand %d reserved %d", sku, it.OnHand, it.Reserved, it.Available, onHand, reserved)
	}
}

// shopper is a cart and who may use it.
type shopper struct {
	cartID string
	caller cart.Caller
}

// cartSpec describes a cart to make.
type cartSpec struct {
	customer string           // "" anonymous
	items    map[string]int64 // SKU → quantity
	codes    []string
	noEmail  bool
	noShip   bool
}

func customerCaller(id string) cart.Caller {
	return cart.Caller{Principal: auth.Principal{Subject: id, Kind: auth.KindCustomer, Name: id}}
}

func validAddress() cart.Address {
	return cart.Address{FirstName: "Ada", LastName: "Lovelace", Line1: "Keizersgracht 1", City: "Amsterdam",
		PostalCode: "1015 CJ", Country: "NL", Phone: "+31 20 123 4567"}
}

// MustCart makes a complete cart ready for checkout (email, address,
// shipping method) unless the spec says otherwise.
func (e *env) MustCart(t testing.TB, spec cartSpec) shopper {
	t.Helper()
	c := cart.Caller{}
	if spec.customer != "" {
		c = customerCaller(spec.customer)
	}
	in := cart.CreateInput{Currency: "EUR"}
	if !spec.noEmail {
		in.Email = "ada@example.com"
	}
	created, err := e.carts.Create(bg, c, in)
	if err != nil {
		t.Fatal(err)
	}
	if spec.customer == "" {
		c.CartToken = created.CartToken
	}
	for sku, q := range spec.items {
		e.mu.Lock()
		variant := e.variants[sku]
		e.mu.Unlock()
		if _, err := e.carts.AddItem(bg, c, created.ID, cart.ItemInput{VariantID: variant, Quantity: q}, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, code := range spec.codes {
		if _, err := e.carts.AddCode(bg, c, created.ID, e.code(code), 0); err != nil {
			t.Fatal(err)
		}
	}
	if !spec.noShip {
		if _, err := e.carts.Update(bg, c, created.ID, cart.Patch{ShippingAddress: cart.Value(validAddress()),
			ShippingMethodID: cart.Value(e.method.ID)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	return shopper{cartID: created.ID, caller: c}
}

func pay(token string) CheckoutInput {
	return CheckoutInput{Payment: PaymentInput{Provider: "test", Token: token}}
}

// MustCheckout checks the cart out with the token and fails unless it
// ends confirmed.
func (e *env) MustCheckout(t testing.TB, sh shopper, token string) Order {
	t.Helper()
	o, err := e.s.Checkout(bg, sh.cartID, sh.caller, pay(token), "")
	if err != nil {
		t.Fatalf("Checkout: %v", err)
	}
	if o.Status != StatusConfirmed {
		t.Fatalf("Checkout: order %s is %s", o.ID, o.Status)
	}
	return o
}

// wantErr fails unless err carries code and names each field.
func wantErr(t testing.TB, err error, code apperr.Code, fields ...string) {
	t.Helper()
	if !apperr.Is(err, code) {
		t.Fatalf("err = %v, want code %s", err, code)
	}
	got := fieldsOf(err)
	for _, f := range fields {
		found := false
		for _, g := range got {
			found = found || g == f
		}
		if !found {
			t.Errorf("err fields = %v, want %q among them (err: %v)", got, f, err)
		}
	}
}

func fieldsOf(err error) []string {
	var (
		ae  *apperr.Error
		out []string
	)
	if errors.As(err, &ae) {
		for _, f := range ae.Fields {
			out = append(out, f.Field)
		}
	}
	return out
}

// countRows counts rows of a query on db.
func countRows(t testing.TB, db *store.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(bg, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// authorizations and captures are the test provider's counters: how often
// money actually moved.
func (e *env) authorizations() int { return e.total(payments.OpAuthorize) }
func (e *env) captures() int       { return e.total(payments.OpCapture) }

// total is how often the provider did op for this env.
func (e *env) total(op payments.Operation) int { return e.tp.Total(op) - e.base[op] }

// awaitDone waits (real time, bounded) until the saga is done.
func (e *env) awaitDone(t testing.TB, orderID string) Order {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		g, err := getSaga(bg, e.db, orderID)
		if err != nil {
			t.Fatal(err)
		}
		if g.status == sagaDone {
			o, err := e.s.load(bg, e.db, orderID)
			if err != nil {
				t.Fatal(err)
			}
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("saga of %s still %s at step %s", orderID, g.status, g.step)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// drive runs the saga on the fake clock until it is done: whenever it
// waits for its next attempt it moves the clock on by step (so attempts
// happen step apart), and kicks it when it is due.
func (e *env) drive(t testing.TB, s *Service, orderID string, step time.Duration, n int) Order {
	t.Helper()
	for range 100 * n {
		g, err := getSaga(bg, e.db, orderID)
		if err != nil {
			t.Fatal(err)
		}
		now := e.clock.Now()
		switch {
		case g.status == sagaDone:
			return e.awaitDone(t, orderID)
		case g.leaseOwner != "" && g.leaseUntil.After(now):
			time.Sleep(time.Millisecond) // a worker is on it
		case g.nextAttemptAt.After(now):
			if n--; n < 0 {
				t.Fatalf("saga of %s still %s at step %s", orderID, g.status, g.step)
			}
			e.clock.Advance(step)
		default:
			s.kick(orderID)
			time.Sleep(time.Millisecond)
		}
	}
	g, _ := getSaga(bg, e.db, orderID)
	t.Fatalf("saga of %s still %s at step %s", orderID, g.status, g.step)
	return Order{}
}

// steps returns "step/action/outcome" of every recorded attempt.
func steps(t testing.TB, db *store.DB, orderID string) []string {
	t.Helper()
	ss, err := listSteps(bg, db, orderID)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Step + "/" + s.Action + "/" + s.Outcome
	}
	return out
}

// --- HTTP ---

const headerPrincipal = "X-Test-Principal"

// mount serves the routes on a ServeMux, each wrapped in mw, as the
// gateway mounts them; X-Test-Principal ("customer:cus_1") stands for an
// authenticated bearer token.
func mount(routes []httpx.Route, mw ...httpx.Middleware) http.Handler {
	mux := http.NewServeMux()
	for _, r := range routes {
		mux.Handle(r.Pattern(), httpx.Chain(r.Handler, mw...))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if kind, subject, ok := strings.Cut(r.Header.Get(headerPrincipal), ":"); ok {
			r = r.WithContext(auth.WithPrincipal(r.Context(), auth.Principal{Subject: subject, Kind: auth.Kind(kind), Name: subject}))
		}
		mux.ServeHTTP(w, r)
	})
}

// request is one HTTP exchange of a test.
type request struct {
	method, path, body string
	token, principal   string
	header             map[string]string
}

func (rq request) build() *http.Request {
	var r *http.Request
	if rq.body != "" {
		r = httptest.NewRequest(rq.method, rq.path, strings.NewReader(rq.body))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(rq.method, rq.path, nil)
	}
	if rq.token != "" {
		r.Header.Set(httpx.HeaderCartToken, rq.token)
	}
	if rq.principal != "" {
		r.Header.Set(headerPrincipal, rq.principal)
		r.Header.Set("Authorization", "Bearer test")
	}
	for k, v := range rq.header {
		r.Header.Set(k, v)
	}
	return r
}

func serve(h http.Handler, rq request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, rq.build())
	return w
}

// MustServe performs the request and fails unless the status is want.
func MustServe(t testing.TB, h http.Handler, want int, rq request) *httptest.ResponseRecorder {
	t.Helper()
	w := serve(h, rq)
	if w.Code != want {
		t.Fatalf("%s %s: status %d, want %d\n%s", rq.method, rq.path, w.Code, want, w.Body)
	}
	return w
}

// MustDecode decodes a JSON response body.
func MustDecode[T any](t testing.TB, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, w.Body)
	}
	return v
}

// problem is a problem document with the order extension.
type problem struct {
	Status  int                 `json:"status"`
	Code    string              `json:"code"`
	Detail  string              `json:"detail"`
	OrderID string              `json:"order_id"`
	Errors  []apperr.FieldError `json:"errors"`
}

func wantProblem(t testing.TB, w *httptest.ResponseRecorder, status int, code string) problem {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d\n%s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q", ct)
	}
	p := MustDecode[problem](t, w)
	if p.Code != code {
		t.Fatalf("code %q, want %q\n%s", p.Code, code, w.Body)
	}
	return p
}

// checkoutRequest is the checkout of the shopper's cart over HTTP.
func checkoutRequest(sh shopper, token, idemKey string) request {
	rq := request{method: "POST", path: "/store/carts/" + sh.cartID + "/checkout",
		body: fmt.Sprintf(`{"payment": {"provider": "test", "token": %q}}`, token), token: sh.caller.CartToken}
	if sh.caller.Principal.Kind == auth.KindCustomer {
		rq.principal = "customer:" + sh.caller.Principal.Subject
	}
	if idemKey != "" {
		rq.header = map[string]string{httpx.HeaderIdempotencyKey: idemKey}
	}
	return rq
}

func eur(amount int64) money.Money { return money.New(amount, "EUR") }
