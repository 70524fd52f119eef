package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soukhq/souk/bench/internal/harness"
)

// TestMain stops the shared in-process souk of the benchmarks, if one was
// started.
func TestMain(m *testing.M) {
	code := m.Run()
	closeFixture()
	os.Exit(code)
}

func ms(n ...int) []time.Duration {
	out := make([]time.Duration, len(n))
	for i, x := range n {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestFormatting(t *testing.T) {
	tests := []struct{ got, want string }{
		{fmtTriple(nil), "—"},
		{fmtTriple(ms(seq(1, 100)...)), "50.0 ms / 95.0 ms / 99.0 ms"},
		{fmtBytes(0), "n/a"},
		{fmtBytes(243 << 20), "243 MiB"},
		{fmtBytes(12 << 30), "12.0 GiB"},
		{mdCode("a|b `c`\n  d"), `a\|b 'c' d`},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.Topologies, []string{"embedded"}) || !slices.Equal(o.Levels, []int{1, 8, 32}) ||
		o.Warmup != 3*time.Second || o.Duration != 15*time.Second || !o.Fresh {
		t.Errorf("defaults: %+v", o)
	}
	o, err = parseFlags([]string{"-topology", "embedded, postgres", "-c", "2,4", "-duration", "1s", "-fresh=false"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.Topologies, []string{"embedded", "postgres"}) || !slices.Equal(o.Levels, []int{2, 4}) || o.Fresh {
		t.Errorf("parsed: %+v", o)
	}

	bad := map[string][]string{
		"unknown topology":   {"-topology", "sqlite"},
		"twice":              {"-topology", "embedded,embedded"},
		"zero VUs":           {"-c", "1,0"},
		"not a number":       {"-c", "eight"},
		"no duration":        {"-duration", "0s"},
		"one variant":        {"-variants", "1"},
		"remote database":    {"-topology", "postgres", "-postgres-url", "postgres://db.example.com/test"},
		"remote bus":         {"-topology", "postgres", "-nats-url", "nats://nats.example.com:4222"},
		"stray argument":     {"extra"},
		"negative warm-up":   {"-warmup", "-1s"},
		"no poll deadline":   {"-poll-deadline", "0s"},
		"empty topology set": {"-topology", ","},
		"binary and commit":  {"-souk", "/bin/souk", "-commit", "HEAD"},
	}
	for name, args := range bad {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%s: %q accepted", name, args)
		}
	}
	// A remote database is fine while only the embedded topology runs.
	if _, err := parseFlags([]string{"-postgres-url", "postgres://db.example.com/test"}, io.Discard); err != nil {
		t.Errorf("embedded only: %v", err)
	}
}

func TestPickVariants(t *testing.T) {
	page := `{"data":[
	  {"variants":[{"id":"a1","sku":"A1","price":{"amount":100,"currency":"EUR"},"in_stock":true},
	               {"id":"a2","sku":"A2","price":{"amount":100,"currency":"EUR"},"in_stock":true}]},
	  {"variants":[{"id":"b1","sku":"B1","price":null,"in_stock":true},
	               {"id":"b2","sku":"B2","price":{"amount":100,"currency":"EUR"},"in_stock":true}]},
	  {"variants":[{"id":"c1","sku":"C1","price":{"amount":100,"currency":"EUR"},"in_stock":false},
	               {"id":"c2","sku":"C2","price":{"amount":100,"currency":"USD"},"in_stock":true},
	               {"id":"c3","sku":"C3","price":{"amount":100,"currency":"EUR"},"in_stock":true}]}]}`
	ids := func(vs []variant) []string {
		var out []string
		for _, v := range vs {
			out = append(out, v.ID)
		}
		return out
	}
	// Round-robin: first variants of every product, then second ones, …;
	// unpriced, out-of-stock and other-currency ones are skipped.
	vs, err := pickVariants([]byte(page), 10)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(vs), []string{"a1", "a2", "b2", "c3"}; !slices.Equal(got, want) {
		t.Errorf("picked %v, want %v", got, want)
	}
	if vs, _ := pickVariants([]byte(page), 2); !slices.Equal(ids(vs), []string{"a1", "a2"}) {
		t.Errorf("n=2 picked %v", ids(vs))
	}
	for _, p := range []string{`{"data":[]}`, `{"data":[{"variants":[{"id":"a","sku":"A","price":{"amount":1,"currency":"EUR"},"in_stock":true}]}]}`, `nope`} {
		if _, err := pickVariants([]byte(p), 4); err == nil {
			t.Errorf("%s: no error", p)
		}
	}
}

func TestPlanFlowPicksTwoDifferentVariants(t *testing.T) {
	vs := []variant{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	users := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	keys := map[string]bool{}
	for n := range 300 {
		p := planFlow(users, vs, 7, n)
		if p.Items[0] == p.Items[1] {
			t.Fatalf("flow %d buys %s twice", n, p.Items[0])
		}
		seen[p.Items[0]+p.Items[1]] = true
		if keys[p.IdempotencyKey] {
			t.Fatalf("Idempotency-Key %s reused", p.IdempotencyKey)
		}
		keys[p.IdempotencyKey] = true
	}
	if len(seen) != 6 {
		t.Errorf("ordered pairs seen: %v, want all 6", seen)
	}
}

func TestWriteReport(t *testing.T) {
	block := func(s string) string { return beginMarker + "\n" + s + "\n" + endMarker + "\n" }

	t.Run("new file gets the header", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "RESULTS.md")
		if err := section.Write(path, block("first")); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, path); got != sectionHeader+block("first") {
			t.Errorf("got:\n%s", got)
		}
	})

	t.Run("another tool's file is kept, the section appended", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "RESULTS.md")
		other := "# Read path\n\n<!-- readpath:begin -->\nnumbers\n<!-- readpath:end -->\n\nprose\n\n\n"
		if err := os.WriteFile(path, []byte(other), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := section.Write(path, block("RUN-ONE")); err != nil {
			t.Fatal(err)
		}
		want := strings.TrimRight(other, "\n") + "\n\n" + sectionHeader + block("RUN-ONE")
		if got := mustRead(t, path); got != want {
			t.Errorf("got:\n%s\nwant:\n%s", got, want)
		}

		// A re-run replaces only its block; prose added around it stays.
		edited := strings.Replace(mustRead(t, path), endMarker+"\n", endMarker+"\n\n## Reading\n\nmine\n", 1)
		if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := section.Write(path, block("RUN-TWO")); err != nil {
			t.Fatal(err)
		}
		got := mustRead(t, path)
		if want := strings.Replace(edited, "RUN-ONE", "RUN-TWO", 1); got != want {
			t.Errorf("got:\n%s\nwant:\n%s", got, want)
		}
		if strings.Count(got, beginMarker) != 1 || !strings.Contains(got, "<!-- readpath:begin -->\nnumbers\n") {
			t.Errorf("markers or the other section damaged:\n%s", got)
		}
	})
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// level builds a levelResult with n completed flows of flow and checkout
// latency each, over a 10 s window.
func level(vus, n int, checkout time.Duration, errs int) *levelResult {
	l := &levelResult{Concurrency: vus, Window: 10 * time.Second, Completed: n, Errors: map[string]*errorTally{}}
	for range n {
		l.Checkout = append(l.Checkout, checkout)
		l.Flow = append(l.Flow, 3*checkout)
	}
	if errs > 0 {
		l.Errors["POST /store/carts/{id}/checkout → 409 out_of_stock"] = &errorTally{Key: "POST /store/carts/{id}/checkout → 409 out_of_stock", Count: errs, Example: "{\"code\":\"out_of_stock\"}"}
	}
	return l
}

