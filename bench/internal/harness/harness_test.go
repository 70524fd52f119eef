package harness

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func ms(n ...int) []time.Duration {
	out := make([]time.Duration, len(n))
	for i, x := range n {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"median of four is the second", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p95 of a hundred is the 95th", ms(seq(1, 100)...), 0.95, 95 * time.Millisecond},
		{"p95 of twenty is the 19th", ms(seq(1, 20)...), 0.95, 19 * time.Millisecond},
		{"p99 of a hundred is the 99th", ms(seq(1, 100)...), 0.99, 99 * time.Millisecond},
		{"p99 of ten is the largest", ms(seq(1, 10)...), 0.99, 10 * time.Millisecond},
		{"p100", ms(1, 2, 3), 1, 3 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.q); got != tt.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.sorted, tt.q, got, tt.want)
			}
		})
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct{ got, want string }{
		{FormatLatency(1234 * time.Microsecond), "1.23 ms"},
		{FormatLatency(45600 * time.Microsecond), "45.6 ms"},
		{FormatLatency(250 * time.Millisecond), "250 ms"},
		{Machine{}.GOMAXPROCSNote("souk"), ""},
		{Machine{GOMAXPROCSEnv: "2"}.GOMAXPROCSNote("servers"), " ($GOMAXPROCS=2, servers too)"},
		{shellQuote("-c=1,8"), "-c=1,8"},
		{shellQuote(""), "''"},
		{shellQuote("it's here"), `'it'\''s here'`},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestSectionWrite(t *testing.T) {
	s := Section{Begin: "<!-- tool:begin -->", End: "<!-- tool:end -->", Header: "# Tool\n\n"}
	block := func(x string) string { return s.Begin + "\n" + x + "\n" + s.End + "\n" }

	t.Run("new file gets the header", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "RESULTS.md")
		if err := s.Write(path, block("first")); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, path); got != s.Header+block("first") {
			t.Errorf("got:\n%s", got)
		}
	})

	t.Run("another tool's file is kept, the section appended", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "RESULTS.md")
		other := "# Other\n\n<!-- other:begin -->\nnumbers\n<!-- other:end -->\n\nprose\n\n\n"
		if err := os.WriteFile(path, []byte(other), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := s.Write(path, block("RUN-ONE")); err != nil {
			t.Fatal(err)
		}
		want := strings.TrimRight(other, "\n") + "\n\n" + s.Header + block("RUN-ONE")
		if got := mustRead(t, path); got != want {
			t.Errorf("got:\n%s\nwant:\n%s", got, want)
		}

		// A re-run replaces only its block; prose added around it stays.
		edited := strings.Replace(mustRead(t, path), s.End+"\n", s.End+"\n\n## Reading\n\nmine\n", 1)
		edited = strings.Replace(edited, s.Header, "# Tool, as I put it\n\n", 1)
		if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := s.Write(path, block("RUN-TWO")); err != nil {
			t.Fatal(err)
		}
		got := mustRead(t, path)
		if want := strings.Replace(edited, "RUN-ONE", "RUN-TWO", 1); got != want {
			t.Errorf("got:\n%s\nwant:\n%s", got, want)
		}
	})

	t.Run("no header", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "RESULTS.md")
		bare := Section{Begin: s.Begin, End: s.End}
		if err := bare.Write(path, block("only")); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, path); got != block("only") {
			t.Errorf("got:\n%s", got)
		}
	})
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestProcfsParsing(t *testing.T) {
	status := "Name:\tsouk\nVmPeak:\t 2000000 kB\nVmHWM:\t  248832 kB\nVmRSS:\t   51200 kB\nThreads:\t12\n"
	if got, want := parseStatus(status), (Memory{HWM: 248832 << 10, RSS: 51200 << 10}); got != want {
		t.Errorf("parseStatus = %+v, want %+v", got, want)
	}
	if got := parseStatus("garbage"); got != (Memory{}) {
		t.Errorf("parseStatus(garbage) = %+v", got)
	}
	// A command name with spaces and a parenthesis must not shift fields.
	stat := "4242 (souk (x) y) S 1 4242 4242 0 -1 4194304 101 0 0 0 250 75 0 0 20 0 12 0 446821 3133440 379"
	if got := parseStatCPU(stat); got != 3250*time.Millisecond {
		t.Errorf("parseStatCPU = %v, want 3.25s", got)
	}
	procStat := "cpu  100 5 50 1000 20 3 2 0 40 0\ncpu0 50 2 25 500 10 1 1 0 20 0\n"
	if got := parseProcStat(procStat); got != 160*clockTick {
		t.Errorf("parseProcStat = %v, want 1.6s (user+nice+system+irq+softirq+steal)", got)
	}
	if got := parseProcStat("intr 1 2 3\n"); got != 0 {
		t.Errorf("parseProcStat(no cpu line) = %v", got)
	}
	if got := parseStatCPU("4242 (souk) S 1"); got != 0 {
		t.Errorf("short stat: %v", got)
	}
	// This process has a status and a stat of its own on Linux.
	if _, err := os.Stat("/proc/self/status"); err == nil {
		if m := ReadMemory(os.Getpid()); m.HWM <= 0 || m.RSS <= 0 {
			t.Errorf("ReadMemory(self) = %+v", m)
		}
	}
}

