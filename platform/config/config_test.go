package config_test

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/config"
)

func TestApplyEnv(t *testing.T) {
	env := map[string]string{
		"SOUK_ADDR":                 "0.0.0.0:9000",
		"SOUK_CATALOG_DATABASE_URL": "postgres://x@y/z",
		"SOUK_DATA_DIR":             "/from/env",
		"SOUK_SHUTDOWN_TIMEOUT":     "3s",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "")
	url := fs.String("catalog-database-url", "", "")
	dir := fs.String("data-dir", "./data", "")
	grace := fs.Duration("shutdown-timeout", time.Second, "")
	if err := fs.Parse([]string{"--data-dir", "/from/flag"}); err != nil {
		t.Fatal(err)
	}
	if err := config.ApplyEnv(fs, "SOUK_", lookup); err != nil {
		t.Fatal(err)
	}
	if *addr != "0.0.0.0:9000" || *url != "postgres://x@y/z" || *grace != 3*time.Second {
		t.Fatalf("env not applied: addr=%q url=%q grace=%v", *addr, *url, *grace)
	}
	if *dir != "/from/flag" {
		t.Fatalf("a command-line flag must win over the environment, got %q", *dir)
	}
}

func TestApplyEnvNamesTheBadSetting(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Duration("shutdown-timeout", time.Second, "")
	_ = fs.Parse(nil)
	err := config.ApplyEnv(fs, "SOUK_", func(k string) (string, bool) {
		return "soon", k == "SOUK_SHUTDOWN_TIMEOUT"
	})
	if err == nil || !strings.Contains(err.Error(), "SOUK_SHUTDOWN_TIMEOUT") || !strings.Contains(err.Error(), "--shutdown-timeout") {
		t.Fatalf("err = %v, want it to name SOUK_SHUTDOWN_TIMEOUT and --shutdown-timeout", err)
	}
}

func TestListAndMap(t *testing.T) {
	var l config.List
	if err := l.Set(" catalog, identity ,,"); err != nil || l.String() != "catalog,identity" {
		t.Fatalf("List = %q, %v", l.String(), err)
	}
	m := config.Map{}
	if err := m.Set("catalog=http://a:1, identity=http://b:2"); err != nil || m["identity"] != "http://b:2" {
		t.Fatalf("Map = %v, %v", m, err)
	}
	if err := m.Set("catalog"); err == nil {
		t.Fatal("a pair without = must be refused")
	}
}
