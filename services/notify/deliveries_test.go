package notify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/store"
)

func TestWebhookIsSignedAndDelivered(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock()
		rcv := newReceiver(t, clk)
		s := MustNewService(t, db, devConfig(Config{}), WithClock(clk.Now), WithMetrics(prometheus.NewRegistry()))
		w := MustCreateWebhook(t, s, rcv.URL+"/hooks/souk", EventOrderConfirmed)
		rcv.setSecret(w.Secret)
		all := MustCreateWebhook(t, s, rcv.URL+"/all", "*")
		disabled := MustCreateWebhook(t, s, rcv.URL+"/off", "*")
		if _, err := s.UpdateWebhook(ctx, disabled.ID, WebhookPatch{Enabled: ptr(false)}, 0); err != nil {
			t.Fatal(err)
		}

		e := MustOrderEvent(t, orderData("ada@example.com"))
		other := MustEvent(t, "catalog", "souk.catalog.product_published.v1", "prod_1", map[string]any{"product_id": "prod_1"})
		MustHandle(t, db, s.handleEvent, e)
		MustHandle(t, db, s.handleEvent, other)
		if n := len(MustDeliveries(t, s, w.ID)); n != 1 {
			t.Fatalf("the order_confirmed subscription has %d deliveries, want 1 (not the catalogue event)", n)
		}
		if n := len(MustDeliveries(t, s, all.ID)); n != 2 {
			t.Fatalf("the * subscription has %d deliveries, want 2", n)
		}
		if n := len(MustDeliveries(t, s, disabled.ID)); n != 0 {
			t.Fatalf("a disabled subscription got %d deliveries", n)
		}
		pending := MustDelivery(t, s, w.ID)
		if pending.Status != DeliveryPending || pending.Attempts != 0 || pending.NextAttemptAt == nil || pending.LastAttemptAt != nil {
			t.Fatalf("new delivery: %+v", pending)
		}

		if n := MustDeliverPending(t, s); n != 3 {
			t.Fatalf("DeliverPending attempted %d, want 3", n)
		}
		var got *received
		for _, r := range rcv.got() {
			if r.header.Get(HeaderWebhookID) == w.ID {
				got = &r
			}
		}
		if got == nil {
			t.Fatal("the subscription's URL got nothing")
		}
		h := got.header
		for k, want := range map[string]string{
			"Content-Type": "application/json", HeaderWebhookID: w.ID, HeaderEventID: e.ID, HeaderEventType: EventOrderConfirmed,
			HeaderDeliveryID: pending.ID, HeaderDeliveryAttempt: "1", "User-Agent": "Souk-Webhooks/1",
		} {
			if h.Get(k) != want {
				t.Errorf("%s = %q, want %q", k, h.Get(k), want)
			}
		}
		if got.sigError != nil {
			t.Fatalf("the receiver could not verify the signature: %v (header %q)", got.sigError, h.Get(HeaderSignature))
		}
		if !strings.HasPrefix(h.Get(HeaderSignature), "t="+strconv.FormatInt(clk.Now().Unix(), 10)+",v1=") {
			t.Errorf("signature header %q", h.Get(HeaderSignature))
		}
		if got.event.ID != e.ID || got.event.Type != e.Type || got.event.Source != "orders" || got.event.SpecVersion != "1.0" {
			t.Errorf("posted event %+v", got.event)
		}
		var data map[string]any
		if err := json.Unmarshal(got.event.Data, &data); err != nil || data["order_id"] != "ord_01JD3Q7W0000000000000000AB" {
			t.Errorf("posted data %s (%v)", got.event.Data, err)
		}

		// The same request replayed later, or tampered with, is refused.
		sig := h.Get(HeaderSignature)
		if err := VerifySignature(w.Secret, sig, got.body, 5*time.Minute, clk.Now().Add(10*time.Minute)); !errors.Is(err, ErrSignatureExpired) {
			t.Errorf("replay 10 minutes later: %v, want ErrSignatureExpired", err)
		}
		tampered := []byte(strings.Replace(string(got.body), "ord_01JD3Q7W0000000000000000AB", "ord_01JD3Q7W0000000000000000AC", 1))
		if err := VerifySignature(w.Secret, sig, tampered, 5*time.Minute, clk.Now()); !errors.Is(err, ErrSignatureMismatch) {
			t.Errorf("tampered body: %v, want ErrSignatureMismatch", err)
		}
		if err := VerifySignature(all.Secret, sig, got.body, 5*time.Minute, clk.Now()); !errors.Is(err, ErrSignatureMismatch) {
			t.Errorf("another subscription's secret: %v, want ErrSignatureMismatch", err)
		}

		// The delivery log.
		d := MustDelivery(t, s, w.ID)
		if d.ID != pending.ID || d.EventID != e.ID || d.EventType != EventOrderConfirmed || d.WebhookID != w.ID ||
			d.Status != DeliverySucceeded || d.Attempts != 1 || d.LastStatusCode == nil || *d.LastStatusCode != 200 ||
			d.LastError != nil || d.NextAttemptAt != nil || d.CompletedAt == nil || !d.CompletedAt.Equal(clk.Now()) ||
			d.LastAttemptAt == nil || !d.LastAttemptAt.Equal(clk.Now()) || !d.CreatedAt.Equal(pending.CreatedAt) {
			t.Errorf("delivery log: %+v", d)
		}
		if wh := MustGetWebhook(t, s, w.ID); wh.LastSuccessAt == nil || wh.ConsecutiveFailures != 0 {
			t.Errorf("webhook after success: %+v", wh)
		}
		if v := metricValue(t, s.metrics.deliveries.WithLabelValues(hookSucceeded, "200")); v != 3 {
			t.Errorf("succeeded metric = %v", v)
		}
		if n := MustDeliverPending(t, s); n != 0 {
			t.Errorf("a succeeded delivery was attempted again")
		}
	})
}

