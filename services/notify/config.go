package notify

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TLSMode says how the SMTP connection is protected.
type TLSMode string

// The SMTP TLS modes.
const (
	// TLSNone sends in clear text: only for a relay on this machine or a
	// trusted network (and the mailsink).
	TLSNone TLSMode = "none"
	// TLSStartTLS upgrades the connection with STARTTLS and refuses a
	// server that does not offer it (submission, port 587).
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit speaks TLS from the first byte (SMTPS, port 465).
	TLSImplicit TLSMode = "tls"
)

// Defaults of Config.
const (
	DefaultSMTPFrom               = "Souk <no-reply@localhost>"
	DefaultSMTPTimeout            = 30 * time.Second
	DefaultEmailMaxAttempts       = 8
	DefaultStoreName              = "Souk"
	DefaultWebhookTimeout         = 10 * time.Second
	DefaultWebhookRetryFor        = 24 * time.Hour
	DefaultMaxConsecutiveFailures = 20
	DefaultDisableAfter           = 24 * time.Hour
	DefaultWebhookConcurrency     = 8
	DefaultPollInterval           = time.Second
)

// DefaultEmailBackoff is the pause after each failed email attempt; the last
// entry repeats. With DefaultEmailMaxAttempts an email is tried for about
// eight hours.
var DefaultEmailBackoff = []time.Duration{30 * time.Second, time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 3 * time.Hour}

// DefaultWebhookRetrySchedule is the pause after each failed webhook
// attempt (before ±20 % jitter); the last entry repeats until
// Config.WebhookRetryFor has passed since the delivery was created. With
// the defaults that is 11 attempts: at 0, 10 s, 40 s, 2m40s, 12m40s,
// 1h12m, 4h12m, 10h12m, 16h12m, 22h12m and a last one at 24 h.
var DefaultWebhookRetrySchedule = []time.Duration{
	10 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute,
	time.Hour, 3 * time.Hour, 6 * time.Hour,
}

// Config tunes notify. Zero fields take the defaults named.
type Config struct {
	// SMTPAddr is the SMTP relay, host:port ("smtp.example.com:587",
	// "127.0.0.1:1025" for `souk mailsink`). Empty turns sending off:
	// emails are still rendered and stored, pending, and Run says so once.
	SMTPAddr string
	// SMTPFrom is the sender, an RFC 5322 address ("Shop <orders@shop.example>";
	// default "Souk <no-reply@localhost>"). Its domain also names the
	// Message-ID.
	SMTPFrom string
	// SMTPUsername and SMTPPassword authenticate with AUTH PLAIN when set.
	// They are refused over a clear-text connection to anything but
	// loopback.
	SMTPUsername string
	SMTPPassword string
	// SMTPTLS is none, starttls or tls (default: none for a loopback
	// SMTPAddr, starttls otherwise).
	SMTPTLS TLSMode
	// SMTPTimeout bounds one SMTP session: connecting and the emails sent
	// over the connection in one round (up to 20), and each command in it
	// (default 30 s). Emails of the round not attempted when it passes are
	// due again at once, their attempt not counted. A round's emails are
	// leased for SMTPTimeout plus 30 s.
	SMTPTimeout time.Duration
	// EmailMaxAttempts is how often an email is tried before it is failed
	// (default 8). A permanent refusal (5xx for the address) fails it at once.
	EmailMaxAttempts int
	// EmailBackoff is the pause after each failed attempt; the last entry
	// repeats (default DefaultEmailBackoff). ±20 % jitter is added.
	EmailBackoff []time.Duration
	// StoreName is the shop's name in emails (default "Souk").
	StoreName string

	// WebhookTimeout bounds one webhook POST, connecting included
	// (default 10 s).
	WebhookTimeout time.Duration
	// WebhookRetrySchedule is the pause after each failed attempt; the last
	// entry repeats (default DefaultWebhookRetrySchedule). ±20 % jitter is added.
	WebhookRetrySchedule []time.Duration
	// WebhookRetryFor is how long after its creation a delivery is retried;
	// the last attempt is made when it ends (default 24 h).
	WebhookRetryFor time.Duration
	// AllowPrivateNetworks lets webhook URLs reach loopback, private,
	// link-local, CGNAT, multicast, unspecified and cloud metadata
	// addresses. Off, such URLs are refused at creation and connections to
	// such addresses are refused when dialling (whatever DNS says then).
	// Only for development and tests.
	AllowPrivateNetworks bool
	// AllowHTTP lets webhook URLs use http:// (default: https only).
	AllowHTTP bool
	// MaxConsecutiveFailures disables a subscription once that many of its
	// deliveries in a row ended failed, with no successful attempt in
	// between (default 20).
	MaxConsecutiveFailures int
	// DisableAfter disables a subscription when a delivery ends failed and
	// nothing was delivered to it successfully since that delivery was
	// created, at least DisableAfter before (default 24 h): every attempt
	// for a day failed.
	DisableAfter time.Duration
	// WebhookConcurrency is how many POSTs one process makes at once
	// (default 8).
	WebhookConcurrency int

	// PollInterval is how often Run looks for due emails and deliveries
	// (default 1 s). New ones made by this process are sent at once.
	PollInterval time.Duration
}

