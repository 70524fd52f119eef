package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// proc is a server subprocess whose output goes to a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	stdin   io.Closer // closed first on stop, when set
	exited  chan struct{}
	waitErr error
	once    sync.Once
}

// startProc starts cmd with stderr (and stdout, unless already taken) going
// to logPath. The child is asked to die with this process where the OS can
// arrange it (see setParentDeathSignal).
func startProc(cmd *exec.Cmd, name, logPath string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = f
	if cmd.Stdout == nil {
		cmd.Stdout = f
	}
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, logFile: f, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// stop ends the process: an interrupt (its graceful shutdown), then a kill
// if it has not exited within ten seconds. It is safe to call twice.
func (p *proc) stop() {
	p.once.Do(func() {
		if p.stdin != nil {
			p.stdin.Close()
		}
		select {
		case <-p.exited:
		default:
			if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
				_ = p.cmd.Process.Kill()
			}
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
				fmt.Fprintf(os.Stderr, "readpath: %s did not stop within 10s; killing it\n", p.name)
				_ = p.cmd.Process.Kill()
				<-p.exited
			}
		}
		p.logFile.Close()
	})
}

// logTail is the end of the process's log, for error messages.
func (p *proc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return fmt.Sprintf("\n--- %s log (end of %s) ---\n%s", p.name, p.logPath, b)
}

// moduleRoot is the directory of the go.mod governing the working directory.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the souk module: run from the repository or pass -souk")
	}
	return filepath.Dir(gomod), nil
}

// buildSouk compiles ./cmd/souk of the module at root into dir.
func buildSouk(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "souk")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/souk")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/souk: %w\n%s", err, out)
	}
	return bin, nil
}

// freeLoopbackAddr asks the kernel for an unused loopback port. Another
// process could take it before souk binds it; startSouk then fails loudly.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startSouk runs `souk serve --demo` on a free loopback port with its data
// in dataDir and returns once GET /readyz answers 200.
func startSouk(ctx context.Context, bin, dataDir, logPath string, timeout time.Duration) (*proc, string, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "serve", "--demo", "--addr", addr, "--data-dir", dataDir, "--log-level", "warn")
	p, err := startProc(cmd, "souk", logPath)
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr
	if err := waitReady(ctx, p, base+"/readyz", timeout); err != nil {
		p.stop()
		return nil, "", fmt.Errorf("%w%s", err, p.logTail())
	}
	return p, base, nil
}

// waitReady polls url until it answers 200, the process exits, or the
// timeout passes.
func waitReady(ctx context.Context, p *proc, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := "no answer yet"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before it was ready: %v", p.name, p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %s (last: %s)", url, timeout, last)
		case <-tick.C:
		}
	}
}

// fetched is one reference answer.
type fetched struct {
	ContentType string
	Body        []byte
}

// fetch GETs url once, as the load generator will, and requires a 200.
func fetch(ctx context.Context, url string) (fetched, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableCompression: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fetched{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fetched{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fetched{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return fetched{}, fmt.Errorf("GET %s: %s: %.300s", url, resp.Status, body)
	}
	return fetched{ContentType: resp.Header.Get("Content-Type"), Body: body}, nil
}

// firstProductID reads the id of the first product of a product list page.
func firstProductID(list []byte) (string, error) {
	var page struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(list, &page); err != nil {
		return "", fmt.Errorf("decode product list: %w", err)
	}
	if len(page.Data) == 0 || page.Data[0].ID == "" {
		return "", fmt.Errorf("product list has no product: %.300s", bytes.TrimSpace(list))
	}
	return page.Data[0].ID, nil
}