func TestWebhookFailuresAreRetriedWithGrowingDelays(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		clk := newClock()
		rcv := newReceiver(t, clk)
		// 500, 503 with a body, a timeout, then 200.
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		rcv.setRespond(func(call int, w http.ResponseWriter, r *http.Request) {
			switch call {
			case 1:
				w.WriteHeader(http.StatusInternalServerError)
			case 2:
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("down for\nmaintenance \x00" + strings.Repeat("x", 1000)))
			case 3:
				select { // hang until the client gives up
				case <-r.Context().Done():
				case <-release:
				}
			default:
				w.WriteHeader(http.StatusNoContent)
			}
		})
		s := MustNewService(t, db, devConfig(Config{WebhookTimeout: 300 * time.Millisecond}), WithClock(clk.Now), WithMetrics(prometheus.NewRegistry()))
		w := MustCreateWebhook(t, s, rcv.URL, "*")
		rcv.setSecret(w.Secret)
		MustHandle(t, db, s.handleEvent, MustOrderEvent(t, orderData("ada@example.com")))

		var delays []time.Duration
		checks := []func(d Delivery){
			func(d Delivery) {
				if d.LastStatusCode == nil || *d.LastStatusCode != 500 || deref(d.LastError) != "HTTP 500" {
					t.Errorf("after a 500: code %v, error %q", d.LastStatusCode, deref(d.LastError))
				}
			},
			func(d Delivery) {
				if d.LastStatusCode == nil || *d.LastStatusCode != 503 || !strings.HasPrefix(deref(d.LastError), "HTTP 503: down for maintenance") ||
					len(deref(d.LastError)) > 300 || strings.ContainsAny(deref(d.LastError), "\n\x00") {
					t.Errorf("after a 503: code %v, error %q", d.LastStatusCode, deref(d.LastError))
				}
			},
			func(d Delivery) {
				if d.LastStatusCode != nil || !strings.Contains(deref(d.LastError), "no answer within 300ms") {
					t.Errorf("after a timeout: code %v, error %q", d.LastStatusCode, deref(d.LastError))
				}
			},
		}
		for i, check := range checks {
			if n := MustDeliverPending(t, s); n != 1 {
				t.Fatalf("attempt %d: DeliverPending attempted %d", i+1, n)
			}
			d := MustDelivery(t, s, w.ID)
			if d.Status != DeliveryRetrying || d.Attempts != i+1 || d.NextAttemptAt == nil || d.CompletedAt != nil {
				t.Fatalf("after attempt %d: %+v", i+1, d)
			}
			check(d)
			delay := d.NextAttemptAt.Sub(clk.Now())
			nominal := DefaultWebhookRetrySchedule[i]
			if lo, hi := nominal*8/10, nominal*12/10; delay < lo || delay > hi {
				t.Errorf("attempt %d: next in %v, want %v ±20%%", i+1, delay, nominal)
			}
			delays = append(delays, delay)
			clk.Advance(delay - time.Millisecond)
			if n := MustDeliverPending(t, s); n != 0 {
				t.Fatalf("attempt %d: a delivery was attempted before it was due", i+1)
			}
			clk.Advance(time.Millisecond)
		}
		if !slices.IsSorted(delays) || delays[0] == delays[2] {
			t.Errorf("delays %v do not grow", delays)
		}
		MustDeliverPending(t, s)
		d := MustDelivery(t, s, w.ID)
		if d.Status != DeliverySucceeded || d.Attempts != 4 || *d.LastStatusCode != 204 || d.LastError != nil {
			t.Fatalf("after the 204: %+v", d)
		}
		for i, r := range rcv.got() {
			if r.header.Get(HeaderDeliveryAttempt) != strconv.Itoa(i+1) || r.header.Get(HeaderEventID) != d.EventID || r.sigError != nil {
				t.Errorf("request %d: attempt %q, event %q, signature %v", i+1, r.header.Get(HeaderDeliveryAttempt), r.header.Get(HeaderEventID), r.sigError)
			}
		}
		for code, want := range map[string]float64{"500": 1, "503": 1, "timeout": 1} {
			if v := metricValue(t, s.metrics.deliveries.WithLabelValues(hookRetried, code)); v != want {
				t.Errorf("retried{%s} = %v, want %v", code, v, want)
			}
		}
		if wh := MustGetWebhook(t, s, w.ID); wh.ConsecutiveFailures != 0 || wh.LastFailureAt == nil || wh.LastSuccessAt == nil {
			t.Errorf("webhook: %+v", wh)
		}
	})
}

