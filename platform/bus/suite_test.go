package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

// TestConformance runs the bus conformance suite against every backend: the
// embedded server always, an external server when SOUK_TEST_NATS_URL is set;
// and each case against SQLite, and PostgreSQL when SOUK_TEST_POSTGRES_URL is
// set. A new backend (a Kafka adapter, a NATS cluster) joins by adding itself
// to backends().
func TestConformance(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			if be.skip != "" {
				t.Skip(be.skip)
			}
			for _, c := range conformanceCases {
				t.Run(c.name, func(t *testing.T) {
					storetest.Run(t, []store.Migrations{Migrations}, func(t *testing.T, db *store.DB) {
						MustEffectsTable(t, db)
						c.run(t, be, db)
					})
				})
			}
		})
	}
}

var conformanceCases = []struct {
	name string
	run  func(t *testing.T, be backend, db *store.DB)
}{
	{"publish_then_durable_consume", testPublishConsume},
	{"durable_consumer_resumes", testDurableResume},
	{"declined_events_skip_the_transaction", testWantsDeclines},
	{"declined_types_skip_the_decoding", testWantsTypeDeclines},
	{"redelivery_after_crash_before_ack", testCrashBeforeAck},
	{"retries_with_backoff_then_success", testRetryThenSuccess},
	{"dead_letter_after_max_deliveries", testDeadLetter},
	{"relay_after_publisher_failure", testRelayPublisherFailure},
	{"relay_after_network_outage", testRelayNetworkOutage},
	{"rolled_back_outbox_row_never_published", testRollbackNeverPublished},
}

const waitLong = 15 * time.Second

func testPublishConsume(t *testing.T, be backend, db *store.DB) {
	ctx := context.Background()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	b := MustOpen(t, be.config(t, false), WithTracerProvider(tp))
	rec := newRecorder()
	cfg := ConsumerConfig{Name: "publish-consume", Subject: "souk.test.>", AckWait: 2 * time.Second}
	MustSubscribe(t, b, db, rec.consumer(cfg), rec.handle)

	// The publisher's trace: the consumer must continue it.
	pctx, parent := tp.Tracer("test").Start(ctx, "checkout")
	e := MustEvent(t, pctx, "thing_happened", "agg_1", 42)
	parent.End()
	if err := b.Publish(ctx, e); err != nil {
		t.Fatal(err)
	}
	// A sentinel published after it: once it is in, e had its chance to
	// arrive more than once.
	sentinel := MustEvent(t, ctx, "sentinel", "agg_s", 0)
	if err := b.Publish(ctx, sentinel); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, waitLong, "both events to be applied", func() bool {
		return rec.isCommitted(e.ID) && rec.isCommitted(sentinel.ID) && rec.deliveriesOf(e.ID) > 0
	})

	if n := rec.callsOf(e.ID); n != 1 {
		t.Errorf("handler called %d times for the event, want 1", n)
	}
	if n := rec.deliveriesOf(e.ID); n != 1 {
		t.Errorf("event delivered %d times, want 1", n)
	}
	if n := effects(t, db, e.ID); n != 1 {
		t.Errorf("%d effect rows, want 1", n)
	}
	if n := inboxRows(t, db, cfg.Name, e.ID); n != 1 {
		t.Errorf("%d inbox rows, want 1", n)
	}
	rec.mu.Lock()
	got, span := rec.committed[e.ID], rec.spans[e.ID]
	rec.mu.Unlock()
	if got.ID != e.ID || got.Type != e.Type || got.Source != e.Source || got.Subject != e.Subject ||
		got.SpecVersion != "1.0" || !got.Time.Equal(e.Time) || !bytes.Equal(got.Data, e.Data) ||
		got.TraceParent != e.TraceParent || got.TraceParent == "" {
		t.Errorf("received %+v\nwant %+v", got, e)
	}
	var p payload
	if err := got.Decode(&p); err != nil || p != (payload{"agg_1", 42}) {
		t.Errorf("data = %+v, %v; want {agg_1 42}", p, err)
	}
	if span.TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("handler's trace id = %s, want the publisher's %s", span.TraceID(), parent.SpanContext().TraceID())
	}
	var consumerSpan *tracetest.SpanStub
	for _, s := range spans.GetSpans() {
		if s.SpanKind == trace.SpanKindConsumer && s.Name == cfg.Name+" process "+e.Type {
			consumerSpan = &s
		}
	}
	if consumerSpan == nil {
		t.Fatalf("no consumer span recorded; spans: %v", spans.GetSpans())
	}
	if consumerSpan.Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("consumer span's parent = %s, want the publisher's span %s", consumerSpan.Parent.SpanID(), parent.SpanContext().SpanID())
	}
	// Counted just after the commit the recorder saw.
	waitUntil(t, waitLong, "the processed metric to reach 2", func() bool {
		return metricValue(t, b.metrics.deliveries.WithLabelValues(cfg.Name, outcomeProcessed)) == 2
	})
	if got := metricValue(t, b.metrics.published.WithLabelValues(e.Type, "ok")); got != 1 {
		t.Errorf("published metric for %s = %v, want 1", e.Type, got)
	}
}