func TestCheckLoadTarget(t *testing.T) {
	if err := CheckLoadTarget("http://127.0.0.1:8080/store/products"); err != nil {
		t.Error(err)
	}
	for _, u := range []string{"http://localhost:1/", "http://10.0.0.1/", "http://example.com/", "http://[::1]:80/", "::"} {
		if CheckLoadTarget(u) == nil {
			t.Errorf("%s accepted", u)
		}
	}
}

// TestProcStop runs a child that ignores nothing: Stop interrupts it, and
// a second Stop is a no-op.
func TestProcStop(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	log := filepath.Join(t.TempDir(), "sleep.log")
	p, err := Start(exec.Command(sleep, "60"), ProcConfig{Name: "sleep", LogPath: log, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if p.PID() <= 0 {
		t.Errorf("pid %d", p.PID())
	}
	err = p.WaitReady(t.Context(), "http://127.0.0.1:1/readyz", 150*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not ready within") {
		t.Errorf("WaitReady on nothing listening: %v", err)
	}
	p.Stop()
	p.Stop()
	select {
	case <-p.Exited():
	default:
		t.Error("still running after Stop")
	}
	if tail := p.LogTail(); tail != "" {
		t.Errorf("log tail of a silent process: %q", tail)
	}
}

func TestExportCommitLeavesWorkingTreeChangesOut(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	repo := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	if err := os.MkdirAll(filepath.Join(repo, "cmd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "cmd", "a.txt"), []byte("committed"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("add", ".")
	git("commit", "-q", "-m", "one")
	if err := os.WriteFile(filepath.Join(repo, "cmd", "a.txt"), []byte("work in progress"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "untracked.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	commit, err := ExportCommit(context.Background(), repo, "HEAD", dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(commit) != 12 {
		t.Errorf("commit %q: want a 12-digit short hash", commit)
	}
	if got := mustRead(t, filepath.Join(dir, "cmd", "a.txt")); got != "committed" {
		t.Errorf("exported %q, want the committed text", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "untracked.txt")); err == nil {
		t.Error("untracked file exported")
	}
	if _, err := ExportCommit(context.Background(), repo, "no-such-ref", t.TempDir()); err == nil {
		t.Error("unknown ref accepted")
	}
	if got := SourceState(context.Background(), repo); got != "built from commit "+commit+" plus uncommitted changes" {
		t.Errorf("SourceState = %q", got)
	}
}

func TestUntarRefusesPathsOutsideDir(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := []byte("x")
	if err := tw.WriteHeader(&tar.Header{Name: "../escape.txt", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write(body)
	tw.Close()
	dir := t.TempDir()
	if err := untar(&buf, filepath.Join(dir, "in")); err == nil {
		t.Error("a path leaving the directory was extracted")
	}
	if _, err := os.Stat(filepath.Join(dir, "escape.txt")); err == nil {
		t.Error("file written outside the directory")
	}
}

func TestParseIO(t *testing.T) {
	const text = "rchar: 6976\nwchar: 4096\nsyscr: 10\nsyscw: 3\nread_bytes: 0\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n"
	got, ok := parseIO(text)
	if want := (IO{ReadCalls: 10, WriteCalls: 3, WriteBytes: 4096}); !ok || got != want {
		t.Errorf("parseIO = %+v, %v; want %+v, true", got, ok, want)
	}
	if _, ok := parseIO("rchar: 1\nsyscr: 2\n"); ok {
		t.Error("parseIO of a text without syscw and wchar reported them known")
	}
	if d := (IO{5, 7, 900}).Sub(IO{1, 2, 100}); d != (IO{4, 5, 800}) {
		t.Errorf("Sub = %+v", d)
	}
}

func TestProbe(t *testing.T) {
	if d := Probe(2); d <= 0 || d > time.Minute {
		t.Errorf("Probe(2) = %v, want a positive reading", d)
	}
}