// driveUntilDone runs DeliverPending and moves the clock to the next due
// attempt until nothing is scheduled, returning the times of the attempts
// of one delivery.
func driveUntilDone(t *testing.T, s *Service, clk *clock, webhookID string) {
	t.Helper()
	for round := 0; round < 100; round++ {
		for MustDeliverPending(t, s) > 0 {
		}
		var next *time.Time
		for _, d := range MustDeliveries(t, s, webhookID) {
			if d.NextAttemptAt != nil && (next == nil || d.NextAttemptAt.Before(*next)) {
				next = d.NextAttemptAt
			}
		}
		if next == nil {
			return
		}
		clk.Set(*next)
	}
	t.Fatal("deliveries still scheduled after 100 rounds")
}

func TestRetriesStopAfter24HoursAndTheSubscriptionIsDisabled(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		clk := newClock()
		start := clk.Now()
		rcv := newReceiver(t, clk)
		rcv.setRespond(status(http.StatusBadGateway))
		s := MustNewService(t, db, devConfig(Config{}), WithClock(clk.Now), WithMetrics(prometheus.NewRegistry()), noJitter)
		w := MustCreateWebhook(t, s, rcv.URL, "*")
		rcv.setSecret(w.Secret)
		MustHandle(t, db, s.handleEvent, MustOrderEvent(t, orderData("ada@example.com")))
		driveUntilDone(t, s, clk, w.ID)

		var at []time.Duration
		for _, r := range rcv.got() {
			ts, _ := strconv.ParseInt(strings.TrimPrefix(strings.Split(r.header.Get(HeaderSignature), ",")[0], "t="), 10, 64)
			at = append(at, time.Unix(ts, 0).Sub(start))
		}
		want := []time.Duration{0, 10 * time.Second, 40 * time.Second, 2*time.Minute + 40*time.Second, 12*time.Minute + 40*time.Second,
			time.Hour + 12*time.Minute + 40*time.Second, 4*time.Hour + 12*time.Minute + 40*time.Second, 10*time.Hour + 12*time.Minute + 40*time.Second,
			16*time.Hour + 12*time.Minute + 40*time.Second, 22*time.Hour + 12*time.Minute + 40*time.Second, 24 * time.Hour}
		if !slices.Equal(at, want) {
			t.Errorf("attempts at %v\nwant        %v", at, want)
		}
		d := MustDelivery(t, s, w.ID)
		if d.Status != DeliveryFailed || d.Attempts != 11 || d.NextAttemptAt != nil || d.CompletedAt == nil ||
			!d.CompletedAt.Equal(start.Add(24*time.Hour)) || deref(d.LastError) != "HTTP 502: Bad Gateway" {
			t.Errorf("delivery after 24 h: %+v (%s)", d, deref(d.LastError))
		}
		// Every attempt for 24 h failed: the subscription is disabled.
		wh := MustGetWebhook(t, s, w.ID)
		if wh.Enabled || wh.DisabledReason == nil || !strings.Contains(*wh.DisabledReason, "no delivery succeeded for 24h0m0s") ||
			wh.DisabledAt == nil || wh.Version != 2 || wh.ConsecutiveFailures != 1 {
			t.Errorf("webhook: %+v (%s)", wh, deref(wh.DisabledReason))
		}
		events := outboxEvents(t, db, EventWebhookDisabled)
		if len(events) != 1 {
			t.Fatalf("%d webhook_disabled events, want 1", len(events))
		}
		var e bus.Event
		var data WebhookDisabled
		if err := json.Unmarshal(events[0], &e); err != nil || e.Decode(&data) != nil {
			t.Fatal(err)
		}
		if e.Source != "notify" || e.Subject != w.ID || data.Reason != DisabledFailing || data.WebhookID != w.ID || data.DeliveryID != d.ID ||
			data.LastSuccessAt != nil || data.LastError != "HTTP 502: Bad Gateway" {
			t.Errorf("event %+v, data %+v", e, data)
		}
		if v := metricValue(t, s.metrics.disabled); v != 1 {
			t.Errorf("disabled metric = %v", v)
		}
		if v := metricValue(t, s.metrics.deliveries.WithLabelValues(hookFailed, "502")); v != 1 {
			t.Errorf("failed metric = %v", v)
		}
	})
}

