package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soukhq/souk/bench/internal/inprocess"
)

// The go test benchmarks are the in-process companion of the load run: the
// app and the bare handler live in the test process, so -cpuprofile and
// -memprofile see the server's work. Run them with
//
//	go test ./bench/readpath -run '^$' -bench . -benchtime 5s -cpuprofile cpu.out
//
// ns/op is wall time per request at ~benchConcurrency requests in flight;
// allocs/op counts client and server allocations together, so the souk/bare
// difference is what the read path allocates.

// benchConcurrency matches the load run's -c.
const benchConcurrency = 32

// fixture is one souk app and one bare server shared by every benchmark:
// starting souk (databases, embedded bus, demo catalogue) for each b.N
// probe would dwarf what is measured. TestMain closes it.
var fixture struct {
	once        sync.Once
	err         error
	app         *inprocess.Souk
	souk        string // base URL
	bare        *httptest.Server
	productPath string
	list        fetched
	product     fetched
	healthz     fetched
}

// mustFixture starts the shared servers on first use.
func mustFixture(tb testing.TB) {
	tb.Helper()
	fixture.once.Do(func() { fixture.err = startFixture() })
	if fixture.err != nil {
		tb.Fatal(fixture.err)
	}
}

func startFixture() error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a, err := inprocess.Start(ctx, "souk-readpath-bench-", slog.LevelError)
	if err != nil {
		return err
	}
	fixture.app, fixture.souk = a, a.URL
	if fixture.list, err = fetch(ctx, fixture.souk+"/store/products"); err != nil {
		return err
	}
	id, err := firstProductID(fixture.list.Body)
	if err != nil {
		return err
	}
	fixture.productPath = "/store/products/" + id
	if fixture.product, err = fetch(ctx, fixture.souk+fixture.productPath); err != nil {
		return err
	}
	if fixture.healthz, err = fetch(ctx, fixture.souk+"/healthz"); err != nil {
		return err
	}
	fixture.bare = httptest.NewServer(bareHandler(bareSpec{Routes: []bareRoute{
		{Path: "/store/products", ContentType: fixture.list.ContentType, Body: fixture.list.Body},
		{Path: fixture.productPath, ContentType: fixture.product.ContentType, Body: fixture.product.Body},
		{Path: "/healthz", ContentType: fixture.healthz.ContentType, Body: fixture.healthz.Body},
	}}))
	return nil
}

// closeFixture stops whatever startFixture started.
func closeFixture() {
	if fixture.bare != nil {
		fixture.bare.Close()
	}
	if fixture.app != nil {
		fixture.app.Close()
	}
}

func BenchmarkStoreProductsList(b *testing.B) {
	mustFixture(b)
	benchGet(b, fixture.souk+"/store/products", fixture.list.Body)
}

func BenchmarkStoreProduct(b *testing.B) {
	mustFixture(b)
	benchGet(b, fixture.souk+fixture.productPath, fixture.product.Body)
}

func BenchmarkBareList(b *testing.B) {
	mustFixture(b)
	benchGet(b, fixture.bare.URL+"/store/products", fixture.list.Body)
}

func BenchmarkBareProduct(b *testing.B) {
	mustFixture(b)
	benchGet(b, fixture.bare.URL+fixture.productPath, fixture.product.Body)
}

// BenchmarkSoukHealthz is the floor under any souk read path: GET /healthz
// crosses the same server, middleware chain and gateway as the catalogue but
// does almost nothing itself. Its ratio to BenchmarkBareHealthz is the most
// a cached catalogue answer could reach on this chain.
func BenchmarkSoukHealthz(b *testing.B) {
	mustFixture(b)
	benchGet(b, fixture.souk+"/healthz", fixture.healthz.Body)
}

func BenchmarkBareHealthz(b *testing.B) {
	mustFixture(b)
	benchGet(b, fixture.bare.URL+"/healthz", fixture.healthz.Body)
}

// benchGet sends GET url from benchConcurrency goroutines over keep-alive
// connections and fails the benchmark on any answer other than a 200 with
// the body want.
func benchGet(b *testing.B, url string, want []byte) {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2 * benchConcurrency, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var failures atomic.Int64
	var firstFailure sync.Once
	fail := func(format string, a ...any) {
		failures.Add(1)
		firstFailure.Do(func() { b.Errorf(format, a...) })
	}
	b.SetParallelism(max(1, (benchConcurrency+runtime.GOMAXPROCS(0)-1)/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			fail("%v", err)
			return
		}
		var body bytes.Buffer
		for pb.Next() {
			resp, err := client.Do(req)
			if err != nil {
				fail("GET %s: %v", url, err)
				continue
			}
			body.Reset()
			_, err = body.ReadFrom(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body.Bytes(), want) {
				fail("GET %s: %d, %v, %d bytes (want 200, %d bytes)", url, resp.StatusCode, err, body.Len(), len(want))
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	if n := failures.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed", n, b.N)
	}
}
