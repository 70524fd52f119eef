package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/soukhq/souk/platform/store"
)

// Handler applies one event inside tx, the consumer's transaction in its own
// database, which also records the event in the inbox. Returning nil commits
// (and then acknowledges); returning an error rolls everything back and the
// event is retried after a backoff, or dead-lettered once it has been
// delivered ConsumerConfig.MaxDeliver times or at once when the error is
// Permanent. A handler must do nothing outside tx that cannot be repeated: it
// may run again for the same event (a failed attempt, or a transaction the
// store retries). ctx carries the event's trace.
type Handler func(ctx context.Context, tx *store.Tx, e Event) error

// Permanent marks err as one that retrying cannot fix (an event the handler
// can never apply): the event is dead-lettered at once. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// handlerError marks an error that came from the handler, as opposed to the
// database (begin, inbox, commit): only the former count towards dead-lettering.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }
func (e *handlerError) Unwrap() error { return e.err }

// Headers a dead-lettered message carries besides the original ones.
const (
	HeaderDeadLetterConsumer   = "Souk-Dlq-Consumer"   // durable name of the consumer that gave up
	HeaderDeadLetterError      = "Souk-Dlq-Error"      // the last error, one line
	HeaderDeadLetterDeliveries = "Souk-Dlq-Deliveries" // how often it was delivered
	HeaderDeadLetterSubject    = "Souk-Dlq-Subject"    // the original subject
	HeaderDeadLetterSequence   = "Souk-Dlq-Sequence"   // its sequence in the event stream
)

// ConsumerConfig describes a durable consumer.
type ConsumerConfig struct {
	// Name is the durable name, unique per bus and stable across restarts
	// ("notify-order-confirmed"); it is also the inbox's consumer key.
	// Letters, digits, '-' and '_'.
	Name string
	// Subject is the event type, or a pattern of them, the consumer receives
	// ("souk.orders.order_confirmed.v1", "souk.orders.>"). Without the
	// bus's SubjectPrefix.
	Subject string
	// MaxDeliver is how many deliveries a failing event gets before it is
	// dead-lettered (default 5).
	MaxDeliver int
	// Backoff is the delay before redelivering after the n-th failed
	// delivery; the last entry repeats (default 1 s, 5 s, 30 s, 2 min).
	Backoff []time.Duration
	// AckWait is how long JetStream waits for an acknowledgement before it
	// redelivers (a crashed process). Handlers running longer keep their
	// event by signalling progress every AckWait/2 (default 30 s).
	AckWait time.Duration
	// Concurrency is how many events are handled at once (default 1). With
	// more than one, and whenever an event is retried, later events may be
	// applied before earlier ones.
	Concurrency int
	// DeliverNew makes a consumer that does not exist yet start with the
	// next event published instead of the oldest one the stream retains.
	// It cannot be changed for an existing consumer.
	DeliverNew bool
	// Wants, when set, is asked before the handler's transaction whether
	// the handler has anything to do with the event; when it answers false
	// the event is acknowledged without a transaction and without an inbox
	// row (outcome "skipped"). It reads state outside any transaction, so
	// use it only where declining an event is the same as having handled it
	// just before that state changed (no webhook subscribes to the type
	// yet). An error counts as true: the handler decides.
	Wants func(ctx context.Context, e Event) (bool, error)
	// WantsType is Wants for a consumer that decides by the event's type
	// alone: it is asked with the type the message's ce-type header
	// carries, before the event is even decoded, and declining acknowledges
	// it as Wants does. A message without the header is decoded and goes
	// to Wants (if set) and the handler as usual. An error counts as true.
	WantsType func(ctx context.Context, eventType string) (bool, error)

	// testAfterCommit, when set, runs after a successful transaction and
	// before the acknowledgement; returning false skips the acknowledgement
	// (a simulated crash).
	testAfterCommit func(e Event, duplicate bool) (ack bool)
	// testLiveness, when set, replaces livenessInterval.
	testLiveness time.Duration
}

