package payments

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if err := (Config{Primary: ProviderStripe, Secondary: ProviderTest, StripeAPIKey: "sk_test_1", StripeBaseURL: "http://127.0.0.1:12111"}).Validate(); err != nil {
		t.Fatalf("stripe with test as secondary: %v", err)
	}
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Primary: "Stripe"}, "Primary"},
		{Config{Secondary: "pay pal"}, "Secondary"},
		{Config{Secondary: ProviderTest}, "is the Primary"},
		{Config{Timeout: time.Millisecond}, "Timeout"},
		{Config{ProviderMaxAttempts: 11}, "ProviderMaxAttempts"},
		{Config{BreakerFailureThreshold: -1}, "BreakerFailureThreshold"},
		{Config{BreakerDelay: -1}, "BreakerDelay"},
		{Config{MaxConcurrent: -1}, "MaxConcurrent"},
		{Config{Timeout: time.Second, TestProviderSlowDelay: 2 * time.Second}, "TestProviderSlowDelay"},
		{Config{ReconcileInterval: time.Millisecond}, "ReconcileInterval"},
		{Config{Primary: ProviderStripe}, "StripeAPIKey"},
		{Config{Secondary: ProviderStripe}, "StripeAPIKey"},
		{Config{Primary: ProviderStripe, StripeAPIKey: "sk", StripeBaseURL: "stripe.local"}, "StripeBaseURL"},
	} {
		if err := tt.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tt.cfg, err, tt.want)
		}
	}
}

func TestNew(t *testing.T) {
	db := storetest.MustOpen(t, store.SQLite, testMigrations...)
	if _, err := New(db, nil, nil, Config{Primary: ProviderStripe}); err == nil {
		t.Fatal("New accepted an invalid config")
	}
	if _, err := New(db, nil, nil, Config{Secondary: "adyen"}); err == nil || !strings.Contains(err.Error(), "adyen") {
		t.Fatalf("New with an unknown provider: %v", err)
	}
	s, err := New(db, bus.NewOutbox(nil), nil, Config{Primary: ProviderStripe, Secondary: ProviderTest, StripeAPIKey: "sk_test_1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.providers[ProviderStripe].Provider.(*StripeProvider); !ok {
		t.Fatal("stripe is not the Stripe adapter")
	}
	if _, ok := s.providers[ProviderTest].Provider.(*TestProvider); !ok {
		t.Fatal("test is not the test provider")
	}
	if s.lease < DefaultProviderMaxAttempts*DefaultTimeout {
		t.Fatalf("lease %v shorter than a call's retries", s.lease)
	}
}

func TestRegisterFlags(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("souk", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse([]string{"-payments-primary", "stripe", "-payments-secondary", "test", "-payments-timeout", "5s"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Primary != ProviderStripe || cfg.Secondary != ProviderTest || cfg.Timeout != 5*time.Second || cfg.TestProviderSlowDelay != DefaultTestProviderSlowDelay {
		t.Fatalf("config %+v", cfg)
	}
}
