package bus

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"zero value is embedded in memory", Config{}, ""},
		{"external", Config{URL: "nats://127.0.0.1:4222", Replicas: 3}, ""},
		{"embedded with random port", Config{ListenPort: -1}, ""},
		{"store dir with URL", Config{URL: "nats://x:4222", StoreDir: "/tmp/x"}, "StoreDir"},
		{"listen port with URL", Config{URL: "nats://x:4222", ListenPort: 4222}, "ListenPort"},
		{"listen port out of range", Config{ListenPort: 70000}, "ListenPort"},
		{"replicas embedded", Config{Replicas: 3}, "Replicas"},
		{"replicas too many", Config{URL: "nats://x:4222", Replicas: 7}, "Replicas"},
		{"stream with dot", Config{Stream: "SOUK.EVENTS"}, "Stream"},
		{"dead-letter stream same as stream", Config{Stream: "A", DeadLetterStream: "A"}, "DeadLetterStream"},
		{"prefix with wildcard", Config{SubjectPrefix: "env.*"}, "SubjectPrefix"},
		{"prefix with empty token", Config{SubjectPrefix: "env..x"}, "SubjectPrefix"},
		{"duplicate window beyond max age", Config{MaxAge: time.Minute, DuplicateWindow: time.Hour}, "DuplicateWindow"},
		{"negative timeout", Config{RequestTimeout: -time.Second}, "RequestTimeout"},
		{"missing credentials file", Config{URL: "nats://x:4222", CredentialsFile: "/nonexistent/souk.creds"}, "CredentialsFile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func TestConsumerConfigValidate(t *testing.T) {
	ok := ConsumerConfig{Name: "notify-order-confirmed", Subject: "souk.orders.order_confirmed.v1"}
	tests := []struct {
		name string
		edit func(*ConsumerConfig)
		want string
	}{
		{"valid", func(*ConsumerConfig) {}, ""},
		{"wildcard subject", func(c *ConsumerConfig) { c.Subject = "souk.orders.>" }, ""},
		{"star subject", func(c *ConsumerConfig) { c.Subject = "souk.*.order_confirmed.v1" }, ""},
		{"no name", func(c *ConsumerConfig) { c.Name = "" }, "Name"},
		{"name with dot", func(c *ConsumerConfig) { c.Name = "notify.orders" }, "Name"},
		{"subject outside souk", func(c *ConsumerConfig) { c.Subject = "orders.>" }, "Subject"},
		{"subject with inner >", func(c *ConsumerConfig) { c.Subject = "souk.>.x" }, "Subject"},
		{"negative max deliver", func(c *ConsumerConfig) { c.MaxDeliver = -1 }, "MaxDeliver"},
		{"zero backoff entry", func(c *ConsumerConfig) { c.Backoff = []time.Duration{time.Second, 0} }, "Backoff[1]"},
		{"tiny ack wait", func(c *ConsumerConfig) { c.AckWait = time.Microsecond }, "AckWait"},
		{"too much concurrency", func(c *ConsumerConfig) { c.Concurrency = 5000 }, "Concurrency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func TestConsumerBackoffRepeatsLastEntry(t *testing.T) {
	c := ConsumerConfig{Backoff: []time.Duration{time.Second, 5 * time.Second}}
	for delivered, want := range map[int]time.Duration{1: time.Second, 2: 5 * time.Second, 3: 5 * time.Second, 9: 5 * time.Second} {
		if got := c.backoff(delivered); got != want {
			t.Errorf("backoff(%d) = %v, want %v", delivered, got, want)
		}
	}
}

func TestRelayConfigValidate(t *testing.T) {
	if err := (RelayConfig{}).Validate(); err != nil {
		t.Fatalf("zero RelayConfig: %v", err)
	}
	for _, c := range []RelayConfig{
		{BatchSize: -1},
		{PollInterval: -time.Second},
		{MinBackoff: time.Minute, MaxBackoff: time.Second},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", c)
		}
	}
}

func TestRelayBackoffIsCappedAndJittered(t *testing.T) {
	lo, hi := 100*time.Millisecond, 2*time.Second
	for n := 1; n <= 80; n++ {
		ideal := hi
		if n <= 5 {
			ideal = lo << (n - 1)
		}
		for range 20 {
			d := backoff(n, lo, hi)
			if d < ideal/2 || d > ideal {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, ideal/2, ideal)
			}
		}
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("bad payload")
	wrapped := fmt.Errorf("apply: %w", Permanent(base))
	if !IsPermanent(wrapped) || !errors.Is(wrapped, base) {
		t.Errorf("IsPermanent/Is through wrapping failed: %v", wrapped)
	}
	if IsPermanent(base) {
		t.Error("a plain error reported as permanent")
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
}

func TestOneLineHeaderValue(t *testing.T) {
	got := oneLine("a\r\nb\nc\rd"+strings.Repeat("é", 10), 12)
	if strings.ContainsAny(got, "\r\n") || len(got) > 12 || !strings.HasPrefix(got, "a b c d") {
		t.Errorf("oneLine = %q", got)
	}
}

func TestRedactURL(t *testing.T) {
	got := redactURL("nats://user:secret@a:4222,nats://b:4222")
	if strings.Contains(got, "secret") || !strings.Contains(got, "b:4222") {
		t.Errorf("redactURL = %q", got)
	}
}
