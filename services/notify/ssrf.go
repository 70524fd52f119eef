package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/soukhq/souk/platform/apperr"
)

// A webhook URL is chosen by whoever holds webhooks:manage, and Souk posts
// to it from inside the deployment: without care, that is a way to reach
// the cloud metadata service, an admin port on localhost or a database on
// the private network (server-side request forgery). So, unless
// Config.AllowPrivateNetworks says otherwise, URLs must be https (http with
// Config.AllowHTTP), and the host must not be, or resolve to, an address in
// the ranges below: checked when the URL is set, and again for every
// connection, by the dialer, on the address actually dialled, so a name
// that resolves elsewhere later (DNS rebinding) gains nothing. Proxies from
// the environment are not used and redirects are not followed.

// ErrDisallowedAddress is wrapped by the errors of refused webhook
// addresses, at creation and at connection time.
var ErrDisallowedAddress = errors.New("address not allowed for webhooks")

// disallowedRange is a block of addresses webhooks may not reach.
type disallowedRange struct {
	prefix netip.Prefix
	what   string
}

// disallowed lists the blocked ranges, most specific first so the reason
// names the narrowest (a metadata address rather than link-local).
var disallowed = func() []disallowedRange {
	list := []struct{ cidr, what string }{
		// Cloud metadata and platform services.
		{"169.254.169.254/32", "cloud metadata"},
		{"169.254.170.2/32", "cloud metadata (ECS)"},
		{"100.100.100.200/32", "cloud metadata (Alibaba)"},
		{"168.63.129.16/32", "cloud platform (Azure wireserver)"},
		{"fd00:ec2::254/128", "cloud metadata (AWS IPv6)"},
		// IPv4.
		{"0.0.0.0/8", "unspecified (this network)"},
		{"10.0.0.0/8", "private (RFC 1918)"},
		{"100.64.0.0/10", "shared address space (CGNAT, RFC 6598)"},
		{"127.0.0.0/8", "loopback"},
		{"169.254.0.0/16", "link-local"},
		{"172.16.0.0/12", "private (RFC 1918)"},
		{"192.0.0.0/24", "IETF protocol assignments"},
		{"192.0.2.0/24", "documentation"},
		{"192.88.99.0/24", "6to4 relay anycast"},
		{"192.168.0.0/16", "private (RFC 1918)"},
		{"198.18.0.0/15", "benchmarking"},
		{"198.51.100.0/24", "documentation"},
		{"203.0.113.0/24", "documentation"},
		{"224.0.0.0/4", "multicast"},
		{"255.255.255.255/32", "broadcast"},
		{"240.0.0.0/4", "reserved"},
		// IPv6.
		{"::/128", "unspecified"},
		{"::1/128", "loopback"},
		{"::/96", "IPv4-compatible (deprecated)"},
		{"100::/64", "discard-only"},
		{"2001::/32", "Teredo"},
		{"2001:db8::/32", "documentation"},
		{"fc00::/7", "unique local (RFC 4193)"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "site-local (deprecated)"},
		{"ff00::/8", "multicast"},
	}
	out := make([]disallowedRange, len(list))
	for i, r := range list {
		out[i] = disallowedRange{netip.MustParsePrefix(r.cidr), r.what}
	}
	return out
}()

// Prefixes that embed an IPv4 address: the embedded one is checked too.
var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// checkAddr returns an error wrapping ErrDisallowedAddress, naming the
// range, when webhooks may not reach a.
func checkAddr(a netip.Addr) error {
	a = a.WithZone("").Unmap()
	if !a.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrDisallowedAddress)
	}
	for _, r := range disallowed {
		if r.prefix.Contains(a) {
			return fmt.Errorf("%w: %s is %s", ErrDisallowedAddress, a, r.what)
		}
	}
	var embedded netip.Addr
	switch b := a.As16(); {
	case a.Is6() && nat64Prefix.Contains(a):
		embedded = netip.AddrFrom4([4]byte(b[12:16]))
	case a.Is6() && sixToFour.Contains(a):
		embedded = netip.AddrFrom4([4]byte(b[2:6]))
	}
	if embedded.IsValid() {
		if err := checkAddr(embedded); err != nil {
			return fmt.Errorf("%w (embedded in %s)", err, a)
		}
	}
	return nil
}

// dialControl is the webhook dialer's Control: it runs for every
// connection attempt, after name resolution, on the address about to be
// dialled.
func dialControl(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrDisallowedAddress, address)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %q is not an IP address", ErrDisallowedAddress, host)
	}
	if err := checkAddr(a); err != nil {
		return fmt.Errorf("refusing to connect to %s (set AllowPrivateNetworks to allow it): %w", address, err)
	}
	return nil
}

// maxURLLength bounds a webhook URL.
const maxURLLength = 2048

// lookupTimeout bounds resolving a webhook host at creation.
const lookupTimeout = 5 * time.Second

// checkURL validates a webhook URL and returns it normalised (scheme and
// host lower-case). Errors are validation_failed naming "url".
func (s *Service) checkURL(ctx context.Context, raw string) (string, error) {
	bad := func(code, format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		return &apperr.Error{Code: apperr.ValidationFailed, Message: "url: " + msg,
			Fields: []apperr.FieldError{{Field: "url", Code: code, Message: msg}}}
	}
	raw = strings.TrimSpace(raw)
	switch {
	case raw == "":
		return "", bad("required", "url is required")
	case len(raw) > maxURLLength:
		return "", bad("too_long", "must be at most %d bytes", maxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" {
		return "", bad("invalid", "must be an absolute https:// URL")
	}
	u.Scheme = strings.ToLower(u.Scheme)
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && s.cfg.AllowHTTP:
	case u.Scheme == "http":
		return "", bad("insecure", "must use https (http is allowed only when notify is configured with AllowHTTP)")
	default:
		return "", bad("invalid", "must be an https:// URL, not %s://", u.Scheme)
	}
	switch {
	case u.User != nil:
		return "", bad("invalid", "must not carry credentials (user:password@); authenticate the request with its signature")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "", bad("invalid", "must not have a #fragment")
	case u.Hostname() == "":
		return "", bad("invalid", "must name a host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", bad("invalid", "port must be 1-65535")
		}
	}
	u.Host = strings.ToLower(u.Host)
	if !s.cfg.AllowPrivateNetworks {
		host := u.Hostname()
		var addrs []netip.Addr
		if a, err := netip.ParseAddr(host); err == nil {
			addrs = []netip.Addr{a}
		} else {
			lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
			addrs, err = s.lookupIP(lctx, host)
			cancel()
			if err != nil || len(addrs) == 0 {
				return "", bad("unresolvable", "host %q does not resolve; webhook hosts must resolve to a public address", host)
			}
		}
		for _, a := range addrs {
			if err := checkAddr(a); err != nil {
				return "", bad("private_address", "host %q is not a public address (%v); Souk does not post to internal networks", host, strings.TrimPrefix(err.Error(), ErrDisallowedAddress.Error()+": "))
			}
		}
	}
	return u.String(), nil
}

// lookupNetIP resolves host with the system resolver.
func lookupNetIP(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}
