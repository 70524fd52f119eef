package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/config"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/telemetry"
	"github.com/soukhq/souk/services/cart"
	"github.com/soukhq/souk/services/catalog"
	"github.com/soukhq/souk/services/identity"
	"github.com/soukhq/souk/services/inventory"
	"github.com/soukhq/souk/services/notify"
	"github.com/soukhq/souk/services/orders"
	"github.com/soukhq/souk/services/payments"
	"github.com/soukhq/souk/services/pricing"
)

// EnvPrefix starts every environment variable the binary reads.
const EnvPrefix = "SOUK_"

const usage = `souk — the Souk commerce platform in one binary.

Usage:
  souk serve [flags]     run the platform (every service by default)
  souk migrate [flags]   apply database migrations and exit
  souk mailsink [flags]  a local SMTP sink for the confirmation emails
  souk version           print the version

Run 'souk serve --help' for the flags; each is also an environment
variable: --data-dir is SOUK_DATA_DIR.
`

// Version is set at build time with -ldflags "-X …/app.Version=…".
var Version = "dev"

// Main runs the command line and returns the process exit code: 0 on
// success, 2 for a usage or configuration error, 1 for a failure.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "mailsink":
		return runMailsink(ctx, args[1:], stdout, stderr)
	case "serve", "migrate":
	case "version", "--version":
		fmt.Fprintln(stdout, "souk", Version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "souk: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	cmd := args[0]
	fs := flag.NewFlagSet("souk "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	cfg.RegisterFlags(fs)
	config.DocumentEnv(fs, EnvPrefix)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: souk %s [flags]\n\nFlags (each also an environment variable):\n", cmd)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "souk %s: unexpected arguments %q\n", cmd, strings.Join(fs.Args(), " "))
		return 2
	}
	if err := config.ApplyEnv(fs, EnvPrefix, lookupEnv); err != nil {
		fmt.Fprintf(stderr, "souk %s: %v\n", cmd, err)
		return 2
	}
	cfg.OTLPEndpoint, _ = lookupEnv("OTEL_EXPORTER_OTLP_ENDPOINT")
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "souk %s: invalid configuration:\n  %s\n", cmd, strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return 2
	}
	// The service attribute names the process: "souk" when it runs every
	// service, else the services it runs; lines of one service inside the
	// process carry component=<service>.
	serviceName := "souk"
	if sel, _ := cfg.Selected(); len(sel) < len(ServiceNames) {
		serviceName = strings.Join(sel, "+")
	}
	logger := telemetry.NewLogger(telemetry.Config{ServiceName: serviceName, LogLevel: cfg.LogLevel, LogFormat: cfg.LogFormat}, stderr)

	if cmd == "migrate" {
		if err := migrate(ctx, cfg); err != nil {
			logger.Error("migrate failed", "error", err)
			return 1
		}
		logger.Info("migrations applied")
		return 0
	}
	a, err := New(cfg, logger, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "souk serve: %v\n", err)
		return 2
	}
	if err := a.Run(ctx); err != nil {
		logger.Error("souk stopped with an error", "error", err)
		return 1
	}
	return 0
}

// serviceMigrations are each service's own migration set.
var serviceMigrations = map[string]store.Migrations{
	"identity":  identity.Migrations,
	"pricing":   pricing.Migrations,
	"inventory": inventory.Migrations,
	"catalog":   catalog.Migrations,
	"cart":      cart.Migrations,
	"payments":  payments.Migrations,
	"notify":    notify.Migrations,
	"orders":    orders.Migrations,
}

// migrate applies every selected service's migrations.
func migrate(ctx context.Context, cfg Config) error {
	selected, err := cfg.Selected()
	if err != nil {
		return err
	}
	for _, name := range selected {
		url, schema := cfg.DatabaseFor(name)
		if strings.HasPrefix(url, "sqlite:") {
			if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
				return err
			}
		}
		db, err := store.Open(ctx, store.Config{URL: url, Schema: schema})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		err = db.Migrate(ctx, bus.Migrations, httpx.IdempotencyMigrations, serviceMigrations[name])
		db.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}