func TestTargets(t *testing.T) {
	tests := []struct {
		name   string
		levels []*levelResult
		met    [2]bool
		meas   [2]bool
	}{
		{"both met", []*levelResult{level(8, 100, 20*time.Millisecond, 0), level(32, 3100, 40*time.Millisecond, 0)}, [2]bool{true, true}, [2]bool{true, true}},
		{"slow checkout", []*levelResult{level(8, 100, 50*time.Millisecond, 0), level(32, 3100, 40*time.Millisecond, 0)}, [2]bool{false, true}, [2]bool{true, true}},
		{"too few flows", []*levelResult{level(8, 100, 20*time.Millisecond, 0), level(32, 2990, 40*time.Millisecond, 0)}, [2]bool{true, false}, [2]bool{true, true}},
		{"fast but one error", []*levelResult{level(8, 100, 20*time.Millisecond, 0), level(32, 3100, 40*time.Millisecond, 1)}, [2]bool{true, false}, [2]bool{true, true}},
		{"nothing completed", []*levelResult{level(8, 0, 0, 5)}, [2]bool{false, false}, [2]bool{true, false}},
		{"levels not run", []*levelResult{level(1, 10, time.Millisecond, 0)}, [2]bool{false, false}, [2]bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := report{Topologies: []*topologyResult{{Name: topoEmbedded, Levels: tt.levels}}}
			got := r.targets()
			for i := range got {
				if got[i].Met != tt.met[i] || got[i].Measurable != tt.meas[i] {
					t.Errorf("target %d (%s): met %v measurable %v, want %v %v (%s)", i, got[i].Target, got[i].Met, got[i].Measurable, tt.met[i], tt.meas[i], got[i].Measured)
				}
			}
		})
	}
	// Only the embedded topology counts for the targets.
	r := report{Topologies: []*topologyResult{{Name: topoPostgres, Levels: []*levelResult{level(8, 100, time.Millisecond, 0)}}}}
	if r.targets()[0].Measurable {
		t.Error("a postgres level was taken for the embedded target")
	}
}

