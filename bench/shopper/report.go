package main

import (
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/soukhq/souk/bench/internal/harness"
)

// The targets, on a 2-core machine with the embedded topology.
const (
	targetCores           = 2
	targetCheckoutP95     = 50 * time.Millisecond // at targetCheckoutLevel VUs
	targetCheckoutLevel   = 8
	targetOrdersPerSec    = 300.0 // at targetThroughputLevel VUs, with zero errors
	targetThroughputLevel = 32
)

// report is one run of the benchmark.
type report struct {
	Command      string
	Started      time.Time
	Code         string // what was measured: commit and tree state, or a binary
	Machine      harness.Machine
	Warmup       time.Duration
	Duration     time.Duration
	PollDeadline time.Duration
	Fresh        bool
	Topologies   []*topologyResult
	LoadBefore   string
	LoadAfter    string
}

// topologyResult holds one topology's levels.
type topologyResult struct {
	Name     string
	Infra    string   // what souk ran on
	Args     []string // souk's arguments, random parts elided
	Variants int      // how many variants the carts drew from
	Levels   []*levelResult
}

func (r *report) errors() int {
	n := 0
	for _, t := range r.Topologies {
		for _, l := range t.Levels {
			n += l.ErrorCount()
		}
	}
	return n
}

func (r *report) level(topology string, vus int) *levelResult {
	for _, t := range r.Topologies {
		if t.Name != topology {
			continue
		}
		for _, l := range t.Levels {
			if l.Concurrency == vus {
				return l
			}
		}
	}
	return nil
}

// targetCheck is one target of the issue with what was measured.
type targetCheck struct {
	Target     string
	Measured   string
	Met        bool
	Measurable bool // false: the level was not run
}

// targets compares the run with the targets.
func (r *report) targets() []targetCheck {
	out := []targetCheck{{
		Target: fmt.Sprintf("embedded, %d VUs: checkout p95 under %s", targetCheckoutLevel, harness.FormatLatency(targetCheckoutP95)),
	}, {
		Target: fmt.Sprintf("embedded, %d VUs: at least %.0f completed flows/s with zero errors", targetThroughputLevel, targetOrdersPerSec),
	}}
	if l := r.level(topoEmbedded, targetCheckoutLevel); l != nil {
		p95 := harness.Percentile(l.Checkout, 0.95)
		out[0].Measurable = true
		out[0].Met = l.Completed > 0 && p95 < targetCheckoutP95
		out[0].Measured = "p95 " + harness.FormatLatency(p95)
		if l.Completed == 0 {
			out[0].Measured = "no checkout completed"
		}
		if n := l.ErrorCount(); n > 0 {
			out[0].Measured += fmt.Sprintf(" (%d errors)", n)
		}
	}
	if l := r.level(topoEmbedded, targetThroughputLevel); l != nil {
		out[1].Measurable = true
		out[1].Met = l.OrdersPerSecond() >= targetOrdersPerSec && l.ErrorCount() == 0
		out[1].Measured = fmt.Sprintf("%.1f flows/s, %d errors", l.OrdersPerSecond(), l.ErrorCount())
	}
	return out
}

// Markers delimit the generated part of a results file, so that prose
// written around it survives a re-run with -o.
const (
	beginMarker = "<!-- shopper:begin -->"
	endMarker   = "<!-- shopper:end -->"
)

