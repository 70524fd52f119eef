package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Publisher publishes one event and returns once the bus has stored it. The
// relay publishes through it, so tests can put a failing one in its place.
// Implementations must be safe for concurrent use and should store an event
// published twice only once (the Bus does within Config.DuplicateWindow;
// consumers' inboxes absorb what gets through).
type Publisher interface {
	Publish(ctx context.Context, e Event) error
}

var _ Publisher = (*Bus)(nil)

// Config says where the bus runs and how its streams are shaped. The zero
// value runs an embedded, in-memory JetStream server that opens no port.
type Config struct {
	// URL of an external NATS server or cluster ("nats://nats:4222", several
	// separated by commas). Empty runs an embedded server in this process.
	URL string
	// CredentialsFile is a NATS .creds file for the external server
	// (optional; user and password may also sit in URL).
	CredentialsFile string
	// Name is the connection name shown in the server's monitoring
	// (default "souk").
	Name string

	// StoreDir is where the embedded server keeps its streams. Empty keeps
	// them in memory: they are lost when the process stops. Ignored with URL.
	StoreDir string
	// ListenHost is the interface the embedded server listens on when
	// ListenPort asks it to (default "127.0.0.1"). Ignored with URL.
	ListenHost string
	// ListenPort makes the embedded server accept TCP clients on this port
	// (-1: a random free port, see ClientURL). 0, the default, opens no port:
	// only this process can reach the server. Ignored with URL.
	ListenPort int

	// Stream is the JetStream stream that holds every event (default "SOUK").
	Stream string
	// DeadLetterStream holds events consumers gave up on
	// (default Stream + "_DLQ").
	DeadLetterStream string
	// SubjectPrefix, when set (e.g. "staging"), is put in front of every
	// subject, "staging.souk.orders.order_confirmed.v1", so several Souk
	// installations (or test runs) can share one NATS account. Event types
	// and consumer subjects never include it.
	SubjectPrefix string
	// MaxAge is how long the stream keeps an event (default 7 days).
	MaxAge time.Duration
	// DeadLetterMaxAge is how long dead letters are kept (default 30 days).
	DeadLetterMaxAge time.Duration
	// DuplicateWindow is how long the stream remembers an event ID, so an
	// outbox row published twice is stored once (default 2 minutes).
	DuplicateWindow time.Duration
	// Replicas is the streams' replication factor on a cluster (default 1;
	// must be 1 for the embedded server).
	Replicas int

	// ConnectTimeout bounds dialling an external server (default 5 s).
	ConnectTimeout time.Duration
	// ReconnectWait is the pause between reconnect attempts to an external
	// server; the client reconnects forever (default 1 s).
	ReconnectWait time.Duration
	// RequestTimeout bounds a JetStream request (publish acknowledgement,
	// stream or consumer management) whose context has no deadline
	// (default 5 s).
	RequestTimeout time.Duration
	// DrainTimeout bounds how long Close waits for in-flight handlers
	// (default 30 s).
	DrainTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = "souk"
	}
	if c.ListenHost == "" {
		c.ListenHost = "127.0.0.1"
	}
	if c.Stream == "" {
		c.Stream = "SOUK"
	}
	if c.DeadLetterStream == "" {
		c.DeadLetterStream = c.Stream + "_DLQ"
	}
	if c.MaxAge == 0 {
		c.MaxAge = 7 * 24 * time.Hour
	}
	if c.DeadLetterMaxAge == 0 {
		c.DeadLetterMaxAge = 30 * 24 * time.Hour
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 2 * time.Minute
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 30 * time.Second
	}
}

