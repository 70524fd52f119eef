package bus

import (
	"context"
	"errors"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

// recordingPublisher remembers what it published; with gate set, each
// Publish waits until the test sends on gate.
type recordingPublisher struct {
	mu      sync.Mutex
	ids     []string
	started chan string   // receives each id as Publish starts (when set)
	gate    chan struct{} // Publish waits for it (when set)
	ctxErrs []error       // ctx.Err() seen when Publish returned
	fail    error
}

func (p *recordingPublisher) Publish(ctx context.Context, e Event) error {
	if p.started != nil {
		p.started <- e.ID
	}
	if p.gate != nil {
		<-p.gate
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ctxErrs = append(p.ctxErrs, ctx.Err())
	if p.fail != nil {
		return p.fail
	}
	p.ids = append(p.ids, e.ID)
	return nil
}

func (p *recordingPublisher) published() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.ids)
}

func mustAdd(t testing.TB, db *store.DB, ob *Outbox, events ...Event) {
	t.Helper()
	ctx := context.Background()
	if err := db.InTx(ctx, func(tx *store.Tx) error { return ob.Add(ctx, tx, events...) }); err != nil {
		t.Fatal(err)
	}
}

func outboxRows(t testing.TB, db *store.DB) int {
	return countRows(t, db, `SELECT COUNT(*) FROM souk_outbox`)
}

func TestRelayPublishesInOrderAndPrunes(t *testing.T) {
	storetest.Run(t, []store.Migrations{Migrations}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		pub := &recordingPublisher{}
		r, err := NewRelay(db, pub, RelayConfig{
			BatchSize: 3, PollInterval: 10 * time.Millisecond,
			Retention: time.Millisecond, CleanupInterval: 10 * time.Millisecond,
		}, testLogger(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		ob := NewOutbox(r.Wake)
		var want []string
		for i := range 10 { // more than a few batches
			e := MustEvent(t, ctx, "thing_happened", "agg", i)
			mustAdd(t, db, ob, e)
			want = append(want, e.ID)
		}
		MustRunRelay(t, r)
		fctx, cancel := context.WithTimeout(ctx, waitLong)
		defer cancel()
		if err := r.Flush(fctx); err != nil {
			t.Fatal(err)
		}
		if got := pub.published(); !slices.Equal(got, want) {
			t.Errorf("published %v\nwant %v", got, want)
		}
		waitUntil(t, waitLong, "published rows to be pruned", func() bool { return outboxRows(t, db) == 0 })
	})
}

func TestRelayKeepsRowsWithinRetention(t *testing.T) {
	storetest.Run(t, []store.Migrations{Migrations}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		pub := &recordingPublisher{}
		r, err := NewRelay(db, pub, RelayConfig{PollInterval: 10 * time.Millisecond, CleanupInterval: 10 * time.Millisecond}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		mustAdd(t, db, NewOutbox(r.Wake), MustEvent(t, ctx, "thing_happened", "agg", 1))
		MustRunRelay(t, r)
		fctx, cancel := context.WithTimeout(ctx, waitLong)
		defer cancel()
		if err := r.Flush(fctx); err != nil {
			t.Fatal(err)
		}
		// A row published two days ago: once a cleanup round removed it,
		// the row published just now must still be there.
		old := MustEvent(t, ctx, "thing_happened", "agg", 0)
		if _, err := db.Exec(ctx, `INSERT INTO souk_outbox (event_id, event_type, aggregate_id, payload, created_at, published_at) VALUES (?, ?, ?, ?, ?, ?)`,
			old.ID, old.Type, old.Subject, "{}", time.Now().Add(-49*time.Hour), time.Now().Add(-48*time.Hour)); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, waitLong, "a cleanup round to prune the old row", func() bool {
			return countRows(t, db, `SELECT COUNT(*) FROM souk_outbox WHERE event_id = ?`, old.ID) == 0
		})
		if n := countRows(t, db, `SELECT COUNT(*) FROM souk_outbox WHERE published_at IS NOT NULL`); n != 1 {
			t.Errorf("%d published rows kept, want 1 (within the 24 h retention)", n)
		}
	})
}