// sectionHeader goes above the markers when -o finds none: what the
// generated block means. Edit it in the file; re-runs keep it.
const sectionHeader = `# Shopper flow under load

## What is measured, and why

The whole purchase path of ` + "`souk serve --demo`" + `, as shoppers drive it: each
virtual user (VU), back to back (closed loop), runs

1. ` + "`POST /store/carts {currency: EUR}`" + `,
2. two ` + "`POST /store/carts/{id}/items`" + ` with two different variants, quantity 1,
3. ` + "`PATCH /store/carts/{id}`" + ` with an e-mail and an NL shipping address,
4. ` + "`GET /store/carts/{id}/shipping-methods`" + `, then ` + "`PATCH`" + ` with the first one,
5. ` + "`POST /store/carts/{id}/checkout {payment: {provider: test, token: tok_visa}}`" + `
   with ` + "`X-Cart-Token`" + ` and a fresh ` + "`Idempotency-Key`" + `.

A flow is **completed** when the checkout answers 201 with ` + "`status: confirmed`" + `;
the throughput is completed orders per second of the measured window. A 202
` + "`processing`" + ` is counted apart: the VU polls ` + "`GET /store/orders/{id}`" + ` (cart
token) until the order is confirmed, and that time is reported separately.
Any other answer is an error, listed by step, status and problem code.
Latencies are of completed flows only: the checkout call alone, and the whole
flow from the first request sent to the checkout answer read (nearest-rank
percentiles over every flow of the window).

How ` + "`go run ./bench/shopper`" + ` does it (source: ` + "`bench/shopper/`" + `):

- builds ` + "`./cmd/souk`" + `, starts ` + "`souk serve --demo --addr 127.0.0.1:<free port>\n  --data-dir <tmp> --log-level warn`" + ` — with ` + "`-topology postgres`" + ` also
  ` + "`--database-url`" + ` of a database created for the run and
  ` + "`--nats-url`/`--bus-stream`/`--bus-subject-prefix`" + ` naming streams of its own
  (both removed at the end); waits for ` + "`/readyz`" + `;
- picks in-stock EUR-priced variants spread over the demo products and raises
  every stock level of their SKUs to 1,000,000 with the admin API, so stock
  never runs out (an ` + "`out_of_stock`" + ` would be an error, not a result);
- per level: a warm-up, then the measured window. Memory, from ` + "`/proc/<pid>/status`" + `:
  souk's peak resident set under load (` + "`VmRSS`" + ` sampled every 100 ms through
  warm-up and window), its ` + "`VmHWM`" + ` (the kernel's high-water mark since start,
  so start-up and demo seeding are in it) and its ` + "`VmRSS`" + ` after the level;
  also souk's CPU time during the window;
- load only goes to 127.0.0.1; souk is stopped and its data removed on exit,
  Ctrl-C included. The load generator shares the machine's cores with souk
  (and, for postgres, with PostgreSQL and NATS): its CPU is reported too.

Targets (the issue, 2-core machine, embedded): checkout p95 under 50 ms at 8
VUs; at least 300 completed flows/s at 32 VUs with zero errors. They are
printed with the measured value, never asserted in a test.

## Results

`

