package bus

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

func TestEmbeddedOpensNoPort(t *testing.T) {
	ctx := context.Background()
	b, err := Open(ctx, isolated(Config{}), testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if addr := b.srv.Addr(); addr != nil {
		t.Errorf("embedded server listens on %v, want no port", addr)
	}
	if u := b.ClientURL(); u != "" {
		t.Errorf("ClientURL() = %q, want none", u)
	}
	if err := b.Ready(ctx); err != nil {
		t.Errorf("Ready() = %v", err)
	}
	dir := b.tmpDir
	if dir == "" {
		t.Fatal("no private directory for the in-memory server")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("server directory %s left behind: %v", dir, err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
	if err := b.Publish(ctx, MustEvent(t, ctx, "thing_happened", "a", 1)); err == nil {
		t.Error("Publish after Close succeeded")
	}
	if _, err := b.Subscribe(ctx, ConsumerConfig{Name: "late", Subject: "souk.>"}, storetest.MustOpen(t, store.SQLite, Migrations), newRecorder().handle); err == nil {
		t.Error("Subscribe after Close succeeded")
	}
}

func TestEmbeddedListensWhenAsked(t *testing.T) {
	b := MustOpen(t, isolated(Config{ListenPort: -1}))
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatalf("connect to %s: %v", b.ClientURL(), err)
	}
	nc.Close()
}

func TestPublishRejectsInvalidEvents(t *testing.T) {
	ctx := context.Background()
	b := MustOpen(t, isolated(Config{}))
	for _, e := range []Event{
		{Type: "souk.test.x.v1"},            // no id
		{ID: "evt_1", Type: "souk.test.*"},  // wildcard
		{ID: "evt_2", Type: "souk test x"},  // spaces
		{ID: "evt_3", Type: "other.test.x"}, // outside the stream
	} {
		if err := b.Publish(ctx, e); err == nil {
			t.Errorf("Publish(%+v) = nil, want an error", e)
		}
	}
}

// Several processes starting at once all create or update the same streams.
func TestConcurrentOpen(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			if be.skip != "" {
				t.Skip(be.skip)
			}
			first := MustOpen(t, be.config(t, true))
			cfg := first.cfg
			cfg.URL, cfg.ListenPort, cfg.StoreDir = first.ClientURL(), 0, ""
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for range 4 {
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					b, err := Open(ctx, cfg, nil, nil)
					if err != nil {
						errs <- err
						return
					}
					errs <- b.Close()
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestMetricsShareOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	m1, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := NewMetrics(reg)
	if err != nil {
		t.Fatalf("second NewMetrics on one registry: %v", err)
	}
	m1.published.WithLabelValues("souk.test.x.v1", "ok").Inc()
	if got := metricValue(t, m2.published.WithLabelValues("souk.test.x.v1", "ok")); got != 1 {
		t.Errorf("second Metrics does not share the registered series: %v", got)
	}
	ctx := context.Background()
	for range 2 {
		b, err := Open(ctx, isolated(Config{}), nil, reg)
		if err != nil {
			t.Fatalf("Open with a shared registry: %v", err)
		}
		b.Close()
	}

	clash := prometheus.NewRegistry()
	clash.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "souk_bus_published_total", Help: "not ours"}))
	if _, err := NewMetrics(clash); err == nil {
		t.Error("NewMetrics on a registry with a clashing collector succeeded")
	}
}