func TestSubscriptionIsDisabledAfterConsecutiveFailedDeliveries(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock()
		rcv := newReceiver(t, clk)
		rcv.setRespond(status(http.StatusInternalServerError))
		logs := &logBuffer{}
		s, err := New(db, bus.NewOutbox(nil), testLogger(t, logs), devConfig(Config{
			MaxConsecutiveFailures: 2, WebhookRetryFor: time.Minute, DisableAfter: 72 * time.Hour, WebhookConcurrency: 1,
		}), WithClock(clk.Now), WithMetrics(prometheus.NewRegistry()), noJitter)
		if err != nil {
			t.Fatal(err)
		}
		w := MustCreateWebhook(t, s, rcv.URL, "*")
		rcv.setSecret(w.Secret)
		var events []bus.Event
		for i := range 3 {
			e := MustEvent(t, "catalog", "souk.catalog.product_updated.v1", "prod_"+strconv.Itoa(i), map[string]any{"n": i})
			MustHandle(t, db, s.handleEvent, e)
			events = append(events, e)
		}
		driveUntilDone(t, s, clk, w.ID)

		// One at a time, oldest first: the first two use their minute of
		// retries (0, 10 s, 40 s, 60 s) and fail; the second failure
		// disables the subscription, which fails the third unattempted.
		byEvent := map[string]Delivery{}
		for _, d := range MustDeliveries(t, s, w.ID) {
			byEvent[d.EventID] = d
		}
		for i, e := range events[:2] {
			if d := byEvent[e.ID]; d.Status != DeliveryFailed || d.Attempts != 4 || deref(d.LastError) != "HTTP 500: Internal Server Error" {
				t.Errorf("delivery %d: %+v (%s)", i, d, deref(d.LastError))
			}
		}
		third := byEvent[events[2].ID]
		if third.Status != DeliveryFailed || third.Attempts != 3 || !strings.Contains(deref(third.LastError), "the webhook was disabled") {
			t.Errorf("third delivery: %+v (%s)", third, deref(third.LastError))
		}
		wh := MustGetWebhook(t, s, w.ID)
		if wh.Enabled || wh.ConsecutiveFailures != 2 || !strings.Contains(deref(wh.DisabledReason), "2 deliveries in a row failed") {
			t.Fatalf("webhook: %+v (%s)", wh, deref(wh.DisabledReason))
		}
		outbox := outboxEvents(t, db, EventWebhookDisabled)
		if len(outbox) != 1 {
			t.Fatalf("%d webhook_disabled events, want 1", len(outbox))
		}
		var e bus.Event
		var data WebhookDisabled
		if err := json.Unmarshal(outbox[0], &e); err != nil || e.Decode(&data) != nil {
			t.Fatal(err)
		}
		if data.Reason != DisabledConsecutiveFailures || data.ConsecutiveFailures != 2 || data.URL != rcv.URL || strings.Contains(string(outbox[0]), w.Secret) || !data.DisabledAt.Equal(*wh.DisabledAt) {
			t.Errorf("event data %+v", data)
		}
		warn := ""
		for l := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(l, "level=WARN") && strings.Contains(l, "webhook disabled") {
				warn = l
			}
		}
		for _, want := range []string{w.ID, "enable it again with PATCH /admin/webhooks/{id}", "consecutive_failures", "HTTP 500"} {
			if !strings.Contains(warn, want) {
				t.Errorf("warn line lacks %q: %s", want, warn)
			}
		}

		// A disabled subscription gets no new deliveries, and its failed
		// ones cannot be retried until it is enabled again.
		MustHandle(t, db, s.handleEvent, MustEvent(t, "catalog", "souk.catalog.product_updated.v1", "prod_9", map[string]any{}))
		if n := len(MustDeliveries(t, s, w.ID)); n != 3 {
			t.Errorf("%d deliveries after an event while disabled, want 3", n)
		}
		_, err = s.RetryDelivery(ctx, w.ID, third.ID)
		wantErr(t, err, apperr.Conflict)

		// Fixed and enabled again: the count starts over, the missed
		// delivery is retried by hand and arrives.
		rcv.setRespond(nil)
		wh, err = s.UpdateWebhook(ctx, w.ID, WebhookPatch{Enabled: ptr(true)}, wh.Version)
		if err != nil || !wh.Enabled || wh.ConsecutiveFailures != 0 || wh.DisabledReason != nil || wh.DisabledAt != nil {
			t.Fatalf("enable: %+v, %v", wh, err)
		}
		if wh := MustGetWebhook(t, s, w.ID); wh.ConsecutiveFailures != 0 {
			t.Errorf("stored count after enabling: %d", wh.ConsecutiveFailures)
		}
		if _, err := s.RetryDelivery(ctx, w.ID, third.ID); err != nil {
			t.Fatal(err)
		}
		MustDeliverPending(t, s)
		if d, _ := s.GetDelivery(ctx, w.ID, third.ID); d.Status != DeliverySucceeded || d.Attempts != 4 {
			t.Errorf("retried delivery: %+v", d)
		}
	})
}

