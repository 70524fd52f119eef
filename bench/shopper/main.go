// Command shopper measures Souk's whole shopper flow under load: virtual
// users that each, back to back, create a cart, add two items, give an
// e-mail and a shipping address, pick a shipping method and check out with
// the test payment provider's tok_visa.
//
// It builds and starts `souk serve --demo` as a subprocess on a loopback
// port — with -topology embedded (SQLite files, an in-process NATS), and/or
// postgres (a fresh PostgreSQL database and isolated streams on an external
// NATS, both dropped at the end) — raises the stock of the variants it will
// buy so that it cannot run out, and drives it with a closed loop of -c
// virtual users per concurrency level: a warm-up, then a measured window.
// It reports completed orders/s, p50/p95/p99 of the checkout call and of the
// whole flow, every error by step, status and problem code, and the souk
// process's peak memory, as Markdown; with -o it writes that between the
// shopper markers of a results file.
//
// Usage, from the repository root:
//
//	go run ./bench/shopper -topology embedded,postgres -c 1,8,32 -warmup 3s -duration 15s -o bench/RESULTS.md
//
// Absolute numbers depend on the machine and on whatever else runs on it;
// the report records both. Nothing here asserts a time: the targets of the
// issue are printed with the measured value next to them.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/soukhq/souk/bench/internal/harness"
)

func main() {
	harness.Main(func(ctx context.Context) int { return run(ctx, os.Args[1:], os.Stdout, os.Stderr) })
}

// Topology names, as -topology takes them.
const (
	topoEmbedded = "embedded"
	topoPostgres = "postgres"
)

// options are the command-line flags.
type options struct {
	Topologies   []string
	Levels       []int
	Warmup       time.Duration
	Duration     time.Duration
	Souk         string
	Commit       string
	Output       string
	PostgresURL  string
	NATSURL      string
	Variants     int
	PollDeadline time.Duration
	ReadyTimeout time.Duration
	Fresh        bool
	Keep         bool
}

// intList is a comma-separated list of positive integers ("1,8,32").
type intList []int