// Validate reports the first setting that cannot work, naming it. It checks
// the configuration as given; unset fields take their defaults first.
func (c Config) Validate() error {
	c.setDefaults()
	embedded := c.URL == ""
	switch {
	case !embedded && c.StoreDir != "":
		return errors.New("bus: StoreDir is for the embedded server; unset it or URL")
	case !embedded && c.ListenPort != 0:
		return errors.New("bus: ListenPort is for the embedded server; unset it or URL")
	case c.ListenPort < -1 || c.ListenPort > 65535:
		return fmt.Errorf("bus: ListenPort %d: want 0 (no port), -1 (random) or 1-65535", c.ListenPort)
	case embedded && c.Replicas != 1:
		return fmt.Errorf("bus: Replicas %d: the embedded server is a single node, want 1", c.Replicas)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("bus: Replicas %d: want 1 to 5", c.Replicas)
	case !validName(c.Stream):
		return fmt.Errorf("bus: Stream %q: want letters, digits, '-' and '_'", c.Stream)
	case !validName(c.DeadLetterStream):
		return fmt.Errorf("bus: DeadLetterStream %q: want letters, digits, '-' and '_'", c.DeadLetterStream)
	case c.Stream == c.DeadLetterStream:
		return fmt.Errorf("bus: DeadLetterStream must differ from Stream %q", c.Stream)
	case c.SubjectPrefix != "" && !validSubject(c.SubjectPrefix, false):
		return fmt.Errorf("bus: SubjectPrefix %q: want dot-separated tokens without spaces or wildcards", c.SubjectPrefix)
	case c.MaxAge < 0, c.DeadLetterMaxAge < 0:
		return errors.New("bus: MaxAge and DeadLetterMaxAge must be positive")
	case c.DuplicateWindow < 0 || c.DuplicateWindow > c.MaxAge:
		return fmt.Errorf("bus: DuplicateWindow %v: want a positive duration no longer than MaxAge %v", c.DuplicateWindow, c.MaxAge)
	case c.ConnectTimeout < 0, c.ReconnectWait < 0, c.RequestTimeout < 0, c.DrainTimeout < 0:
		return errors.New("bus: ConnectTimeout, ReconnectWait, RequestTimeout and DrainTimeout must be positive")
	}
	if c.CredentialsFile != "" {
		if _, err := os.Stat(c.CredentialsFile); err != nil {
			return fmt.Errorf("bus: CredentialsFile: %w", err)
		}
	}
	return nil
}

// validName reports whether s is usable as a stream or durable consumer name.
func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		ok := r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !ok {
			return false
		}
	}
	return true
}

// validSubject reports whether s is a NATS subject: dot-separated non-empty
// tokens without whitespace; wildcards ("*" tokens, a final ">") only when
// allowed.
func validSubject(s string, wildcards bool) bool {
	if s == "" {
		return false
	}
	tokens := strings.Split(s, ".")
	for i, tok := range tokens {
		if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
			return false
		}
		if tok == "*" || tok == ">" {
			if !wildcards || tok == ">" && i != len(tokens)-1 {
				return false
			}
			continue
		}
		if strings.ContainsAny(tok, "*>") {
			return false
		}
	}
	return true
}

// Option adjusts Open beyond Config: the things that are dependencies
// rather than settings.
type Option func(*options)

type options struct {
	tracerProvider trace.TracerProvider
	metrics        *Metrics
}

// WithTracerProvider makes the bus trace publishes and consumed events with
// tp (default: no tracing). Consumers' spans continue the trace context that
// travelled in the event.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}

// WithMetrics makes the bus record into m instead of metrics it registers
// itself on Open's Registerer; use it to share one Metrics between the bus
// and a relay.
func WithMetrics(m *Metrics) Option {
	return func(o *options) { o.metrics = m }
}

// Bus is a connection to NATS JetStream with Souk's streams in place: it
// publishes events and runs durable consumers. It is safe for concurrent
// use. Close it when done.
type Bus struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	tracer  trace.Tracer

	srv    *server.Server // the embedded server, nil with an external one
	tmpDir string         // removed on Close (embedded in-memory server)
	nc     *nats.Conn
	js     jetstream.JetStream

	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// Open starts the embedded server (Config.URL empty) or connects to the