func TestManualRetry(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock()
		rcv := newReceiver(t, clk)
		rcv.setRespond(status(http.StatusGone))
		s := MustNewService(t, db, devConfig(Config{WebhookRetryFor: time.Second}), WithClock(clk.Now), noJitter)
		w := MustCreateWebhook(t, s, rcv.URL, "*")
		rcv.setSecret(w.Secret)
		MustHandle(t, db, s.handleEvent, MustOrderEvent(t, orderData("ada@example.com")))
		driveUntilDone(t, s, clk, w.ID)
		d := MustDelivery(t, s, w.ID)
		if d.Status != DeliveryFailed || d.Attempts != 2 {
			t.Fatalf("before the retry: %+v", d)
		}

		// A failed delivery retried by hand gets one attempt now…
		clk.Advance(time.Hour)
		r, err := s.RetryDelivery(ctx, w.ID, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != DeliveryRetrying || r.NextAttemptAt == nil || !r.NextAttemptAt.Equal(clk.Now()) || r.CompletedAt != nil {
			t.Fatalf("scheduled: %+v", r)
		}
		MustDeliverPending(t, s)
		// …and is failed again when it fails: no new 24 h of retries.
		if d := MustDelivery(t, s, w.ID); d.Status != DeliveryFailed || d.Attempts != 3 || d.NextAttemptAt != nil {
			t.Fatalf("after a failed manual retry: %+v", d)
		}
		rcv.setRespond(nil)
		if _, err := s.RetryDelivery(ctx, w.ID, d.ID); err != nil {
			t.Fatal(err)
		}
		MustDeliverPending(t, s)
		if d := MustDelivery(t, s, w.ID); d.Status != DeliverySucceeded || d.Attempts != 4 {
			t.Fatalf("after a successful manual retry: %+v", d)
		}
		// A succeeded delivery may be sent again too (the receiver lost it).
		if _, err := s.RetryDelivery(ctx, w.ID, d.ID); err != nil {
			t.Fatal(err)
		}
		MustDeliverPending(t, s)
		got := rcv.got()
		if len(got) != 5 || got[4].header.Get(HeaderEventID) != d.EventID || got[4].header.Get(HeaderDeliveryID) != d.ID {
			t.Fatalf("receiver got %d requests", len(got))
		}
		// A pending delivery keeps its deadline; retrying makes it due now.
		e2 := MustOrderEvent(t, orderData("bob@example.com"))
		MustHandle(t, db, s.handleEvent, e2)
		var pending Delivery
		for _, d := range MustDeliveries(t, s, w.ID) {
			if d.EventID == e2.ID {
				pending = d
			}
		}
		if r, err := s.RetryDelivery(ctx, w.ID, pending.ID); err != nil || r.Status != DeliveryPending {
			t.Errorf("retry of a pending delivery: %+v, %v", r, err)
		}
		// Unknown ids.
		_, err = s.RetryDelivery(ctx, w.ID, "dlv_01JD3Q7W0000000000000000XX")
		wantErr(t, err, apperr.NotFound)
		_, err = s.RetryDelivery(ctx, "wh_01JD3Q7W0000000000000000XX", d.ID)
		wantErr(t, err, apperr.NotFound)
	})
}

