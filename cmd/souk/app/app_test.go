package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"

	"github.com/soukhq/souk/gateway"
	"slices"
	"strings"
	"testing"
)

func TestMainRejectsBadSettingsByName(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad flag value", []string{"serve", "--shutdown-timeout", "soon"}, nil, "shutdown-timeout"},
		{"bad env value", []string{"serve"}, map[string]string{"SOUK_SHUTDOWN_TIMEOUT": "soon"}, "SOUK_SHUTDOWN_TIMEOUT"},
		{"unknown service", []string{"serve", "--services", "catalog,warehouse"}, nil, `unknown service "warehouse"`},
		{"bad database url", []string{"serve"}, map[string]string{"SOUK_CATALOG_DATABASE_URL": "mysql://x"}, "--catalog-database-url"},
		{"bad addr", []string{"serve", "--addr", "8080"}, nil, "--addr"},
		{"bad log level", []string{"serve", "--log-level", "loud"}, nil, "--log-level"},
		{"bad nats url", []string{"serve", "--nats-url", "http://x"}, nil, "--nats-url"},
		{"negative pool", []string{"serve", "--db-max-conns", "-1"}, nil, "--db-max-conns"},
		{"unknown command", []string{"serv"}, nil, `unknown command "serv"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			code := Main(context.Background(), tt.args, &stdout, &stderr, lookup)
			if code == 0 {
				t.Fatalf("exit code 0 for %v", tt.args)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("stderr does not name %q:\n%s", tt.want, stderr.String())
			}
		})
	}
}

func TestServeHelpListsFlagsAndEnv(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"serve", "--help"}, &stdout, &stderr, func(string) (string, bool) { return "", false }); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"-addr", "-data-dir", "-services", "-demo", "-database-url", "-catalog-database-url", "-nats-url", "SOUK_DATA_DIR", "SOUK_CATALOG_DATABASE_URL"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("serve --help does not mention %s", want)
		}
	}
}

func TestSelectedServices(t *testing.T) {
	cfg := Config{Services: []string{"all"}, Remote: map[string]string{"identity": "http://id:8080"}}
	got, err := cfg.Selected()
	if err != nil || !slices.Equal(got, []string{"cart", "catalog", "inventory", "notify", "orders", "payments", "pricing"}) {
		t.Fatalf("all minus remote identity = %v, %v", got, err)
	}
	cfg = Config{Services: []string{"catalog"}, Remote: map[string]string{"catalog": "http://c"}}
	if _, err := cfg.Selected(); err == nil {
		t.Fatal("a service both local and remote must be refused")
	}
}

// TestDBPoolSize: by default the services of one process share 80
// PostgreSQL connections (PostgreSQL allows 100), so souk serve with every
// service on one server does not run it out of connections.
func TestDBPoolSize(t *testing.T) {
	var cfg Config
	for _, c := range []struct{ n, want int }{{len(ServiceNames), 10}, {1, 20}, {4, 20}, {5, 16}, {40, 4}} {
		if got := cfg.DBPoolSize(c.n); got != c.want {
			t.Errorf("%d services: pool of %d, want %d", c.n, got, c.want)
		}
	}
	if got := len(ServiceNames) * cfg.DBPoolSize(len(ServiceNames)); got > 80 {
		t.Errorf("every service in one process opens up to %d connections", got)
	}
	cfg.DBMaxConns = 7
	if got := cfg.DBPoolSize(len(ServiceNames)); got != 7 {
		t.Errorf("--db-max-conns 7: pool of %d", got)
	}
}

func TestDatabaseFor(t *testing.T) {
	pg := "postgres://u@h/db"
	own := "postgres://u@other/cat"
	cfg := Config{DataDir: "/d", ServiceDatabaseURLs: map[string]*string{"catalog": &own}}
	if u, s := cfg.DatabaseFor("identity"); u != "sqlite:/d/identity.db" || s != "" {
		t.Fatalf("default = %s %s", u, s)
	}
	cfg.DatabaseURL = pg
	if u, s := cfg.DatabaseFor("identity"); u != pg || s != "identity" {
		t.Fatalf("shared = %s %s", u, s)
	}
	if u, s := cfg.DatabaseFor("catalog"); u != own || s != "catalog" {
		t.Fatalf("own = %s %s", u, s)
	}
}

func TestModuleOrder(t *testing.T) {
	a := &App{selected: []string{"cart", "catalog", "identity", "inventory", "pricing"}}
	got, err := order(a.modules(), []string{moduleGateway})
	if err != nil {
		t.Fatal(err)
	}
	// Used services start before their users: pricing and inventory before
	// catalog (storefront prices and stock), catalog and pricing before cart.
	before := func(x, y string) bool { return slices.Index(got, x) < slices.Index(got, y) }
	for _, pair := range [][2]string{{"bus", "identity"}, {"pricing", "catalog"}, {"inventory", "catalog"}, {"catalog", "cart"}, {"pricing", "cart"}, {"cart", "demo"}, {"demo", "gateway"}} {
		if !before(pair[0], pair[1]) {
			t.Errorf("%s must start before %s: %v", pair[0], pair[1], got)
		}
	}
	a = &App{selected: []string{"catalog"}}
	got, _ = order(a.modules(), []string{moduleGateway})
	if slices.Contains(got, "identity") {
		t.Fatalf("--services catalog must not start identity: %v", got)
	}
	if _, err := order(map[string]module{"a": {deps: []string{"b"}}, "b": {deps: []string{"a"}}}, []string{"a"}); err == nil {
		t.Fatal("a cycle must be reported")
	}
}

// TestRoutesLieUnderTheirPrefixes keeps the routing data honest: every route
// a service declares must be reachable through the gateway's rules for it,
// and every Admin route must name a permission.
func TestRoutesLieUnderTheirPrefixes(t *testing.T) {
	a := mustStartApp(t)
	for name, u := range a.units {
		for _, rt := range u.routes {
			covered := false
			concrete := fillPath(rt.Path)
			for _, p := range servicePrefixes[name] {
				if gateway.Matches(p, concrete) {
					covered = true
				}
			}
			if !covered {
				t.Errorf("%s route %s is under none of its prefixes %v", name, rt.Pattern(), servicePrefixes[name])
			}
			if strings.HasPrefix(rt.Path, "/admin/") && rt.Permission == "" && !publicAdminRoutes[rt.Pattern()] {
				t.Errorf("%s route %s has no permission", name, rt.Pattern())
			}
		}
	}
}

// publicAdminRoutes are the Admin API routes a caller uses before it has a
// token: staff login, refresh and logout.
var publicAdminRoutes = map[string]bool{
	"POST /admin/auth/token":   true,
	"POST /admin/auth/refresh": true,
	"POST /admin/auth/logout":  true,
}

func mustStartApp(t *testing.T) *App {
	t.Helper()
	var stdout bytes.Buffer
	a, err := New(testConfig(t), discardLogger(), &stdout)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	return a
}

func TestMigrateCommand(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"migrate", "--data-dir", dir, "--log-level", "error"}, &stdout, &stderr, func(string) (string, bool) { return "", false })
	if code != 0 {
		t.Fatalf("migrate exit %d: %s", code, stderr.String())
	}
	for _, s := range ServiceNames {
		if _, err := os.Stat(filepath.Join(dir, s+".db")); err != nil {
			t.Errorf("%s database: %v", s, err)
		}
	}
}

func TestMailsinkCommandRefusesNonLoopback(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"mailsink", "--addr", "0.0.0.0:0"}, &stdout, &stderr, func(string) (string, bool) { return "", false }); code == 0 {
		t.Fatalf("mailsink on 0.0.0.0 started: %s", stderr.String())
	}
}

// TestShutdownClosesDatabasesLast: consumers and background work stop
// while every service's database is still open (they may be applying an
// event or publishing the outbox when shutdown begins); before, a service's
// database closed before the bus drained, and in-flight consumers logged
// "database is closed" errors at every shutdown.
func TestShutdownClosesDatabasesLast(t *testing.T) {
	a := mustStartApp(t) // its cleanup's second Shutdown finds nothing started
	var closed []string
	a.onStop(func(ctx context.Context) error {
		for name, u := range a.units {
			if err := u.db.SQL().PingContext(ctx); err != nil {
				closed = append(closed, name+": "+err.Error())
			}
		}
		return nil
	})
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(closed) > 0 {
		t.Fatalf("databases closed while consumers were still draining: %v", closed)
	}
	for name, u := range a.units {
		if err := u.db.SQL().PingContext(context.Background()); err == nil {
			t.Errorf("%s database still open after Shutdown", name)
		}
	}
}
