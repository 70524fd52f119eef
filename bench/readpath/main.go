// Command readpath measures Souk's catalogue read path under load, next to
// a bare net/http server sending the same bytes, in the same run.
//
// It builds and starts `souk serve --demo` and a bare baseline server as two
// subprocesses on loopback ports, copies the exact answers of
// GET /store/products and GET /store/products/{id} from souk into the
// baseline, then drives each server in turn with the same closed-loop client
// (-c workers over keep-alive connections): a warm-up, then a measured
// window, for -rounds rounds, alternating which server goes first. It prints
// a Markdown report (requests/s, p50, p99, failures and the souk/bare
// throughput ratio, the median of rounds) and, with -o, writes it to a file.
//
// Absolute numbers depend on the machine; the ratio to the bare server is
// the figure to compare across machines and commits. See bench/RESULTS.md.
//
// Usage, from the repository root:
//
//	go run ./bench/readpath -c 32 -duration 10s -warmup 2s -rounds 3 -o bench/RESULTS.md
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/soukhq/souk/bench/internal/harness"
)

func main() {
	harness.Main(func(ctx context.Context) int { return run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr) })
}

// options are the command-line flags.
type options struct {
	Concurrency  int
	Duration     time.Duration
	Warmup       time.Duration
	Rounds       int
	Souk         string
	Output       string
	Product      string
	ReadyTimeout time.Duration
	Keep         bool
	Floor        bool

	bareServe string // hidden: run as the bare baseline server
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("readpath", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.Concurrency, "c", 32, "concurrent closed-loop clients (each waits for its answer before sending again)")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "measured window per target and round")
	fs.DurationVar(&o.Warmup, "warmup", 2*time.Second, "unmeasured warm-up before each window")
	fs.IntVar(&o.Rounds, "rounds", 3, "rounds; each measures every target, alternating souk and bare first; the report gives the median")
	fs.StringVar(&o.Souk, "souk", "", "souk binary to run (default: go build ./cmd/souk of the current module)")
	fs.StringVar(&o.Output, "o", "", "also write the report to this file; if it holds the readpath markers, only the text between them is replaced")
	fs.StringVar(&o.Product, "product", "", "product id or handle for GET /store/products/{id} (default: the first product listed)")
	fs.DurationVar(&o.ReadyTimeout, "ready-timeout", 90*time.Second, "how long souk may take to answer /readyz")
	fs.BoolVar(&o.Floor, "floor", true, "also measure GET /healthz, which crosses souk's server, middleware and gateway but does no work: the most any souk read path can reach")
	fs.BoolVar(&o.Keep, "keep", false, "keep the work directory (binary, data, server logs) and print its path")
	fs.StringVar(&o.bareServe, "bare-serve", "", "")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: go run ./bench/readpath [flags]\n\nLoad-tests GET /store/products and GET /store/products/{id} of souk serve --demo\nnext to a bare net/http server sending the same bytes.\n\nFlags:\n")
		hidden := fs.Lookup("bare-serve")
		out := flag.NewFlagSet("", flag.ContinueOnError)
		out.SetOutput(fs.Output())
		fs.VisitAll(func(f *flag.Flag) {
			if f != hidden {
				out.Var(f.Value, f.Name, f.Usage)
			}
		})
		out.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	if o.Concurrency < 1 {
		errs = append(errs, errors.New("-c must be at least 1"))
	}
	if o.Duration <= 0 {
		errs = append(errs, errors.New("-duration must be positive"))
	}
	if o.Warmup < 0 {
		errs = append(errs, errors.New("-warmup must not be negative"))
	}
	if o.Rounds < 1 {
		errs = append(errs, errors.New("-rounds must be at least 1"))
	}
	if o.ReadyTimeout <= 0 {
		errs = append(errs, errors.New("-ready-timeout must be positive"))
	}
	return o, errors.Join(errs...)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := harness.Command{Name: "readpath", Stderr: stderr, Cleaned: "servers stopped"}
	o, err := parseFlags(args, stderr)
	if code, stop := cmd.FlagsExit(err); stop {
		return code
	}
	if o.bareServe != "" {
		if err := serveBare(ctx, o.bareServe, stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "readpath -bare-serve: %v\n", err)
			return 1
		}
		return 0
	}
	return cmd.Exit(ctx, bench(ctx, o, args, stdout, cmd.Logf))
}

