// Package app is Souk's composition root: it turns a Config into a running
// process — the modules --services selects, their databases, the bus, the
// gateway — and shuts it down in order. It is the only package that knows
// every other one; services know only the platform and each other's clients.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/soukhq/souk/gateway"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/bus"
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

// App is one running Souk process.
type App struct {
	cfg      Config
	logger   *slog.Logger
	stdout   io.Writer
	selected []string

	registry   *prometheus.Registry
	tracer     trace.TracerProvider
	propagator propagation.TextMapPropagator
	stopTracer func(context.Context) error
	httpMetric *httpx.HTTPMetrics

	bus        *bus.Bus
	busMetrics *bus.Metrics
	units      map[string]*unit

	authn auth.Authenticator
	authz auth.Authorizer

	// The services this process runs (nil when not local).
	identity  *identity.Service
	catalog   *catalog.Service
	pricing   *pricing.Service
	inventory *inventory.Service
	cart      *cart.Service
	payments  *payments.Service
	notify    *notify.Service
	orders    *orders.Service
	// stops run at shutdown before background work is cancelled (e.g.
	// draining bus consumers), in reverse order of registration.
	stops []func(context.Context) error
	// serviceHTTP calls services of other processes, with the service token.
	serviceHTTP *http.Client

	gateway  *gateway.Gateway
	server   *http.Server
	listener net.Listener

	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup

	started []string // modules initialised, in order
}

// unit is what every domain service has in this process: its own database,
// outbox relay, idempotency store and routes.
type unit struct {
	name   string
	db     *store.DB
	outbox *bus.Outbox
	relay  *bus.Relay
	idem   *httpx.Idempotency
	routes []httpx.Route
}

// New validates the configuration and prepares an App. stdout receives what
// a person starting the process must see once (a generated admin key).
func New(cfg Config, logger *slog.Logger, stdout io.Writer) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	selected, _ := cfg.Selected()
	a := &App{cfg: cfg, logger: logger, stdout: stdout, selected: selected, units: map[string]*unit{}}
	a.bgCtx, a.bgCancel = context.WithCancel(context.Background())
	return a, nil
}

// Start initialises every module in dependency order and starts listening.
// On error, whatever was started is stopped again.
func (a *App) Start(ctx context.Context) (err error) {
	a.registry = telemetry.NewRegistry()
	a.httpMetric = httpx.NewHTTPMetrics(a.registry)
	tp, stop, err := telemetry.NewTracerProvider(ctx, telemetry.Config{ServiceName: "souk", OTLPEndpoint: a.cfg.OTLPEndpoint})
	if err != nil {
		return fmt.Errorf("start tracing: %w", err)
	}
	a.tracer, a.stopTracer = tp, stop
	a.propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	a.serviceHTTP = newServiceHTTP(a.cfg.ServiceToken)

	mods := a.modules()
	names, err := order(mods, []string{moduleGateway})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
			defer cancel()
			_ = a.Shutdown(sctx)
		}
	}()
	for _, name := range names {
		if err := mods[name].init(ctx); err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		a.started = append(a.started, name)
	}
	return nil
}

// Addr is the gateway's listening address (useful with port 0).
func (a *App) Addr() string {
	if a.listener == nil {
		return ""
	}
	return a.listener.Addr().String()
}