func (l *intList) String() string {
	parts := make([]string, len(*l))
	for i, n := range *l {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

func (l *intList) Set(s string) error {
	var out []int
	for part := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 {
			return fmt.Errorf("%q: want positive integers separated by commas", s)
		}
		out = append(out, n)
	}
	*l = out
	return nil
}

// stringList is a comma-separated list of words.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	*l = out
	return nil
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{Topologies: []string{topoEmbedded}, Levels: []int{1, 8, 32}}
	fs := flag.NewFlagSet("shopper", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var((*stringList)(&o.Topologies), "topology", "comma-separated: embedded (SQLite files, embedded NATS) and/or postgres (a fresh database on -postgres-url, streams on -nats-url)")
	fs.Var((*intList)(&o.Levels), "c", "comma-separated concurrency levels: virtual users, each running the flow back to back (closed loop)")
	fs.DurationVar(&o.Warmup, "warmup", 3*time.Second, "unmeasured warm-up before each level's window")
	fs.DurationVar(&o.Duration, "duration", 15*time.Second, "measured window per level")
	fs.StringVar(&o.Souk, "souk", "", "souk binary to run (default: go build ./cmd/souk of the current module)")
	fs.StringVar(&o.Commit, "commit", "", "build souk from this commit (e.g. HEAD) instead of the working tree, leaving uncommitted changes of a shared checkout out of the measurement")
	fs.StringVar(&o.Output, "o", "", "also write the report to this file, between the shopper markers (created, with an explanatory header, when missing; text outside them is kept)")
	fs.StringVar(&o.PostgresURL, "postgres-url", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL to create the throwaway database souk_bench_<random> on (-topology postgres)")
	fs.StringVar(&o.NATSURL, "nats-url", "nats://127.0.0.1:4222", "external NATS JetStream server (-topology postgres); streams BENCH_<random>* are deleted at the end")
	fs.IntVar(&o.Variants, "variants", 16, "how many in-stock variants (spread over products) the carts draw their two items from")
	fs.DurationVar(&o.PollDeadline, "poll-deadline", 30*time.Second, "how long to poll an order answered 202 processing for its confirmation before counting an error")
	fs.DurationVar(&o.ReadyTimeout, "ready-timeout", 120*time.Second, "how long souk may take to answer /readyz")
	fs.BoolVar(&o.Fresh, "fresh", true, "start a fresh souk (new data directory or database, new streams) for every level, so each level's peak memory is its own; false: one souk per topology serves every level and the peak is the high-water mark so far")
	fs.BoolVar(&o.Keep, "keep", false, "keep the work directory (binary, data, server logs) and print its path")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: go run ./bench/shopper [flags]\n\nLoad-tests the shopper flow (cart, 2 items, address, shipping, checkout with tok_visa)\nof souk serve --demo with closed-loop virtual users.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	if o.Souk != "" && o.Commit != "" {
		errs = append(errs, errors.New("-souk and -commit exclude each other"))
	}
	if len(o.Topologies) == 0 {
		errs = append(errs, errors.New("-topology: name at least one"))
	}
	seen := map[string]bool{}
	for _, t := range o.Topologies {
		switch {
		case t != topoEmbedded && t != topoPostgres:
			errs = append(errs, fmt.Errorf("-topology %q: want embedded or postgres", t))
		case seen[t]:
			errs = append(errs, fmt.Errorf("-topology %q given twice", t))
		}
		seen[t] = true
	}
	if len(o.Levels) == 0 {
		errs = append(errs, errors.New("-c: give at least one level"))
	}
	if o.Duration <= 0 {
		errs = append(errs, errors.New("-duration must be positive"))
	}
	if o.Warmup < 0 {
		errs = append(errs, errors.New("-warmup must not be negative"))
	}
	if o.Variants < 2 {
		errs = append(errs, errors.New("-variants must be at least 2 (a cart holds two different variants)"))
	}
	if o.PollDeadline <= 0 {
		errs = append(errs, errors.New("-poll-deadline must be positive"))
	}
	if o.ReadyTimeout <= 0 {
		errs = append(errs, errors.New("-ready-timeout must be positive"))
	}
	if slices.Contains(o.Topologies, topoPostgres) {
		// The database and the bus take the load souk puts on them: only
		// ones on this machine, never shared servers.
		if err := requireLoopback("-postgres-url", o.PostgresURL); err != nil {
			errs = append(errs, err)
		}
		if err := requireLoopback("-nats-url", o.NATSURL); err != nil {
			errs = append(errs, err)
		}
	}
	return o, errors.Join(errs...)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := harness.Command{Name: "shopper", Stderr: stderr, Cleaned: "souk stopped and cleaned up"}
	o, err := parseFlags(args, stderr)
	if code, stop := cmd.FlagsExit(err); stop {
		return code
	}
	return cmd.Exit(ctx, bench(ctx, o, args, stdout, cmd.Logf))
}

// bench is the whole measurement: build, then per topology and level start
// souk (or reuse it), load it, read its memory; then report.
func bench(ctx context.Context, o options, args []string, stdout io.Writer, logf func(format string, a ...any)) (err error) {
	work, removeWork, err := harness.WorkDir("souk-shopper-", o.Keep, logf)
	if err != nil {
		return err
	}
	defer removeWork()

	rep := report{
		Command: commandLine(args),
		Started: time.Now().UTC(),
		Machine: harness.ReadMachine(),
		Warmup:  o.Warmup, Duration: o.Duration, Fresh: o.Fresh,
		PollDeadline: o.PollDeadline,
	}
	bin, code, err := harness.SoukBinary(ctx, o.Souk, o.Commit, work, logf)
	if err != nil {
		return err
	}
	rep.Code = code

	rep.LoadBefore = harness.LoadAverage()
	for _, topo := range o.Topologies {
		tr := &topologyResult{Name: topo}
		rep.Topologies = append(rep.Topologies, tr)
		if err := benchTopology(ctx, o, bin, work, tr, logf); err != nil {
			return fmt.Errorf("%s: %w", topo, err)
		}
	}
	rep.LoadAfter = harness.LoadAverage()

	if err := section.Publish(rep.markdown(), stdout, o.Output, logf); err != nil {
		return err
	}
	if n := rep.errors(); n > 0 {
		return fmt.Errorf("%d flows failed (see the error table); the throughput above counts only completed ones", n)
	}
	return nil
}

// benchTopology measures every level of one topology into tr.
func benchTopology(ctx context.Context, o options, bin, work string, tr *topologyResult, logf func(string, ...any)) (err error) {
	var inst *instance
	defer func() {
		if inst != nil {
			inst.close(logf)
		}
	}()
	for i, c := range o.Levels {
		if inst == nil || o.Fresh {
			if inst != nil {
				inst.close(logf)
				inst = nil
			}
			logf("%s: starting souk for %d virtual users", tr.Name, c)
			inst, err = startInstance(ctx, instanceConfig{
				Topology: tr.Name, Bin: bin, Dir: filepath.Join(work, fmt.Sprintf("%s-%d", tr.Name, i+1)),
				PostgresURL: o.PostgresURL, NATSURL: o.NATSURL, Variants: o.Variants, ReadyTimeout: o.ReadyTimeout,
			}, logf)
			if err != nil {
				return err
			}
			tr.Infra, tr.Args, tr.Variants = inst.infra, inst.args, len(inst.variants)
		}
		res, err := runLevel(ctx, levelConfig{
			Base: inst.base, Concurrency: c, Warmup: o.Warmup, Duration: o.Duration,
			PollDeadline: o.PollDeadline, Variants: inst.variants, PID: inst.proc.PID(),
		})
		if err != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("%d virtual users: %w%s", c, err, inst.proc.LogTail())
			}
			return err
		}
		res.Memory = harness.ReadMemory(inst.proc.PID())
		res.Fresh = o.Fresh || i == 0
		tr.Levels = append(tr.Levels, res)
		logf("%s %3d VUs: %7.1f orders/s  checkout p50 %s p95 %s p99 %s  flow p50 %s p95 %s p99 %s  202s %d  errors %d  VmHWM %s",
			tr.Name, c, res.OrdersPerSecond(),
			latency(res.Checkout, 0.50), latency(res.Checkout, 0.95), latency(res.Checkout, 0.99),
			latency(res.Flow, 0.50), latency(res.Flow, 0.95), latency(res.Flow, 0.99),
			res.Processing, res.ErrorCount(), fmtBytes(res.Memory.HWM))
		for _, e := range res.sortedErrors() {
			logf("  error ×%d: %s — %s", e.Count, e.Key, e.Example)
		}
	}
	return nil
}

// randomSuffix is n random bytes in lower-case hex, for names no other run
// uses.
func randomSuffix(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
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