func (c *ConsumerConfig) setDefaults() {
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 5
	}
	if len(c.Backoff) == 0 {
		c.Backoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
}

// Validate reports the first setting that cannot work, naming it; unset
// fields take their defaults first.
func (c ConsumerConfig) Validate() error {
	c.setDefaults()
	switch {
	case !validName(c.Name):
		return fmt.Errorf("bus: consumer Name %q: want letters, digits, '-' and '_'", c.Name)
	case !validSubject(c.Subject, true) || !strings.HasPrefix(c.Subject, "souk."):
		return fmt.Errorf("bus: consumer %s: Subject %q: want an event type or pattern under souk. (e.g. souk.orders.>)", c.Name, c.Subject)
	case c.MaxDeliver < 1:
		return fmt.Errorf("bus: consumer %s: MaxDeliver %d: want at least 1", c.Name, c.MaxDeliver)
	case c.AckWait < time.Millisecond:
		return fmt.Errorf("bus: consumer %s: AckWait %v: want at least 1ms", c.Name, c.AckWait)
	case c.Concurrency < 1 || c.Concurrency > 1024:
		return fmt.Errorf("bus: consumer %s: Concurrency %d: want 1 to 1024", c.Name, c.Concurrency)
	}
	for i, d := range c.Backoff {
		if d <= 0 {
			return fmt.Errorf("bus: consumer %s: Backoff[%d] %v: want a positive duration", c.Name, i, d)
		}
	}
	return nil
}

// backoff is the delay before redelivery after the delivered-th delivery failed.
func (c ConsumerConfig) backoff(delivered int) time.Duration {
	return c.Backoff[min(max(delivered-1, 0), len(c.Backoff)-1)]
}

// Subscription is a running durable consumer. Stop it, or Close the bus.
type Subscription struct {
	bus     *Bus
	cfg     ConsumerConfig
	jcfg    jetstream.ConsumerConfig
	db      *store.DB
	handler Handler
	log     *slog.Logger

	cons      jetstream.Consumer // the consumer being pulled from (run's goroutine only)
	fetch     context.Context    // cancelled by Stop: hand out no more messages
	stopFetch context.CancelFunc
	ctx       context.Context // handlers' context; cancelled when Stop gives up waiting
	cancel    context.CancelFunc
	done      chan struct{} // closed when the fetch loop and every handler returned
}

