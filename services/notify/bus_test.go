package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/store"
)

// natsURLEnv enables the bus tests against an external NATS server too.
const natsURLEnv = "SOUK_TEST_NATS_URL"

// busBackend is a way of running the bus in these tests.
type busBackend struct {
	name string
	url  string // "" for the embedded server
}

func busBackends(t *testing.T) []busBackend {
	bs := []busBackend{{name: "embedded"}}
	if u := os.Getenv(natsURLEnv); u != "" {
		bs = append(bs, busBackend{name: "external", url: u})
	} else {
		t.Logf("external NATS variant skipped: set %s (e.g. nats://127.0.0.1:4222) to run it", natsURLEnv)
	}
	return bs
}

// mustBus opens a bus in a namespace of its own (streams and subject
// prefix nobody else uses), listening on a random loopback port when
// embedded so the test can publish behind the bus's back.
func mustBus(t *testing.T, be busBackend, reg prometheus.Registerer) (*bus.Bus, bus.Config) {
	t.Helper()
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	ns := "souktest_" + hex.EncodeToString(b)
	cfg := bus.Config{URL: be.url, Stream: ns, DeadLetterStream: ns + "_DLQ", SubjectPrefix: ns,
		ReconnectWait: 20 * time.Millisecond, RequestTimeout: 2 * time.Second, DrainTimeout: 5 * time.Second}
	if be.url == "" {
		cfg.ListenPort = -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bb, err := bus.Open(ctx, cfg, testLogger(t, nil), reg)
	if err != nil {
		t.Fatalf("open bus: %v", err)
	}
	t.Cleanup(func() {
		_ = bb.Close()
		if be.url != "" {
			deleteStreams(t, be.url, cfg.Stream, cfg.DeadLetterStream)
		}
	})
	return bb, cfg
}

func deleteStreams(t *testing.T, u string, names ...string) {
	nc, err := nats.Connect(u)
	if err != nil {
		t.Logf("cleanup: %v", err)
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

// publishCopy stores e in the stream once more as a separate message,
// without the message id that lets JetStream drop duplicates: the event
// reaches the consumers twice, as a redelivery would.
func publishCopy(t *testing.T, b *bus.Bus, cfg bus.Config, e bus.Event) {
	t.Helper()
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, cfg.SubjectPrefix+"."+e.Type, body); err != nil {
		t.Fatal(err)
	}
}

// consumerOutcome reads souk_bus_consumer_deliveries_total for a consumer
// and outcome from the registry the bus reports into.
func consumerOutcome(t testing.TB, reg *prometheus.Registry, consumer, outcome string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "souk_bus_consumer_deliveries_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["consumer"] == consumer && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestThroughTheBus runs notify as the composition root does (Subscribe,
// Run) on the real bus and delivers the same order_confirmed event twice:
// one email reaches the sink and one signed POST the receiver.
func TestThroughTheBus(t *testing.T) {
	for _, be := range busBackends(t) {
		t.Run(be.name, func(t *testing.T) {
			runStores(t, func(t *testing.T, db *store.DB) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				reg := prometheus.NewRegistry()
				b, cfg := mustBus(t, be, reg)
				sink := MustSink(t)
				rcv := newReceiver(t, nil)
				s := MustNewService(t, db, devConfig(Config{SMTPAddr: sink.Addr(), PollInterval: 50 * time.Millisecond}))
				w := MustCreateWebhook(t, s, rcv.URL, "*")
				rcv.setSecret(w.Secret)
				if err := s.Subscribe(ctx, b); err != nil {
					t.Fatal(err)
				}
				runDone := make(chan error, 1)
				go func() { runDone <- s.Run(ctx) }()

				e := MustOrderEvent(t, orderData("ada@example.com"))
				if err := b.Publish(ctx, e); err != nil {
					t.Fatal(err)
				}
				publishCopy(t, b, cfg, e)
				sentinel := MustEvent(t, "catalog", "souk.catalog.product_updated.v1", "prod_1", map[string]any{"n": 1})
				if err := b.Publish(ctx, sentinel); err != nil {
					t.Fatal(err)
				}

				// Both consumers saw the copy and recognised it.
				waitUntil(t, 20*time.Second, "both consumers to skip the copy as a duplicate", func() bool {
					return consumerOutcome(t, reg, ConsumerOrderConfirmed, "duplicate") == 1 &&
						consumerOutcome(t, reg, ConsumerWebhooks, "duplicate") == 1 &&
						consumerOutcome(t, reg, ConsumerWebhooks, "processed") == 2
				})
				waitUntil(t, 20*time.Second, "the email and both POSTs", func() bool {
					return len(sink.Messages()) >= 1 && len(rcv.got()) >= 2
				})
				cancel()
				select {
				case err := <-runDone:
					if err != nil {
						t.Errorf("Run: %v", err)
					}
				case <-time.After(15 * time.Second):
					t.Fatal("Run did not return after cancellation")
				}

				if n := len(sink.Messages()); n != 1 {
					t.Errorf("sink got %d messages, want 1", n)
				}
				emails, err := s.EmailsForEvent(context.Background(), e.ID)
				if err != nil || len(emails) != 1 || emails[0].State != EmailSent {
					t.Errorf("emails for the event: %+v, %v", emails, err)
				}
				perEvent := map[string]int{}
				for _, r := range rcv.got() {
					if r.sigError != nil {
						t.Errorf("unverifiable POST: %v", r.sigError)
					}
					perEvent[r.header.Get(HeaderEventID)]++
				}
				if perEvent[e.ID] != 1 || perEvent[sentinel.ID] != 1 || len(perEvent) != 2 {
					t.Errorf("POSTs per event: %v, want one each", perEvent)
				}
				if n := countRows(t, db, `SELECT COUNT(*) FROM notify_webhook_deliveries WHERE event_id = ?`, e.ID); n != 1 {
					t.Errorf("%d deliveries of the event, want 1", n)
				}
				if n := countRows(t, db, `SELECT COUNT(*) FROM souk_inbox WHERE event_id = ?`, e.ID); n != 2 {
					t.Errorf("%d inbox rows for the event, want one per consumer", n)
				}
				sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer scancel()
				if err := s.Stop(sctx); err != nil {
					t.Errorf("Stop: %v", err)
				}
				if err := s.Stop(sctx); err != nil {
					t.Errorf("second Stop: %v", err)
				}
			})
		})
	}
}
