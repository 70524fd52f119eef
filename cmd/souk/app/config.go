package app

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/soukhq/souk/platform/config"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/store"
)

// Config is everything `souk serve` can be told. Flags and SOUK_*
// environment variables are two spellings of each field (see
// platform/config); only this package reads them.
type Config struct {
	// Addr is where the gateway listens.
	Addr string
	// DataDir holds the embedded databases (<service>.db), the embedded
	// bus's storage and the generated admin key.
	DataDir string
	// Services lists the services this process runs ("all" for every one).
	Services config.List
	// Demo loads the demo data set on first start.
	Demo bool
	// DatabaseURL, when a PostgreSQL URL, holds every service's tables, each
	// in a schema named after the service. Empty means SQLite files in DataDir.
	DatabaseURL string
	// ServiceDatabaseURLs overrides DatabaseURL per service
	// (SOUK_CATALOG_DATABASE_URL, …).
	ServiceDatabaseURLs map[string]*string
	// DBMaxConns caps each service's PostgreSQL connection pool; 0 shares
	// dbConnBudget between the services of this process (see DBPoolSize).
	DBMaxConns int
	// NATSURL is an external NATS JetStream server; empty runs one embedded.
	NATSURL string
	// NATSListen exposes the embedded NATS server on host:port (for tools);
	// empty opens no port.
	NATSListen string
	// BusStream names the JetStream stream of events (its dead letters go to
	// <stream>_DLQ); BusSubjectPrefix, when set, prefixes every subject, so
	// several installations can share one NATS account.
	BusStream        string
	BusSubjectPrefix string
	// Remote forwards services this process does not run to their base URLs
	// ("catalog=http://catalog:8080,identity=http://identity:8080").
	Remote config.Map
	// Currency is the store's default currency (ISO 4217) for storefront
	// prices; Country its home country (ISO 3166-1 alpha-2) for tax and
	// shipping before a shopper gives an address.
	Currency string
	Country  string
	// TrustedProxies are the networks (CIDR) of proxies in front of this
	// process whose X-Forwarded-For names the real client, for per-IP login
	// throttling.
	TrustedProxies config.List
	// ServiceToken is the bearer token (an API key secret with the roles the
	// calls need) this process sends to services of other processes.
	ServiceToken string
	// Payments: the primary and secondary (failover) providers, and Stripe.
	PaymentsPrimary   string
	PaymentsSecondary string
	StripeAPIKey      string
	StripeBaseURL     string
	// Notify: where confirmation emails go, and whether webhooks may reach
	// private networks (development only).
	SMTPAddr             string
	SMTPFrom             string
	WebhooksAllowPrivate bool
	// AdminAPIKey, when set, is the secret of an admin API key that is
	// created on start if missing. Prefer the environment variable.
	AdminAPIKey string
	// LogLevel and LogFormat shape the logs.
	LogLevel  string
	LogFormat string
	// ShutdownTimeout bounds the drain of in-flight requests and work.
	ShutdownTimeout time.Duration
	// OTLPEndpoint, when set, exports traces over OTLP/HTTP. It is read from
	// the standard OTEL_EXPORTER_OTLP_ENDPOINT variable.
	OTLPEndpoint string
}

// RegisterFlags defines the serve flags on fs, with defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "address the gateway listens on (host:port; port 0 picks a free one)")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory for the embedded databases, bus storage and the generated admin key")
	c.Services = config.List{"all"}
	fs.Var(&c.Services, "services", "comma-separated services to run in this process: all, or any of "+strings.Join(ServiceNames, ", "))
	fs.BoolVar(&c.Demo, "demo", false, "load the demo catalogue on first start")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL URL shared by every service (a schema each); empty: a SQLite file per service in --data-dir")
	c.ServiceDatabaseURLs = map[string]*string{}
	for _, s := range ServiceNames {
		c.ServiceDatabaseURLs[s] = fs.String(s+"-database-url", "", "database URL of the "+s+" service (overrides --database-url)")
	}
	fs.IntVar(&c.DBMaxConns, "db-max-conns", 0, "PostgreSQL connections per service's pool; 0: 80 shared by the services of this process (10 each when all run in it), at most 20 each")
	fs.StringVar(&c.NATSURL, "nats-url", "", "external NATS JetStream URL (nats://host:4222); empty: an embedded server")
	fs.StringVar(&c.NATSListen, "nats-listen", "", "expose the embedded NATS server on host:port; empty: no port is opened")
	fs.StringVar(&c.BusStream, "bus-stream", "SOUK", "JetStream stream holding the events")
	fs.StringVar(&c.BusSubjectPrefix, "bus-subject-prefix", "", "prefix for every event subject, to share one NATS account between installations")
	c.Remote = config.Map{}
	fs.Var(&c.Remote, "remote", "base URLs of services run elsewhere, name=url,… (their routes are forwarded)")
	fs.StringVar(&c.Currency, "currency", "EUR", "the store's default currency for storefront prices (ISO 4217)")
	fs.StringVar(&c.Country, "country", "NL", "the store's home country for tax and shipping before an address is known (ISO 3166-1 alpha-2)")
	fs.Var(&c.TrustedProxies, "trusted-proxies", "comma-separated CIDRs of proxies whose X-Forwarded-For is believed (e.g. 10.0.0.0/8)")
	fs.StringVar(&c.ServiceToken, "service-token", "", "bearer token sent to services run by other processes (an API key secret)")
	fs.StringVar(&c.PaymentsPrimary, "payments-primary", "test", "payment provider for new payments: test or stripe")
	fs.StringVar(&c.PaymentsSecondary, "payments-secondary", "", "payment provider to fail over to (POST /admin/payments/provider)")
	fs.StringVar(&c.StripeAPIKey, "stripe-api-key", "", "Stripe secret key (sk_test_…), for the stripe provider")
	fs.StringVar(&c.StripeBaseURL, "stripe-base-url", "", "Stripe API base URL (default Stripe's; stripe-mock for tests)")
	fs.StringVar(&c.SMTPAddr, "smtp-addr", "127.0.0.1:1025", "SMTP server for emails (host:port); 'souk mailsink' listens on 127.0.0.1:1025")
	fs.StringVar(&c.SMTPFrom, "smtp-from", "", "From address of emails (default the notify service's)")
	fs.BoolVar(&c.WebhooksAllowPrivate, "webhooks-allow-private", false, "let webhook URLs reach loopback and private networks over http (development only)")
	fs.StringVar(&c.AdminAPIKey, "admin-api-key", "", "secret of an admin API key to create if missing (sk_…); without it one is generated on first start")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "json", "log format: json or text")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "how long shutdown may drain in-flight requests and work")
}

