package main

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/soukhq/souk/bench/internal/harness"
)

// levelConfig is one concurrency level against one souk.
type levelConfig struct {
	Base         string // http://127.0.0.1:port
	Concurrency  int
	Warmup       time.Duration
	Duration     time.Duration
	PollDeadline time.Duration
	Variants     []variant
	PID          int // souk's process id, for its CPU time; 0: not read
}

// levelResult is what one level measured. Latencies and throughput cover
// flows completed inside the measured window; errors are counted wherever
// they happen (warm-up, window, or a flow finishing after it), since any of
// them makes the level suspect.
type levelResult struct {
	Concurrency int
	Window      time.Duration
	// Completed counts flows whose checkout answered 201 confirmed.
	Completed int
	// Flow (first request sent → checkout answer read) and Checkout (the
	// checkout call alone) of the completed flows, sorted.
	Flow, Checkout []time.Duration
	Steps          [numSteps][]time.Duration // of the completed flows, sorted
	// Processing counts flows whose checkout answered 202 processing and
	// whose order was then seen confirmed; UntilConfirmed is, for each,
	// the time from sending the checkout to seeing it confirmed (sorted).
	Processing     int
	UntilConfirmed []time.Duration
	WarmupFlows    int // flows finished during the warm-up (any outcome)
	Late           int // flows finished after the window (not counted)
	Errors         map[string]*errorTally
	Conns          int64         // TCP connections opened, warm-up included
	SoukCPU        time.Duration // souk's CPU time during the window
	SoukIO         *harness.IO   // souk's I/O calls during the window; nil: unknown
	// Probe is harness.Probe's reading just before the level's load and
	// just after it: how fast the machine ran then (zero: not taken).
	ProbeBefore, ProbeAfter time.Duration
	ClientCPU               time.Duration  // this process's CPU time during the window
	MachineCPU              time.Duration  // every process's CPU time during the window
	Memory                  harness.Memory // souk's, read after the level
	LoadRSS                 int64          // souk's largest sampled VmRSS during warm-up and window
	Fresh                   bool           // souk was started for this level alone
	// Work is what souk counted in its /metrics over the window (nil when
	// a scrape failed): deterministic where throughput is not.
	Work *work
}

// errorTally counts one kind of failure.
type errorTally struct {
	Key      string
	Count    int
	InWarmup int
	Example  string
}

// OrdersPerSecond is the rate of completed (201 confirmed) flows over the
// window.
func (r *levelResult) OrdersPerSecond() float64 {
	if r.Window <= 0 {
		return 0
	}
	return float64(r.Completed) / r.Window.Seconds()
}

// ErrorCount is every failed flow of the level.
func (r *levelResult) ErrorCount() int {
	n := 0
	for _, e := range r.Errors {
		n += e.Count
	}
	return n
}

// sortedErrors lists the failures, most frequent first.
func (r *levelResult) sortedErrors() []*errorTally {
	out := make([]*errorTally, 0, len(r.Errors))
	for _, e := range r.Errors {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *errorTally) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Key, b.Key))
	})
	return out
}

// cores is CPU time over the window as a number of busy cores.
func (r *levelResult) cores(cpu time.Duration) float64 {
	if r.Window <= 0 {
		return 0
	}
	return cpu.Seconds() / r.Window.Seconds()
}

// probeRounds is how many rounds of harness.Probe a reading takes the best
// of (~30 ms each); probeSettle is the pause after a level's window before
// the second reading.
const (
	probeRounds = 5
	probeSettle = time.Second
)

// rssSampleEvery is how often souk's resident set is sampled under load.
const rssSampleEvery = 100 * time.Millisecond

// vu is one virtual user's tally; merged after the level.
type vu struct {
	flow, checkout, untilConfirmed []time.Duration
	steps                          [numSteps][]time.Duration
	completed, processing          int
	warmup, late                   int
	errors                         map[string]*errorTally
}

