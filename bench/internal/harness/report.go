package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Section is a tool's generated block in a results file: the text from its
// Begin marker to its End marker, which a re-run replaces while the prose
// written around it, and other tools' sections, stay.
type Section struct {
	Begin, End string
	// Header goes above the block when the file has no markers yet: what
	// the block means. Edit it in the file; re-runs keep it.
	Header string
}

// Write writes md (a block from s.Begin to s.End) to path: in place of the
// marked block when the file has one; otherwise appended under s.Header,
// to the file or to a new one.
func (s Section) Write(path, md string) error {
	md = strings.TrimSuffix(md, "\n")
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return os.WriteFile(path, []byte(s.Header+md+"\n"), 0o644)
	case err != nil:
		return err
	}
	i := bytes.Index(old, []byte(s.Begin))
	j := bytes.Index(old, []byte(s.End))
	var out bytes.Buffer
	if i >= 0 && j > i {
		out.Write(old[:i])
		out.WriteString(md)
		out.Write(old[j+len(s.End):])
	} else {
		out.Write(bytes.TrimRight(old, "\n"))
		if out.Len() > 0 {
			out.WriteString("\n\n")
		}
		out.WriteString(s.Header)
		out.WriteString(md)
		out.WriteString("\n")
	}
	return os.WriteFile(path, out.Bytes(), 0o644)
}

// Publish prints md, a run's report, on stdout and, when path is not "",
// writes it into the file at path as Write does, saying so through logf.
func (s Section) Publish(md string, stdout io.Writer, path string, logf func(format string, a ...any)) error {
	if _, err := io.WriteString(stdout, md); err != nil {
		return err
	}
	if path == "" {
		return nil
	}
	if err := s.Write(path, md); err != nil {
		return err
	}
	logf("report written to %s", path)
	return nil
}

// Machine describes where the numbers were taken.
type Machine struct {
	NumCPU        int
	GOMAXPROCS    int
	GOMAXPROCSEnv string // $GOMAXPROCS, "" when unset
	GoVersion     string
	Kernel        string
	CPUModel      string
	Memory        int64 // bytes of RAM, 0 when unknown
}

// ReadMachine reads the facts of this machine and process.
func ReadMachine() Machine {
	m := Machine{
		NumCPU:        runtime.NumCPU(),
		GOMAXPROCS:    runtime.GOMAXPROCS(0),
		GOMAXPROCSEnv: os.Getenv("GOMAXPROCS"),
		GoVersion:     runtime.Version(),
		Kernel:        "unknown",
		CPUModel:      "unknown CPU",
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			var kb int64
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
				m.Memory = kb * 1024
				break
			}
		}
	}
	return m
}

// GOMAXPROCSNote is what follows the GOMAXPROCS figure in a report:
// " ($GOMAXPROCS=n, servers too)" when $GOMAXPROCS is set (the servers, as
// servers names them, inherit it), else "".
func (m Machine) GOMAXPROCSNote(servers string) string {
	if m.GOMAXPROCSEnv == "" {
		return ""
	}
	return " ($GOMAXPROCS=" + m.GOMAXPROCSEnv + ", " + servers + " too)"
}

// LoadAverage is the 1, 5 and 15 minute load average where the OS shows it.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// CommandLine is how this run was invoked, as a command to paste: prog
// ("go run ./bench/readpath") when this is a binary go run built, else
// the binary's name; then args, quoted for a POSIX shell.
func CommandLine(prog string, args []string) string {
	if exe, err := os.Executable(); err == nil && !strings.Contains(exe, "go-build") {
		prog = filepath.Base(os.Args[0])
	}
	parts := []string{prog}
	for _, a := range args {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Percentile returns the q-quantile (0 < q ≤ 1) of sorted by the
// nearest-rank method: the smallest value with at least q of the samples
// at or below it; 0 when there are none.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(q*float64(len(sorted)) + 0.999999999)
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// FormatLatency prints a latency in milliseconds with three significant
// figures ("1.23 ms", "45.6 ms", "789 ms").
func FormatLatency(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0f ms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.2f ms", ms)
	}
}
