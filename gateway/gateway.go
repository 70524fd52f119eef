// Package gateway is Souk's edge: the single HTTP listener in front of every
// service. Where a request goes is data — a routing table of path prefixes
// and named upstreams — not code: an upstream is either a service running in
// this process (its routes mounted locally) or a remote base URL the request
// is forwarded to. Later work adds weights (strangler fig, canaries),
// shutters and read-only mode to the same table.
package gateway

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/httpx"
)

// Rule sends requests whose path is Prefix or lies below it (segment-wise:
// "/admin/products" matches "/admin/products/prod_1", not
// "/admin/productsx") to the named upstream. A "*" segment matches any one
// segment ("/store/carts/*/checkout"). The rule with the most segments wins,
// and among those the one with fewer wildcards.
type Rule struct {
	Prefix   string `json:"prefix"`
	Upstream string `json:"upstream"`
}

// Table is the routing table: rules, and the remote upstreams' base URLs.
// Upstreams not named in Remote must be local (registered with AddLocal).
type Table struct {
	Rules  []Rule            `json:"rules"`
	Remote map[string]string `json:"remote,omitempty"`
}

// Config configures the gateway.
type Config struct {
	// ProxyTimeout bounds a forwarded request's wait for the upstream's
	// response headers.
	ProxyTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.ProxyTimeout <= 0 {
		c.ProxyTimeout = 30 * time.Second
	}
}

// Gateway routes requests by its table. It is safe for concurrent use; the
// table can be replaced at run time with SetTable.
type Gateway struct {
	cfg       Config
	logger    *slog.Logger
	local     map[string]http.Handler
	transport http.RoundTripper
	compiled  atomic.Pointer[compiled]
}

type compiled struct {
	table  Table
	routes []compiledRule // longest prefix first
}

type compiledRule struct {
	segments  []string // the prefix split at "/", without the leading ""
	wildcards int
	name      string
	handler   http.Handler
}

// New returns a gateway with an empty table.
func New(cfg Config, logger *slog.Logger) *Gateway {
	cfg.setDefaults()
	g := &Gateway{
		cfg:    cfg,
		logger: logger,
		local:  map[string]http.Handler{},
		transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: cfg.ProxyTimeout,
		},
	}
	g.compiled.Store(&compiled{})
	return g
}

// AddLocal registers an upstream served in this process. Call it before
// SetTable.
func (g *Gateway) AddLocal(name string, h http.Handler) { g.local[name] = h }

// SetTable validates and installs a routing table atomically: every rule's
// upstream must be local or have a remote URL.
func (g *Gateway) SetTable(t Table) error {
	c := &compiled{table: t}
	proxies := map[string]http.Handler{}
	for name, raw := range t.Remote {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("upstream %s: %q is not an http(s) base URL", name, raw)
		}
		proxies[name] = g.proxy(name, u)
	}
	for _, r := range t.Rules {
		if !strings.HasPrefix(r.Prefix, "/") {
			return fmt.Errorf("rule %q: prefix must start with /", r.Prefix)
		}
		h, ok := proxies[r.Upstream]
		if !ok {
			h, ok = g.local[r.Upstream]
		}
		if !ok {
			return fmt.Errorf("rule %s: upstream %q is neither local nor remote", r.Prefix, r.Upstream)
		}
		segs := splitPath(r.Prefix)
		c.routes = append(c.routes, compiledRule{segments: segs, wildcards: countWildcards(segs), name: r.Upstream, handler: h})
	}
	sort.SliceStable(c.routes, func(i, j int) bool {
		a, b := c.routes[i], c.routes[j]
		if len(a.segments) != len(b.segments) {
			return len(a.segments) > len(b.segments)
		}
		return a.wildcards < b.wildcards
	})
	g.compiled.Store(c)
	return nil
}

// Table returns the installed routing table.
func (g *Gateway) Table() Table { return g.compiled.Load().table }

// ServeHTTP routes the request to its upstream, or answers 404.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := g.compiled.Load()
	path := splitPath(r.URL.Path)
	for _, rt := range c.routes {
		if matches(path, rt.segments) {
			rt.handler.ServeHTTP(w, r)
			return
		}
	}
	httpx.Error(w, r, apperr.New(apperr.NotFound, "no route for %s", r.URL.Path))
}

// splitPath splits "/a/b/" into ["a", "b"].
func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func countWildcards(segs []string) int {
	n := 0
	for _, s := range segs {
		if s == "*" {
			n++
		}
	}
	return n
}

// Matches reports whether a request path lies at or below a rule's prefix,
// segment by segment, "*" matching any one segment.
func Matches(prefix, path string) bool { return matches(splitPath(path), splitPath(prefix)) }

// matches reports whether the path lies at or below the prefix, segment by
// segment.
func matches(path, prefix []string) bool {
	if len(path) < len(prefix) {
		return false
	}
	for i, seg := range prefix {
		if seg != "*" && seg != path[i] {
			return false
		}
	}
	return true
}

func (g *Gateway) proxy(name string, target *url.URL) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Host = target.Host
		},
		Transport: g.transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			g.logger.Warn("upstream unreachable", "upstream", name, "url", target.String(), "path", r.URL.Path, "error", err)
			httpx.Error(w, r, apperr.Wrap(err, apperr.Unavailable, "the "+name+" service is unavailable; retry later"))
		},
	}
}
