package harness

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// SoukBinary returns the souk binary a run measures and what it is, for
// the report's "souk …" line: prebuilt, when given (made absolute);
// otherwise ./cmd/souk of the module governing the working directory, built
// into dir — from the working tree, or, when commit is given, from that
// commit's tree exported into dir/src, leaving the uncommitted changes of
// a shared checkout out of the measurement. logf reports the build.
func SoukBinary(ctx context.Context, prebuilt, commit, dir string, logf func(format string, a ...any)) (bin, code string, err error) {
	if prebuilt != "" {
		if bin, err = filepath.Abs(prebuilt); err != nil {
			return "", "", err
		}
		return bin, "prebuilt binary " + bin, nil
	}
	root, err := ModuleRoot(ctx)
	if err != nil {
		return "", "", err
	}
	src := root
	if commit != "" {
		src = filepath.Join(dir, "src")
		hash, err := ExportCommit(ctx, root, commit, src)
		if err != nil {
			return "", "", err
		}
		code = "built from commit " + hash + " (git archive: the working tree's changes left out)"
	} else {
		code = SourceState(ctx, root)
	}
	logf("building souk (go build ./cmd/souk in %s)", src)
	if bin, err = BuildSouk(ctx, src, dir); err != nil {
		return "", "", err
	}
	return bin, code, nil
}

// ModuleRoot is the directory of the go.mod governing the working directory.
func ModuleRoot(ctx context.Context) (string, error) {
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

// BuildSouk compiles ./cmd/souk of the module at root into dir and returns
// the binary's path.
func BuildSouk(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "souk")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/souk")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/souk: %w\n%s", err, out)
	}
	return bin, nil
}

// git runs git on the repository at root without ever taking index.lock:
// others commit in the same checkout.
func git(ctx context.Context, root string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", root}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_OPTIONAL_LOCKS=0")
	return cmd
}

// SourceState names the commit the binary was built from and whether the
// tree had changes on top of it (untracked files included: they are built).
func SourceState(ctx context.Context, root string) string {
	out := func(args ...string) (string, error) {
		b, err := git(ctx, root, args...).Output()
		return strings.TrimSpace(string(b)), err
	}
	head, err := out("rev-parse", "--short=12", "HEAD")
	if err != nil {
		return "built from a tree outside git"
	}
	state := "built from commit " + head
	if st, err := out("status", "--porcelain"); err == nil && st != "" {
		state += " plus uncommitted changes"
	}
	return state
}

// ExportCommit writes the tree of commit ref of the repository at root
// into dir (git archive, read by this process: no tar binary, no index
// lock, the working tree untouched) and returns the commit's short hash.
func ExportCommit(ctx context.Context, root, ref, dir string) (string, error) {
	out, err := git(ctx, root, "rev-parse", "--verify", "--short=12", ref+"^{commit}").Output()
	if err != nil {
		return "", fmt.Errorf("-commit %q: not a commit of %s: %w", ref, root, err)
	}
	commit := strings.TrimSpace(string(out))
	cmd := git(ctx, root, "archive", "--format=tar", commit)
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

// ServeArgs are the arguments of `souk serve` as a benchmark runs it: the
// demo shop on addr, its data in dataDir, logging warnings and worse.
// With placeholders for addr and dataDir they are the command line a
// report shows.
func ServeArgs(addr, dataDir string) []string {
	return []string{"serve", "--demo", "--addr", addr, "--data-dir", dataDir, "--log-level", "warn"}
}

// SoukConfig says how to start souk for a run.
type SoukConfig struct {
	Bin     string
	DataDir string
	LogPath string
	// Args follow ServeArgs (a database, a bus).
	Args []string
	// Env is souk's environment; nil: this process's.
	Env []string
	// ReadyTimeout bounds the wait for GET /readyz to answer 200.
	ReadyTimeout time.Duration
	// StopGrace and Logf are the ProcConfig's.
	StopGrace time.Duration
	Logf      func(format string, a ...any)
}

// StartSouk runs souk with ServeArgs on a free loopback port and returns
// the process and its base URL (http://127.0.0.1:port) once GET /readyz
// answers 200. On error nothing is left running.
func StartSouk(ctx context.Context, cfg SoukConfig) (*Proc, string, error) {
	addr, err := FreeLoopbackAddr()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(cfg.Bin, append(ServeArgs(addr, cfg.DataDir), cfg.Args...)...)
	cmd.Env = cfg.Env
	p, err := Start(cmd, ProcConfig{Name: "souk", LogPath: cfg.LogPath, StopGrace: cfg.StopGrace, Logf: cfg.Logf})
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr
	if err := p.WaitReady(ctx, base+"/readyz", cfg.ReadyTimeout); err != nil {
		p.Stop()
		return nil, "", fmt.Errorf("%w%s", err, p.LogTail())
	}
	return p, base, nil
}
