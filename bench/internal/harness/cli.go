package harness

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Main runs a benchmark command's run with a context that SIGINT and
// SIGTERM cancel, and exits with the status run returns.
func Main(run func(ctx context.Context) int) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx)
	stop()
	os.Exit(code)
}

// Command is how a benchmark command (readpath, shopper) speaks on
// standard error and ends: every line starts with its name, and the exit
// status says how the run went.
type Command struct {
	Name   string // "readpath"
	Stderr io.Writer
	// Cleaned is what an interrupted run has cleaned up when it exits, for
	// the line that says so: "servers stopped".
	Cleaned string
}

// Logf prints a progress line, "name: …", on standard error.
func (c Command) Logf(format string, a ...any) {
	fmt.Fprintf(c.Stderr, c.Name+": "+format+"\n", a...)
}

// FlagsExit tells a command what to do after parsing its flags with err:
// stop with status 0 after -h (flag has printed the usage), stop with
// status 2 after printing a bad flag's error, or, for a nil err, go on.
func (c Command) FlagsExit(err error) (code int, stop bool) {
	switch {
	case err == nil:
		return 0, false
	case errors.Is(err, flag.ErrHelp):
		return 0, true
	}
	fmt.Fprintf(c.Stderr, "%s: %v\n", c.Name, err)
	return 2, true
}

// Exit returns the exit status of a run that ended with err: 0 for none;
// 130 when ctx was cancelled (an interrupt), after saying what was cleaned
// up; 1, after printing err, for any other failure.
func (c Command) Exit(ctx context.Context, err error) int {
	switch {
	case err == nil:
		return 0
	case ctx.Err() != nil:
		fmt.Fprintf(c.Stderr, "%s: interrupted; %s\n", c.Name, c.Cleaned)
		return 130
	}
	fmt.Fprintf(c.Stderr, "%s: %v\n", c.Name, err)
	return 1
}
