package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the program in -bare-serve
// mode (startBare re-executes os.Executable), and stops the shared
// benchmark servers at the end.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "-bare-serve" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	code := m.Run()
	closeFixture()
	os.Exit(code)
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestRunLoadCountsAnswers(t *testing.T) {
	want := []byte(`{"data":[]}` + "\n")
	spec := bareSpec{Routes: []bareRoute{{Path: "/ok", ContentType: "application/json", Body: want}}}
	mux := http.NewServeMux()
	mux.Handle("/ok", bareHandler(spec))
	mux.HandleFunc("/other", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("other")) })
	srv := httptest.NewServer(mux) // listens on 127.0.0.1
	defer srv.Close()

	tests := []struct {
		path                             string
		wantOK, wantNon2xx, wantMismatch bool
	}{
		{"/ok", true, false, false},
		{"/missing", false, true, false},
		{"/other", false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res, err := runLoad(t.Context(), loadConfig{URL: srv.URL + tt.path, Concurrency: 4, Warmup: 20 * time.Millisecond, Duration: 80 * time.Millisecond, Want: want})
			if err != nil {
				t.Fatal(err)
			}
			if (res.Requests > 0) != tt.wantOK || (res.Non2xx > 0) != tt.wantNon2xx || (res.Mismatched > 0) != tt.wantMismatch || res.Errors != 0 {
				t.Errorf("requests %d, non-2xx %d, mismatched %d, errors %d (%s)", res.Requests, res.Non2xx, res.Mismatched, res.Errors, res.FirstError)
			}
			// Keep-alive: about one connection per client. The transport may
			// dial a spare when a request starts just before a connection is
			// returned, so allow slack; without reuse there would be one per
			// request.
			if tt.wantOK && (res.Dials < 1 || res.Dials > 16) {
				t.Errorf("%d connections for 4 keep-alive clients (%d requests)", res.Dials, res.Requests)
			}
			if tt.wantOK && res.RPS() <= 0 {
				t.Errorf("throughput %v", res.RPS())
			}
		})
	}
}

func TestRunLoadOnlyTargetsLoopback(t *testing.T) {
	for _, u := range []string{"http://localhost:1/", "http://10.0.0.1/", "http://example.com/", "http://[::1]:80/"} {
		if _, err := runLoad(t.Context(), loadConfig{URL: u, Concurrency: 1, Duration: time.Millisecond}); err == nil {
			t.Errorf("runLoad(%s) started", u)
		}
	}
}

// TestBareSubprocess runs the baseline the way the benchmark does: a child
// process serving the spec, stopped on request.
func TestBareSubprocess(t *testing.T) {
	dir := t.TempDir()
	spec := bareSpec{Routes: []bareRoute{{Path: "/store/products/p1", ContentType: "application/json; charset=utf-8", Body: []byte(`{"id":"p1"}`)}}}
	raw, _ := json.Marshal(spec)
	specPath := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(specPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	p, base, err := startBare(t.Context(), specPath, filepath.Join(dir, "bare.log"), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	got, err := fetch(t.Context(), base+"/store/products/p1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ContentType != spec.Routes[0].ContentType || string(got.Body) != `{"id":"p1"}` {
		t.Errorf("bare answered %q %q", got.ContentType, got.Body)
	}
	p.Stop()
	select {
	case <-p.Exited():
	default:
		t.Error("bare server still running after stop")
	}
}

func TestFirstProductID(t *testing.T) {
	if id, err := firstProductID([]byte(`{"data":[{"id":"01ABC","title":"x"},{"id":"01DEF"}],"next_cursor":null}`)); err != nil || id != "01ABC" {
		t.Errorf("got %q, %v", id, err)
	}
	for _, body := range []string{`{"data":[]}`, `not json`} {
		if _, err := firstProductID([]byte(body)); err == nil {
			t.Errorf("%s: no error", body)
		}
	}
}

func TestWriteReportKeepsProseAroundMarkers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "RESULTS.md")
	gen := func(s string) string { return beginMarker + "\n" + s + "\n" + endMarker + "\n" }
	if err := section.Write(path, gen("first")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte("# Title\n\nintro\n\n"+string(b)+"\n## Reading\n\nprose\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := section.Write(path, gen("second")); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	got := string(b)
	for _, want := range []string{"# Title\n\nintro\n\n" + beginMarker, "second\n" + endMarker + "\n\n## Reading\n\nprose\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "first") {
		t.Errorf("old generated text kept:\n%s", got)
	}
}

func TestParseFlags(t *testing.T) {
	var sink strings.Builder
	o, err := parseFlags(nil, &sink)
	if err != nil || o.Concurrency != 32 || o.Duration != 10*time.Second || o.Warmup != 2*time.Second || o.Rounds != 3 {
		t.Errorf("defaults: %+v, %v", o, err)
	}
	for _, args := range [][]string{{"-c", "0"}, {"-rounds", "0"}, {"-duration", "0s"}, {"extra"}} {
		if _, err := parseFlags(args, &sink); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}
