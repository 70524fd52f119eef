package orders

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("the zero Config (defaults): %v", err)
	}
	var c Config
	c.setDefaults()
	if c.WaitBudget != 5*time.Second || c.SagaDeadline != 2*time.Minute || c.CapturePolicy != CaptureOnConfirmation ||
		c.Workers != DefaultWorkers || c.ReservationTTL <= c.SagaDeadline {
		t.Fatalf("defaults %+v", c)
	}
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"a negative wait budget", Config{WaitBudget: -time.Second}, "WaitBudget"},
		{"a wait budget over a minute", Config{WaitBudget: 2 * time.Minute}, "WaitBudget"},
		{"an unknown capture policy", Config{CapturePolicy: "on_delivery"}, "CapturePolicy"},
		{"a step shorter than a call", Config{StepTimeout: time.Second, CallTimeout: 2 * time.Second}, "StepTimeout"},
		{"a deadline shorter than a step", Config{SagaDeadline: time.Second, StepTimeout: 2 * time.Second, CallTimeout: time.Second}, "SagaDeadline"},
		{"no workers", Config{Workers: -1}, "Workers"},
		{"a lease shorter than two calls", Config{LeaseTTL: 5 * time.Second, CallTimeout: 5 * time.Second}, "LeaseTTL"},
		{"a backoff over its maximum", Config{RetryBackoff: time.Second, MaxBackoff: time.Millisecond}, "RetryBackoff"},
		{"a reservation shorter than the deadline", Config{ReservationTTL: time.Minute}, "ReservationTTL"},
		{"a reservation in fractions of a second", Config{ReservationTTL: 20*time.Minute + time.Millisecond}, "ReservationTTL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func TestConfigFlags(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("souk", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"-orders-wait-budget=2s", "-orders-capture-policy=on_fulfilment", "-orders-workers=4"}); err != nil {
		t.Fatal(err)
	}
	if c.WaitBudget != 2*time.Second || c.CapturePolicy != CaptureOnFulfilment || c.Workers != 4 || c.SagaDeadline != DefaultSagaDeadline {
		t.Fatalf("flags gave %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestNewRefuses(t *testing.T) {
	e := newEnv(t, "sqlite")
	if _, err := New(nil, nil, nil, Config{}, e.deps); err == nil {
		t.Error("New without a database")
	}
	if _, err := New(e.db, nil, nil, Config{CapturePolicy: "never"}, e.deps); err == nil {
		t.Error("New with an invalid Config")
	}
	if _, err := New(e.db, nil, nil, Config{}, Deps{Carts: e.carts}); err == nil {
		t.Error("New without every participant")
	}
	for deadline := time.Now().Add(5 * time.Second); !e.s.running.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the executor did not start")
		}
	}
	if err := e.s.Run(bg); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("a second Run: %v", err)
	}
}