// Validate reports the first bad setting by name.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("--addr %q: want host:port", c.Addr))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir must not be empty"))
	}
	if _, err := c.Selected(); err != nil {
		errs = append(errs, err)
	}
	for _, s := range ServiceNames {
		if u, schema := c.DatabaseFor(s); u != "" {
			if err := (store.Config{URL: u, Schema: schema}).Validate(); err != nil {
				errs = append(errs, fmt.Errorf("database of %s (--%s-database-url / --database-url): %w", s, s, err))
			}
		}
	}
	if c.NATSURL != "" && !strings.HasPrefix(c.NATSURL, "nats://") && !strings.HasPrefix(c.NATSURL, "tls://") {
		errs = append(errs, fmt.Errorf("--nats-url %q: want nats://host:port", c.NATSURL))
	}
	if c.NATSListen != "" {
		if _, _, err := net.SplitHostPort(c.NATSListen); err != nil {
			errs = append(errs, fmt.Errorf("--nats-listen %q: want host:port", c.NATSListen))
		}
	}
	for name := range c.Remote {
		if !slices.Contains(ServiceNames, name) {
			errs = append(errs, fmt.Errorf("--remote: unknown service %q", name))
		}
	}
	if _, err := c.trustedProxies(); err != nil {
		errs = append(errs, err)
	}
	if _, err := money.ParseCurrency(c.Currency); err != nil {
		errs = append(errs, fmt.Errorf("--currency: %w", err))
	}
	if len(c.Country) != 2 || strings.ToUpper(c.Country) != c.Country {
		errs = append(errs, fmt.Errorf("--country %q: want an upper-case ISO 3166-1 alpha-2 code such as NL", c.Country))
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		errs = append(errs, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("--log-format %q: want json or text", c.LogFormat))
	}
	if c.DBMaxConns < 0 {
		errs = append(errs, fmt.Errorf("--db-max-conns %d: want 0 (automatic) or more", c.DBMaxConns))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("--shutdown-timeout must be positive"))
	}
	return errors.Join(errs...)
}

// Selected resolves --services into the services this process runs.
func (c *Config) Selected() ([]string, error) {
	var out []string
	for _, s := range c.Services {
		switch {
		case s == "all":
			for _, n := range ServiceNames {
				if _, remote := c.Remote[n]; !remote {
					out = append(out, n)
				}
			}
		case slices.Contains(ServiceNames, s):
			out = append(out, s)
		default:
			return nil, fmt.Errorf("--services: unknown service %q (known: all, %s)", s, strings.Join(ServiceNames, ", "))
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) == 0 {
		return nil, errors.New("--services selects no service")
	}
	for _, s := range out {
		if _, remote := c.Remote[s]; remote {
			return nil, fmt.Errorf("service %s is both run here (--services) and remote (--remote)", s)
		}
	}
	return out, nil
}

// dbConnBudget is how many PostgreSQL connections the services of one
// process share by default: under the server's default max_connections
// (100), leaving room for tools, migrations and a second process.
const dbConnBudget = 80

// DBPoolSize is the PostgreSQL pool size of each of the n services this
// process runs: DBMaxConns when set, else an even share of dbConnBudget
// between 4 and 20.
func (c *Config) DBPoolSize(n int) int {
	if c.DBMaxConns > 0 {
		return c.DBMaxConns
	}
	return min(max(dbConnBudget/max(n, 1), 4), 20)
}

// DatabaseFor returns the database URL and PostgreSQL schema of a service.
func (c *Config) DatabaseFor(service string) (url, schema string) {
	if p := c.ServiceDatabaseURLs[service]; p != nil && *p != "" {
		return *p, service
	}
	if c.DatabaseURL != "" {
		return c.DatabaseURL, service
	}
	return "sqlite:" + filepath.Join(c.DataDir, service+".db"), ""
}

// trustedProxies parses --trusted-proxies.
func (c *Config) trustedProxies() ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(c.TrustedProxies))
	for _, s := range c.TrustedProxies {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxies %q: want a CIDR such as 10.0.0.0/8", s)
		}
		out = append(out, p)
	}
	return out, nil
}