// Subscribe creates the durable consumer cfg.Name on the event stream (or
// updates it to cfg; safe when several processes do it at once) and starts
// handling its events with h, each in one transaction on db together with
// the inbox row that makes a redelivered event a no-op (db must have
// Migrations applied). An event is acknowledged only after that transaction
// commits. ctx bounds the set-up only; the subscription runs until Stop or
// Close, and its handlers' contexts keep ctx's values. Should the server
// lose the consumer (deleted, stream re-created), the subscription logs it
// and re-creates it, backing off, until stopped.
func (b *Bus) Subscribe(ctx context.Context, cfg ConsumerConfig, db *store.DB, h Handler) (*Subscription, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if db == nil || h == nil {
		return nil, fmt.Errorf("bus: subscribe %s: db and handler are required", cfg.Name)
	}
	cfg.setDefaults()
	jcfg := jetstream.ConsumerConfig{
		Durable:       cfg.Name,
		Description:   "Souk consumer " + cfg.Name,
		FilterSubject: b.subject(cfg.Subject),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		// Dead-lettering is ours (it needs the handler's error), so the
		// server never gives up on its own and silently drops an event.
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: max(1000, 4*cfg.Concurrency),
	}
	if cfg.DeliverNew {
		jcfg.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	s := &Subscription{
		bus:     b,
		cfg:     cfg,
		jcfg:    jcfg,
		db:      db,
		handler: h,
		log:     b.log.With("consumer", cfg.Name),
		done:    make(chan struct{}),
	}
	iter, err := s.consume(ctx)
	if err != nil {
		return nil, err
	}
	base := context.WithoutCancel(ctx)
	s.fetch, s.stopFetch = context.WithCancel(base)
	s.ctx, s.cancel = context.WithCancel(base)
	if err := b.track(s); err != nil {
		iter.Stop()
		s.stopFetch()
		s.cancel()
		return nil, err
	}
	go s.run(iter)
	return s, nil
}

// consume creates or updates the durable consumer and starts pulling from it.
func (s *Subscription) consume(ctx context.Context) (jetstream.MessagesContext, error) {
	cons, err := s.bus.js.CreateOrUpdateConsumer(ctx, s.bus.cfg.Stream, s.jcfg)
	if err != nil {
		return nil, fmt.Errorf("bus: create or update consumer %s on %s: %w", s.cfg.Name, s.jcfg.FilterSubject, err)
	}
	s.cons = cons
	// A client-side buffer no larger than the handlers: a buffered
	// message's AckWait is already running, and a stopped subscription
	// leaves buffered messages to be redelivered after AckWait.
	iter, err := cons.Messages(jetstream.PullMaxMessages(s.cfg.Concurrency))
	if err != nil {
		return nil, fmt.Errorf("bus: consume %s: %w", s.cfg.Name, err)
	}
	return iter, nil
}

// Stop stops handing out events and waits until the handlers in flight have
// finished and acknowledged, bounded by ctx. Events fetched but not started
// are handed back for immediate redelivery; while connected, Stop also waits
// (at most Config.RequestTimeout) until the server has dropped the
// subscription's pull request, so an event published after Stop returns goes
// to the next subscriber at once. Disconnected, it waits for nothing from the
// server. When ctx ends first, Stop cancels the handlers' context and returns
// ctx's error (their events are redelivered after AckWait). Stop is
// idempotent and safe to call concurrently.
func (s *Subscription) Stop(ctx context.Context) error {
	s.stopFetch()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		s.cancel()
		return fmt.Errorf("bus: stop consumer %s: %w", s.cfg.Name, ctx.Err())
	}
}

// Name is the consumer's durable name.
func (s *Subscription) Name() string { return s.cfg.Name }

