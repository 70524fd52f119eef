package notify

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/store"
)

func TestCheckAddr(t *testing.T) {
	for _, tt := range []struct {
		addr string
		want string // "" when allowed, else a word of the reason
	}{
		{"127.0.0.1", "loopback"},
		{"127.255.0.9", "loopback"},
		{"::1", "loopback"},
		{"10.1.2.3", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"fc00::1", "unique local"},
		{"fd12:3456::1", "unique local"},
		{"169.254.169.254", "cloud metadata"},
		{"169.254.170.2", "cloud metadata"},
		{"fd00:ec2::254", "cloud metadata"},
		{"100.100.100.200", "cloud metadata"},
		{"168.63.129.16", "Azure"},
		{"169.254.1.1", "link-local"},
		{"fe80::1", "link-local"},
		{"100.64.0.1", "CGNAT"},
		{"100.127.255.254", "CGNAT"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"ff02::1", "multicast"},
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"255.255.255.255", "broadcast"},
		{"::ffff:127.0.0.1", "loopback"},   // IPv4-mapped
		{"::ffff:10.0.0.1", "private"},     // IPv4-mapped
		{"64:ff9b::7f00:1", "loopback"},    // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", "metadata"}, // NAT64 of 169.254.169.254
		{"2002:c0a8:101::1", "private"},    // 6to4 of 192.168.1.1
		{"fe80::1%eth0", "link-local"},     // zoned
		{"93.184.216.34", ""},              // public
		{"8.8.8.8", ""},                    // public
		{"172.32.0.1", ""},                 // just outside 172.16/12
		{"100.128.0.1", ""},                // just outside CGNAT
		{"2606:4700:4700::1111", ""},       // public IPv6
		{"64:ff9b::808:808", ""},           // NAT64 of 8.8.8.8
		{"2a00:1450:4001:80b::200e", ""},   // public IPv6
	} {
		err := checkAddr(netip.MustParseAddr(tt.addr))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: refused (%v), want allowed", tt.addr, err)
		case tt.want != "" && (err == nil || !errors.Is(err, ErrDisallowedAddress) || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: %v, want refused as %s", tt.addr, err, tt.want)
		}
	}
}

// fakeDNS answers lookups from a table; unknown names do not resolve.
func fakeDNS(table map[string]string) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		a, ok := table[host]
		if !ok {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		var out []netip.Addr
		for _, s := range strings.Split(a, ",") {
			out = append(out, netip.MustParseAddr(s))
		}
		return out, nil
	}
}

func TestWebhookURLsAreCheckedAtCreation(t *testing.T) {
	db := mustSQLite(t)
	strict := MustNewService(t, db, Config{})
	strict.lookupIP = fakeDNS(map[string]string{
		"hooks.example.com":        "93.184.216.34",
		"localhost":                "127.0.0.1,::1",
		"metadata.google.internal": "169.254.169.254",
		"split.example.com":        "93.184.216.34,10.0.0.7", // one bad answer is enough
		"intranet.example.com":     "192.168.10.20",
	})
	httpOK := MustNewService(t, db, Config{AllowHTTP: true})
	httpOK.lookupIP = strict.lookupIP
	dev := MustNewService(t, db, devConfig(Config{}))

	for _, tt := range []struct {
		name string
		s    *Service
		url  string
		code string // "" when accepted
	}{
		{"public https", strict, "https://hooks.example.com/souk?token=abc", ""},
		{"public https with a port", strict, "https://hooks.example.com:8443/souk", ""},
		{"upper-case scheme and host", strict, "HTTPS://Hooks.Example.COM/souk", ""},
		{"loopback literal", strict, "https://127.0.0.1/hook", "private_address"},
		{"loopback IPv6 literal", strict, "https://[::1]:8443/hook", "private_address"},
		{"localhost", strict, "https://localhost:9000/hook", "private_address"},
		{"metadata by name", strict, "https://metadata.google.internal/computeMetadata/v1/", "private_address"},
		{"metadata literal", strict, "https://169.254.169.254/latest/meta-data/", "private_address"},
		{"private by name", strict, "https://intranet.example.com/", "private_address"},
		{"one private answer among public ones", strict, "https://split.example.com/", "private_address"},
		{"RFC 1918 literal", strict, "https://10.0.0.1/", "private_address"},
		{"unresolvable", strict, "https://nowhere.example.com/", "unresolvable"},
		{"http refused", strict, "http://hooks.example.com/", "insecure"},
		{"http allowed by config, still public only", httpOK, "http://127.0.0.1:8080/", "private_address"},
		{"http allowed by config", httpOK, "http://hooks.example.com/", ""},
		{"credentials in the URL", strict, "https://user:pw@hooks.example.com/", "invalid"},
		{"fragment", strict, "https://hooks.example.com/#x", "invalid"},
		{"other scheme", strict, "ftp://hooks.example.com/", "invalid"},
		{"relative", strict, "/hooks", "invalid"},
		{"no host", strict, "https:///path", "invalid"},
		{"bad port", strict, "https://hooks.example.com:99999/", "invalid"},
		{"empty", strict, "", "required"},
		{"too long", strict, "https://hooks.example.com/" + strings.Repeat("a", 2048), "too_long"},
		{"loopback allowed explicitly", dev, "http://127.0.0.1:8080/hook", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, err := tt.s.CreateWebhook(context.Background(), WebhookInput{URL: tt.url, EventTypes: []string{"*"}})
			if tt.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if strings.ToLower(tt.url) != w.URL && !strings.HasPrefix(w.URL, "https://hooks.example.com") {
					t.Errorf("stored URL %q", w.URL)
				}
				return
			}
			wantErr(t, err, apperr.ValidationFailed, "url")
			var ae *apperr.Error
			errors.As(err, &ae)
			if ae.Fields[0].Code != tt.code {
				t.Errorf("field error %+v, want code %s", ae.Fields[0], tt.code)
			}
		})
	}
	if w, err := strict.CreateWebhook(context.Background(), WebhookInput{URL: "HTTPS://Hooks.Example.COM/Souk", EventTypes: []string{"*"}}); err != nil || w.URL != "https://hooks.example.com/Souk" {
		t.Errorf("normalised URL %q, %v", w.URL, err)
	}
	// A changed URL is checked like a new one.
	w := MustCreateWebhook(t, strict, "https://hooks.example.com/a", "*")
	_, err := strict.UpdateWebhook(context.Background(), w.ID, WebhookPatch{URL: ptr("https://127.0.0.1/")}, 0)
	wantErr(t, err, apperr.ValidationFailed, "url")
}

