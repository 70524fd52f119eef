package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/mail"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/store"
)

// Service is notify: the email outbox and its sender, webhook
// subscriptions, their deliveries and the delivery worker. It is safe for
// concurrent use, in one process and across processes sharing its
// database: who sends which email or delivery is decided by leases taken
// in the database, never in Go memory.
type Service struct {
	db      *store.DB
	outbox  *bus.Outbox
	log     *slog.Logger
	cfg     Config
	metrics *metrics // nil: none
	now     func() time.Time
	tmpl    *templates

	from            *mail.Address
	messageIDDomain string
	smtpTLS         *tls.Config // nil: the defaults

	http     *http.Client
	lookupIP func(ctx context.Context, host string) ([]netip.Addr, error)
	// jitter spreads a retry delay (±20 %), so receivers coming back are
	// not hit by every retry at once.
	jitter func(time.Duration) time.Duration
	// testDialAddr, when set (tests), rewrites the address the webhook
	// client dials, as a DNS answer would: it is checked like one.
	testDialAddr func(addr string) string

	wakeEmail chan struct{}
	wakeHooks chan struct{}

	// subscriptions is what the webhook consumer asks before each event.
	subscriptions subscriptionsCache

	mu      sync.Mutex
	subs    []*bus.Subscription
	stopped chan struct{} // closed by Stop
}

// New returns notify on db, whose schema must have Migrations and
// bus.Migrations applied. Events (souk.notify.webhook_disabled.v1) go
// through outbox (nil: rows are written without waking a relay); a nil
// logger discards. It fails on an invalid cfg (see Config.Validate).
func New(db *store.DB, outbox *bus.Outbox, logger *slog.Logger, cfg Config, opts ...Option) (*Service, error) {
	if db == nil {
		return nil, errors.New("notify: a database is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if outbox == nil {
		outbox = bus.NewOutbox(nil)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tmpl, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	from, _ := mail.ParseAddress(cfg.SMTPFrom) // checked by Validate
	domain := "localhost"
	if _, d, ok := strings.Cut(from.Address, "@"); ok && d != "" {
		domain = d
	}
	s := &Service{
		db:              db,
		outbox:          outbox,
		log:             logger,
		cfg:             cfg,
		tmpl:            tmpl,
		from:            from,
		messageIDDomain: domain,
		// Microseconds: what PostgreSQL keeps, so a value read back equals
		// the one written on both engines.
		now:       func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		lookupIP:  lookupNetIP,
		jitter:    jitter,
		wakeEmail: make(chan struct{}, 1),
		wakeHooks: make(chan struct{}, 1),
		stopped:   make(chan struct{}),
	}
	for _, opt := range opts {
		opt(s)
	}
	s.http = s.newHTTPClient()
	return s, nil
}

// jitter returns d ±20 %, at random.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// newHTTPClient is the webhook client: no proxy from the environment, no
// redirects, every dial checked against the SSRF rules (unless allowed),
// the whole request bounded by WebhookTimeout.
func (s *Service) newHTTPClient() *http.Client {
	dialer := &net.Dialer{Timeout: s.cfg.WebhookTimeout, KeepAlive: 30 * time.Second}
	if !s.cfg.AllowPrivateNetworks {
		dialer.Control = dialControl
	}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if s.testDialAddr != nil {
				addr = s.testDialAddr(addr)
			}
			return dialer.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    s.cfg.WebhookTimeout,
		ResponseHeaderTimeout:  s.cfg.WebhookTimeout,
		MaxResponseHeaderBytes: 64 << 10,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
	}
	return &http.Client{
		Transport: tr,
		Timeout:   s.cfg.WebhookTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// wakeSender makes Run look for due emails now.
func (s *Service) wakeSender() {
	select {
	case s.wakeEmail <- struct{}{}:
	default:
	}
}

// wakeWebhooks makes Run look for due deliveries now.
func (s *Service) wakeWebhooks() {
	select {
	case s.wakeHooks <- struct{}{}:
	default:
	}
}

// Subscribe starts notify's two durable consumers on b, both applying
// their events in notify's database with the bus's inbox:
// notify-order-confirmed (souk.orders.order_confirmed.v1 → an email) and
// notify-webhooks (souk.> → deliveries). They run until ctx is done, Stop
// is called or the bus closes; so pass the process's lifetime context, not
// a start-up timeout. If the second cannot start, the first is stopped
// again and the error returned.
func (s *Service) Subscribe(ctx context.Context, b *bus.Bus) error {
	emails, err := b.Subscribe(ctx, bus.ConsumerConfig{Name: ConsumerOrderConfirmed, Subject: EventOrderConfirmed}, s.db, s.handleOrderConfirmed)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	hooks, err := b.Subscribe(ctx, bus.ConsumerConfig{Name: ConsumerWebhooks, Subject: "souk.>", WantsType: s.wantsType}, s.db, s.handleEvent)
	if err != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = emails.Stop(sctx)
		return fmt.Errorf("notify: %w", err)
	}
	s.mu.Lock()
	s.subs = append(s.subs, emails, hooks)
	s.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := s.Stop(sctx); err != nil {
				s.log.Warn("notify: consumers did not stop in time", "error", err)
			}
		case <-s.stopped:
		}
	}()
	return nil
}

// Stop stops the consumers Subscribe started, letting events in flight
// finish, bounded by ctx. It is idempotent.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	subs := s.subs
	s.subs = nil
	select {
	case <-s.stopped:
	default:
		close(s.stopped)
	}
	s.mu.Unlock()
	var errs []error
	for _, sub := range subs {
		if err := sub.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Run sends due emails and webhook deliveries until ctx is done, then
// returns nil once the sends under way have been recorded (each bounded by
// its timeout). It looks every Config.PollInterval, and at once when this
// process's consumers or a retry request made new work. Failures are
// logged and retried at the next round. Several processes may Run on one
// database.
func (s *Service) Run(ctx context.Context) error {
	if s.cfg.SMTPAddr == "" {
		s.log.WarnContext(ctx, "notify: no SMTP server configured (SMTPAddr, --notify-smtp-addr): emails are stored in notify_emails, pending, and not sent")
	}
	var wg sync.WaitGroup
	if s.cfg.SMTPAddr != "" {
		wg.Go(func() { s.loop(ctx, "email sender", s.wakeEmail, emailGather, emailBatch, s.SendPending) })
	}
	wg.Go(func() { s.loop(ctx, "webhook delivery", s.wakeHooks, 0, s.cfg.WebhookConcurrency, s.DeliverPending) })
	wg.Wait()
	return nil
}

// emailGather is how long the e-mail sender waits after a wake-up before
// it claims, so that the confirmations committed meanwhile go out in one
// batch over one SMTP session (one claim, one connection, one record)
// instead of one each: at a few hundred orders a second, woken at once it
// claimed one or two. It delays each confirmation by as much.
const emailGather = 25 * time.Millisecond

// loop runs work until ctx is done: again at once while it finds full
// batches, else at the next tick or wake-up — gather after a wake-up.
func (s *Service) loop(ctx context.Context, name string, wake <-chan struct{}, gather time.Duration, batch int, work func(context.Context) (int, error)) {
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		n, err := work(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "notify: "+name+" round failed; trying again at the next one", "error", err)
		}
		if ctx.Err() != nil {
			return
		}
		if n >= batch && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
			if gather > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(gather):
				}
				// The round sees what the wake-ups meanwhile announced.
				select {
				case <-wake:
				default:
				}
			}
		}
	}
}
