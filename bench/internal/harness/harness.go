// Package harness is what Souk's load benchmarks (bench/readpath,
// bench/shopper) share around their own load and report: picking or
// building the souk binary, a work directory, starting and stopping server
// subprocesses on free loopback ports and waiting for them to be ready,
// reading their memory and CPU time, the closed-loop client's transport,
// percentiles and latency formatting, the facts of the run (command,
// commit, machine, load average), the writer that replaces a report's
// block between its markers in a results file, and how a command logs,
// takes an interrupt and exits (Main, Command). The in-process souk of the
// go test benchmarks is in package inprocess.
//
// Nothing here asserts a time or sends load anywhere but 127.0.0.1.
package harness

import (
	"fmt"
	"os"
)

// WorkDir creates a temporary directory (prefix…) for a run's binary, data
// and server logs. remove deletes it again or, with keep, leaves it and
// says where it is; either is reported through logf.
func WorkDir(prefix string, keep bool, logf func(format string, a ...any)) (dir string, remove func(), err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	return dir, func() {
		if keep {
			logf("work directory kept: %s", dir)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			logf("remove %s: %v", dir, err)
		}
	}, nil
}

// stderrLogf is the Logf of a config that gives none: a line on standard
// error.
func stderrLogf(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
