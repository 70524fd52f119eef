package payments

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/apperr/apperrtest"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/resilience"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
	"github.com/soukhq/souk/platform/telemetry/telemetrytest"
)

// TestBreakerOpensAndFailsFast: after BreakerFailureThreshold failed
// provider calls the breaker opens; authorizations then fail fast with
// unavailable without reaching the provider, and are recorded abandoned
// (known not to have happened), so their keys may be retried.
func TestBreakerOpensAndFailsFast(t *testing.T) {
	cfg := testConfig()
	cfg.ProviderMaxAttempts = 1
	cfg.BreakerFailureThreshold = 3
	cfg.BreakerDelay = time.Minute
	reg := prometheus.NewRegistry()
	f := newFixture(t, storetest.MustOpen(t, store.SQLite, testMigrations...), cfg, WithMetrics(reg))
	ctx := context.Background()
	for i, key := range []string{"o1:auth", "o2:auth", "o3:auth"} {
		_, err := f.Authorize(ctx, authReq(key, TokenTimeout, 100))
		apperrtest.Want(t, err, apperr.Unavailable)
		if errors.Is(err, resilience.ErrBreakerOpen) {
			t.Fatalf("call %d failed fast", i+1)
		}
	}
	st, err := f.ProviderStatus(ctx)
	if err != nil || st.Breakers[ProviderTest] != string(resilience.BreakerOpen) {
		t.Fatalf("status %+v, %v", st, err)
	}
	_, err = f.Authorize(ctx, authReq("o4:auth", TokenVisa, 100))
	apperrtest.Want(t, err, apperr.Unavailable)
	if !errors.Is(err, resilience.ErrBreakerOpen) {
		t.Fatalf("err = %v, want the breaker's", err)
	}
	if f.tp.Calls(OpAuthorize, "o4:auth") != 0 {
		t.Fatal("an open breaker let the call through")
	}
	if st := opState(t, f.Service, "o4:auth"); st != OpAbandoned {
		t.Fatalf("state %s, want abandoned", st)
	}
	if v := telemetrytest.MustMetric(t, reg, "souk_dependency_breaker_state", "name", "payments.test"); v != 2 {
		t.Fatalf("breaker gauge %v", v)
	}
	if v := telemetrytest.MustMetric(t, reg, "souk_payments_operations_total", "provider", "test", "op", "authorize", "outcome", "abandoned"); v != 1 {
		t.Fatalf("abandoned operations %v", v)
	}

	// After the delay a trial goes through; it succeeds and closes the breaker.
	f.clock.Advance(time.Minute)
	p, err := f.Authorize(ctx, authReq("o4:auth", TokenVisa, 100))
	if err != nil || p.Status != StatusAuthorized {
		t.Fatalf("after the delay: %+v, %v", p, err)
	}
	if st, _ := f.ProviderStatus(ctx); st.Breakers[ProviderTest] != string(resilience.BreakerClosed) {
		t.Fatalf("breaker %s", st.Breakers[ProviderTest])
	}
	// Declines are answers, not failures: they never open it.
	for i := range 5 {
		_, err := f.Authorize(ctx, authReq(fmt.Sprintf("d%d:auth", i), TokenDeclined, 100))
		wantDeclined(t, err, "card_declined")
	}
	if st, _ := f.ProviderStatus(ctx); st.Breakers[ProviderTest] != string(resilience.BreakerClosed) {
		t.Fatal("declines opened the breaker")
	}
}