// run hands messages to Concurrency workers until Stop, re-creating the
// consumer when the server loses it.
func (s *Subscription) run(iter jetstream.MessagesContext) {
	defer close(s.done)
	defer s.bus.untrack(s)
	defer s.cancel()
	msgs := make(chan jetstream.Msg)
	var wg sync.WaitGroup
	for range s.cfg.Concurrency {
		wg.Go(func() {
			for m := range msgs {
				s.handle(m)
			}
		})
	}
	defer wg.Wait()
	defer close(msgs)

	for failures := 0; ; {
		var err error
		if iter != nil {
			err = s.dispatch(iter, msgs)
			if s.fetch.Err() != nil {
				s.handBack(iter)
				return
			}
			iter.Stop()
			iter = nil
		}
		if s.fetch.Err() != nil {
			return
		}
		if errors.Is(err, nats.ErrConnectionClosed) {
			s.log.Error("bus: consumer stopped: the connection is closed", "error", err)
			return
		}
		failures++
		delay := backoff(failures, time.Second, 30*time.Second)
		s.log.Error("bus: consumer lost its subscription; re-creating it", "retry_in", delay.Round(time.Millisecond), "error", err)
		t := time.NewTimer(delay)
		select {
		case <-s.fetch.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if iter, err = s.consume(s.fetch); err == nil {
			failures = 0
		}
	}
}

// handBack ends a stopped subscription's pull: while connected it drains
// the iterator, so that the server has forgotten the pending pull request
// (and will not deliver to it) once it returns, and negatively acknowledges
// whatever arrived meanwhile, so those events go to the next subscriber at
// once instead of after AckWait. It never waits longer than RequestTimeout,
// and not at all while disconnected.
func (s *Subscription) handBack(iter jetstream.MessagesContext) {
	if s.bus.nc.Status() != nats.CONNECTED {
		iter.Stop()
		return
	}
	iter.Drain()
	ctx, cancel := context.WithTimeout(context.Background(), s.bus.cfg.RequestTimeout)
	defer cancel()
	for {
		m, err := iter.Next(jetstream.NextContext(ctx))
		if err != nil {
			iter.Stop()
			return
		}
		_ = m.Nak()
	}
}

// repoll bounds how long dispatch waits in one call to the iterator's Next.
// Each call re-checks whether a pull request is due; without it, a batch
// consumed before the client library has marked its pull request as sent
// (routine with the in-process server) leaves the iterator waiting for its
// missing-heartbeat timer, 30 s, with events pending (nats.go v1.55.0,
// pullSubscription.checkPending skips while fetchInProgress is set).
const repoll = 200 * time.Millisecond

// livenessInterval is how long a subscription may see nothing before it asks
// the server whether its consumer still exists and is being pulled from.
// This replaces the library's missing-heartbeat timer, which the repoll loop
// keeps re-arming: it catches a consumer deleted while no pull request was
// waiting (the library then only sees "no responders", which it does not
// treat as fatal) and a pull request the server lost.
const livenessInterval = 5 * time.Second

// errStalled reports a subscription whose consumer has events for it but no
// pull request from anyone.
var errStalled = errors.New("no pull request is waiting while events are pending")

// dispatch hands messages to the workers until Stop (nil) or the iterator
// fails or stalls (its error).
func (s *Subscription) dispatch(iter jetstream.MessagesContext, msgs chan<- jetstream.Msg) error {
	every := livenessInterval
	if s.cfg.testLiveness > 0 {
		every = s.cfg.testLiveness
	}
	lastSeen, stalled := time.Now(), 0
	for {
		ctx, cancel := context.WithTimeout(s.fetch, repoll)
		m, err := iter.Next(jetstream.NextContext(ctx))
		cancel()
		if err != nil {
			if s.fetch.Err() != nil {
				return nil
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			if time.Since(lastSeen) < every {
				continue
			}
			lastSeen = time.Now()
			switch err := s.checkLiveness(); {
			case errors.Is(err, errStalled):
				// Twice in a row, so a pull request about to be sent does
				// not count as lost.
				if stalled++; stalled >= 2 {
					return err
				}
			case err != nil:
				return err
			default:
				stalled = 0
			}
			continue
		}
		lastSeen, stalled = time.Now(), 0
		select {
		case msgs <- m:
		case <-s.fetch.Done():
			// Not started: hand it back now rather than after AckWait.
			_ = m.Nak()
			return nil
		}
	}
}

// checkLiveness asks the server about the consumer: ErrConsumerNotFound when
// it is gone, errStalled when events wait and nobody pulls. An unreachable
// server is not the subscription's problem (the connection reconnects), so
// it counts as alive.
func (s *Subscription) checkLiveness() error {
	ctx, cancel := context.WithTimeout(s.fetch, s.bus.cfg.RequestTimeout)
	defer cancel()
	info, err := s.cons.Info(ctx)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return err
	case err != nil:
		return nil
	case info.NumWaiting == 0 && info.NumPending > 0:
		return fmt.Errorf("%w (%d events)", errStalled, info.NumPending)
	}
	return nil
}

// handle applies one message: inbox check and handler in one transaction,
// then acknowledge; or retry, or dead-letter.
func (s *Subscription) handle(m jetstream.Msg) {
	name := s.cfg.Name
	delivered, seq := 1, uint64(0)
	if md, err := m.Metadata(); err == nil {
		delivered, seq = int(md.NumDelivered), md.Sequence.Stream
		s.bus.metrics.consumerPending.WithLabelValues(name).Set(float64(md.NumPending))
	}
	if delivered > 1 {
		s.bus.metrics.redeliveries.WithLabelValues(name).Inc()
	}

	if s.cfg.WantsType != nil {
		if h := m.Headers(); h.Get("ce-type") != "" {
			if wants, err := s.cfg.WantsType(s.ctx, h.Get("ce-type")); err == nil && !wants {
				s.acknowledge(s.ctx, m, Event{ID: h.Get("ce-id"), Type: h.Get("ce-type")}, outcomeSkipped)
				return
			}
		}
	}

	var e Event
	if err := json.Unmarshal(m.Data(), &e); err != nil || e.ID == "" || e.Type == "" {
		if err == nil {
			err = errors.New("id or type missing")
		}
		s.deadLetter(m, e, delivered, seq, fmt.Errorf("undecodable CloudEvent: %w", err))
		return
	}

	ctx, span := s.bus.tracer.Start(e.Context(s.ctx), name+" process "+e.Type,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", m.Subject()),
			attribute.String("messaging.consumer.group.name", name),
			attribute.String("messaging.message.id", e.ID),
			attribute.Int("messaging.message.delivery_count", delivered),
		))
	defer span.End()

	if s.cfg.Wants != nil {
		if wants, err := s.cfg.Wants(ctx, e); err == nil && !wants {
			s.acknowledge(ctx, m, e, outcomeSkipped)
			return
		}
	}

	stopProgress := s.keepInProgress(m)
	start := time.Now()
	var duplicate bool
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.Exec(ctx,
			`INSERT INTO souk_inbox (consumer, event_id, processed_at) VALUES (?, ?, ?) ON CONFLICT (consumer, event_id) DO NOTHING`,
			name, e.ID, time.Now())
		if err != nil {
			return fmt.Errorf("record %s in inbox: %w", e.ID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("record %s in inbox: %w", e.ID, err)
		}
		duplicate = n == 0
		if duplicate {
			return nil
		}
		if err := s.call(ctx, tx, e); err != nil {
			return &handlerError{err}
		}
		return nil
	})
	stopProgress()
	if !duplicate {
		s.bus.metrics.handlerDuration.WithLabelValues(name).Observe(time.Since(start).Seconds())
	}

	if err == nil {
		if s.cfg.testAfterCommit != nil && !s.cfg.testAfterCommit(e, duplicate) {
			return
		}
		outcome := outcomeProcessed
		if duplicate {
			outcome = outcomeDuplicate
		}
		s.acknowledge(ctx, m, e, outcome)
		return
	}

	span.SetStatus(codes.Error, err.Error())
	var herr *handlerError
	if !errors.As(err, &herr) {
		// The database failed, not the handler: never dead-letter for that.
		delay := s.cfg.backoff(delivered)
		s.log.Error("bus: could not apply event, database error; retrying",
			"event_id", e.ID, "type", e.Type, "delivery", delivered, "retry_in", delay, "error", err)
		s.retry(m, e, delay)
		return
	}
	if IsPermanent(herr.err) || delivered >= s.cfg.MaxDeliver {
		s.deadLetter(m, e, delivered, seq, herr.err)
		return
	}
	delay := s.cfg.backoff(delivered)
	s.log.Warn("bus: handler failed; retrying",
		"event_id", e.ID, "type", e.Type, "delivery", delivered, "max_deliver", s.cfg.MaxDeliver, "retry_in", delay, "error", herr.err)
	s.retry(m, e, delay)
}