// external one, and creates or updates the event and dead-letter streams; it
// is safe to run from several processes at once. logger may be nil (no
// logs), reg may be nil (metrics are kept but not exported). ctx bounds the
// start-up. An external server that cannot be reached fails Open; once
// connected, the client reconnects forever.
func Open(ctx context.Context, cfg Config, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Bus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.tracerProvider == nil {
		o.tracerProvider = noop.NewTracerProvider()
	}
	if o.metrics == nil {
		m, err := NewMetrics(reg)
		if err != nil {
			return nil, err
		}
		o.metrics = m
	}
	b := &Bus{
		cfg:     cfg,
		log:     logger.With("component", "bus"),
		metrics: o.metrics,
		tracer:  o.tracerProvider.Tracer("github.com/soukhq/souk/platform/bus"),
		subs:    map[*Subscription]struct{}{},
	}
	if err := b.connect(ctx); err != nil {
		b.shutdown()
		return nil, err
	}
	js, err := jetstream.New(b.nc, jetstream.WithDefaultTimeout(cfg.RequestTimeout))
	if err != nil {
		b.shutdown()
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	b.js = js
	if err := b.ensureStreams(ctx); err != nil {
		b.shutdown()
		return nil, err
	}
	return b, nil
}

func (b *Bus) connect(ctx context.Context) error {
	opts := []nats.Option{
		nats.Name(b.cfg.Name),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				b.log.Warn("bus: disconnected from NATS; reconnecting", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("bus: reconnected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			b.log.Warn("bus: NATS asynchronous error", "subject", subject, "error", err)
		}),
	}
	if b.cfg.URL == "" {
		srv, dir, err := startEmbedded(ctx, b.cfg, b.log)
		if err != nil {
			return err
		}
		b.srv, b.tmpDir = srv, dir
		nc, err := nats.Connect("", append(opts, nats.InProcessServer(srv))...)
		if err != nil {
			return fmt.Errorf("bus: connect to embedded server: %w", err)
		}
		b.nc = nc
		return nil
	}
	opts = append(opts,
		nats.MaxReconnects(-1),
		nats.ReconnectWait(b.cfg.ReconnectWait),
		nats.Timeout(b.cfg.ConnectTimeout),
		nats.PingInterval(20*time.Second),
		nats.MaxPingsOutstanding(3),
	)
	if b.cfg.CredentialsFile != "" {
		opts = append(opts, nats.UserCredentials(b.cfg.CredentialsFile))
	}
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(b.cfg.URL, opts...)
		done <- result{nc, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return fmt.Errorf("bus: connect to NATS at %s: %w", redactURL(b.cfg.URL), r.err)
		}
		b.nc = r.nc
		return nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return fmt.Errorf("bus: connect to NATS at %s: %w", redactURL(b.cfg.URL), ctx.Err())
	}
}