func testDurableResume(t *testing.T, be backend, db *store.DB) {
	ctx := context.Background()
	b := MustOpen(t, be.config(t, false))
	rec := newRecorder()
	cfg := rec.consumer(ConsumerConfig{Name: "resumer", Subject: "souk.test.>", AckWait: 2 * time.Second})

	first := MustSubscribe(t, b, db, cfg, rec.handle)
	e1 := MustEvent(t, ctx, "thing_happened", "agg", 1)
	if err := b.Publish(ctx, e1); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, waitLong, "e1", func() bool { return rec.isCommitted(e1.ID) })
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := first.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}

	// Published while nobody listens.
	var away []Event
	for i := 2; i <= 3; i++ {
		e := MustEvent(t, ctx, "thing_happened", "agg", i)
		if err := b.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
		away = append(away, e)
	}
	if rec.committedCount() != 1 {
		t.Fatalf("a stopped subscription applied events: %d committed", rec.committedCount())
	}

	MustSubscribe(t, b, db, cfg, rec.handle)
	sentinel := MustEvent(t, ctx, "sentinel", "s", 0)
	if err := b.Publish(ctx, sentinel); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, waitLong, "the events published while away", func() bool {
		return rec.isCommitted(away[0].ID) && rec.isCommitted(away[1].ID) && rec.isCommitted(sentinel.ID) &&
			rec.deliveriesOf(away[0].ID) > 0 && rec.deliveriesOf(away[1].ID) > 0
	})
	for _, e := range append([]Event{e1}, away...) {
		if n := rec.deliveriesOf(e.ID); n != 1 {
			t.Errorf("event %d delivered %d times, want 1", mustN(t, e), n)
		}
	}
	if got, want := rec.orderOf("agg"), []int{1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("applied in order %v, want %v", got, want)
	}
}