// The embedded server stops and comes back on the same port with the same
// store directory: the relay publishes what piled up, the durable consumer
// (in another "process", connected by URL) resumes, nothing is lost or doubled.
func TestEmbeddedServerRestart(t *testing.T) {
	storetest.Run(t, []store.Migrations{Migrations}, func(t *testing.T, db *store.DB) {
		MustEffectsTable(t, db)
		ctx := context.Background()
		cfg := isolated(Config{StoreDir: t.TempDir(), ListenPort: -1})
		server, err := Open(ctx, cfg, testLogger(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		first := server
		t.Cleanup(func() { _ = first.Close() })
		u, err := url.Parse(server.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		client := cfg
		client.URL, client.StoreDir, client.ListenPort = server.ClientURL(), "", 0
		client.RequestTimeout = 300 * time.Millisecond
		b := MustOpen(t, client)

		rec := newRecorder()
		MustSubscribe(t, b, db, rec.consumer(ConsumerConfig{Name: "survivor", Subject: "souk.test.>", AckWait: 5 * time.Second}), rec.handle)
		r, err := NewRelay(db, b, RelayConfig{
			Name: "test", PollInterval: 50 * time.Millisecond, PublishTimeout: 300 * time.Millisecond,
			MinBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		}, testLogger(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		MustRunRelay(t, r)
		ob := NewOutbox(r.Wake)

		before := MustEvent(t, ctx, "thing_happened", "agg_a", 0)
		if err := db.InTx(ctx, func(tx *store.Tx) error { return ob.Add(ctx, tx, before) }); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, waitLong, "the first event", func() bool { return rec.isCommitted(before.ID) })

		if err := server.Close(); err != nil {
			t.Fatal(err)
		}
		events := outboxScenario(t, db, ob)
		waitUntil(t, waitLong, "the relay to fail while the server is down", func() bool {
			return countRows(t, db, `SELECT attempts FROM souk_outbox WHERE event_id = ?`, events[0].ID) >= 2
		})

		restarted := cfg
		if restarted.ListenPort, err = strconv.Atoi(u.Port()); err != nil {
			t.Fatal(err)
		}
		server = MustOpen(t, restarted)
		assertRelayed(t, server, db, r, rec, events, before)
	})
}

// Stopping a subscription needs no answer from the server: it returns while
// the server is unreachable.
func TestStopWhileDisconnected(t *testing.T) {
	storetest.Run(t, []store.Migrations{Migrations}, func(t *testing.T, db *store.DB) {
		MustEffectsTable(t, db)
		server := MustOpen(t, isolated(Config{ListenPort: -1}))
		px := startProxy(t, server.ClientURL())
		cfg := server.cfg
		cfg.URL, cfg.ListenPort = px.URL(), 0
		b := MustOpen(t, cfg)
		rec := newRecorder()
		s, err := b.Subscribe(context.Background(), ConsumerConfig{Name: "cut-off", Subject: "souk.test.>"}, db, rec.handle)
		if err != nil {
			t.Fatal(err)
		}
		px.down()
		waitUntil(t, waitLong, "the client to notice", func() bool { return b.nc.Status() != nats.CONNECTED })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Fatalf("Stop while disconnected = %v, want nil", err)
		}
	})
}

// A consumer deleted on the server (by an operator, or with its stream) is
// re-created by the running subscription; events keep arriving, and what it
// sees again is recognised by the inbox.
func TestSubscriptionRecreatesLostConsumer(t *testing.T) {
	storetest.Run(t, []store.Migrations{Migrations}, func(t *testing.T, db *store.DB) {
		MustEffectsTable(t, db)
		ctx := context.Background()
		b := MustOpen(t, isolated(Config{}))
		rec := newRecorder()
		cfg := rec.consumer(ConsumerConfig{Name: "phoenix", Subject: "souk.test.>", AckWait: 5 * time.Second, testLiveness: 50 * time.Millisecond})
		MustSubscribe(t, b, db, cfg, rec.handle)
		e1 := MustEvent(t, ctx, "thing_happened", "agg", 1)
		if err := b.Publish(ctx, e1); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, waitLong, "e1", func() bool { return rec.isCommitted(e1.ID) })

		if err := b.js.DeleteConsumer(ctx, b.cfg.Stream, cfg.Name); err != nil {
			t.Fatal(err)
		}
		e2 := MustEvent(t, ctx, "thing_happened", "agg", 2)
		if err := b.Publish(ctx, e2); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, waitLong, "e2 after the consumer was re-created", func() bool { return rec.isCommitted(e2.ID) })
		if n := rec.callsOf(e1.ID); n != 1 {
			t.Errorf("e1 handled %d times, want 1 (the re-created consumer starts over; the inbox skips it)", n)
		}
		if n := effects(t, db, e1.ID); n != 1 {
			t.Errorf("e1 has %d effects, want 1", n)
		}
	})
}

func TestCheckLiveness(t *testing.T) {
	db := storetest.MustOpen(t, store.SQLite, Migrations)
	MustEffectsTable(t, db)
	ctx := context.Background()
	b := MustOpen(t, isolated(Config{}))
	rec := newRecorder()
	s := MustSubscribe(t, b, db, ConsumerConfig{Name: "probe", Subject: "souk.test.>"}, rec.handle)
	if err := s.checkLiveness(); err != nil {
		t.Fatalf("a running, idle subscription: checkLiveness = %v, want nil", err)
	}

	// Nobody pulls any more, and an event waits: stalled.
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, MustEvent(t, ctx, "thing_happened", "agg", 1)); err != nil {
		t.Fatal(err)
	}
	s.fetch = ctx // Stop cancelled it; the probe needs a live context
	// The server may still count the stopped subscription's last pull
	// request as waiting until it lapses: the stall shows once it has.
	var stalled error
	waitUntil(t, waitLong, "the stall to show", func() bool {
		stalled = s.checkLiveness()
		return errors.Is(stalled, errStalled)
	})

	if err := b.js.DeleteConsumer(ctx, b.cfg.Stream, "probe"); err != nil {
		t.Fatal(err)
	}
	if err := s.checkLiveness(); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("deleted consumer: checkLiveness = %v, want ErrConsumerNotFound", err)
	}
}