// redactURL hides credentials in a NATS URL list for error messages.
func redactURL(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if scheme := strings.Index(p, "://"); scheme >= 0 && scheme < at {
				parts[i] = p[:scheme+3] + "***" + p[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

// startEmbedded runs a JetStream server in this process and waits until it
// accepts connections. With no StoreDir it gets a private temporary
// directory (streams are in memory; the server still wants a directory),
// which the caller removes on Close.
func startEmbedded(ctx context.Context, cfg Config, log *slog.Logger) (*server.Server, string, error) {
	dir, tmp := cfg.StoreDir, ""
	if dir == "" {
		d, err := os.MkdirTemp("", "souk-nats-")
		if err != nil {
			return nil, "", fmt.Errorf("bus: embedded server directory: %w", err)
		}
		dir, tmp = d, d
	}
	opts := &server.Options{
		ServerName: "souk-embedded",
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
		DontListen: cfg.ListenPort == 0,
		Host:       cfg.ListenHost,
		Port:       cfg.ListenPort,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		removeDir(tmp)
		return nil, "", fmt.Errorf("bus: embedded server: %w", err)
	}
	srv.SetLoggerV2(serverLogger{log.With("component", "nats-server")}, false, false, false)
	srv.Start()
	wait := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	if !srv.ReadyForConnections(wait) {
		srv.Shutdown()
		srv.WaitForShutdown()
		removeDir(tmp)
		return nil, "", fmt.Errorf("bus: embedded server not ready after %v (StoreDir %q, ListenPort %d)", wait.Round(time.Millisecond), cfg.StoreDir, cfg.ListenPort)
	}
	return srv, tmp, nil
}

func removeDir(dir string) {
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}

// serverLogger passes the embedded server's warnings and errors to slog and
// drops its chatter.
type serverLogger struct{ log *slog.Logger }

func (l serverLogger) Noticef(string, ...any) {}
func (l serverLogger) Debugf(string, ...any)  {}
func (l serverLogger) Tracef(string, ...any)  {}
func (l serverLogger) Warnf(format string, v ...any) {
	l.log.Warn(fmt.Sprintf(format, v...))
}
func (l serverLogger) Errorf(format string, v ...any) {
	l.log.Error(fmt.Sprintf(format, v...))
}
func (l serverLogger) Fatalf(format string, v ...any) {
	l.log.Error(fmt.Sprintf(format, v...), "fatal", true)
}

// subject is the NATS subject an event type or consumer filter lives on.
func (b *Bus) subject(typ string) string {
	if b.cfg.SubjectPrefix == "" {
		return typ
	}
	return b.cfg.SubjectPrefix + "." + typ
}

// deadLetterSubject is where a message that arrived on subject is parked.
func deadLetterSubject(subject string) string { return "dlq." + subject }

// ensureStreams creates the event and dead-letter streams, or updates them to
// the configuration. Two processes starting together may both try to create
// a stream; the loser updates instead.
func (b *Bus) ensureStreams(ctx context.Context) error {
	storage := jetstream.FileStorage
	if b.srv != nil && b.cfg.StoreDir == "" {
		storage = jetstream.MemoryStorage
	}
	streams := []jetstream.StreamConfig{{
		Name:        b.cfg.Stream,
		Description: "Souk events (CloudEvents JSON), one subject per event type",
		Subjects:    []string{b.subject("souk.>")},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      b.cfg.MaxAge,
		Duplicates:  b.cfg.DuplicateWindow,
		Storage:     storage,
		Replicas:    b.cfg.Replicas,
	}, {
		Name:        b.cfg.DeadLetterStream,
		Description: "Souk events that consumers gave up on; headers name the consumer and the error",
		Subjects:    []string{deadLetterSubject(b.subject("souk.>"))},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      b.cfg.DeadLetterMaxAge,
		Duplicates:  b.cfg.DuplicateWindow,
		Storage:     storage,
		Replicas:    b.cfg.Replicas,
	}}
	for _, sc := range streams {
		if err := b.ensureStream(ctx, sc); err != nil {
			return fmt.Errorf("bus: create or update stream %s (subjects %s): %w", sc.Name, sc.Subjects[0], err)
		}
	}
	return nil
}

// ensureStream creates the stream or updates an existing one to sc, keeping
// the existing storage type (JetStream cannot change it, and the process
// that created the stream, e.g. an in-memory embedded server, decided it).
func (b *Bus) ensureStream(ctx context.Context, sc jetstream.StreamConfig) error {
	for attempt := 0; ; attempt++ {
		s, err := b.js.Stream(ctx, sc.Name)
		switch {
		case err == nil:
			if have := s.CachedInfo().Config.Storage; have != sc.Storage {
				b.log.Info("bus: keeping the stream's storage type", "stream", sc.Name, "storage", have.String(), "wanted", sc.Storage.String())
				sc.Storage = have
			}
			_, err = b.js.UpdateStream(ctx, sc)
			return err
		case errors.Is(err, jetstream.ErrStreamNotFound):
			_, err = b.js.CreateStream(ctx, sc)
			// Another process created it in between: update it instead.
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) && attempt == 0 {
				continue
			}
			return err
		default:
			return err
		}
	}
}

// ClientURL is the URL other processes can connect to: the external server's
// URL, or the embedded server's listen address when ListenPort asked for
// one; "" for an embedded server that opens no port.
func (b *Bus) ClientURL() string {
	if b.srv == nil {
		return b.cfg.URL
	}
	if b.cfg.ListenPort == 0 {
		return ""
	}
	return b.srv.ClientURL()
}

// Publish stores e in the event stream under the subject e.Type and waits for
// JetStream's acknowledgement, bounded by ctx (or Config.RequestTimeout when
// ctx has no deadline). The body is the CloudEvent in JSON structured mode;
// the event ID is the Nats-Msg-Id, so publishing the same event again within
// Config.DuplicateWindow stores nothing new. Safe for concurrent use.
func (b *Bus) Publish(ctx context.Context, e Event) error {
	if e.ID == "" {
		return errors.New("bus: publish: event has no id")
	}
	if !validSubject(e.Type, false) || !strings.HasPrefix(e.Type, "souk.") {
		return fmt.Errorf("bus: publish %s: type %q: want souk.<service>.<event>.v<n>, no spaces or wildcards", e.ID, e.Type)
	}
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("bus: publish %s: marshal: %w", e.ID, err)
	}
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = e.Context(ctx)
	}
	subject := b.subject(e.Type)
	ctx, span := b.tracer.Start(ctx, "publish "+e.Type,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", subject),
			attribute.String("messaging.message.id", e.ID),
		))
	defer span.End()

	msg := nats.NewMsg(subject)
	msg.Data = body
	msg.Header.Set("Content-Type", "application/cloudevents+json")
	// A copy of the routing attributes, so tools can filter without parsing
	// the body; the body stays authoritative.
	msg.Header.Set("ce-id", e.ID)
	msg.Header.Set("ce-type", e.Type)
	msg.Header.Set("ce-source", e.Source)
	if e.Subject != "" {
		msg.Header.Set("ce-subject", e.Subject)
	}
	if e.TraceParent != "" {
		msg.Header.Set("traceparent", e.TraceParent)
	}
	if e.TraceState != "" {
		msg.Header.Set("tracestate", e.TraceState)
	}
	_, err = b.js.PublishMsg(ctx, msg, jetstream.WithMsgID(e.ID), jetstream.WithExpectStream(b.cfg.Stream))
	if err != nil {
		b.metrics.published.WithLabelValues(e.Type, "error").Inc()
		span.SetStatus(codes.Error, err.Error())
		return fmt.Errorf("bus: publish %s %s: %w", e.Type, e.ID, err)
	}
	b.metrics.published.WithLabelValues(e.Type, "ok").Inc()
	return nil
}

