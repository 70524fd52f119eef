package harness

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestCommandExitStatus(t *testing.T) {
	live := context.Background()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name     string
		exit     func(Command) int
		want     int
		wantText string
	}{
		{"flags fine", func(c Command) int {
			if code, stop := c.FlagsExit(nil); stop {
				return code
			}
			return -1
		}, -1, ""},
		{"-h", func(c Command) int { code, _ := c.FlagsExit(flag.ErrHelp); return code }, 0, ""},
		{"bad flags", func(c Command) int { code, _ := c.FlagsExit(errors.New("-c must be at least 1")); return code }, 2, "bench: -c must be at least 1\n"},
		{"success", func(c Command) int { return c.Exit(live, nil) }, 0, ""},
		{"failure", func(c Command) int { return c.Exit(live, errors.New("boom")) }, 1, "bench: boom\n"},
		{"interrupted", func(c Command) int { return c.Exit(cancelled, fmt.Errorf("load: %w", context.Canceled)) }, 130, "bench: interrupted; servers stopped\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			got := tt.exit(Command{Name: "bench", Stderr: &stderr, Cleaned: "servers stopped"})
			if got != tt.want || stderr.String() != tt.wantText {
				t.Fatalf("status %d, stderr %q; want %d, %q", got, stderr.String(), tt.want, tt.wantText)
			}
		})
	}
	var stderr bytes.Buffer
	Command{Name: "bench", Stderr: &stderr}.Logf("round %d/%d", 1, 3)
	if stderr.String() != "bench: round 1/3\n" {
		t.Fatalf("Logf wrote %q", stderr.String())
	}
}

func TestSectionPublish(t *testing.T) {
	s := Section{Begin: "<!-- b -->", End: "<!-- e -->"}
	md := "<!-- b -->\nnumbers\n<!-- e -->\n"
	var logged []string
	logf := func(format string, a ...any) { logged = append(logged, fmt.Sprintf(format, a...)) }

	var stdout bytes.Buffer
	if err := s.Publish(md, &stdout, "", logf); err != nil || stdout.String() != md || len(logged) != 0 {
		t.Fatalf("without a path: err %v, stdout %q, logged %q", err, stdout.String(), logged)
	}

	path := filepath.Join(t.TempDir(), "RESULTS.md")
	stdout.Reset()
	if err := s.Publish(md, &stdout, path, logf); err != nil || stdout.String() != md {
		t.Fatalf("with a path: err %v, stdout %q", err, stdout.String())
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != md {
		t.Fatalf("file = %q, %v; want %q", b, err, md)
	}
	if len(logged) != 1 || logged[0] != "report written to "+path {
		t.Fatalf("logged %q", logged)
	}
}