// Shutdown stops accepting requests, drains the in-flight ones, the
// consumers and the background work, and closes the bus, in reverse start
// order; then it closes the databases, which all of those may still use.
func (a *App) Shutdown(ctx context.Context) error {
	mods := a.modules()
	var errs []error
	for i := len(a.started) - 1; i >= 0; i-- {
		name := a.started[i]
		if stop := mods[name].stop; stop != nil {
			if err := stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", name, err))
			}
		}
	}
	for i := len(a.started) - 1; i >= 0; i-- {
		name := a.started[i]
		if u, ok := a.units[name]; ok {
			if err := u.db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s database: %w", name, err))
			}
		}
	}
	a.started = nil
	if a.stopTracer != nil {
		if err := a.stopTracer(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flush traces: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Run starts the app, blocks until ctx is done (SIGINT/SIGTERM in main),
// then shuts down within the configured timeout.
func (a *App) Run(ctx context.Context) error {
	if err := a.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	a.logger.Info("shutting down: draining requests and background work", "timeout", a.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		return err
	}
	a.logger.Info("stopped cleanly")
	return nil
}

// background runs fn until shutdown; shutdown waits for it to return.
func (a *App) background(name string, fn func(ctx context.Context) error) {
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		if err := fn(a.bgCtx); err != nil && !errors.Is(err, context.Canceled) {
			a.logger.Error("background work stopped with an error", "worker", name, "error", err)
		}
	}()
}

func (a *App) initBus(ctx context.Context) error {
	cfg := bus.Config{URL: a.cfg.NATSURL, Stream: a.cfg.BusStream, SubjectPrefix: a.cfg.BusSubjectPrefix}
	if cfg.URL == "" {
		cfg.StoreDir = filepath.Join(a.cfg.DataDir, "nats")
		if a.cfg.NATSListen != "" {
			host, port, _ := net.SplitHostPort(a.cfg.NATSListen)
			cfg.ListenHost = host
			cfg.ListenPort, _ = strconv.Atoi(port)
		}
	}
	m, err := bus.NewMetrics(a.registry)
	if err != nil {
		return err
	}
	a.busMetrics = m
	b, err := bus.Open(ctx, cfg, a.logger.With("component", "bus"), nil, bus.WithMetrics(m), bus.WithTracerProvider(a.tracer))
	if err != nil {
		return err
	}
	a.bus = b
	return nil
}

// onStop registers fn to run at shutdown, after the gateway drained and
// before background work is cancelled and the bus closes.
func (a *App) onStop(fn func(context.Context) error) { a.stops = append(a.stops, fn) }

func (a *App) stopBus(ctx context.Context) error {
	// Consumers drain first (they may still write and publish), then the
	// background work (relays, workers) stops, then the bus goes.
	for i := len(a.stops) - 1; i >= 0; i-- {
		if err := a.stops[i](ctx); err != nil {
			a.logger.Warn("stopping a consumer failed", "error", err)
		}
	}
	a.stops = nil
	a.bgCancel()
	done := make(chan struct{})
	go func() { a.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		a.logger.Warn("background work did not stop in time")
	}
	if a.bus == nil {
		return nil
	}
	a.bus.Close()
	return nil
}

// openUnit opens a service's database, migrates it and starts its relay.
func (a *App) openUnit(ctx context.Context, name string) (*unit, error) {
	url, schema := a.cfg.DatabaseFor(name)
	services, _ := a.cfg.Selected() // validated by New
	db, err := store.Open(ctx, store.Config{URL: url, Schema: schema, MaxOpenConns: a.cfg.DBPoolSize(len(services)),
		Logger: a.logger.With("component", name), Name: name, Registerer: a.registry})
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, bus.Migrations, httpx.IdempotencyMigrations, serviceMigrations[name]); err != nil {
		db.Close()
		return nil, err
	}
	logger := a.logger.With("component", name)
	u := &unit{name: name, db: db}
	if u.relay, err = bus.NewRelay(db, a.bus, bus.RelayConfig{Name: name}, logger, a.busMetrics); err != nil {
		db.Close()
		return nil, err
	}
	u.outbox = bus.NewOutbox(u.relay.Wake)
	u.idem = httpx.NewIdempotency(db, httpx.IdempotencyConfig{})
	a.units[name] = u
	a.background(name+"-relay", u.relay.Run)
	a.background(name+"-idempotency-cleanup", func(ctx context.Context) error {
		t := time.NewTicker(10 * time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				if err := u.idem.Cleanup(ctx); err != nil {
					logger.Warn("idempotency key cleanup failed", "error", err)
				}
			}
		}
	})
	engine := string(db.Engine())
	logger.Info("database ready", "engine", engine, "url", redact(url), "schema", schema)
	return u, nil
}