// runLevel drives cfg.Concurrency virtual users in a closed loop (each
// starts its next flow when the previous one has ended) for cfg.Warmup
// unrecorded, then cfg.Duration recorded. A flow counts in the window it
// ends in; no flow starts after the window.
func runLevel(ctx context.Context, cfg levelConfig) (*levelResult, error) {
	if cfg.Concurrency < 1 {
		return nil, fmt.Errorf("concurrency %d: want at least 1", cfg.Concurrency)
	}
	if len(cfg.Variants) < 2 {
		return nil, fmt.Errorf("%d variants: a cart needs 2 different ones", len(cfg.Variants))
	}
	if err := harness.CheckLoadTarget(cfg.Base); err != nil {
		return nil, err
	}
	c := newClient(cfg.Base, cfg.Concurrency)
	defer c.close()

	probeBefore := harness.Probe(probeRounds)
	start := time.Now()
	measureStart := start.Add(cfg.Warmup)
	measureEnd := measureStart.Add(cfg.Duration)
	res := &levelResult{Concurrency: cfg.Concurrency, Window: cfg.Duration, Errors: map[string]*errorTally{}}

	// CPU time of souk and of this process over exactly the window, and
	// souk's counters over it.
	var cpuWG sync.WaitGroup
	cpuWG.Go(func() {
		if !sleepUntil(ctx, measureStart) {
			return
		}
		souk0, self0, all0 := harness.ProcessCPU(cfg.PID), harness.SelfCPU(), harness.MachineBusy()
		io0, io0ok := harness.ProcessIO(cfg.PID)
		before, berr := harness.ScrapeCounters(ctx, cfg.Base)
		if !sleepUntil(ctx, measureEnd) {
			return
		}
		if cfg.PID > 0 {
			res.SoukCPU = harness.ProcessCPU(cfg.PID) - souk0
			if io1, ok := harness.ProcessIO(cfg.PID); ok && io0ok {
				d := io1.Sub(io0)
				res.SoukIO = &d
			}
		}
		res.ClientCPU = harness.SelfCPU() - self0
		res.MachineCPU = harness.MachineBusy() - all0
		if after, aerr := harness.ScrapeCounters(ctx, cfg.Base); berr == nil && aerr == nil {
			res.Work = workBetween(before, after)
		}
	})

	// souk's resident set, sampled through warm-up and window: VmHWM alone
	// would also hold the start-up's peak (the demo seeding).
	samplerDone := make(chan struct{})
	if cfg.PID > 0 {
		cpuWG.Go(func() {
			tick := time.NewTicker(rssSampleEvery)
			defer tick.Stop()
			for {
				res.LoadRSS = max(res.LoadRSS, harness.ReadMemory(cfg.PID).RSS)
				select {
				case <-samplerDone:
					return
				case <-tick.C:
				}
			}
		})
	}

	users := make([]*vu, cfg.Concurrency)
	seed := uint64(time.Now().UnixNano())
	var wg sync.WaitGroup
	for i := range users {
		u := &vu{errors: map[string]*errorTally{}}
		users[i] = u
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		wg.Go(func() { u.loop(ctx, c, cfg, i, rng, measureStart, measureEnd) })
	}
	wg.Wait()
	close(samplerDone)
	cpuWG.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Let souk finish the level's tail (e-mails, relays) before reading
	// the machine again.
	if !sleepUntil(ctx, time.Now().Add(probeSettle)) {
		return nil, ctx.Err()
	}
	res.ProbeBefore, res.ProbeAfter = probeBefore, harness.Probe(probeRounds)

	res.Conns = c.dials.Load()
	for _, u := range users {
		res.Completed += u.completed
		res.Processing += u.processing
		res.WarmupFlows += u.warmup
		res.Late += u.late
		res.Flow = append(res.Flow, u.flow...)
		res.Checkout = append(res.Checkout, u.checkout...)
		res.UntilConfirmed = append(res.UntilConfirmed, u.untilConfirmed...)
		for s := range numSteps {
			res.Steps[s] = append(res.Steps[s], u.steps[s]...)
		}
		for k, e := range u.errors {
			t := res.Errors[k]
			if t == nil {
				t = &errorTally{Key: k, Example: e.Example}
				res.Errors[k] = t
			}
			t.Count += e.Count
			t.InWarmup += e.InWarmup
		}
	}
	slices.Sort(res.Flow)
	slices.Sort(res.Checkout)
	slices.Sort(res.UntilConfirmed)
	for s := range numSteps {
		slices.Sort(res.Steps[s])
	}
	return res, nil
}

func (u *vu) loop(ctx context.Context, c *client, cfg levelConfig, id int, rng *rand.Rand, measureStart, measureEnd time.Time) {
	var r flowResult
	for n := 0; ctx.Err() == nil && time.Now().Before(measureEnd); n++ {
		c.runFlow(ctx, planFlow(rng, cfg.Variants, id, n), cfg.PollDeadline, &r)
		if ctx.Err() != nil {
			return
		}
		u.record(&r, measureStart, measureEnd)
		if r.Err != nil && r.Err.Status == 0 {
			// Do not spin on a refused connection.
			time.Sleep(time.Millisecond)
		}
	}
}

// record files one finished flow.
func (u *vu) record(r *flowResult, measureStart, measureEnd time.Time) {
	inWarmup := r.End.Before(measureStart)
	if r.Err != nil {
		k := r.Err.Key()
		t := u.errors[k]
		if t == nil {
			t = &errorTally{Key: k, Example: r.Err.Detail}
			u.errors[k] = t
		}
		t.Count++
		if inWarmup {
			t.InWarmup++
		}
		return
	}
	switch {
	case inWarmup:
		u.warmup++
	case r.End.After(measureEnd):
		u.late++
	case r.Outcome == outcomeConfirmed:
		u.completed++
		u.flow = append(u.flow, r.End.Sub(r.Start))
		u.checkout = append(u.checkout, r.Steps[stepCheckout])
		for s := range numSteps {
			u.steps[s] = append(u.steps[s], r.Steps[s])
		}
	case r.Outcome == outcomeProcessing:
		u.processing++
		u.untilConfirmed = append(u.untilConfirmed, r.UntilConfirmed)
	}
}

// planFlow picks two different variants at random and names the flow's
// e-mail (unique per flow) and Idempotency-Key (random).
func planFlow(rng *rand.Rand, vs []variant, user, n int) flowPlan {
	i := rng.IntN(len(vs))
	j := rng.IntN(len(vs) - 1)
	if j >= i {
		j++
	}
	return flowPlan{
		Items:          [2]string{vs[i].ID, vs[j].ID},
		Email:          fmt.Sprintf("vu%d-%d@shopper.example.com", user, n),
		IdempotencyKey: "bench-" + randomSuffix(16),
	}
}

// sleepUntil waits for t; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