// Ready reports whether the bus can take events now: the connection is up
// and JetStream answers for the event stream, bounded by ctx. Readiness
// probes call it; it changes nothing.
func (b *Bus) Ready(ctx context.Context) error {
	if s := b.nc.Status(); s != nats.CONNECTED {
		return fmt.Errorf("bus: not ready: connection is %s", s)
	}
	if _, err := b.js.Stream(ctx, b.cfg.Stream); err != nil {
		return fmt.Errorf("bus: not ready: stream %s: %w", b.cfg.Stream, err)
	}
	return nil
}

// Close stops every subscription, letting in-flight handlers finish (at most
// Config.DrainTimeout), drains and closes the connection, and shuts the
// embedded server down. It is idempotent; later calls return nil. Publish
// and Subscribe fail after Close.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := make([]*Subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.DrainTimeout)
	defer cancel()
	var errs []error
	var wg sync.WaitGroup
	var errMu sync.Mutex
	for _, s := range subs {
		wg.Go(func() {
			if err := s.Stop(ctx); err != nil {
				errMu.Lock()
				errs = append(errs, err)
				errMu.Unlock()
			}
		})
	}
	wg.Wait()
	b.shutdown()
	return errors.Join(errs...)
}

// shutdown drains the connection and stops the embedded server.
func (b *Bus) shutdown() {
	if b.nc != nil && !b.nc.IsClosed() {
		closed := make(chan struct{})
		b.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
		// Drain fails while reconnecting: nothing to flush then, just close.
		if err := b.nc.Drain(); err != nil {
			b.nc.Close()
		} else {
			select {
			case <-closed:
			case <-time.After(b.cfg.DrainTimeout):
				b.nc.Close()
			}
		}
	}
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
	removeDir(b.tmpDir)
}

func (b *Bus) track(s *Subscription) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("bus: closed")
	}
	b.subs[s] = struct{}{}
	return nil
}

func (b *Bus) untrack(s *Subscription) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}
