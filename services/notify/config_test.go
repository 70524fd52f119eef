package notify

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string // "" when valid, else a part of the error
	}{
		{"zero value", Config{}, ""},
		{"sink", Config{SMTPAddr: "127.0.0.1:1025"}, ""},
		{"relay with credentials over STARTTLS", Config{SMTPAddr: "smtp.example.com:587", SMTPUsername: "u", SMTPPassword: "p"}, ""},
		{"credentials in clear to loopback", Config{SMTPAddr: "localhost:25", SMTPUsername: "u", SMTPTLS: TLSNone}, ""},
		{"credentials in clear over the network", Config{SMTPAddr: "smtp.example.com:25", SMTPUsername: "u", SMTPTLS: TLSNone}, "clear text"},
		{"password without user", Config{SMTPPassword: "p"}, "SMTPPassword"},
		{"no port", Config{SMTPAddr: "smtp.example.com"}, "SMTPAddr"},
		{"bad port", Config{SMTPAddr: "smtp.example.com:0"}, "port"},
		{"bad from", Config{SMTPFrom: "not an address"}, "SMTPFrom"},
		{"bad TLS mode", Config{SMTPTLS: "ssl"}, "SMTPTLS"},
		{"SMTP timeout too short", Config{SMTPTimeout: time.Millisecond}, "SMTPTimeout"},
		{"no email attempts", Config{EmailMaxAttempts: -1}, "EmailMaxAttempts"},
		{"negative backoff", Config{EmailBackoff: []time.Duration{time.Second, -1}}, "EmailBackoff[1]"},
		{"store name on two lines", Config{StoreName: "Souk\r\nBcc: x"}, "StoreName"},
		{"webhook timeout too long", Config{WebhookTimeout: time.Hour}, "WebhookTimeout"},
		{"zero retry step", Config{WebhookRetrySchedule: []time.Duration{0}}, "WebhookRetrySchedule[0]"},
		{"retry window too long", Config{WebhookRetryFor: 30 * 24 * time.Hour}, "WebhookRetryFor"},
		{"negative failures", Config{MaxConsecutiveFailures: -1}, "MaxConsecutiveFailures"},
		{"disable after too short", Config{DisableAfter: time.Millisecond}, "DisableAfter"},
		{"too much concurrency", Config{WebhookConcurrency: 1000}, "WebhookConcurrency"},
		{"poll too often", Config{PollInterval: time.Millisecond}, "PollInterval"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want an error naming %s", err, tt.want)
			}
		})
	}
	if _, err := New(mustSQLite(t), nil, nil, Config{SMTPTLS: "ssl"}); err == nil {
		t.Error("New accepted an invalid Config")
	}
	if _, err := New(nil, nil, nil, Config{}); err == nil {
		t.Error("New accepted a nil database")
	}
}

func TestConfigDefaults(t *testing.T) {
	var c Config
	c.setDefaults()
	if c.SMTPTLS != TLSStartTLS || c.WebhookTimeout != 10*time.Second || c.WebhookRetryFor != 24*time.Hour ||
		c.MaxConsecutiveFailures != 20 || c.DisableAfter != 24*time.Hour || c.AllowPrivateNetworks || c.AllowHTTP {
		t.Errorf("defaults: %+v", c)
	}
	loop := Config{SMTPAddr: "127.0.0.1:1025"}
	loop.setDefaults()
	if loop.SMTPTLS != TLSNone {
		t.Errorf("a loopback relay defaults to %q, want none", loop.SMTPTLS)
	}
}

func TestConfigFlags(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("souk", flag.ContinueOnError)
	c.RegisterFlags(fs)
	err := fs.Parse([]string{"--notify-smtp-addr", "127.0.0.1:1025", "--notify-smtp-tls", "none", "--notify-webhook-timeout", "5s",
		"--notify-webhook-allow-http", "--notify-webhook-max-consecutive-failures", "7"})
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTPAddr != "127.0.0.1:1025" || c.SMTPTLS != TLSNone || c.WebhookTimeout != 5*time.Second || !c.AllowHTTP ||
		c.AllowPrivateNetworks || c.MaxConsecutiveFailures != 7 {
		t.Errorf("parsed: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}