func TestMarkdown(t *testing.T) {
	l8 := level(8, 100, 20*time.Millisecond, 0)
	l8.Memory, l8.LoadRSS = harness.Memory{HWM: 300 << 20, RSS: 120 << 20}, 150<<20
	l8.SoukCPU, l8.ClientCPU, l8.MachineCPU = 15*time.Second, 4*time.Second, 20*time.Second
	l8.Processing, l8.UntilConfirmed = 2, ms(80, 90)
	l8.Work = &work{Transactions: 2100, Commits: 1500, Statements: 12000, Events: 700, Processed: 100, Skipped: 700}
	l8.SoukIO = &harness.IO{WriteCalls: 25000, WriteBytes: 51200 << 10}
	l8.ProbeBefore, l8.ProbeAfter = 28*time.Millisecond, 31500*time.Microsecond
	r := report{
		Command: "go run ./bench/shopper -c 8,32", Started: time.Date(2026, 11, 22, 1, 2, 0, 0, time.UTC),
		Code: "built from commit abc", Machine: harness.Machine{NumCPU: 2, GOMAXPROCS: 2, CPUModel: "CPU", Kernel: "k", GoVersion: "go"},
		Warmup: 3 * time.Second, Duration: 10 * time.Second, PollDeadline: 30 * time.Second, Fresh: true,
		Topologies: []*topologyResult{{Name: topoEmbedded, Args: []string{"serve", "--demo"}, Infra: "SQLite", Variants: 16,
			Levels: []*levelResult{l8, level(32, 2000, 60*time.Millisecond, 3)}}},
	}
	md := r.markdown()
	for _, want := range []string{
		beginMarker + "\n", "\n" + endMarker + "\n",
		"```sh\ngo run ./bench/shopper -c 8,32\n```",
		"| 8 | **10.0** | 100 | 20.0 ms / 20.0 ms / 20.0 ms | 60.0 ms / 60.0 ms / 60.0 ms | 2 (90.0 ms) | 0 | 150 MiB | 300 MiB | 120 MiB | 1.50 cores | 0.40 cores | 0.10 cores |",
		"| 32 | **200.0** | 2000 |",
		"| embedded | 8 | 150 ms | 21.0 | 15.0 | 120.0 | 7.0 | 1.0 | 7.0 | 250.0 | 512.0 | 28.0 ms / 31.5 ms |",
		"| embedded | 32 | — | — | — | — | — | — | — | — | — | — |",
		"| embedded, 8 VUs: checkout p95 under 50.0 ms | p95 20.0 ms | met |",
		"| embedded, 32 VUs: at least 300 completed flows/s with zero errors | 200.0 flows/s, 3 errors | **not met** |",
		"| embedded | 32 | POST /store/carts/{id}/checkout → 409 out_of_stock | 3 | 0 | `{\"code\":\"out_of_stock\"}` |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("missing %q in:\n%s", want, md)
		}
	}
}

