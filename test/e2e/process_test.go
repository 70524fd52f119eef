package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// mustBuild compiles the souk binary once per test binary run.
var mustBuild = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "souk-e2e-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "souk")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/souk").CombinedOutput()
	if err != nil {
		return "", &buildError{out: string(out), err: err}
	}
	return bin, nil
})

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// process is the souk binary running as a child process.
type process struct {
	cmd    *exec.Cmd
	url    string
	stdout *syncBuffer
	logs   *syncBuffer
	done   chan error
}

// syncBuffer is a bytes.Buffer safe for one writer goroutine and readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startProcess runs `souk serve` with args and waits for its "souk is ready"
// log line, which names the URL it listens on.
func startProcess(t *testing.T, dataDir string, args ...string) *process {
	t.Helper()
	bin, err := mustBuild()
	if err != nil {
		t.Fatalf("build souk: %v", err)
	}
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir}, args...)...)
	cmd.Env = append(os.Environ(), "SOUK_ADMIN_API_KEY=") // exercise key generation
	p := &process{cmd: cmd, stdout: &syncBuffer{}, logs: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout = p.stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.logs.WriteString(line + "\n")
			var entry struct {
				Msg string `json:"msg"`
				URL string `json:"url"`
			}
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "souk is ready" {
				ready <- entry.URL
			}
		}
		p.done <- cmd.Wait()
	}()
	select {
	case p.url = <-ready:
	case err := <-p.done:
		t.Fatalf("souk exited before it was ready: %v\n%s", err, p.logs)
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("souk was not ready within 60s:\n%s", p.logs)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return p
}

// stop sends SIGTERM and returns the exit error.
func (p *process) stop(t *testing.T) error {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		return err
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Fatalf("souk did not stop within 30s of SIGTERM:\n%s", p.logs)
		return nil
	}
}

func countStoreProducts(t *testing.T, base string) int {
	t.Helper()
	n, cursor := 0, ""
	for range 20 {
		u := base + "/store/products?limit=100"
		if cursor != "" {
			u += "&cursor=" + cursor
		}
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		var page productPage
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d, %v", u, resp.StatusCode, err)
		}
		n += len(page.Data)
		if page.NextCursor == nil {
			return n
		}
		cursor = *page.NextCursor
	}
	t.Fatal("pagination does not end")
	return 0
}

// TestDemoBinary is the README's first command: the binary serves a demo
// shop from ./data, prints an admin key once, stops cleanly on SIGTERM, and
// starts again on the same data without re-seeding or a new key.
func TestDemoBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dataDir := t.TempDir()
	p := startProcess(t, dataDir, "--demo")

	products := countStoreProducts(t, p.url)
	if products < 15 {
		t.Fatalf("demo catalogue has %d published products, want about 20", products)
	}
	for _, f := range []string{"catalog.db", "identity.db"} {
		if _, err := os.Stat(filepath.Join(dataDir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	keyFile := filepath.Join(dataDir, "admin-api-key")
	info, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("admin-api-key mode = %v, want 0600", info.Mode().Perm())
	}
	raw, _ := os.ReadFile(keyFile)
	key := strings.TrimSpace(string(raw))
	if !strings.Contains(p.stdout.String(), key) {
		t.Errorf("the generated key was not printed:\n%s", p.stdout)
	}
	req, _ := http.NewRequest(http.MethodGet, p.url+"/admin/products?limit=1", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("admin with the generated key: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()

	// SIGTERM: stop accepting, drain, close, exit 0.
	if err := p.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.logs)
	}
	if !strings.Contains(p.logs.String(), "stopped cleanly") {
		t.Errorf("no clean-stop log line:\n%s", p.logs)
	}

	again := startProcess(t, dataDir, "--demo")
	if n := countStoreProducts(t, again.url); n != products {
		t.Errorf("restart changed the catalogue: %d products, was %d", n, products)
	}
	if strings.Contains(again.stdout.String(), "sk_") {
		t.Errorf("a second start printed a key again:\n%s", again.stdout)
	}
	if err := again.stop(t); err != nil {
		t.Fatalf("second exit: %v", err)
	}
}