func (c *Config) setDefaults() {
	if c.SMTPFrom == "" {
		c.SMTPFrom = DefaultSMTPFrom
	}
	if c.SMTPTLS == "" {
		c.SMTPTLS = TLSStartTLS
		if host, _, err := net.SplitHostPort(c.SMTPAddr); err == nil && isLoopbackHost(host) {
			c.SMTPTLS = TLSNone
		}
	}
	if c.SMTPTimeout == 0 {
		c.SMTPTimeout = DefaultSMTPTimeout
	}
	if c.EmailMaxAttempts == 0 {
		c.EmailMaxAttempts = DefaultEmailMaxAttempts
	}
	if len(c.EmailBackoff) == 0 {
		c.EmailBackoff = DefaultEmailBackoff
	}
	if c.StoreName == "" {
		c.StoreName = DefaultStoreName
	}
	if c.WebhookTimeout == 0 {
		c.WebhookTimeout = DefaultWebhookTimeout
	}
	if len(c.WebhookRetrySchedule) == 0 {
		c.WebhookRetrySchedule = DefaultWebhookRetrySchedule
	}
	if c.WebhookRetryFor == 0 {
		c.WebhookRetryFor = DefaultWebhookRetryFor
	}
	if c.MaxConsecutiveFailures == 0 {
		c.MaxConsecutiveFailures = DefaultMaxConsecutiveFailures
	}
	if c.DisableAfter == 0 {
		c.DisableAfter = DefaultDisableAfter
	}
	if c.WebhookConcurrency == 0 {
		c.WebhookConcurrency = DefaultWebhookConcurrency
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
}

// Validate reports the first setting that cannot work, naming it; unset
// fields take their defaults first.
func (c Config) Validate() error {
	c.setDefaults()
	if c.SMTPAddr != "" {
		host, port, err := net.SplitHostPort(c.SMTPAddr)
		if err != nil || host == "" {
			return fmt.Errorf("notify: SMTPAddr %q: want host:port", c.SMTPAddr)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("notify: SMTPAddr %q: port must be 1-65535", c.SMTPAddr)
		}
		if c.SMTPUsername != "" && c.SMTPTLS == TLSNone && !isLoopbackHost(host) {
			return fmt.Errorf("notify: SMTPUsername is set with SMTPTLS none: the password would cross the network in clear text to %s; use starttls or tls", host)
		}
	}
	if _, err := mail.ParseAddress(c.SMTPFrom); err != nil {
		return fmt.Errorf("notify: SMTPFrom %q: %v", c.SMTPFrom, err)
	}
	switch c.SMTPTLS {
	case TLSNone, TLSStartTLS, TLSImplicit:
	default:
		return fmt.Errorf("notify: SMTPTLS %q: want none, starttls or tls", c.SMTPTLS)
	}
	if c.SMTPPassword != "" && c.SMTPUsername == "" {
		return errors.New("notify: SMTPPassword is set without SMTPUsername")
	}
	switch {
	case c.SMTPTimeout < time.Second || c.SMTPTimeout > 10*time.Minute:
		return fmt.Errorf("notify: SMTPTimeout %v: want 1s to 10m", c.SMTPTimeout)
	case c.EmailMaxAttempts < 1 || c.EmailMaxAttempts > 100:
		return fmt.Errorf("notify: EmailMaxAttempts %d: want 1 to 100", c.EmailMaxAttempts)
	case len(c.StoreName) > 100 || strings.ContainsAny(c.StoreName, "\r\n"):
		return errors.New("notify: StoreName: want one line of at most 100 bytes")
	case c.WebhookTimeout < 100*time.Millisecond || c.WebhookTimeout > 2*time.Minute:
		return fmt.Errorf("notify: WebhookTimeout %v: want 100ms to 2m", c.WebhookTimeout)
	case c.WebhookRetryFor < time.Second || c.WebhookRetryFor > 7*24*time.Hour:
		return fmt.Errorf("notify: WebhookRetryFor %v: want 1s to 7 days", c.WebhookRetryFor)
	case c.MaxConsecutiveFailures < 1:
		return fmt.Errorf("notify: MaxConsecutiveFailures %d: want at least 1", c.MaxConsecutiveFailures)
	case c.DisableAfter < time.Second:
		return fmt.Errorf("notify: DisableAfter %v: want at least 1s", c.DisableAfter)
	case c.WebhookConcurrency < 1 || c.WebhookConcurrency > 256:
		return fmt.Errorf("notify: WebhookConcurrency %d: want 1 to 256", c.WebhookConcurrency)
	case c.PollInterval < 10*time.Millisecond || c.PollInterval > time.Minute:
		return fmt.Errorf("notify: PollInterval %v: want 10ms to 1m", c.PollInterval)
	}
	for i, d := range c.EmailBackoff {
		if d <= 0 {
			return fmt.Errorf("notify: EmailBackoff[%d] %v: want a positive duration", i, d)
		}
	}
	for i, d := range c.WebhookRetrySchedule {
		if d <= 0 {
			return fmt.Errorf("notify: WebhookRetrySchedule[%d] %v: want a positive duration", i, d)
		}
	}
	return nil
}

// RegisterFlags binds the settings to flags named notify-… on fs (the
// composition root calls it; the password is better passed in the
// environment, which the root reads).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.SMTPAddr, "notify-smtp-addr", "", "SMTP relay host:port for emails (empty: store emails, send none; `souk mailsink` listens on 127.0.0.1:1025)")
	fs.StringVar(&c.SMTPFrom, "notify-smtp-from", DefaultSMTPFrom, "sender address of emails")
	fs.StringVar(&c.SMTPUsername, "notify-smtp-username", "", "SMTP AUTH PLAIN user name (optional)")
	fs.Func("notify-smtp-tls", "SMTP protection: none, starttls or tls (default: none for loopback, else starttls)", func(s string) error {
		c.SMTPTLS = TLSMode(s)
		return nil
	})
	fs.DurationVar(&c.SMTPTimeout, "notify-smtp-timeout", DefaultSMTPTimeout, "bound of one SMTP session: connecting and the emails sent over it in one round")
	fs.StringVar(&c.StoreName, "notify-store-name", DefaultStoreName, "the shop's name in emails")
	fs.DurationVar(&c.WebhookTimeout, "notify-webhook-timeout", DefaultWebhookTimeout, "bound of one webhook POST")
	fs.BoolVar(&c.AllowPrivateNetworks, "notify-webhook-allow-private-networks", false, "let webhooks reach loopback, private and metadata addresses (development only)")
	fs.BoolVar(&c.AllowHTTP, "notify-webhook-allow-http", false, "let webhook URLs use http:// (development only)")
	fs.IntVar(&c.MaxConsecutiveFailures, "notify-webhook-max-consecutive-failures", DefaultMaxConsecutiveFailures, "failed deliveries in a row that disable a webhook")
}

// isLoopbackHost reports whether host is "localhost" or a loopback IP.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Option tunes a Service beyond its Config: dependencies, not settings.
type Option func(*Service)

// WithMetrics registers the service's Prometheus metrics on reg (nil: no
// metrics). Registering twice on one registry shares the collectors.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(s *Service) { s.metrics = newMetrics(reg) }
}

// WithClock sets the clock (default time.Now). It decides when emails and
// deliveries are due, their backoff, leases, signature timestamps and
// automatic disabling; tests move it instead of waiting.
func WithClock(now func() time.Time) Option {
	return func(s *Service) {
		s.now = func() time.Time { return now().UTC().Truncate(time.Microsecond) }
	}
}

// WithSMTPTLSConfig sets the TLS configuration of SMTP connections (root
// CAs of a private relay, client certificates). ServerName defaults to
// SMTPAddr's host.
func WithSMTPTLSConfig(cfg *tls.Config) Option {
	return func(s *Service) { s.smtpTLS = cfg.Clone() }
}