// testWantsDeclines: an event Wants declines is acknowledged without the
// handler, an inbox row or a redelivery; the others are handled.
func testWantsDeclines(t *testing.T, be backend, db *store.DB) {
	ctx := context.Background()
	b := MustOpen(t, be.config(t, false))
	rec := newRecorder()
	var asked sync.Map // event id -> true
	cfg := rec.consumer(ConsumerConfig{Name: "picky", Subject: "souk.test.>", AckWait: time.Second,
		Wants: func(_ context.Context, e Event) (bool, error) {
			asked.Store(e.ID, true)
			return e.Type != "souk.test.ignored.v1", nil
		}})
	MustSubscribe(t, b, db, cfg, rec.handle)

	ignored := MustEvent(t, ctx, "ignored", "agg", 1)
	wanted := MustEvent(t, ctx, "wanted", "agg", 2)
	for _, e := range []Event{ignored, wanted} {
		if err := b.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, waitLong, "the wanted event to be applied", func() bool { return rec.isCommitted(wanted.ID) })
	waitUntil(t, waitLong, "the skipped metric to reach 1", func() bool {
		return metricValue(t, b.metrics.deliveries.WithLabelValues(cfg.Name, outcomeSkipped)) == 1
	})
	if _, ok := asked.Load(ignored.ID); !ok {
		t.Error("Wants was not asked about the ignored event")
	}
	if n := rec.callsOf(ignored.ID); n != 0 {
		t.Errorf("handler called %d times for a declined event, want 0", n)
	}
	if n := inboxRows(t, db, cfg.Name, ignored.ID); n != 0 {
		t.Errorf("%d inbox rows for a declined event, want 0", n)
	}
	// Acknowledged: not redelivered after AckWait.
	time.Sleep(2 * cfg.AckWait)
	if got := metricValue(t, b.metrics.deliveries.WithLabelValues(cfg.Name, outcomeSkipped)); got != 1 {
		t.Errorf("skipped metric = %v after AckWait, want 1 (a declined event was redelivered)", got)
	}
	if n := rec.callsOf(wanted.ID); n != 1 {
		t.Errorf("handler called %d times for the wanted event, want 1", n)
	}
}

// testWantsTypeDeclines: WantsType declines by the ce-type header before
// the body is decoded — a message it declines whose body is no CloudEvent
// is acknowledged as skipped, not dead-lettered — and the wanted events
// are handled.
func testWantsTypeDeclines(t *testing.T, be backend, db *store.DB) {
	ctx := context.Background()
	b := MustOpen(t, be.config(t, false))
	rec := newRecorder()
	const ignoredType = "souk.test.ignored.v1"
	cfg := rec.consumer(ConsumerConfig{Name: "by-type", Subject: "souk.test.>", AckWait: time.Second,
		WantsType: func(_ context.Context, typ string) (bool, error) { return typ != ignoredType, nil }})
	MustSubscribe(t, b, db, cfg, rec.handle)

	msg := nats.NewMsg(b.subject(ignoredType))
	msg.Header.Set("ce-type", ignoredType)
	msg.Header.Set("ce-id", "evt_not_decoded")
	msg.Data = []byte("not a cloudevent")
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	wanted := MustEvent(t, ctx, "wanted", "agg", 2)
	if err := b.Publish(ctx, wanted); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, waitLong, "the wanted event to be applied", func() bool { return rec.isCommitted(wanted.ID) })
	waitUntil(t, waitLong, "the skipped metric to reach 1", func() bool {
		return metricValue(t, b.metrics.deliveries.WithLabelValues(cfg.Name, outcomeSkipped)) == 1
	})
	time.Sleep(2 * cfg.AckWait)
	if got := metricValue(t, b.metrics.deliveries.WithLabelValues(cfg.Name, outcomeSkipped)); got != 1 {
		t.Errorf("skipped metric = %v after AckWait, want 1 (the declined message was redelivered)", got)
	}
	if got := metricValue(t, b.metrics.deliveries.WithLabelValues(cfg.Name, outcomeDeadLettered)); got != 0 {
		t.Errorf("%v messages dead-lettered: the declined one was decoded", got)
	}
	if n := rec.callsOf(wanted.ID); n != 1 {
		t.Errorf("handler called %d times for the wanted event, want 1", n)
	}
}

func mustN(t testing.TB, e Event) int {
	var p payload
	if err := e.Decode(&p); err != nil {
		t.Fatal(err)
	}
	return p.N
}

