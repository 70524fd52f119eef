package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/soukhq/souk/platform/store"
)

// NATSURLEnv names the environment variable that enables the suite against
// an external NATS server.
const NATSURLEnv = "SOUK_TEST_NATS_URL"

// backend is one way of running the bus; the conformance suite runs against
// each of them.
type backend struct {
	name string
	// skip, when set, says why the backend is unavailable here.
	skip string
	// config returns the configuration of a fresh, isolated namespace
	// (stream names and subject prefix used by nobody else) or skips t when
	// the backend is unavailable. listen asks an embedded server to accept
	// TCP clients too (on a random port).
	config func(t *testing.T, listen bool) Config
}

func backends() []backend {
	externalURL := os.Getenv(NATSURLEnv)
	skipExternal := ""
	if externalURL == "" {
		skipExternal = "external NATS suite skipped: set " + NATSURLEnv + " (e.g. nats://127.0.0.1:4222) to run it"
	}
	return []backend{
		{name: "embedded", config: func(t *testing.T, listen bool) Config {
			cfg := isolated(Config{})
			if listen {
				cfg.ListenPort = -1
			}
			return cfg
		}},
		{name: "external", skip: skipExternal, config: func(t *testing.T, _ bool) Config {
			cfg := isolated(Config{URL: externalURL})
			t.Cleanup(func() { deleteStreams(t, externalURL, cfg.Stream, cfg.DeadLetterStream) })
			return cfg
		}},
	}
}

// isolated gives cfg stream names and a subject prefix of its own, and the
// short timeouts tests want.
func isolated(cfg Config) Config {
	id := randomHex(5)
	cfg.Stream = "souktest_" + id
	cfg.DeadLetterStream = cfg.Stream + "_DLQ"
	cfg.SubjectPrefix = "souktest_" + id
	cfg.ReconnectWait = 20 * time.Millisecond
	cfg.RequestTimeout = 2 * time.Second
	cfg.DrainTimeout = 5 * time.Second
	return cfg
}