func TestRedactPassword(t *testing.T) {
	tests := map[string]string{
		"-c":                                 "-c",
		"postgres://u:secret@127.0.0.1/test": "postgres://u:REDACTED@127.0.0.1/test",
		"-postgres-url=postgres://u:secret@127.0.0.1/test?sslmode=disable": "-postgres-url=postgres://u:REDACTED@127.0.0.1/test?sslmode=disable",
		"postgres://postgres@127.0.0.1:5432/test?sslmode=disable":          "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
	}
	for in, want := range tests {
		if got := redactPassword(in); got != want {
			t.Errorf("redactPassword(%q) = %q, want %q", in, got, want)
		}
	}
	if got := redactDB("postgres://u:secret@127.0.0.1:5432/souk_bench_1234?sslmode=disable"); got != "postgres://u@127.0.0.1:5432/souk_bench_<random>?sslmode=disable" {
		t.Errorf("redactDB = %q", got)
	}
}

func TestSoukEnvDropsSoukSettings(t *testing.T) {
	got := soukEnv([]string{"PATH=/bin", "SOUK_DATABASE_URL=postgres://elsewhere", "HOME=/h", "SOUK_DEMO=false"}, "SOUK_ADMIN_API_KEY=sk_x")
	if want := []string{"PATH=/bin", "HOME=/h", "SOUK_ADMIN_API_KEY=sk_x"}; !slices.Equal(got, want) {
		t.Errorf("soukEnv = %q, want %q", got, want)
	}
}

// fakeSouk answers the Store API calls of the flow the way API.md says
// souk does, and checks what the client sends. checkout decides each
// checkout's answer.
type fakeSouk struct {
	t        *testing.T
	checkout func(n int) (status int, orderStatus string)

	mu        sync.Mutex
	carts     int
	checkouts int
	keys      map[string]bool
	polls     map[string]int
}