func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("%s\n\n", beginMarker)
	p("Command (from the repository root):\n\n```sh\n%s\n```\n\n", r.Command)
	p("- Run: %s, souk %s\n", r.Started.Format("2006-01-02 15:04 MST"), r.Code)
	m := r.Machine
	p("- Machine: %s/%s, %s, NumCPU %d, GOMAXPROCS %d%s, %s RAM, kernel %s, %s\n",
		runtime.GOOS, runtime.GOARCH, m.CPUModel, m.NumCPU, m.GOMAXPROCS, m.GOMAXPROCSNote("souk"), fmtBytes(m.Memory), m.Kernel, m.GoVersion)
	if r.LoadBefore != "" {
		p("- Load average (1/5/15 min) before → after: %s → %s\n", r.LoadBefore, r.LoadAfter)
	}
	fresh := "a fresh souk (new data) per level, so each level's peak memory is its own (start-up and demo seeding included)"
	if !r.Fresh {
		fresh = "one souk per topology for all levels in the order shown: peak memory (VmHWM) is the high-water mark up to that level"
	}
	p("- Load: closed loop, %s warm-up then %s measured per level; %s; a 202 is polled for at most %s\n",
		r.Warmup, r.Duration, fresh, r.PollDeadline)
	p("- Memory: *peak RSS under load* is the largest VmRSS of souk sampled every %s through warm-up and window; *VmHWM* is the kernel's peak since souk started (start-up included); *RSS after* is VmRSS after the level; CPU is per wall second of the window, *rest of the machine* every other process (PostgreSQL and NATS for postgres; other people's work on a shared machine)\n", rssSampleEvery)
	for _, t := range r.Topologies {
		p("- %s: `souk %s` — %s; carts draw 2 different variants of %d\n", t.Name, strings.Join(t.Args, " "), t.Infra, t.Variants)
	}

	for _, t := range r.Topologies {
		p("\n### %s\n\n", t.Name)
		p("| VUs | completed orders/s | completed | checkout p50 / p95 / p99 | flow p50 / p95 / p99 | 202 → confirmed (p95) | errors (warm-up incl.) | souk peak RSS under load | souk VmHWM | souk RSS after | souk CPU | load-gen CPU | rest of the machine |\n")
		p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, l := range t.Levels {
			processing := "0"
			if l.Processing > 0 {
				processing = fmt.Sprintf("%d (%s)", l.Processing, harness.FormatLatency(harness.Percentile(l.UntilConfirmed, 0.95)))
			}
			errs := fmt.Sprint(l.ErrorCount())
			if l.ErrorCount() > 0 {
				errs = "**" + errs + "**"
			}
			rest := "n/a"
			if l.MachineCPU > 0 {
				rest = fmt.Sprintf("%.2f cores", max(0, l.cores(l.MachineCPU-l.SoukCPU-l.ClientCPU)))
			}
			p("| %d | **%.1f** | %d | %s | %s | %s | %s | %s | %s | %s | %.2f cores | %.2f cores | %s |\n",
				l.Concurrency, l.OrdersPerSecond(), l.Completed,
				fmtTriple(l.Checkout), fmtTriple(l.Flow), processing, errs,
				fmtBytes(l.LoadRSS), fmtBytes(l.Memory.HWM), fmtBytes(l.Memory.RSS), l.cores(l.SoukCPU), l.cores(l.ClientCPU), rest)
		}
	}

	p("\n### Work per completed flow\n\n")
	p("Counted by souk over each window (its `/metrics` read at the window's start and end) and by the kernel (CPU; write calls and the KiB they wrote, files and sockets alike, from `/proc/<pid>/io`), divided by the flows completed in it. The counts move with the code only; the CPU per flow also moves with the machine's speed, which *machine probe* reads: the time one core took for a fixed piece of work (encoding and decoding the same JSON, best of %d) just before and just after the level — compare CPU per flow across runs relative to it. SQLite counts are the embedded topology's only.\n\n", probeRounds)
	p("| topology | VUs | souk CPU | SQLite transactions | SQLite commits | SQL statements | events published | deliveries applied | deliveries declined | write calls | KiB written | machine probe before / after |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, t := range r.Topologies {
		for _, l := range t.Levels {
			cpu := "—"
			if l.Completed > 0 && l.SoukCPU > 0 {
				cpu = harness.FormatLatency(l.SoukCPU / time.Duration(l.Completed))
			}
			w := l.Work
			if w == nil {
				w = &work{-1, -1, -1, -1, -1, -1}
			}
			calls, kib := -1.0, -1.0
			if l.SoukIO != nil {
				calls, kib = float64(l.SoukIO.WriteCalls), float64(l.SoukIO.WriteBytes)/1024
			}
			probe := "—"
			if l.ProbeBefore > 0 && l.ProbeAfter > 0 {
				probe = harness.FormatLatency(l.ProbeBefore) + " / " + harness.FormatLatency(l.ProbeAfter)
			}
			p("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", t.Name, l.Concurrency, cpu,
				perFlow(w.Transactions, l.Completed), perFlow(w.Commits, l.Completed), perFlow(w.Statements, l.Completed),
				perFlow(w.Events, l.Completed), perFlow(w.Processed, l.Completed), perFlow(w.Skipped, l.Completed),
				perFlow(calls, l.Completed), perFlow(kib, l.Completed), probe)
		}
	}

	p("\n### Targets\n\n| target (the issue; %d-core machine) | measured | verdict |\n|---|---|---|\n", targetCores)
	for _, tc := range r.targets() {
		verdict := "met"
		switch {
		case !tc.Measurable:
			verdict, tc.Measured = "not measured", "—"
		case !tc.Met:
			verdict = "**not met**"
		}
		if tc.Measurable && r.Machine.NumCPU != targetCores {
			verdict += fmt.Sprintf(" (on %d cores, not %d)", r.Machine.NumCPU, targetCores)
		}
		p("| %s | %s | %s |\n", tc.Target, tc.Measured, verdict)
	}

	p("\n<details><summary>Every step, and every error</summary>\n\n")
	p("Latency of each call in completed flows (p50 / p95 / p99):\n\n")
	p("| topology | VUs |")
	for s := range numSteps {
		p(" %s |", stepNames[s])
	}
	p("\n|---|---:|%s\n", strings.Repeat("---:|", int(numSteps)))
	for _, t := range r.Topologies {
		for _, l := range t.Levels {
			p("| %s | %d |", t.Name, l.Concurrency)
			for s := range numSteps {
				p(" %s |", fmtTriple(l.Steps[s]))
			}
			p("\n")
		}
	}
	p("\nFlows outside the window (not in the figures above): ")
	var outside []string
	for _, t := range r.Topologies {
		for _, l := range t.Levels {
			outside = append(outside, fmt.Sprintf("%s/%d: %d in warm-up, %d after, %d connections", t.Name, l.Concurrency, l.WarmupFlows, l.Late, l.Conns))
		}
	}
	p("%s.\n\n", strings.Join(outside, "; "))
	if r.errors() == 0 {
		p("No errors.\n")
	} else {
		p("| topology | VUs | failure | count | of which in warm-up | first answer |\n|---|---:|---|---:|---:|---|\n")
		for _, t := range r.Topologies {
			for _, l := range t.Levels {
				for _, e := range l.sortedErrors() {
					p("| %s | %d | %s | %d | %d | `%s` |\n", t.Name, l.Concurrency, e.Key, e.Count, e.InWarmup, mdCode(e.Example))
				}
			}
		}
	}
	p("\n</details>\n\n%s\n", endMarker)
	return b.String()
}