func TestRetryWhileAnAttemptIsUnderWayIsAConflict(t *testing.T) {
	db := mustSQLite(t)
	ctx := context.Background()
	clk := newClock()
	rcv := newReceiver(t, clk)
	s := MustNewService(t, db, devConfig(Config{}), WithClock(clk.Now))
	w := MustCreateWebhook(t, s, rcv.URL, "*")
	MustHandle(t, db, s.handleEvent, MustOrderEvent(t, orderData("ada@example.com")))
	d := MustDelivery(t, s, w.ID)
	if ok, err := claimDelivery(ctx, db, d.ID, "someone", clk.Now(), clk.Now().Add(time.Minute)); !ok || err != nil {
		t.Fatalf("claim: %v, %v", ok, err)
	}
	_, err := s.RetryDelivery(ctx, w.ID, d.ID)
	wantErr(t, err, apperr.Conflict)
	// The lease keeps other workers off it until it expires.
	if n := MustDeliverPending(t, s); n != 0 {
		t.Fatalf("a leased delivery was attempted")
	}
	clk.Advance(2 * time.Minute)
	if n := MustDeliverPending(t, s); n != 1 {
		t.Fatalf("an expired lease was not taken over")
	}
}

func TestRedeliveredEventMakesOneDeliveryAndOnePost(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		clk := newClock()
		rcv := newReceiver(t, clk)
		s := MustNewService(t, db, devConfig(Config{}), WithClock(clk.Now))
		w := MustCreateWebhook(t, s, rcv.URL, "*")
		rcv.setSecret(w.Secret)
		e := MustOrderEvent(t, orderData("ada@example.com"))
		MustHandle(t, db, s.handleEvent, e)
		MustDeliverPending(t, s)
		MustHandle(t, db, s.handleEvent, e) // after the delivery succeeded
		MustHandle(t, db, s.handleEvent, e)
		MustDeliverPending(t, s)
		if n := countRows(t, db, `SELECT COUNT(*) FROM notify_webhook_deliveries WHERE event_id = ?`, e.ID); n != 1 {
			t.Errorf("%d delivery rows, want 1", n)
		}
		if n := len(rcv.got()); n != 1 {
			t.Errorf("receiver got %d POSTs, want 1", n)
		}
	})
}

func TestConcurrentWorkersPostEachAttemptOnce(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		clk := newClock()
		rcv := newReceiver(t, clk)
		a := MustNewService(t, db, devConfig(Config{WebhookConcurrency: 3}), WithClock(clk.Now))
		b := MustNewService(t, db, devConfig(Config{WebhookConcurrency: 3}), WithClock(clk.Now))
		w := MustCreateWebhook(t, a, rcv.URL, "*")
		rcv.setSecret(w.Secret)
		const n = 20
		for i := range n {
			MustHandle(t, db, a.handleEvent, MustEvent(t, "catalog", "souk.catalog.product_updated.v1", "prod_"+strconv.Itoa(i), map[string]any{}))
		}
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for _, s := range []*Service{a, b} {
			wg.Go(func() {
				for {
					k, err := s.DeliverPending(context.Background())
					if err != nil || k == 0 {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		seen := map[string]int{}
		for _, r := range rcv.got() {
			seen[r.header.Get(HeaderEventID)]++
		}
		if len(rcv.got()) != n || len(seen) != n {
			t.Fatalf("receiver got %d POSTs for %d events, want %d each once", len(rcv.got()), len(seen), n)
		}
		if left := countRows(t, db, `SELECT COUNT(*) FROM notify_webhook_deliveries WHERE status <> 'succeeded'`); left != 0 {
			t.Errorf("%d deliveries not succeeded", left)
		}
	})
}

func TestDeletedWebhookTakesItsLogAlong(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock()
		rcv := newReceiver(t, clk)
		s := MustNewService(t, db, devConfig(Config{}), WithClock(clk.Now))
		w := MustCreateWebhook(t, s, rcv.URL, "*")
		MustHandle(t, db, s.handleEvent, MustOrderEvent(t, orderData("ada@example.com")))
		err := s.DeleteWebhook(ctx, w.ID, 7)
		wantErr(t, err, apperr.VersionConflict)
		if err := s.DeleteWebhook(ctx, w.ID, 1); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, db, `SELECT COUNT(*) FROM notify_webhook_deliveries`); n != 0 {
			t.Errorf("%d deliveries left", n)
		}
		if n := MustDeliverPending(t, s); n != 0 || len(rcv.got()) != 0 {
			t.Errorf("a deleted webhook was posted to")
		}
		wantErr(t, s.DeleteWebhook(ctx, w.ID, 0), apperr.NotFound)
		_, err = s.ListDeliveries(ctx, w.ID, "", 0, "")
		wantErr(t, err, apperr.NotFound)
	})
}

