package harness

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"time"
)

// DefaultStopGrace is how long Proc.Stop waits, by default, for a process
// to shut down after the interrupt before it kills it.
const DefaultStopGrace = 10 * time.Second

// ProcConfig says how to run a server subprocess.
type ProcConfig struct {
	// Name names the process in messages ("souk", "bare").
	Name string
	// LogPath receives the process's standard error, and its standard
	// output unless the command has taken it (a pipe).
	LogPath string
	// Stdin, when set, is closed first on Stop: the write end of a pipe
	// the child serves until it closes.
	Stdin io.Closer
	// StopGrace is how long Stop waits after the interrupt (default
	// DefaultStopGrace).
	StopGrace time.Duration
	// Logf reports a process that had to be killed (default: a line on
	// standard error).
	Logf func(format string, a ...any)
}

// Proc is a running server subprocess whose output goes to a log file.
// Its methods are safe for concurrent use.
type Proc struct {
	cfg     ProcConfig
	cmd     *exec.Cmd
	logFile *os.File
	exited  chan struct{}
	waitErr error // set before exited is closed
	once    sync.Once
}

// Start starts cmd as cfg says. The child is asked to die with this
// process where the OS can arrange it (Linux: a parent-death signal), so
// a benchmark killed outright leaves no server behind.
func Start(cmd *exec.Cmd, cfg ProcConfig) (*Proc, error) {
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = DefaultStopGrace
	}
	if cfg.Logf == nil {
		cfg.Logf = stderrLogf
	}
	f, err := os.Create(cfg.LogPath)
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
		return nil, fmt.Errorf("start %s: %w", cfg.Name, err)
	}
	p := &Proc{cfg: cfg, cmd: cmd, logFile: f, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// PID is the process's id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Exited is closed once the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Stop ends the process: its Stdin closed, an interrupt (its graceful
// shutdown), then a kill if it has not exited within the grace period.
// It is safe to call twice.
func (p *Proc) Stop() {
	p.once.Do(func() {
		if p.cfg.Stdin != nil {
			p.cfg.Stdin.Close()
		}
		select {
		case <-p.exited:
		default:
			if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
				_ = p.cmd.Process.Kill()
			}
			select {
			case <-p.exited:
			case <-time.After(p.cfg.StopGrace):
				p.cfg.Logf("%s did not stop within %s; killing it", p.cfg.Name, p.cfg.StopGrace)
				_ = p.cmd.Process.Kill()
				<-p.exited
			}
		}
		p.logFile.Close()
	})
}

// LogTail is the end of the process's log (4 KiB at most), for error
// messages: "" when it wrote nothing.
func (p *Proc) LogTail() string {
	b, err := os.ReadFile(p.cfg.LogPath)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return fmt.Sprintf("\n--- %s log (end of %s) ---\n%s", p.cfg.Name, p.cfg.LogPath, b)
}

// WaitReady polls url until it answers 200, the process exits, or the
// timeout passes.
func (p *Proc) WaitReady(ctx context.Context, url string, timeout time.Duration) error {
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
			return fmt.Errorf("%s exited before it was ready: %v", p.cfg.Name, p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %s (last: %s)", url, timeout, last)
		case <-tick.C:
		}
	}
}

// FreeLoopbackAddr asks the kernel for an unused loopback port. Another
// process could take it before the server binds it; the server then fails
// loudly.
func FreeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
