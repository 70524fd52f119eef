package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soukhq/souk/bench/internal/harness"
	"github.com/soukhq/souk/bench/internal/inprocess"
	"github.com/soukhq/souk/services/notify/mailsink"
)

// The go test benchmarks are the in-process companion of the load run: the
// embedded app lives in the test process, so -cpuprofile, -memprofile and
// -mutexprofile see souk's work for the very flow the load run drives.
// Run them with
//
//	go test ./bench/shopper -run '^$' -bench 'ShopperFlow/vus=8' -benchtime 2000x -cpuprofile cpu.out
//
// One op is one whole flow (7 calls). ns/op is wall time per flow with vus
// flows in flight; allocs/op counts client and server together. The
// checkout's own latency is reported as checkout-p50-ms and checkout-p95-ms.

// fixture is one souk app shared by every benchmark: starting it
// (databases, embedded bus, demo catalogue) for each b.N probe would dwarf
// what is measured. TestMain closes it.
var fixture struct {
	once     sync.Once
	err      error
	app      *inprocess.Souk
	mail     *mailsink.Sink
	base     string
	variants []variant
}

// mustFixture starts the shared app on first use.
func mustFixture(tb testing.TB) {
	tb.Helper()
	fixture.once.Do(func() { fixture.err = startFixture() })
	if fixture.err != nil {
		tb.Fatal(fixture.err)
	}
}

func startFixture() error {
	adminKey := "sk_bench_" + randomSuffix(20)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	// The confirmations go to a mail sink, as in the load run: without one
	// every e-mail would fail to connect and be retried.
	mail, err := mailsink.Start("127.0.0.1:0", mailsink.WithMaxMessages(16))
	if err != nil {
		return fmt.Errorf("start the mail sink: %w", err)
	}
	fixture.mail = mail
	a, err := inprocess.Start(ctx, "souk-shopper-bench-", slog.LevelWarn, "--admin-api-key", adminKey, "--smtp-addr", mail.Addr())
	if err != nil {
		return err
	}
	fixture.app, fixture.base = a, a.URL
	c := newClient(fixture.base, 4)
	defer c.close()
	fixture.variants, err = c.prepareCatalogue(ctx, adminKey, 16)
	return err
}

// closeFixture stops whatever startFixture started.
func closeFixture() {
	if fixture.app != nil {
		fixture.app.Close()
	}
	if fixture.mail != nil {
		_ = fixture.mail.Close()
	}
}

// BenchmarkShopperFlow runs whole flows (cart → 2 items → address →
// shipping → checkout) against the in-process app with 1, 8 and 32 flows in
// flight. Any flow that does not end 201 confirmed fails the benchmark.
func BenchmarkShopperFlow(b *testing.B) {
	for _, vus := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("vus=%d", vus), func(b *testing.B) {
			mustFixture(b)
			benchFlows(b, vus)
		})
	}
}

func benchFlows(b *testing.B, vus int) {
	c := newClient(fixture.base, vus)
	defer c.close()
	var (
		mu        sync.Mutex
		checkouts []time.Duration
		failures  atomic.Int64
		first     sync.Once
		users     atomic.Int64
	)
	flows := func(next func() bool) {
		id := int(users.Add(1))
		rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
		var r flowResult
		var mine []time.Duration
		for n := 0; next(); n++ {
			c.runFlow(context.Background(), planFlow(rng, fixture.variants, id, n), 30*time.Second, &r)
			if r.Err != nil || r.Outcome != outcomeConfirmed {
				failures.Add(1)
				first.Do(func() { b.Errorf("flow: outcome %d, %v", r.Outcome, r.Err) })
				continue
			}
			mine = append(mine, r.Steps[stepCheckout])
		}
		mu.Lock()
		checkouts = append(checkouts, mine...)
		mu.Unlock()
	}
	b.ReportAllocs()
	b.ResetTimer()
	if vus == 1 {
		i := 0
		flows(func() bool { i++; return i <= b.N })
	} else {
		b.SetParallelism(max(1, (vus+runtime.GOMAXPROCS(0)-1)/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) { flows(pb.Next) })
	}
	b.StopTimer()
	slices.Sort(checkouts)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
	b.ReportMetric(float64(harness.Percentile(checkouts, 0.50))/float64(time.Millisecond), "checkout-p50-ms")
	b.ReportMetric(float64(harness.Percentile(checkouts, 0.95))/float64(time.Millisecond), "checkout-p95-ms")
	if n := failures.Load(); n > 0 {
		b.Fatalf("%d of %d flows failed", n, b.N)
	}
}