func TestWebhookConnectionsArePinnedToPublicAddresses(t *testing.T) {
	// The name resolves to a public address when the subscription is
	// made and to loopback when Souk connects (DNS rebinding): the dialer
	// refuses it, whatever the name said before.
	runStores(t, func(t *testing.T, db *store.DB) {
		clk := newClock()
		rcv := newReceiver(t, clk)
		rcvAddr := rcv.Listener.Addr().String()
		rebind := func(addr string) string {
			if strings.HasPrefix(addr, "hooks.example.com:") {
				return rcvAddr
			}
			return addr
		}

		strict := MustNewService(t, db, Config{AllowHTTP: true}, WithClock(clk.Now), WithMetrics(prometheus.NewRegistry()))
		strict.lookupIP = fakeDNS(map[string]string{"hooks.example.com": "93.184.216.34"})
		strict.testDialAddr = rebind
		w := MustCreateWebhook(t, strict, "http://hooks.example.com/hook", "*")
		rcv.setSecret(w.Secret)
		MustHandle(t, db, strict.handleEvent, MustOrderEvent(t, orderData("ada@example.com")))
		MustDeliverPending(t, strict)
		if n := len(rcv.got()); n != 0 {
			t.Fatalf("the receiver on loopback got %d requests", n)
		}
		d := MustDelivery(t, strict, w.ID)
		if d.Status != DeliveryRetrying || d.LastStatusCode != nil || d.LastError == nil ||
			!strings.Contains(*d.LastError, "refusing to connect to "+rcvAddr) || !strings.Contains(*d.LastError, "loopback") {
			t.Fatalf("delivery after a refused dial: %+v (%v)", d, deref(d.LastError))
		}
		if v := metricValue(t, strict.metrics.deliveries.WithLabelValues(hookRetried, "refused")); v != 1 {
			t.Errorf("refused metric = %v", v)
		}

		// Explicitly allowed (development), the same set-up delivers.
		dev := MustNewService(t, db, devConfig(Config{}), WithClock(clk.Now))
		dev.testDialAddr = rebind
		clk.Advance(time.Minute)
		MustDeliverPending(t, dev)
		if got := rcv.got(); len(got) != 1 || got[0].sigError != nil {
			t.Fatalf("receiver got %d requests (%+v)", len(got), got)
		}
		if d := MustDelivery(t, dev, w.ID); d.Status != DeliverySucceeded {
			t.Errorf("delivery: %+v", d)
		}
	})
}

func TestWebhookClientRefusesPrivateAddressesAndRedirects(t *testing.T) {
	clk := newClock()
	rcv := newReceiver(t, clk)
	s := MustNewService(t, mustSQLite(t), Config{AllowHTTP: true})
	resp, err := s.http.Get(rcv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("the webhook client reached a loopback server")
	}
	if !errors.Is(err, ErrDisallowedAddress) {
		t.Errorf("err = %v, want ErrDisallowedAddress", err)
	}
	// Redirects are answers, not followed.
	dev := MustNewService(t, mustSQLite(t), devConfig(Config{}))
	rcv.setRespond(func(_ int, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
	})
	resp, err = dev.http.Get(rcv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || len(rcv.got()) != 1 {
		t.Errorf("status %d after %d requests: the redirect was followed", resp.StatusCode, len(rcv.got()))
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
