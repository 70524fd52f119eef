package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/soukhq/souk/bench/internal/harness"
)

// loadConfig is one closed-loop run against one URL.
type loadConfig struct {
	URL         string
	Concurrency int
	Warmup      time.Duration
	Duration    time.Duration
	// Want is the body every answer must carry; a different body counts as
	// a mismatch (so both servers are known to send the same bytes).
	Want []byte
}

// loadResult is what one run measured. Requests, Latencies and the
// throughput cover only answers completed inside the measured window;
// Errors, Non2xx and Mismatched cover the warm-up as well, since any of
// them makes the run suspect.
type loadResult struct {
	Requests   int
	Window     time.Duration
	Latencies  []time.Duration // sorted
	Errors     int             // transport errors
	Non2xx     int
	Mismatched int   // 2xx with a body other than Want
	Dials      int64 // TCP connections opened, warm-up included
	FirstError string
}

// RPS is the throughput over the measured window.
func (r loadResult) RPS() float64 {
	if r.Window <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Window.Seconds()
}

// Failures is every answer that was not a 2xx with the expected body.
func (r loadResult) Failures() int { return r.Errors + r.Non2xx + r.Mismatched }

// Percentile returns the q-quantile (0 < q ≤ 1) of the latencies by the
// nearest-rank method, or 0 when there are none.
func (r loadResult) Percentile(q float64) time.Duration {
	return harness.Percentile(r.Latencies, q)
}

// worker is one client's tally; merged after the run.
type worker struct {
	lat        []time.Duration
	errors     int
	non2xx     int
	mismatched int
	firstError string
}

// runLoad drives cfg.Concurrency workers in a closed loop (each sends its
// next request when the previous answer is fully read) over keep-alive
// connections of one shared transport: cfg.Warmup unrecorded, then
// cfg.Duration recorded. A request counts in the window it completes in.
func runLoad(ctx context.Context, cfg loadConfig) (loadResult, error) {
	if cfg.Concurrency < 1 {
		return loadResult{}, fmt.Errorf("concurrency %d: want at least 1", cfg.Concurrency)
	}
	if err := harness.CheckLoadTarget(cfg.URL); err != nil {
		return loadResult{}, err
	}
	var dials atomic.Int64
	tr := harness.LoopbackTransport(cfg.Concurrency, &dials)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	start := time.Now()
	measureStart := start.Add(cfg.Warmup)
	measureEnd := measureStart.Add(cfg.Duration)
	// Room for the expected number of samples without regrowing mid-run.
	workers := make([]*worker, cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{lat: make([]time.Duration, 0, 4096)}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx, client, cfg, measureStart, measureEnd)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return loadResult{}, err
	}

	res := loadResult{Window: cfg.Duration, Dials: dials.Load()}
	n := 0
	for _, w := range workers {
		n += len(w.lat)
	}
	res.Latencies = make([]time.Duration, 0, n)
	for _, w := range workers {
		res.Latencies = append(res.Latencies, w.lat...)
		res.Errors += w.errors
		res.Non2xx += w.non2xx
		res.Mismatched += w.mismatched
		if res.FirstError == "" {
			res.FirstError = w.firstError
		}
	}
	slices.Sort(res.Latencies)
	res.Requests = len(res.Latencies)
	return res, nil
}

func (w *worker) loop(ctx context.Context, client *http.Client, cfg loadConfig, measureStart, measureEnd time.Time) {
	// One request value per worker, reused once its answer is closed.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.URL, nil)
	if err != nil {
		w.errors++
		w.firstError = err.Error()
		return
	}
	var body bytes.Buffer
	body.Grow(len(cfg.Want) + 512)
	for ctx.Err() == nil {
		t0 := time.Now()
		resp, err := client.Do(req)
		ok := false
		if err == nil {
			body.Reset()
			_, err = body.ReadFrom(resp.Body)
			resp.Body.Close()
			switch {
			case err != nil:
			case resp.StatusCode < 200 || resp.StatusCode > 299:
				w.non2xx++
				w.note(fmt.Sprintf("status %d: %.200s", resp.StatusCode, body.Bytes()))
			case !bytes.Equal(body.Bytes(), cfg.Want):
				w.mismatched++
				w.note(fmt.Sprintf("body differs from the reference (%d bytes, want %d)", body.Len(), len(cfg.Want)))
			default:
				ok = true
			}
		}
		t1 := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.errors++
			w.note(err.Error())
			// Do not spin on a refused connection.
			time.Sleep(time.Millisecond)
		}
		if t1.After(measureEnd) {
			return
		}
		if ok && !t1.Before(measureStart) {
			w.lat = append(w.lat, t1.Sub(t0))
		}
	}
}

func (w *worker) note(msg string) {
	if w.firstError == "" {
		w.firstError = msg
	}
}