// bench is the whole measurement: set up both servers, load them, report.
func bench(ctx context.Context, o options, args []string, stdout io.Writer, logf func(format string, a ...any)) (err error) {
	work, removeWork, err := harness.WorkDir("souk-readpath-", o.Keep, logf)
	if err != nil {
		return err
	}
	defer removeWork()

	rep := report{
		Command:     harness.CommandLine("go run ./bench/readpath", args),
		Started:     time.Now().UTC(),
		Concurrency: o.Concurrency, Warmup: o.Warmup, Duration: o.Duration, Rounds: o.Rounds,
		Machine: harness.ReadMachine(),
	}
	bin, code, err := harness.SoukBinary(ctx, o.Souk, "", work, logf)
	if err != nil {
		return err
	}
	rep.Code = code

	logf("starting souk serve --demo")
	souk, soukURL, err := harness.StartSouk(ctx, harness.SoukConfig{
		Bin: bin, DataDir: filepath.Join(work, "data"), LogPath: filepath.Join(work, "souk.log"),
		ReadyTimeout: o.ReadyTimeout, Logf: logf,
	})
	if err != nil {
		return err
	}
	defer func() {
		souk.Stop()
		if err != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w%s", err, souk.LogTail())
		}
	}()

	list, err := fetch(ctx, soukURL+"/store/products")
	if err != nil {
		return err
	}
	id := o.Product
	if id == "" {
		if id, err = firstProductID(list.Body); err != nil {
			return err
		}
	}
	productPath := "/store/products/" + id
	rep.Endpoints = []*endpointResult{
		{Label: "GET /store/products", Path: "/store/products", ContentType: list.ContentType, Body: list.Body},
		{Label: "GET /store/products/{id}", Path: productPath},
	}
	if o.Floor {
		rep.Endpoints = append(rep.Endpoints, &endpointResult{Label: "GET /healthz", Path: "/healthz", Reference: true})
	}
	for _, ep := range rep.Endpoints[1:] {
		got, err := fetch(ctx, soukURL+ep.Path)
		if err != nil {
			return err
		}
		ep.ContentType, ep.Body = got.ContentType, got.Body
	}

	var spec bareSpec
	for _, ep := range rep.Endpoints {
		spec.Routes = append(spec.Routes, bareRoute{Path: ep.Path, ContentType: ep.ContentType, Body: ep.Body})
	}
	specPath := filepath.Join(work, "bare-spec.json")
	raw, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if err := os.WriteFile(specPath, raw, 0o600); err != nil {
		return err
	}
	logf("starting the bare baseline server")
	bare, bareURL, err := startBare(ctx, specPath, filepath.Join(work, "bare.log"), logf)
	if err != nil {
		return err
	}
	defer bare.Stop()
	// The baseline must answer what souk answered, or the ratio means nothing.
	for _, rt := range spec.Routes {
		got, err := fetch(ctx, bareURL+rt.Path)
		if err != nil {
			return fmt.Errorf("bare server: %w", err)
		}
		if got.ContentType != rt.ContentType || string(got.Body) != string(rt.Body) {
			return fmt.Errorf("bare server answers %s differently from souk", rt.Path)
		}
	}

	rep.LoadBefore = harness.LoadAverage()
	for r := range o.Rounds {
		for _, ep := range rep.Endpoints {
			// Alternate which server goes first so drift on a shared machine
			// falls on both alike.
			order := []string{"souk", "bare"}
			if r%2 == 1 {
				order = []string{"bare", "souk"}
			}
			for _, target := range order {
				base := soukURL
				if target == "bare" {
					base = bareURL
				}
				res, err := runLoad(ctx, loadConfig{
					URL: base + ep.Path, Concurrency: o.Concurrency,
					Warmup: o.Warmup, Duration: o.Duration, Want: ep.Body,
				})
				if err != nil {
					return fmt.Errorf("load %s %s: %w", target, ep.Path, err)
				}
				if target == "souk" {
					ep.Souk = append(ep.Souk, res)
				} else {
					ep.Bare = append(ep.Bare, res)
				}
				logf("round %d/%d %-26s %-4s %8.0f req/s  p50 %s  p99 %s  failures %d  conns %d",
					r+1, o.Rounds, ep.Label, target, res.RPS(),
					harness.FormatLatency(res.Percentile(0.50)), harness.FormatLatency(res.Percentile(0.99)), res.Failures(), res.Dials)
				if res.FirstError != "" {
					logf("  first failure: %s", res.FirstError)
				}
			}
		}
	}
	rep.LoadAfter = harness.LoadAverage()

	if err := section.Publish(rep.markdown(), stdout, o.Output, logf); err != nil {
		return err
	}
	if rep.failures() > 0 {
		return fmt.Errorf("%d requests failed; the numbers above are not trustworthy", rep.failures())
	}
	return nil
}