func (a *App) initGateway(ctx context.Context) error {
	if a.authn == nil {
		remote, ok := a.cfg.Remote["identity"]
		if !ok {
			return errors.New("admin routes need the identity service: run it here (--services) or name it with --remote identity=URL")
		}
		// Access tokens are verified here against identity's published keys;
		// API keys are checked by asking identity.
		hc := &http.Client{Timeout: 5 * time.Second}
		a.authn = identity.NewJWKSAuthenticator(strings.TrimSuffix(remote, "/")+identity.JWKSPath, hc,
			identity.WithAPIKeyAuthenticator(identity.NewHTTPAuthenticator(remote, hc)),
			identity.WithJWKSLogger(a.logger.With("component", "jwks")))
		a.authz = identity.Policy{}
	}
	g := gateway.New(gateway.Config{}, a.logger.With("component", "gateway"))
	table := gateway.Table{Remote: map[string]string{}}
	for _, name := range a.selected {
		u := a.units[name]
		g.AddLocal(name, gateway.Mount(u.routes, a.decorator(name, u.idem)))
		for _, p := range servicePrefixes[name] {
			table.Rules = append(table.Rules, gateway.Rule{Prefix: p, Upstream: name})
		}
	}
	for name, url := range a.cfg.Remote {
		table.Remote[name] = url
		for _, p := range servicePrefixes[name] {
			table.Rules = append(table.Rules, gateway.Rule{Prefix: p, Upstream: name})
		}
	}
	ops := a.opsRoutes()
	g.AddLocal("ops", gateway.Mount(ops, a.decorator("ops", nil)))
	for _, rt := range ops {
		table.Rules = append(table.Rules, gateway.Rule{Prefix: rt.Path, Upstream: "ops"})
	}
	if err := g.SetTable(table); err != nil {
		return err
	}
	a.gateway = g

	handler := httpx.Chain(g,
		httpx.RequestID(),
		httpx.Tracing(a.tracer, a.propagator),
		httpx.AccessLog(a.logger.With("component", "http")),
		httpx.Recover(a.logger),
		httpx.BodyLimit(httpx.DefaultBodyLimit),
	)
	ln, err := net.Listen("tcp", a.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.cfg.Addr, err)
	}
	a.listener = ln
	a.server = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := a.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger.Error("http server stopped", "error", err)
		}
	}()
	busMode := "embedded NATS JetStream (no port opened)"
	if a.cfg.NATSURL != "" {
		busMode = "external NATS " + redact(a.cfg.NATSURL)
	} else if a.cfg.NATSListen != "" {
		busMode = "embedded NATS JetStream on " + a.cfg.NATSListen
	}
	a.logger.Info("souk is ready",
		"url", "http://"+ln.Addr().String(),
		"services", a.selected,
		"remote", a.cfg.Remote.String(),
		"data_dir", a.cfg.DataDir,
		"bus", busMode,
		"try", "curl http://"+ln.Addr().String()+"/store/products",
		"api", "http://"+ln.Addr().String()+"/openapi.json",
		"metrics", "http://"+ln.Addr().String()+"/metrics")
	return nil
}

func (a *App) stopGateway(ctx context.Context) error {
	if a.server == nil {
		return nil
	}
	// Shutdown stops accepting and waits for in-flight requests to finish.
	return a.server.Shutdown(ctx)
}

// decorator wraps each mounted route: RED metrics by pattern, authorization
// by the route's permission, idempotency keys on POST.
func (a *App) decorator(service string, idem *httpx.Idempotency) gateway.Decorator {
	return func(rt httpx.Route, h http.Handler) http.Handler {
		mws := []httpx.Middleware{a.httpMetric.Middleware(service, rt.Pattern())}
		if service != "ops" {
			mws = append(mws, httpx.Authorize(a.authn, a.authz, rt.Permission))
		}
		if rt.Method == http.MethodPost && idem != nil && !rt.NoReplay {
			mws = append(mws, idem.Middleware())
		}
		return httpx.Chain(h, mws...)
	}
}

// unitsInOrder returns the local units, sorted by name.
func (a *App) unitsInOrder() []*unit {
	names := make([]string, 0, len(a.units))
	for n := range a.units {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]*unit, len(names))
	for i, n := range names {
		out[i] = a.units[n]
	}
	return out
}