func newFakeSouk(t *testing.T, checkout func(n int) (int, string)) *httptest.Server {
	f := &fakeSouk{t: t, checkout: checkout, keys: map[string]bool{}, polls: map[string]int{}}
	mux := http.NewServeMux()
	cart := func(next func(w http.ResponseWriter, r *http.Request, id string)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			id := r.PathValue("id")
			if r.Header.Get("X-Cart-Token") != "tok_"+id {
				problem(w, http.StatusNotFound, "not_found")
				return
			}
			next(w, r, id)
		}
	}
	mux.HandleFunc("POST /store/carts", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Currency string }
		if json.NewDecoder(r.Body).Decode(&in) != nil || in.Currency != "EUR" || r.Header.Get("Content-Type") != "application/json" {
			problem(w, http.StatusBadRequest, "validation_failed")
			return
		}
		f.mu.Lock()
		f.carts++
		id := fmt.Sprintf("cart_%d", f.carts)
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":%q,"cart_token":%q,"version":1}`, id, "tok_"+id)
	})
	mux.HandleFunc("POST /store/carts/{id}/items", cart(func(w http.ResponseWriter, r *http.Request, id string) {
		var in struct {
			VariantID string `json:"variant_id"`
			Quantity  int    `json:"quantity"`
		}
		if json.NewDecoder(r.Body).Decode(&in) != nil || in.VariantID == "" || in.Quantity != 1 {
			problem(w, http.StatusBadRequest, "validation_failed")
			return
		}
		fmt.Fprint(w, `{"id":"`+id+`"}`)
	}))
	mux.HandleFunc("PATCH /store/carts/{id}", cart(func(w http.ResponseWriter, r *http.Request, id string) {
		var in map[string]any
		if json.NewDecoder(r.Body).Decode(&in) != nil || (in["email"] == nil && in["shipping_method_id"] != "ship_std") {
			problem(w, http.StatusBadRequest, "validation_failed")
			return
		}
		fmt.Fprint(w, `{"id":"`+id+`"}`)
	}))
	mux.HandleFunc("GET /store/carts/{id}/shipping-methods", cart(func(w http.ResponseWriter, r *http.Request, id string) {
		fmt.Fprint(w, `{"data":[{"id":"ship_std","price":{"amount":495,"currency":"EUR"}},{"id":"ship_express"}]}`)
	}))
	mux.HandleFunc("POST /store/carts/{id}/checkout", cart(func(w http.ResponseWriter, r *http.Request, id string) {
		var in struct {
			Payment struct{ Provider, Token string }
		}
		key := r.Header.Get("Idempotency-Key")
		f.mu.Lock()
		reused := f.keys[key]
		f.keys[key] = true
		f.checkouts++
		n := f.checkouts
		f.mu.Unlock()
		if json.NewDecoder(r.Body).Decode(&in) != nil || in.Payment.Provider != "test" || in.Payment.Token != "tok_visa" || key == "" || reused {
			problem(w, http.StatusBadRequest, "validation_failed")
			return
		}
		status, orderStatus := f.checkout(n)
		if status >= 400 {
			problem(w, status, orderStatus)
			return
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"id":"ord_%s","status":%q}`, id, orderStatus)
	}))
	mux.HandleFunc("GET /store/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if r.Header.Get("X-Cart-Token") != "tok_"+strings.TrimPrefix(id, "ord_") {
			problem(w, http.StatusNotFound, "not_found")
			return
		}
		f.mu.Lock()
		f.polls[id]++
		n := f.polls[id]
		f.mu.Unlock()
		status := "processing"
		if n >= 2 {
			status = "confirmed"
		}
		fmt.Fprintf(w, `{"id":%q,"status":%q}`, id, status)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func problem(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"type":"about:blank","title":%q,"status":%d,"code":%q}`, http.StatusText(status), status, code)
}

func TestRunFlow(t *testing.T) {
	plan := flowPlan{Items: [2]string{"var_a", "var_b"}, Email: "x@example.com"}
	tests := []struct {
		name     string
		checkout func(int) (int, string)
		outcome  outcome
		errKey   string
	}{
		{"confirmed", func(int) (int, string) { return http.StatusCreated, "confirmed" }, outcomeConfirmed, ""},
		{"processing, then confirmed", func(int) (int, string) { return http.StatusAccepted, "processing" }, outcomeProcessing, ""},
		{"declined", func(int) (int, string) { return http.StatusPaymentRequired, "payment_declined" }, outcomeError, "POST /store/carts/{id}/checkout → 402 payment_declined"},
		{"201 but not confirmed", func(int) (int, string) { return http.StatusCreated, "pending" }, outcomeError, `POST /store/carts/{id}/checkout → 201 status "pending"`},
		{"checkout route missing", func(int) (int, string) { return http.StatusNotFound, "not_found" }, outcomeError, "POST /store/carts/{id}/checkout → 404 not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeSouk(t, tt.checkout)
			c := newClient(srv.URL, 1)
			defer c.close()
			p := plan
			p.IdempotencyKey = "k-" + tt.name
			var r flowResult
			c.runFlow(context.Background(), p, 5*time.Second, &r)
			if r.Outcome != tt.outcome {
				t.Errorf("outcome %v, want %v (err %v)", r.Outcome, tt.outcome, r.Err)
			}
			switch {
			case tt.errKey == "" && r.Err != nil:
				t.Errorf("error %v", r.Err)
			case tt.errKey != "" && (r.Err == nil || r.Err.Key() != tt.errKey):
				t.Errorf("error %v, want key %q", r.Err, tt.errKey)
			}
			if r.End.Before(r.Start) || r.Steps[stepCreateCart] <= 0 || r.Steps[stepCheckout] <= 0 {
				t.Errorf("timings not recorded: %+v", r)
			}
			if tt.outcome == outcomeProcessing && r.UntilConfirmed < r.Steps[stepCheckout] {
				t.Errorf("until confirmed %v < checkout call %v", r.UntilConfirmed, r.Steps[stepCheckout])
			}
		})
	}
}

func TestRunFlowPollDeadline(t *testing.T) {
	srv := newFakeSouk(t, func(int) (int, string) { return http.StatusAccepted, "processing" })
	c := newClient(srv.URL, 1)
	defer c.close()
	var r flowResult
	// The fake confirms on the second poll, which comes after ~30 ms.
	c.runFlow(context.Background(), flowPlan{Items: [2]string{"a", "b"}, Email: "x@example.com", IdempotencyKey: "k"}, time.Millisecond, &r)
	if r.Err == nil || r.Err.Key() != stepPoll+" → not confirmed in time" {
		t.Errorf("err = %v", r.Err)
	}
}