// TestSwitchProvider: an operator switches new authorizations to the
// secondary; the switch is audited; payments made before keep using the
// provider that made them.
func TestSwitchProvider(t *testing.T) {
	runStoresWithSecondary(t, func(t *testing.T, f fixture, backup *TestProvider) {
		ctx := context.Background()
		before := MustAuthorize(t, f, "o1:auth", 1000)
		if before.Provider != ProviderTest {
			t.Fatalf("provider %s", before.Provider)
		}
		st, err := f.ProviderStatus(ctx)
		if err != nil || st.Active != ProviderTest || st.Primary != ProviderTest || st.Secondary != "backup" ||
			!reflect.DeepEqual(st.Configured, []string{ProviderTest, "backup"}) || len(st.Switches) != 0 {
			t.Fatalf("status %+v, %v", st, err)
		}

		_, err = f.SwitchProvider(ctx, "stripe", "")
		apperrtest.Want(t, err, apperr.ValidationFailed, "provider", "reason")

		opsCtx := auth.WithPrincipal(ctx, auth.Principal{Subject: "usr_oncall", Kind: auth.KindStaff, Role: "admin"})
		st, err = f.SwitchProvider(opsCtx, "backup", "test provider failing: runbook payments-down")
		if err != nil {
			t.Fatal(err)
		}
		if st.Active != "backup" || len(st.Switches) != 1 {
			t.Fatalf("status %+v", st)
		}
		sw := st.Switches[0]
		if sw.From != ProviderTest || sw.To != "backup" || sw.Actor != "usr_oncall" || sw.Reason == "" || !sw.CreatedAt.Equal(f.clock.Now()) {
			t.Fatalf("switch %+v", sw)
		}
		if got := outboxTypes(t, f.Service, sw.ID); !reflect.DeepEqual(got, []string{"provider_switched"}) {
			t.Fatalf("events %v", got)
		}
		// Switching to the active one again records nothing.
		if st, err := f.SwitchProvider(opsCtx, "backup", "again"); err != nil || len(st.Switches) != 1 {
			t.Fatalf("no-op switch: %+v, %v", st, err)
		}

		after := MustAuthorize(t, f, "o2:auth", 1000)
		if after.Provider != "backup" || backup.Effects(OpAuthorize, "o2:auth") != 1 || f.tp.Calls(OpAuthorize, "o2:auth") != 0 {
			t.Fatalf("after the switch: %+v", after)
		}
		// The payment made before is captured by its own provider.
		if c := MustCapture(t, f, "o1:capture", before.ID, 1000); c.Provider != ProviderTest || f.tp.Effects(OpCapture, "o1:capture") != 1 {
			t.Fatalf("capture %+v", c)
		}
		// A request may still name a configured provider.
		named, err := f.Authorize(ctx, AuthorizeRequest{Key: "o3:auth", OrderID: "o3", Amount: eur(5), Token: TokenVisa, Provider: ProviderTest})
		if err != nil || named.Provider != ProviderTest {
			t.Fatalf("named provider: %+v, %v", named, err)
		}

		f.clock.Advance(time.Minute)
		st, err = f.SwitchProvider(ctx, ProviderTest, "recovered")
		if err != nil || st.Active != ProviderTest || len(st.Switches) != 2 || st.Switches[0].Actor != "system" || st.Switches[0].From != "backup" {
			t.Fatalf("switch back: %+v, %v", st, err)
		}
	})
}

// runStoresWithSecondary runs test with "test" as primary and another
// test provider, "backup", as secondary.
func runStoresWithSecondary(t *testing.T, test func(t *testing.T, f fixture, backup *TestProvider)) {
	storetest.Run(t, testMigrations, func(t *testing.T, db *store.DB) {
		backup := NewTestProvider(time.Millisecond).Named("backup")
		cfg := testConfig()
		cfg.Secondary = "backup"
		test(t, newFixture(t, db, cfg, WithProvider(backup)), backup)
	})
}

func TestSwitchProviderOverHTTP(t *testing.T) {
	storetest.Run(t, testMigrations, func(t *testing.T, db *store.DB) {
		cfg := testConfig()
		cfg.Secondary = "backup"
		f := newFixture(t, db, cfg, WithProvider(NewTestProvider(time.Millisecond).Named("backup")))
		h := withPrincipal(apitest.Mount(f.Routes()), auth.Principal{Subject: "key_ops", Kind: auth.KindAPIKey, Role: "admin"})
		st := apitest.MustDecode[ProviderStatus](t, apitest.MustServe(t, h, http.StatusOK, request{method: "POST", path: "/admin/payments/provider",
			body: `{"provider": "backup", "reason": "drill"}`}))
		if st.Active != "backup" || st.Switches[0].Actor != "key_ops" {
			t.Fatalf("status %+v", st)
		}
		got := apitest.MustDecode[ProviderStatus](t, apitest.MustServe(t, h, http.StatusOK, request{method: "GET", path: "/admin/payments/provider"}))
		if !reflect.DeepEqual(got, st) {
			t.Fatalf("GET = %+v, POST answered %+v", got, st)
		}
		apitest.WantProblem(t, apitest.Serve(h, request{method: "POST", path: "/admin/payments/provider", body: `{"provider": "paypal", "reason": "x"}`}),
			http.StatusBadRequest, "validation_failed", "provider")
	})
}

// withPrincipal authenticates every request as p, as the gateway would.
func withPrincipal(h http.Handler, p auth.Principal) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}
