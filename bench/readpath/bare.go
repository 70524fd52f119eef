package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/soukhq/souk/bench/internal/harness"
)

// bareSpec is what the bare server answers: the bytes and content type the
// souk server sent for each path. Routes are matched exactly.
type bareSpec struct {
	Routes []bareRoute `json:"routes"`
}

type bareRoute struct {
	Path        string `json:"path"`
	ContentType string `json:"content_type"`
	Body        []byte `json:"body"` // base64 in the spec file
}

// bareHandler is the baseline: a plain net/http mux whose handlers write
// fixed bytes the way httpx.JSON writes them (Content-Type, then the body,
// no Content-Length), so both servers put the same bytes on the wire.
func bareHandler(spec bareSpec) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range spec.Routes {
		body, ct := rt.Body, rt.ContentType
		mux.HandleFunc("GET "+rt.Path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ct)
			_, _ = w.Write(body)
		})
	}
	return mux
}

// serveBare is the hidden -bare-serve mode: it reads the spec, listens on
// an ephemeral loopback port, prints "listening <addr>" on stdout and serves
// until SIGINT/SIGTERM (ctx) or until stdin closes (the parent is gone).
func serveBare(ctx context.Context, specPath string, stdin io.Reader, stdout io.Writer) error {
	raw, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	var spec bareSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return fmt.Errorf("read %s: %w", specPath, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: bareHandler(spec), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	if _, err := fmt.Fprintf(stdout, "listening %s\n", ln.Addr()); err != nil {
		srv.Close()
		return err
	}
	parentGone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		close(parentGone)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	case <-parentGone:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// startBare re-executes this program in -bare-serve mode and returns the
// process and its base URL once it listens. logf reports a bare server
// that had to be killed.
func startBare(ctx context.Context, specPath, logPath string, logf func(string, ...any)) (*harness.Proc, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.Command(self, "-bare-serve", specPath)
	// The child serves until its stdin closes: a pipe the parent holds
	// open, so the child goes away with the parent however it ends.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	p, err := harness.Start(cmd, harness.ProcConfig{Name: "bare", LogPath: logPath, Stdin: stdin, Logf: logf})
	if err != nil {
		return nil, "", err
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case l, ok := <-line:
		addr, found := strings.CutPrefix(l, "listening ")
		if !ok || !found {
			p.Stop()
			return nil, "", fmt.Errorf("bare server did not start (%q)%s", l, p.LogTail())
		}
		return p, "http://" + addr, nil
	case <-timer.C:
		p.Stop()
		return nil, "", errors.New("bare server did not report its address within 30s" + p.LogTail())
	case <-ctx.Done():
		p.Stop()
		return nil, "", ctx.Err()
	}
}