// acknowledge counts the event's outcome and acknowledges it. Outcomes are
// counted before the server hears of them, so whoever sees the
// acknowledgement also sees the count.
func (s *Subscription) acknowledge(ctx context.Context, m jetstream.Msg, e Event, outcome string) {
	s.bus.metrics.deliveries.WithLabelValues(s.cfg.Name, outcome).Inc()
	ackCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.bus.cfg.RequestTimeout)
	defer cancel()
	if err := m.DoubleAck(ackCtx); err != nil {
		// Committed (or nothing to do): a redelivery finds the inbox row,
		// or nothing to do again.
		s.log.Warn("bus: acknowledgement failed after commit; the event will be redelivered and skipped as a duplicate",
			"event_id", e.ID, "type", e.Type, "error", err)
	}
}

// call runs the handler, turning a panic into an error.
func (s *Subscription) call(ctx context.Context, tx *store.Tx, e Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("bus: handler panicked", "event_id", e.ID, "type", e.Type, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return s.handler(ctx, tx, e)
}

func (s *Subscription) retry(m jetstream.Msg, e Event, delay time.Duration) {
	s.bus.metrics.deliveries.WithLabelValues(s.cfg.Name, outcomeRetried).Inc()
	if err := m.NakWithDelay(delay); err != nil {
		s.log.Warn("bus: negative acknowledgement failed; the event comes back after AckWait", "event_id", e.ID, "error", err)
	}
}

// keepInProgress tells JetStream every AckWait/2 that the message is still
// being worked on, so a slow handler is not raced by a redelivery. The
// returned function stops it.
func (s *Subscription) keepInProgress(m jetstream.Msg) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(s.cfg.AckWait / 2)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()
	return func() { close(stop); <-done }
}