func TestWebhookCRUD(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock()
		s := MustNewService(t, db, devConfig(Config{}), WithClock(clk.Now))
		w, err := s.CreateWebhook(ctx, WebhookInput{URL: "http://127.0.0.1:9/a", Description: "ERP",
			EventTypes: []string{"souk.orders.order_confirmed.v1", "souk.catalog.product_updated.v1", "souk.orders.order_confirmed.v1"}})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(w.EventTypes, []string{"souk.catalog.product_updated.v1", "souk.orders.order_confirmed.v1"}) ||
			!w.Enabled || w.Version != 1 || w.DisabledReason != nil || !strings.HasPrefix(w.Secret, "whsec_") {
			t.Fatalf("created: %+v", w)
		}
		got := MustGetWebhook(t, s, w.ID)
		if got.ID != w.ID || got.URL != w.URL || got.Description != "ERP" || !got.CreatedAt.Equal(clk.Now()) {
			t.Errorf("read back: %+v", got)
		}
		star, err := s.CreateWebhook(ctx, WebhookInput{URL: "http://127.0.0.1:9/b", EventTypes: []string{"souk.orders.order_confirmed.v1", "*"}})
		if err != nil || !slices.Equal(star.EventTypes, []string{"*"}) {
			t.Errorf("* with others: %v, %v", star.EventTypes, err)
		}

		// Validation.
		_, err = s.CreateWebhook(ctx, WebhookInput{URL: "http://127.0.0.1:9/", EventTypes: []string{"orders.placed", "souk.orders.order_confirmed"},
			Description: strings.Repeat("x", 501)})
		wantErr(t, err, apperr.ValidationFailed, "event_types[0]", "event_types[1]", "description")
		_, err = s.CreateWebhook(ctx, WebhookInput{URL: "", EventTypes: nil})
		wantErr(t, err, apperr.ValidationFailed, "url", "event_types")

		// Update with If-Match.
		clk.Advance(time.Minute)
		up, err := s.UpdateWebhook(ctx, w.ID, WebhookPatch{EventTypes: &[]string{"*"}, Description: ptr("all")}, 1)
		if err != nil || up.Version != 2 || !slices.Equal(up.EventTypes, []string{"*"}) || up.Description != "all" || !up.UpdatedAt.Equal(clk.Now()) {
			t.Fatalf("update: %+v, %v", up, err)
		}
		_, err = s.UpdateWebhook(ctx, w.ID, WebhookPatch{Description: ptr("stale")}, 1)
		wantErr(t, err, apperr.VersionConflict)
		same, err := s.UpdateWebhook(ctx, w.ID, WebhookPatch{Description: ptr("all")}, 0)
		if err != nil || same.Version != 2 {
			t.Errorf("a no-op update: %+v, %v", same, err)
		}
		off, err := s.UpdateWebhook(ctx, w.ID, WebhookPatch{Enabled: ptr(false)}, 0)
		if err != nil || off.Enabled || deref(off.DisabledReason) != "disabled by system" || off.DisabledAt == nil {
			t.Errorf("disable: %+v, %v", off, err)
		}

		// Listing pages oldest first.
		page, err := s.ListWebhooks(ctx, 1, "")
		if err != nil || len(page.Data) != 1 || page.Data[0].ID != w.ID || page.NextCursor == nil {
			t.Fatalf("page 1: %+v, %v", page, err)
		}
		page, err = s.ListWebhooks(ctx, 1, *page.NextCursor)
		if err != nil || len(page.Data) != 1 || page.Data[0].ID != star.ID || page.NextCursor != nil {
			t.Fatalf("page 2: %+v, %v", page, err)
		}
		_, err = s.ListWebhooks(ctx, 101, "")
		wantErr(t, err, apperr.ValidationFailed, "limit")
		_, err = s.ListWebhooks(ctx, 0, "garbage!")
		wantErr(t, err, apperr.ValidationFailed, "cursor")
		_, err = s.GetWebhook(ctx, "wh_nope")
		wantErr(t, err, apperr.NotFound)
	})
}

