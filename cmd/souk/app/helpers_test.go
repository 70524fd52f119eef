package app

import (
	"flag"
	"io"
	"log/slog"
	"testing"
)

func testConfig(t *testing.T) Config {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse([]string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-level", "error"}); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
