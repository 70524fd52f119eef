package harness

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"
)

// CheckLoadTarget accepts a URL to send load to only on this machine's
// loopback, http://127.0.0.1…: load never goes to anything shared.
func CheckLoadTarget(raw string) error {
	if u, err := url.Parse(raw); err != nil || u.Hostname() != "127.0.0.1" {
		return fmt.Errorf("load target %q: only http://127.0.0.1 is allowed", raw)
	}
	return nil
}

// LoopbackTransport is the transport of a closed-loop load generator with
// conns clients: keep-alive connections (up to 2×conns idle), never
// through an environment proxy, without compression (it would let one
// server do work another does not: every server is asked for the identity
// encoding). It counts each connection it opens in dials.
func LoopbackTransport(conns int, dials *atomic.Int64) *http.Transport {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConns:        2 * conns,
		MaxIdleConnsPerHost: 2 * conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}