func TestRelayFinishesRowInHandOnCancel(t *testing.T) {
	storetest.Run(t, []store.Migrations{Migrations}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		pub := &recordingPublisher{started: make(chan string, 10), gate: make(chan struct{})}
		r, err := NewRelay(db, pub, RelayConfig{PollInterval: 10 * time.Millisecond}, testLogger(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		first := MustEvent(t, ctx, "thing_happened", "agg", 1)
		second := MustEvent(t, ctx, "thing_happened", "agg", 2)
		mustAdd(t, db, NewOutbox(nil), first, second)

		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(runCtx) }()
		if id := <-pub.started; id != first.ID {
			t.Fatalf("started with %s, want the first row", id)
		}
		cancel() // while the first row is being published
		pub.gate <- struct{}{}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run = %v, want nil after cancellation", err)
			}
		case <-time.After(waitLong):
			t.Fatal("Run did not return after cancellation")
		}
		if got := pub.published(); !slices.Equal(got, []string{first.ID}) {
			t.Errorf("published %v, want only the row in hand", got)
		}
		if pub.ctxErrs[0] != nil {
			t.Errorf("the row in hand was published with a cancelled context: %v", pub.ctxErrs[0])
		}
		if n := countRows(t, db, `SELECT COUNT(*) FROM souk_outbox WHERE published_at IS NOT NULL AND event_id = ?`, first.ID); n != 1 {
			t.Error("the row in hand was not marked published")
		}
		if n, _ := r.Pending(ctx); n != 1 {
			t.Errorf("pending = %d, want 1 (the second row)", n)
		}
	})
}

func TestRelayGaugesShowPendingAndLag(t *testing.T) {
	storetest.Run(t, []store.Migrations{Migrations}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		pub := &recordingPublisher{fail: errors.New("no bus")}
		m, err := NewMetrics(nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewRelay(db, pub, RelayConfig{Name: "orders", PollInterval: 10 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}, nil, m)
		if err != nil {
			t.Fatal(err)
		}
		// Rows that waited a while already.
		for i := range 3 {
			e := MustEvent(t, ctx, "thing_happened", "agg", i)
			if _, err := db.Exec(ctx, `INSERT INTO souk_outbox (event_id, event_type, aggregate_id, payload, created_at) VALUES (?, ?, ?, ?, ?)`,
				e.ID, e.Type, e.Subject, `{"id":"`+e.ID+`","type":"`+e.Type+`"}`, time.Now().Add(-time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		MustRunRelay(t, r)
		waitUntil(t, waitLong, "the gauges", func() bool {
			return metricValue(t, m.outboxPending.WithLabelValues("orders")) == 3 &&
				metricValue(t, m.relayFailures.WithLabelValues("orders")) >= 2
		})
		if lag := metricValue(t, m.outboxLag.WithLabelValues("orders")); lag < 59 {
			t.Errorf("outbox lag = %vs, want the age of the oldest row (about 60 s)", lag)
		}
	})
}

func TestRelayRunsOnce(t *testing.T) {
	db := storetest.MustOpen(t, store.SQLite, Migrations)
	r, err := NewRelay(db, &recordingPublisher{}, RelayConfig{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	MustRunRelay(t, r)
	waitUntil(t, waitLong, "the relay to start", r.Active)
	if err := r.Run(context.Background()); err == nil {
		t.Error("a second concurrent Run succeeded")
	}
}

// Two processes of one service on one PostgreSQL schema: only the relay
// holding the advisory lock publishes; when it stops, the other takes over.
func TestRelayOneActivePerPostgresSchema(t *testing.T) {
	db1 := storetest.MustOpen(t, store.Postgres, Migrations)
	ctx := context.Background()
	db2, err := store.Open(ctx, store.Config{URL: os.Getenv(storetest.PostgresURLEnv), Schema: db1.Schema()})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()

	cfg := RelayConfig{PollInterval: 10 * time.Millisecond, LockRetry: 20 * time.Millisecond}
	pub1, pub2 := &recordingPublisher{}, &recordingPublisher{}
	r1, err := NewRelay(db1, pub1, cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := NewRelay(db2, pub2, cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx1, stop1 := context.WithCancel(ctx)
	done1 := make(chan error, 1)
	go func() { done1 <- r1.Run(ctx1) }()
	defer stop1()
	waitUntil(t, waitLong, "relay 1 to take the lock", r1.Active)
	MustRunRelay(t, r2)

	var first []string
	for i := range 5 {
		e := MustEvent(t, ctx, "thing_happened", "agg", i)
		mustAdd(t, db1, NewOutbox(nil), e)
		first = append(first, e.ID)
	}
	fctx, cancel := context.WithTimeout(ctx, waitLong)
	defer cancel()
	if err := r2.Flush(fctx); err != nil { // waits for whichever relay is active
		t.Fatal(err)
	}
	if got := pub1.published(); !slices.Equal(got, first) {
		t.Errorf("active relay published %v, want %v", got, first)
	}
	if got := pub2.published(); len(got) != 0 || r2.Active() {
		t.Errorf("standby relay published %v (active %v), want nothing", got, r2.Active())
	}

	stop1()
	if err := <-done1; err != nil {
		t.Fatal(err)
	}
	waitUntil(t, waitLong, "relay 2 to take over", r2.Active)
	late := MustEvent(t, ctx, "thing_happened", "agg", 99)
	mustAdd(t, db2, NewOutbox(r2.Wake), late)
	if err := r2.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	if got := pub2.published(); !slices.Equal(got, []string{late.ID}) {
		t.Errorf("relay 2 published %v after taking over, want only the new event", got)
	}
}