// deadLetter copies the message to the dead-letter stream with headers naming
// the consumer, the error and the delivery count, then terminates it. When
// the copy fails the message is retried instead, so nothing is lost.
func (s *Subscription) deadLetter(m jetstream.Msg, e Event, delivered int, seq uint64, cause error) {
	dm := nats.NewMsg(deadLetterSubject(m.Subject()))
	dm.Data = m.Data()
	for k, v := range m.Headers() {
		if strings.HasPrefix(k, "Nats-") {
			continue // Nats-Msg-Id and friends belong to the original publish
		}
		dm.Header[k] = v
	}
	dm.Header.Set(HeaderDeadLetterConsumer, s.cfg.Name)
	dm.Header.Set(HeaderDeadLetterError, oneLine(cause.Error(), 1024))
	dm.Header.Set(HeaderDeadLetterDeliveries, strconv.Itoa(delivered))
	dm.Header.Set(HeaderDeadLetterSubject, m.Subject())
	dm.Header.Set(HeaderDeadLetterSequence, strconv.FormatUint(seq, 10))
	msgID := "dlq:" + s.cfg.Name + ":" + e.ID
	if e.ID == "" {
		msgID = "dlq:" + s.cfg.Name + ":seq:" + strconv.FormatUint(seq, 10)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), s.bus.cfg.RequestTimeout)
	defer cancel()
	_, err := s.bus.js.PublishMsg(ctx, dm, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(s.bus.cfg.DeadLetterStream))
	if err != nil {
		delay := s.cfg.backoff(delivered)
		s.log.Error("bus: could not dead-letter event; retrying it",
			"event_id", e.ID, "type", e.Type, "sequence", seq, "retry_in", delay, "cause", cause, "error", err)
		s.retry(m, e, delay)
		return
	}
	s.bus.metrics.deliveries.WithLabelValues(s.cfg.Name, outcomeDeadLettered).Inc()
	if err := m.Term(); err != nil {
		s.log.Warn("bus: terminating a dead-lettered event failed; it may be dead-lettered again", "event_id", e.ID, "error", err)
	}
	s.log.Error("bus: event dead-lettered",
		"event_id", e.ID, "type", e.Type, "sequence", seq, "deliveries", delivered,
		"dead_letter_stream", s.bus.cfg.DeadLetterStream, "error", cause)
}

// oneLine makes s fit a header value: no line breaks, at most n bytes.
func oneLine(s string, n int) string {
	s = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "")
	}
	return s
}