func testCrashBeforeAck(t *testing.T, be backend, db *store.DB) {
	ctx := context.Background()
	b := MustOpen(t, be.config(t, false))
	rec := newRecorder()
	// The first delivery commits and then "crashes" before acknowledging.
	rec.skipAck = func(_ Event, _ bool, delivery int) bool { return delivery == 1 }
	var redelivered []bool
	cfg := rec.consumer(ConsumerConfig{Name: "crasher", Subject: "souk.test.>", AckWait: 300 * time.Millisecond})
	hook := cfg.testAfterCommit
	cfg.testAfterCommit = func(e Event, duplicate bool) bool {
		rec.mu.Lock()
		redelivered = append(redelivered, duplicate)
		rec.mu.Unlock()
		return hook(e, duplicate)
	}
	MustSubscribe(t, b, db, cfg, rec.handle)

	e := MustEvent(t, ctx, "thing_happened", "agg", 1)
	if err := b.Publish(ctx, e); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, waitLong, "the redelivery after AckWait", func() bool { return rec.deliveriesOf(e.ID) >= 2 })

	rec.mu.Lock()
	seen := slices.Clone(redelivered)
	rec.mu.Unlock()
	if len(seen) < 2 || seen[0] || !seen[1] {
		t.Errorf("deliveries (duplicate?) = %v, want the first applied and the second recognised as a duplicate", seen)
	}
	if n := rec.callsOf(e.ID); n != 1 {
		t.Errorf("handler called %d times, want 1", n)
	}
	if n := effects(t, db, e.ID); n != 1 {
		t.Errorf("%d effect rows after redelivery, want exactly 1", n)
	}
	if n := inboxRows(t, db, cfg.Name, e.ID); n != 1 {
		t.Errorf("%d inbox rows, want 1", n)
	}
	// Counted just after the hook that observed the duplicate.
	waitUntil(t, waitLong, "the duplicate metric", func() bool {
		return metricValue(t, b.metrics.deliveries.WithLabelValues(cfg.Name, outcomeDuplicate)) >= 1
	})
	if got := metricValue(t, b.metrics.redeliveries.WithLabelValues(cfg.Name)); got < 1 {
		t.Errorf("redeliveries metric = %v, want at least 1", got)
	}
}

func testRetryThenSuccess(t *testing.T, be backend, db *store.DB) {
	ctx := context.Background()
	b := MustOpen(t, be.config(t, false))
	rec := newRecorder()
	rec.fail = func(_ Event, call int) error {
		if call <= 2 {
			return fmt.Errorf("transient failure %d", call)
		}
		return nil
	}
	cfg := rec.consumer(ConsumerConfig{
		Name: "retrier", Subject: "souk.test.>", MaxDeliver: 5,
		AckWait: 2 * time.Second, Backoff: []time.Duration{50 * time.Millisecond, 100 * time.Millisecond},
	})
	MustSubscribe(t, b, db, cfg, rec.handle)

	e := MustEvent(t, ctx, "thing_happened", "agg", 1)
	if err := b.Publish(ctx, e); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, waitLong, "the third attempt to succeed", func() bool { return rec.isCommitted(e.ID) })

	if n := rec.callsOf(e.ID); n != 3 {
		t.Errorf("handler called %d times, want 3", n)
	}
	if n := effects(t, db, e.ID); n != 1 {
		t.Errorf("%d effect rows, want 1 (failed attempts roll back)", n)
	}
	if got := metricValue(t, b.metrics.deliveries.WithLabelValues(cfg.Name, outcomeRetried)); got != 2 {
		t.Errorf("retried metric = %v, want 2", got)
	}
	if got := metricValue(t, b.metrics.deliveries.WithLabelValues(cfg.Name, outcomeDeadLettered)); got != 0 {
		t.Errorf("dead_lettered metric = %v, want 0", got)
	}
}

