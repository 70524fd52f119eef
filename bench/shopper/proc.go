package main

// The subprocess handling follows bench/readpath/proc.go. Both tools are
// package main, so it is repeated rather than shared; a bench/internal
// package would be the place once a third tool needs it.

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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
	exited  chan struct{}
	waitErr error
	once    sync.Once
}

// startProc starts cmd with stdout and stderr going to logPath. The child
// is asked to die with this process where the OS can arrange it (see
// setParentDeathSignal).
func startProc(cmd *exec.Cmd, name, logPath string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
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
// if it has not exited within twenty seconds. It is safe to call twice.
func (p *proc) stop() {
	p.once.Do(func() {
		select {
		case <-p.exited:
		default:
			if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
				_ = p.cmd.Process.Kill()
			}
			select {
			case <-p.exited:
			case <-time.After(20 * time.Second):
				fmt.Fprintf(os.Stderr, "shopper: %s did not stop within 20s; killing it\n", p.name)
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

// exportCommit writes the tree of commit ref of the repository at root
// into dir (git archive, read by this process: no tar binary, no index
// lock, the working tree untouched) and returns the commit's short hash.
func exportCommit(ctx context.Context, root, ref, dir string) (string, error) {
	git := func(args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", root}, args...)...)
		// Never take index.lock: others commit in the same checkout.
		cmd.Env = append(os.Environ(), "GIT_OPTIONAL_LOCKS=0")
		return cmd
	}
	out, err := git("rev-parse", "--verify", "--short=12", ref+"^{commit}").Output()
	if err != nil {
		return "", fmt.Errorf("-commit %q: not a commit of %s: %w", ref, root, err)
	}
	commit := strings.TrimSpace(string(out))
	cmd := git("archive", "--format=tar", commit)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", err
	}
	xerr := untar(stdout, dir)
	_, _ = io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		return "", fmt.Errorf("git archive %s: %w: %s", commit, err, stderr.String())
	}
	if xerr != nil {
		return "", fmt.Errorf("extract commit %s: %w", commit, xerr)
	}
	return commit, nil
}

// untar extracts the regular files and directories of a tar stream into
// dir, refusing paths that would leave it.
func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if !filepath.IsLocal(h.Name) {
			if h.Typeflag == tar.TypeXGlobalHeader {
				continue
			}
			return fmt.Errorf("unsafe path %q in archive", h.Name)
		}
		path := filepath.Join(dir, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o755|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}

// freeLoopbackAddr asks the kernel for an unused loopback port. Another
// process could take it before souk binds it; souk then fails loudly.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// soukEnv is this process's environment without any SOUK_ setting (each is
// a souk flag: a SOUK_DATABASE_URL left in a shell must not redirect the
// benchmark), plus extra.
func soukEnv(environ []string, extra ...string) []string {
	out := make([]string, 0, len(environ)+len(extra))
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "SOUK_") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
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

// requireLoopback accepts a URL only if its host is this machine.
func requireLoopback(flagName, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", flagName, err)
	}
	switch u.Hostname() {
	case "127.0.0.1", "::1", "localhost":
		return nil
	}
	return fmt.Errorf("%s %q: only a server on this machine (127.0.0.1, ::1, localhost) may take the benchmark's load", flagName, raw)
}