func TestDeliveryLogPagesNewestFirst(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock()
		rcv := newReceiver(t, clk)
		s := MustNewService(t, db, devConfig(Config{}), WithClock(clk.Now))
		w := MustCreateWebhook(t, s, rcv.URL, "*")
		var ids []string
		for i := range 5 {
			e := MustEvent(t, "catalog", "souk.catalog.product_updated.v1", "prod_"+strconv.Itoa(i), map[string]any{})
			MustHandle(t, db, s.handleEvent, e)
			ids = append(ids, e.ID)
		}
		rcv.setRespond(func(call int, w http.ResponseWriter, _ *http.Request) {
			if call%2 == 0 {
				w.WriteHeader(http.StatusInternalServerError)
			}
		})
		s.cfg.WebhookConcurrency = 1
		for MustDeliverPending(t, s) > 0 && len(rcv.got()) < 5 {
		}
		var seen []string
		cursor := ""
		for {
			p, err := s.ListDeliveries(ctx, w.ID, "", 2, cursor)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range p.Data {
				seen = append(seen, d.EventID)
			}
			if p.NextCursor == nil {
				break
			}
			cursor = *p.NextCursor
		}
		slices.Reverse(ids)
		if !slices.Equal(seen, ids) {
			t.Errorf("log order %v, want %v", seen, ids)
		}
		retrying, err := s.ListDeliveries(ctx, w.ID, DeliveryRetrying, 0, "")
		if err != nil || len(retrying.Data) != 2 {
			t.Errorf("retrying: %d, %v", len(retrying.Data), err)
		}
		_, err = s.ListDeliveries(ctx, w.ID, "lost", 0, "")
		wantErr(t, err, apperr.ValidationFailed, "status")
	})
}

// TestWantsOnlySubscribedTypes: the webhook consumer declines (no
// transaction, no inbox row) the events no enabled subscription wants.
func TestWantsOnlySubscribedTypes(t *testing.T) {
	runStores(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock()
		rcv := newReceiver(t, clk)
		s := MustNewService(t, db, devConfig(Config{}), WithClock(clk.Now), WithMetrics(prometheus.NewRegistry()))
		order := MustOrderEvent(t, orderData("ada@example.com"))
		product := MustEvent(t, "catalog", "souk.catalog.product_published.v1", "prod_1", map[string]any{"product_id": "prod_1"})
		wants := func(e bus.Event) bool {
			t.Helper()
			ok, err := s.wantsType(ctx, e.Type)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if wants(order) || wants(product) {
			t.Fatal("wanted an event with no webhook subscribed")
		}
		w := MustCreateWebhook(t, s, rcv.URL, EventOrderConfirmed)
		if !wants(order) || wants(product) {
			t.Fatalf("with a webhook on %s: wants order %v, product %v; want true, false", EventOrderConfirmed, wants(order), wants(product))
		}
		if _, err := s.UpdateWebhook(ctx, w.ID, WebhookPatch{Enabled: ptr(false)}, 0); err != nil {
			t.Fatal(err)
		}
		if wants(order) {
			t.Fatal("wanted an event only a disabled webhook subscribes to")
		}
		MustCreateWebhook(t, s, rcv.URL, "*")
		if !wants(order) || !wants(product) {
			t.Fatal("a * webhook must want every event")
		}

		// Another process's webhooks are seen within subscriptionsTTL.
		other := MustNewService(t, db, devConfig(Config{}), WithClock(clk.Now), WithMetrics(prometheus.NewRegistry()))
		other.MustSetWebhooksEnabled(t, false)
		refund := MustEvent(t, "orders", "souk.orders.order_refunded.v1", "ord_1", map[string]any{"order_id": "ord_1"})
		for deadline := time.Now().Add(20 * subscriptionsTTL); wants(refund); time.Sleep(subscriptionsTTL / 10) {
			if time.Now().After(deadline) {
				t.Fatalf("another process disabled every webhook; still wanted after %v", 20*subscriptionsTTL)
			}
		}
		MustCreateWebhook(t, other, rcv.URL, "souk.orders.order_refunded.v1")
		for deadline := time.Now().Add(20 * subscriptionsTTL); !wants(refund); time.Sleep(subscriptionsTTL / 10) {
			if time.Now().After(deadline) {
				t.Fatalf("a webhook another process created is not seen after %v", 20*subscriptionsTTL)
			}
		}
	})
}

// MustSetWebhooksEnabled enables or disables every webhook through s.
func (s *Service) MustSetWebhooksEnabled(t testing.TB, enabled bool) {
	t.Helper()
	ctx := context.Background()
	p, err := s.ListWebhooks(ctx, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range p.Data {
		if _, err := s.UpdateWebhook(ctx, w.ID, WebhookPatch{Enabled: ptr(enabled)}, 0); err != nil {
			t.Fatal(err)
		}
	}
}
