package notify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
	"github.com/soukhq/souk/services/notify/mailsink"
)

// testMigrations is what notify's database carries in production.
var testMigrations = []store.Migrations{bus.Migrations, Migrations}

// runStores runs test against a fresh database on every engine.
func runStores(t *testing.T, test func(t *testing.T, db *store.DB)) {
	t.Helper()
	storetest.Run(t, testMigrations, test)
}

// devConfig is a configuration for tests that post to httptest servers on
// loopback: private networks and http allowed, explicitly.
func devConfig(cfg Config) Config {
	cfg.AllowPrivateNetworks, cfg.AllowHTTP = true, true
	return cfg
}

// MustNewService returns notify on db, logging to the test's log.
func MustNewService(t testing.TB, db *store.DB, cfg Config, opts ...Option) *Service {
	t.Helper()
	s, err := New(db, bus.NewOutbox(nil), testLogger(t, nil), cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// noJitter makes retry delays exact.
func noJitter(s *Service) { s.jitter = func(d time.Duration) time.Duration { return d } }

// clock is a test clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 21, 21, 48, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set moves the clock to t (never backwards).
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.t) {
		c.t = t
	}
}

// logBuffer keeps log lines for assertions, besides the test's log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogWriter writes to the test's log until the test ends.
type testLogWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// testLogger logs to the test's log (shown for failing tests) and, when
// keep is not nil, into keep.
func testLogger(t testing.TB, keep io.Writer) *slog.Logger {
	w := &testLogWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	var out io.Writer = w
	if keep != nil {
		out = io.MultiWriter(w, keep)
	}
	return slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// MustSink starts a mail sink on a free loopback port, closed when the
// test ends.
func MustSink(t testing.TB, opts ...mailsink.Option) *mailsink.Sink {
	t.Helper()
	s, err := mailsink.Start("127.0.0.1:0", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// orderData is the fixture of souk.orders.order_confirmed.v1's data, in
// the shape the orders service publishes.
func orderData(email string) map[string]any {
	eur := func(a int64) map[string]any { return map[string]any{"amount": a, "currency": "EUR"} }
	return map[string]any{
		"order_id":    "ord_01JD3Q7W0000000000000000AB",
		"customer_id": nil,
		"email":       email,
		"currency":    "EUR",
		"items": []any{
			map[string]any{"variant_id": "var_01JD3Q7W0000000000000000V1", "sku": "LIN-S", "title": "Linen Shirt", "variant_title": "S / White",
				"quantity": 2, "unit_price": eur(2999), "total": eur(5998)},
			map[string]any{"variant_id": "var_01JD3Q7W0000000000000000V2", "sku": "SCARF", "title": "Wool <Scarf> & Co", "variant_title": "",
				"quantity": 1, "unit_price": eur(1500), "total": eur(1500)},
		},
		"subtotal":       eur(7498),
		"discount_total": eur(750),
		"shipping_total": eur(495),
		"tax_total":      eur(1257),
		"total":          eur(7243),
		"shipping_address": map[string]any{"first_name": "Ada", "last_name": "Lovelace", "line1": "Keizersgracht 1", "line2": "3rd floor",
			"city": "Amsterdam", "postal_code": "1015 CJ", "country": "NL"},
		"confirmed_at": "2026-11-21T21:48:00Z",
	}
}

// MustOrderEvent builds a souk.orders.order_confirmed.v1 event.
func MustOrderEvent(t testing.TB, data map[string]any) bus.Event {
	t.Helper()
	e, err := bus.NewEvent(context.Background(), "orders", EventOrderConfirmed, data["order_id"].(string), data)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// MustEvent builds an event of another service.
func MustEvent(t testing.TB, source, typ, subject string, data any) bus.Event {
	t.Helper()
	e, err := bus.NewEvent(context.Background(), source, typ, subject, data)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// MustHandle applies an event with a handler in its own transaction, as the
// bus would (without the inbox).
func MustHandle(t testing.TB, db *store.DB, h bus.Handler, e bus.Event) {
	t.Helper()
	ctx := context.Background()
	if err := db.InTx(ctx, func(tx *store.Tx) error { return h(ctx, tx, e) }); err != nil {
		t.Fatalf("handle %s: %v", e.Type, err)
	}
}

func countRows(t testing.TB, db *store.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// wantErr fails unless err carries code and names the fields.
func wantErr(t testing.TB, err error, code apperr.Code, fields ...string) {
	t.Helper()
	if !apperr.Is(err, code) {
		t.Fatalf("err = %v, want code %s", err, code)
	}
	var got []string
	var e *apperr.Error
	if errors.As(err, &e) {
		for _, f := range e.Fields {
			got = append(got, f.Field)
		}
	}
	for _, f := range fields {
		if !slices.Contains(got, f) {
			t.Errorf("err fields = %v, want %q among them (err: %v)", got, f, err)
		}
	}
}

// receiver is a webhook endpoint for tests: it records every request,
// checks its signature against the secret with the test clock, and answers
// what respond says (200 by default).
type receiver struct {
	*httptest.Server
	t     testing.TB
	clock *clock

	mu       sync.Mutex
	secret   string
	requests []received
	respond  func(call int, w http.ResponseWriter, r *http.Request)
}

// received is one request a receiver got.
type received struct {
	header   http.Header
	body     []byte
	sigError error // VerifySignature's verdict at arrival
	event    bus.Event
}

func newReceiver(t testing.TB, clk *clock) *receiver {
	rc := &receiver{t: t, clock: clk}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	got := received{header: r.Header.Clone(), body: body}
	now := time.Now()
	if rc.clock != nil {
		now = rc.clock.Now()
	}
	got.sigError = VerifySignature(rc.secret, r.Header.Get(HeaderSignature), body, DefaultSignatureTolerance, now)
	_ = json.Unmarshal(body, &got.event)
	rc.requests = append(rc.requests, got)
	call, respond := len(rc.requests), rc.respond
	rc.mu.Unlock()
	if respond != nil {
		respond(call, w, r)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (rc *receiver) setSecret(s string) {
	rc.mu.Lock()
	rc.secret = s
	rc.mu.Unlock()
}

func (rc *receiver) setRespond(f func(call int, w http.ResponseWriter, r *http.Request)) {
	rc.mu.Lock()
	rc.respond = f
	rc.mu.Unlock()
}

func (rc *receiver) got() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.requests)
}

// status answers every request with code.
func status(code int) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		_, _ = io.WriteString(w, http.StatusText(code))
	}
}

// MustCreateWebhook subscribes url to types.
func MustCreateWebhook(t testing.TB, s *Service, url string, types ...string) WebhookWithSecret {
	t.Helper()
	w, err := s.CreateWebhook(context.Background(), WebhookInput{URL: url, EventTypes: types, Description: "test"})
	if err != nil {
		t.Fatalf("CreateWebhook(%s): %v", url, err)
	}
	return w
}

// MustDeliveries returns a webhook's whole delivery log, newest first.
func MustDeliveries(t testing.TB, s *Service, webhookID string) []Delivery {
	t.Helper()
	p, err := s.ListDeliveries(context.Background(), webhookID, "", 100, "")
	if err != nil {
		t.Fatal(err)
	}
	return p.Data
}

// MustDelivery returns the only delivery of a webhook.
func MustDelivery(t testing.TB, s *Service, webhookID string) Delivery {
	t.Helper()
	ds := MustDeliveries(t, s, webhookID)
	if len(ds) != 1 {
		t.Fatalf("webhook %s has %d deliveries, want 1: %+v", webhookID, len(ds), ds)
	}
	return ds[0]
}

func MustGetWebhook(t testing.TB, s *Service, webhookID string) Webhook {
	t.Helper()
	w, err := s.GetWebhook(context.Background(), webhookID)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func MustDeliverPending(t testing.TB, s *Service) int {
	t.Helper()
	n, err := s.DeliverPending(context.Background())
	if err != nil {
		t.Fatalf("DeliverPending: %v", err)
	}
	return n
}

func MustSendPending(t testing.TB, s *Service) int {
	t.Helper()
	n, err := s.SendPending(context.Background())
	if err != nil {
		t.Fatalf("SendPending: %v", err)
	}
	return n
}

// outboxEvents returns the events of a type in notify's outbox, in order.
func outboxEvents(t testing.TB, db *store.DB, typ string) [][]byte {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT payload FROM souk_outbox WHERE event_type = ? ORDER BY seq`, typ)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		out = append(out, []byte(p))
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// mustSQLite is a fresh, migrated SQLite database, for tests whose point is
// not the engine.
func mustSQLite(t testing.TB) *store.DB {
	t.Helper()
	return storetest.MustOpen(t, store.SQLite, testMigrations...)
}

// mustSelfSignedCert makes a certificate for 127.0.0.1 and localhost, and
// a pool that trusts it.
func mustSelfSignedCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "souk test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// metricValue is the value of a counter or gauge (summed over a vector).
func metricValue(t testing.TB, c prometheus.Collector) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, f := range families {
		for _, m := range f.GetMetric() {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return v
}