// deleteStreams removes what a test created on a shared server.
func deleteStreams(t *testing.T, u string, names ...string) {
	nc, err := nats.Connect(u)
	if err != nil {
		t.Logf("cleanup: connect %s: %v", u, err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range names {
		if err := js.DeleteStream(ctx, n); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Logf("cleanup: delete stream %s: %v", n, err)
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// MustOpen opens a bus that is closed when the test ends.
func MustOpen(t testing.TB, cfg Config, opts ...Option) *Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := Open(ctx, cfg, testLogger(t), nil, opts...)
	if err != nil {
		t.Fatalf("open bus: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// MustSubscribe subscribes and stops the subscription when the test ends.
func MustSubscribe(t testing.TB, b *Bus, db *store.DB, cfg ConsumerConfig, h Handler) *Subscription {
	t.Helper()
	s, err := b.Subscribe(context.Background(), cfg, db, h)
	if err != nil {
		t.Fatalf("subscribe %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
	})
	return s
}

// MustRunRelay runs the relay until the test ends, and fails the test if Run
// does not return after cancellation.
func MustRunRelay(t testing.TB, r *Relay) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("relay Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("relay Run did not return after cancellation")
		}
	})
}

// testLogWriter writes to the test's log until the test ends, then drops
// lines (NATS callbacks may still log from their own goroutines).
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

// testLogger logs to the test's log, shown only for failing tests (-v shows all).
func testLogger(t testing.TB) *slog.Logger {
	w := &testLogWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
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

const testSource = "test"

type payload struct {
	Aggregate string `json:"aggregate"`
	N         int    `json:"n"`
}

// MustEvent builds an event of type souk.test.<name>.v1 about aggregate.
func MustEvent(t testing.TB, ctx context.Context, name, aggregate string, n int) Event {
	t.Helper()
	e, err := NewEvent(ctx, testSource, "souk.test."+name+".v1", aggregate, payload{aggregate, n})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// MustEffectsTable creates the table the test handlers write their effects
// to. It has no key: applying an event twice leaves two rows.
func MustEffectsTable(t testing.TB, db *store.DB) {
	t.Helper()
	if _, err := db.Exec(context.Background(),
		`CREATE TABLE test_effects (event_id TEXT NOT NULL, aggregate TEXT NOT NULL, n INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
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

func effects(t testing.TB, db *store.DB, eventID string) int {
	return countRows(t, db, `SELECT COUNT(*) FROM test_effects WHERE event_id = ?`, eventID)
}

func inboxRows(t testing.TB, db *store.DB, consumer, eventID string) int {
	return countRows(t, db, `SELECT COUNT(*) FROM souk_inbox WHERE consumer = ? AND event_id = ?`, consumer, eventID)
}

// recorder is a test consumer: its handler writes an effect row and can be
// told to fail; it remembers calls, committed events in order, and every
// delivery that reached the acknowledgement step.
type recorder struct {
	mu        sync.Mutex
	calls     map[string]int   // handler calls per event id
	delivered map[string]int   // deliveries that committed (incl. duplicates)
	committed map[string]Event // events whose transaction committed
	spans     map[string]trace.SpanContext
	order     map[string][]int // aggregate -> N in commit order
	// fail, when set, decides whether a call fails (after writing its effect,
	// which the rollback must undo).
	fail func(e Event, call int) error
	// skipAck, when set, decides whether to skip the acknowledgement.
	skipAck func(e Event, duplicate bool, delivery int) bool
}

func newRecorder() *recorder {
	return &recorder{
		calls:     map[string]int{},
		delivered: map[string]int{},
		committed: map[string]Event{},
		spans:     map[string]trace.SpanContext{},
		order:     map[string][]int{},
	}
}

func (r *recorder) handle(ctx context.Context, tx *store.Tx, e Event) error {
	var p payload
	if err := e.Decode(&p); err != nil {
		return Permanent(err)
	}
	r.mu.Lock()
	r.calls[e.ID]++
	call := r.calls[e.ID]
	fail := r.fail
	r.mu.Unlock()
	if _, err := tx.Exec(ctx, `INSERT INTO test_effects (event_id, aggregate, n) VALUES (?, ?, ?)`, e.ID, p.Aggregate, p.N); err != nil {
		return err
	}
	if fail != nil {
		if err := fail(e, call); err != nil {
			return err
		}
	}
	span := trace.SpanContextFromContext(ctx)
	tx.AfterCommit(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.committed[e.ID] = e
		r.spans[e.ID] = span
		r.order[p.Aggregate] = append(r.order[p.Aggregate], p.N)
	})
	return nil
}

// consumer returns cfg with the recorder's acknowledgement hook.
func (r *recorder) consumer(cfg ConsumerConfig) ConsumerConfig {
	cfg.testAfterCommit = func(e Event, duplicate bool) bool {
		r.mu.Lock()
		r.delivered[e.ID]++
		n := r.delivered[e.ID]
		skip := r.skipAck
		r.mu.Unlock()
		return skip == nil || !skip(e, duplicate, n)
	}
	return cfg
}

func (r *recorder) isCommitted(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.committed[id]
	return ok
}

func (r *recorder) callsOf(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[id]
}

func (r *recorder) deliveriesOf(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.delivered[id]
}

func (r *recorder) committedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.committed)
}

func (r *recorder) orderOf(aggregate string) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.order[aggregate]...)
}

// flakyPublisher fails while down; with lostAcks it also "loses" the
// acknowledgement of the first n publications after recovery (publishes,
// then reports an error), as a broken connection would.
type flakyPublisher struct {
	next     Publisher
	down     atomic.Bool
	lostAcks atomic.Int32

	mu    sync.Mutex
	calls []string // event ids, in call order
}

func (p *flakyPublisher) Publish(ctx context.Context, e Event) error {
	p.mu.Lock()
	p.calls = append(p.calls, e.ID)
	p.mu.Unlock()
	if p.down.Load() {
		return errors.New("bus down (test)")
	}
	if err := p.next.Publish(ctx, e); err != nil {
		return err
	}
	if p.lostAcks.Add(-1) >= 0 {
		return errors.New("acknowledgement lost (test)")
	}
	return nil
}

func (p *flakyPublisher) callIDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

// streamMessages is how many messages the event stream holds.
func streamMessages(t testing.TB, b *Bus) uint64 {
	t.Helper()
	s, err := b.js.Stream(context.Background(), b.cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// deadLetter waits for the dead letter of an event type.
func deadLetter(t testing.TB, b *Bus, typ string) *jetstream.RawStreamMsg {
	t.Helper()
	s, err := b.js.Stream(context.Background(), b.cfg.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	var msg *jetstream.RawStreamMsg
	waitUntil(t, 10*time.Second, "a dead letter of "+typ, func() bool {
		msg, err = s.GetLastMsgForSubject(context.Background(), deadLetterSubject(b.subject(typ)))
		return err == nil
	})
	return msg
}

// proxy is a TCP proxy in front of a NATS server that can be taken down and
// brought back on the same address: a network outage on demand.
type proxy struct {
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
}

func startProxy(t testing.TB, natsURL string) *proxy {
	t.Helper()
	u, err := url.Parse(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{target: u.Host, addr: "127.0.0.1:0", conns: map[net.Conn]struct{}{}}
	p.up(t)
	t.Cleanup(p.down)
	return p
}

func (p *proxy) URL() string { return "nats://" + p.addr }

func (p *proxy) up(t testing.TB) {
	t.Helper()
	var ln net.Listener
	var err error
	waitUntil(t, 5*time.Second, "the proxy's address to be free", func() bool {
		ln, err = net.Listen("tcp", p.addr)
		return err == nil
	})
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[s] = struct{}{}, struct{}{}
			p.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(c, s)
			go pipe(s, c)
		}
	}()
}

// down closes the listener and every connection through it.
func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// metricValue is the value of one counter or gauge (a child of a vector).
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