// mdCode makes s safe inside a one-line Markdown code span in a table.
func mdCode(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "`", "'")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// section is shopper's block of a results file: -o writes the report in
// place of the marked block when the file has one; otherwise appended
// under sectionHeader, to the file or to a new one.
var section = harness.Section{Begin: beginMarker, End: endMarker, Header: sectionHeader}

// fmtTriple is "p50 / p95 / p99" of sorted latencies, "—" without any.
func fmtTriple(sorted []time.Duration) string {
	if len(sorted) == 0 {
		return "—"
	}
	return latency(sorted, 0.50) + " / " + latency(sorted, 0.95) + " / " + latency(sorted, 0.99)
}

// latency is the q-quantile of sorted latencies, formatted.
func latency(sorted []time.Duration, q float64) string {
	return harness.FormatLatency(harness.Percentile(sorted, q))
}

// fmtBytes prints a size in MiB (GiB from 10 GiB), "n/a" when unknown.
func fmtBytes(n int64) string {
	switch {
	case n <= 0:
		return "n/a"
	case n >= 10<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	default:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
}

// commandLine is how this run was invoked, as a command to paste, without
// the passwords of its URLs.
func commandLine(args []string) string {
	redacted := make([]string, len(args))
	for i, a := range args {
		redacted[i] = redactPassword(a)
	}
	return harness.CommandLine("go run ./bench/shopper", redacted)
}

// redactPassword hides the password of an argument that is a URL with one
// (-postgres-url=postgres://user:secret@…), so the report can be shared.
func redactPassword(arg string) string {
	name, raw, hasName := "", arg, false
	if strings.HasPrefix(arg, "-") {
		name, raw, hasName = strings.Cut(arg, "=")
		if !hasName {
			return arg
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return arg
	}
	if _, ok := u.User.Password(); !ok {
		return arg
	}
	u.User = url.UserPassword(u.User.Username(), "REDACTED")
	if hasName {
		return name + "=" + u.String()
	}
	return u.String()
}