func TestRunLevel(t *testing.T) {
	// Every fifth checkout is answered 202, every seventh declined.
	srv := newFakeSouk(t, func(n int) (int, string) {
		switch {
		case n%7 == 0:
			return http.StatusPaymentRequired, "payment_declined"
		case n%5 == 0:
			return http.StatusAccepted, "processing"
		}
		return http.StatusCreated, "confirmed"
	})
	res, err := runLevel(context.Background(), levelConfig{
		Base: srv.URL, Concurrency: 3, Warmup: 50 * time.Millisecond, Duration: 250 * time.Millisecond,
		PollDeadline: 5 * time.Second, Variants: []variant{{ID: "a"}, {ID: "b"}, {ID: "c"}}, PID: os.Getpid(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Completed == 0 || len(res.Flow) != res.Completed || len(res.Checkout) != res.Completed || len(res.Steps[stepAddress]) != res.Completed {
		t.Errorf("completed %d, flow %d, checkout %d, address %d samples", res.Completed, len(res.Flow), len(res.Checkout), len(res.Steps[stepAddress]))
	}
	if !slices.IsSorted(res.Flow) || !slices.IsSorted(res.Checkout) {
		t.Error("latencies not sorted")
	}
	if res.Processing == 0 || len(res.UntilConfirmed) != res.Processing {
		t.Errorf("processing %d with %d latencies", res.Processing, len(res.UntilConfirmed))
	}
	declined := res.Errors["POST /store/carts/{id}/checkout → 402 payment_declined"]
	if declined == nil || declined.Count != res.ErrorCount() {
		t.Errorf("errors: %+v", res.sortedErrors())
	}
	if res.Conns < 1 || res.Conns > 6 {
		t.Errorf("%d connections for 3 users: keep-alive not working", res.Conns)
	}
	if res.LoadRSS <= 0 && harness.ReadMemory(os.Getpid()).RSS > 0 {
		t.Error("resident set not sampled")
	}
	if p := harness.Percentile(res.Checkout, 1); p > harness.Percentile(res.Flow, 1) {
		t.Errorf("slowest checkout %v > slowest flow %v", p, harness.Percentile(res.Flow, 1))
	}
}

func TestRunLevelRefusesNonLoopback(t *testing.T) {
	for _, base := range []string{"http://example.com", "http://localhost:1", "http://10.0.0.1:8080"} {
		if _, err := runLevel(context.Background(), levelConfig{Base: base, Concurrency: 1, Duration: time.Millisecond, Variants: []variant{{ID: "a"}, {ID: "b"}}}); err == nil {
			t.Errorf("%s: load allowed", base)
		}
	}
}

// TestWorkBetween: the work of a window is the difference of two scrapes;
// what souk does not export in a topology stays unknown (-1).
func TestWorkBetween(t *testing.T) {
	scrape := func(committed, deliveries int) harness.Counters {
		c, err := harness.ParseCounters(strings.NewReader(fmt.Sprintf(`# TYPE souk_store_transactions_total counter
souk_store_transactions_total{db="cart",outcome="committed"} %d
souk_store_transactions_total{db="cart",outcome="rolled_back"} 5
# TYPE souk_bus_consumer_deliveries_total counter
souk_bus_consumer_deliveries_total{consumer="a",outcome="processed"} %d
souk_bus_consumer_deliveries_total{consumer="b",outcome="skipped"} %d
`, committed, deliveries, 2*deliveries)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	w := workBetween(scrape(10, 3), scrape(31, 10))
	if w.Transactions != 21 || w.Processed != 7 || w.Skipped != 14 {
		t.Errorf("work = %+v, want 21 transactions, 7 applied, 14 declined", w)
	}
	if w.Commits != -1 || w.Events != -1 {
		t.Errorf("families souk did not export: commits %v, events %v; want -1", w.Commits, w.Events)
	}
	if got := perFlow(w.Transactions, 7); got != "3.0" {
		t.Errorf("perFlow = %s", got)
	}
}
