// Package inprocess starts souk inside the process of a go test benchmark
// (bench/readpath, bench/shopper), so that -cpuprofile and -memprofile see
// the server's work next to the client's. It is apart from package harness
// so that the load commands, which run souk as a subprocess, do not link
// the whole app.
package inprocess

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/soukhq/souk/cmd/souk/app"
)

// Souk is `souk serve --demo` running in this process on a loopback port,
// with its own temporary data directory. Close stops it.
type Souk struct {
	App     *app.App
	URL     string // base URL: "http://127.0.0.1:port"
	dataDir string
}

// Start starts `souk serve --demo` in this process on a free loopback port,
// with a new temporary data directory named prefix…, records below level
// dropped before they are formatted (as --log-level would, minus the
// output), and the extra flags of souk serve. It waits until souk is ready
// or ctx is done; on failure it removes what it made.
func Start(ctx context.Context, prefix string, level slog.Level, extra ...string) (*Souk, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	s := &Souk{dataDir: dir}
	var cfg app.Config
	fs := flag.NewFlagSet("souk serve", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	args := append([]string{"--addr", "127.0.0.1:0", "--data-dir", dir, "--demo", "--log-level", strings.ToLower(level.String())}, extra...)
	if err := fs.Parse(args); err != nil {
		s.Close()
		return nil, err
	}
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: level}))
	a, err := app.New(cfg, logger, io.Discard)
	if err != nil {
		s.Close()
		return nil, err
	}
	if err := a.Start(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("start souk: %w", err)
	}
	s.App, s.URL = a, "http://"+a.Addr()
	return s, nil
}

// Close shuts souk down, waiting up to 30 s, and removes its data
// directory. A failure to shut down is printed on standard error: it runs
// at the end of TestMain, with no test to fail.
func (s *Souk) Close() {
	if s.App != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.App.Shutdown(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "shut down souk: %v\n", err)
		}
	}
	_ = os.RemoveAll(s.dataDir)
}