func testDeadLetter(t *testing.T, be backend, db *store.DB) {
	ctx := context.Background()
	b := MustOpen(t, be.config(t, false))
	rec := newRecorder()
	rec.fail = func(e Event, _ int) error {
		switch {
		case strings.Contains(e.Type, ".poison."):
			return errors.New("always fails\non two lines")
		case strings.Contains(e.Type, ".unfit."):
			return Permanent(errors.New("cannot ever apply"))
		}
		return nil
	}
	cfg := rec.consumer(ConsumerConfig{
		Name: "dead-letterer", Subject: "souk.test.>", MaxDeliver: 3,
		AckWait: 2 * time.Second, Backoff: []time.Duration{20 * time.Millisecond},
	})
	MustSubscribe(t, b, db, cfg, rec.handle)

	poison := MustEvent(t, ctx, "poison", "agg", 1)
	unfit := MustEvent(t, ctx, "unfit", "agg", 2)
	for _, e := range []Event{poison, unfit} {
		if err := b.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	garbageType := "souk.test.garbage.v1"
	if _, err := b.js.Publish(ctx, b.subject(garbageType), []byte("not a cloudevent")); err != nil {
		t.Fatal(err)
	}
	fine := MustEvent(t, ctx, "fine", "agg", 3)
	if err := b.Publish(ctx, fine); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		typ, id, errText, deliveries string
		calls                        int
	}{
		{poison.Type, poison.ID, "always fails on two lines", "3", 3},
		{unfit.Type, unfit.ID, "cannot ever apply", "1", 1},
		{garbageType, "", "undecodable CloudEvent", "1", 0},
	} {
		msg := deadLetter(t, b, tc.typ)
		h := msg.Header
		if got := h.Get(HeaderDeadLetterConsumer); got != cfg.Name {
			t.Errorf("%s: consumer header = %q, want %q", tc.typ, got, cfg.Name)
		}
		if got := h.Get(HeaderDeadLetterError); !strings.Contains(got, tc.errText) {
			t.Errorf("%s: error header = %q, want it to contain %q", tc.typ, got, tc.errText)
		}
		if got := h.Get(HeaderDeadLetterDeliveries); got != tc.deliveries {
			t.Errorf("%s: deliveries header = %q, want %s", tc.typ, got, tc.deliveries)
		}
		if got := h.Get(HeaderDeadLetterSubject); got != b.subject(tc.typ) {
			t.Errorf("%s: subject header = %q, want %q", tc.typ, got, b.subject(tc.typ))
		}
		if tc.id != "" {
			var got Event
			if err := json.Unmarshal(msg.Data, &got); err != nil || got.ID != tc.id {
				t.Errorf("%s: dead letter body is not the original event: %v, %q", tc.typ, err, msg.Data)
			}
			if n := effects(t, db, tc.id); n != 0 {
				t.Errorf("%s: %d effect rows, want none", tc.typ, n)
			}
			if n := inboxRows(t, db, cfg.Name, tc.id); n != 0 {
				t.Errorf("%s: %d inbox rows, want none", tc.typ, n)
			}
		}
		if tc.id != "" {
			if n := rec.callsOf(tc.id); n != tc.calls {
				t.Errorf("%s: handler called %d times, want %d", tc.typ, n, tc.calls)
			}
		}
	}
	waitUntil(t, waitLong, "the healthy event", func() bool { return rec.isCommitted(fine.ID) })

	// Dead letters are terminated: nothing stays pending for redelivery.
	cons, err := b.js.Consumer(ctx, b.cfg.Stream, cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, waitLong, "no unacknowledged events", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	if n := rec.callsOf(poison.ID); n != 3 {
		t.Errorf("poison handled %d times in all, want 3", n)
	}
	if got := metricValue(t, b.metrics.deliveries.WithLabelValues(cfg.Name, outcomeDeadLettered)); got != 3 {
		t.Errorf("dead_lettered metric = %v, want 3", got)
	}
}

// outboxScenario writes events for three aggregates, interleaved, some
// several per transaction, and returns them in outbox order.
func outboxScenario(t *testing.T, db *store.DB, ob *Outbox) []Event {
	ctx := context.Background()
	var all []Event
	for round := 1; round <= 4; round++ {
		for _, agg := range []string{"agg_a", "agg_b", "agg_c"} {
			events := []Event{MustEvent(t, ctx, "thing_happened", agg, round)}
			if agg == "agg_b" && round%2 == 0 {
				events = append(events, MustEvent(t, ctx, "thing_happened", agg, round*100))
			}
			if err := db.InTx(ctx, func(tx *store.Tx) error { return ob.Add(ctx, tx, events...) }); err != nil {
				t.Fatal(err)
			}
			all = append(all, events...)
		}
	}
	return all
}

// assertRelayed checks that every event was applied exactly once, in outbox
// order per aggregate, that the stream stored each once, and that nothing is
// pending. earlier are events applied before, in order.
func assertRelayed(t *testing.T, b *Bus, db *store.DB, r *Relay, rec *recorder, events []Event, earlier ...Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	events = append(slices.Clone(earlier), events...)
	// A delivery is counted after its transaction's AfterCommit hooks ran:
	// wait for both, or the last one may be seen committed but not counted.
	waitUntil(t, waitLong, "every event to be applied and its delivery counted", func() bool {
		if rec.committedCount() != len(events) {
			return false
		}
		for _, e := range events {
			if rec.deliveriesOf(e.ID) == 0 {
				return false
			}
		}
		return true
	})
	want := map[string][]int{}
	for _, e := range events {
		var p payload
		_ = e.Decode(&p)
		want[p.Aggregate] = append(want[p.Aggregate], p.N)
		if n := rec.deliveriesOf(e.ID); n != 1 {
			t.Errorf("event %s delivered %d times, want 1", e.ID, n)
		}
		if n := effects(t, db, e.ID); n != 1 {
			t.Errorf("event %s applied %d times, want 1", e.ID, n)
		}
	}
	for agg, w := range want {
		if got := rec.orderOf(agg); !slices.Equal(got, w) {
			t.Errorf("%s applied in order %v, want %v", agg, got, w)
		}
	}
	if n := streamMessages(t, b); n != uint64(len(events)) {
		t.Errorf("stream holds %d messages, want %d (one per event id)", n, len(events))
	}
	if n, err := r.Pending(ctx); err != nil || n != 0 {
		t.Errorf("pending = %d, %v; want 0", n, err)
	}
	if n := countRows(t, db, `SELECT COUNT(*) FROM souk_outbox WHERE published_at IS NULL`); n != 0 {
		t.Errorf("%d outbox rows unpublished, want 0", n)
	}
}

func testRelayPublisherFailure(t *testing.T, be backend, db *store.DB) {
	b := MustOpen(t, be.config(t, false))
	rec := newRecorder()
	MustSubscribe(t, b, db, rec.consumer(ConsumerConfig{Name: "relayed", Subject: "souk.test.>", AckWait: 5 * time.Second}), rec.handle)

	pub := &flakyPublisher{next: b}
	pub.down.Store(true)
	pub.lostAcks.Store(2) // after recovery, two publications "lose" their ack
	r, err := NewRelay(db, pub, RelayConfig{
		Name: "test", PollInterval: 50 * time.Millisecond, PublishTimeout: time.Second,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	}, testLogger(t), b.metrics)
	if err != nil {
		t.Fatal(err)
	}
	events := outboxScenario(t, db, NewOutbox(r.Wake))
	MustRunRelay(t, r)

	waitUntil(t, waitLong, "the relay to retry the first row", func() bool {
		return countRows(t, db, `SELECT attempts FROM souk_outbox WHERE event_id = ?`, events[0].ID) >= 3
	})
	for _, id := range pub.callIDs() {
		if id != events[0].ID {
			t.Fatalf("while the bus was down the relay tried %s, a later row than the failing first one", id)
		}
	}
	var lastErr string
	if err := db.QueryRow(context.Background(), `SELECT last_error FROM souk_outbox WHERE event_id = ?`, events[0].ID).Scan(&lastErr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(lastErr, "bus down") {
		t.Errorf("last_error = %q, want the publisher's error", lastErr)
	}
	if n, _ := r.Pending(context.Background()); n != len(events) {
		t.Errorf("pending = %d while the bus is down, want %d", n, len(events))
	}
	if rec.committedCount() != 0 {
		t.Errorf("%d events arrived while the bus was down", rec.committedCount())
	}

	pub.down.Store(false)
	assertRelayed(t, b, db, r, rec, events)
	if got := metricValue(t, b.metrics.relayFailures.WithLabelValues("test")); got < 3 {
		t.Errorf("relay failures metric = %v, want at least 3", got)
	}
	// The gauge is refreshed after each drain, so it may trail Flush a little.
	waitUntil(t, waitLong, "the outbox pending gauge to drop to 0", func() bool {
		return metricValue(t, b.metrics.outboxPending.WithLabelValues("test")) == 0
	})
}

func testRelayNetworkOutage(t *testing.T, be backend, db *store.DB) {
	direct := MustOpen(t, be.config(t, true))
	rec := newRecorder()
	MustSubscribe(t, direct, db, rec.consumer(ConsumerConfig{Name: "relayed", Subject: "souk.test.>", AckWait: 5 * time.Second}), rec.handle)

	// The relay's bus reaches the server through a proxy we can cut.
	px := startProxy(t, direct.ClientURL())
	cfg := direct.cfg
	cfg.URL, cfg.ListenPort, cfg.StoreDir = px.URL(), 0, ""
	cfg.RequestTimeout = 300 * time.Millisecond
	viaProxy := MustOpen(t, cfg)
	r, err := NewRelay(db, viaProxy, RelayConfig{
		Name: "test", PollInterval: 50 * time.Millisecond, PublishTimeout: 300 * time.Millisecond,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	MustRunRelay(t, r)

	px.down()
	events := outboxScenario(t, db, NewOutbox(r.Wake))
	waitUntil(t, waitLong, "the relay to fail while the network is down", func() bool {
		return countRows(t, db, `SELECT attempts FROM souk_outbox WHERE event_id = ?`, events[0].ID) >= 2
	})
	if err := viaProxy.Ready(context.Background()); err == nil {
		t.Error("Ready = nil while the server is unreachable")
	}
	if rec.committedCount() != 0 {
		t.Errorf("%d events arrived while the network was down", rec.committedCount())
	}
	px.up(t)
	assertRelayed(t, direct, db, r, rec, events)
	waitUntil(t, waitLong, "the relay's bus to be ready again", func() bool {
		return viaProxy.Ready(context.Background()) == nil
	})
}

func testRollbackNeverPublished(t *testing.T, be backend, db *store.DB) {
	ctx := context.Background()
	b := MustOpen(t, be.config(t, false))
	rec := newRecorder()
	MustSubscribe(t, b, db, rec.consumer(ConsumerConfig{Name: "rollback", Subject: "souk.test.>", AckWait: 5 * time.Second}), rec.handle)
	r, err := NewRelay(db, b, RelayConfig{Name: "test", PollInterval: 20 * time.Millisecond}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	MustRunRelay(t, r)
	ob := NewOutbox(r.Wake)

	rolledBack := MustEvent(t, ctx, "thing_happened", "agg", 1)
	boom := errors.New("boom")
	err = db.InTx(ctx, func(tx *store.Tx) error {
		if err := ob.Add(ctx, tx, rolledBack); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v, want boom", err)
	}
	committed := MustEvent(t, ctx, "thing_happened", "agg", 2)
	if err := db.InTx(ctx, func(tx *store.Tx) error { return ob.Add(ctx, tx, committed) }); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, waitLong)
	defer cancel()
	if err := r.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, waitLong, "the committed event", func() bool { return rec.isCommitted(committed.ID) })
	if n := rec.deliveriesOf(rolledBack.ID); n != 0 {
		t.Errorf("rolled-back event delivered %d times", n)
	}
	if n := countRows(t, db, `SELECT COUNT(*) FROM souk_outbox WHERE event_id = ?`, rolledBack.ID); n != 0 {
		t.Errorf("rolled-back event has %d outbox rows", n)
	}
	if n := streamMessages(t, b); n != 1 {
		t.Errorf("stream holds %d messages, want only the committed event", n)
	}
}
