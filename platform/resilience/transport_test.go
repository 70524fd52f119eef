package resilience

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/apperr"
)

// flaky answers the statuses in turn, then 200, recording every body it got.
type flaky struct {
	mu       sync.Mutex
	statuses []int
	bodies   []string
	block    chan struct{} // when set, requests wait on it (or their context)
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.bodies = append(f.bodies, string(b))
	status := http.StatusOK
	if len(f.statuses) > 0 {
		status, f.statuses = f.statuses[0], f.statuses[1:]
	}
	f.mu.Unlock()
	if f.block != nil {
		select {
		case <-f.block:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{"status":`+http.StatusText(status)+`"}`)
}

func (f *flaky) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.bodies...)
}

// newTransportClient serves h and returns a client going through a policy
// of cfg, and the server's URL.
func newTransportClient(t *testing.T, h http.Handler, cfg Config) (*http.Client, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &http.Client{Transport: Transport(MustNew(cfg), srv.Client().Transport)}, srv.URL
}

func mustRequest(t *testing.T, method, target, body string, hdr ...string) *http.Request {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, target, r)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

func TestTransportRetriesIdempotentRequests(t *testing.T) {
	for _, tt := range []struct {
		name      string
		method    string
		body      string
		header    []string
		statuses  []int
		wantCalls int
		want      int
	}{
		{"GET after 503 and 502", http.MethodGet, "", nil, []int{503, 502}, 3, 200},
		{"GET gives up after MaxAttempts, last answer returned", http.MethodGet, "", nil, []int{503, 504, 429, 503}, 3, 429},
		{"POST with an Idempotency-Key, body replayed", http.MethodPost, `{"amount":1}`, []string{"Idempotency-Key", "k1"}, []int{503}, 2, 200},
		{"POST without a key is tried once", http.MethodPost, `{"amount":1}`, nil, []int{503}, 1, 503},
		{"500 is not retried", http.MethodGet, "", nil, []int{500}, 1, 500},
		{"404 is an answer", http.MethodGet, "", nil, []int{404}, 1, 404},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &flaky{statuses: tt.statuses}
			hc, url := newTransportClient(t, f, fast("svc"))
			resp, err := hc.Do(mustRequest(t, tt.method, url, tt.body, tt.header...))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want || !strings.Contains(string(body), "status") {
				t.Fatalf("status %d body %q, want %d", resp.StatusCode, body, tt.want)
			}
			calls := f.calls()
			if len(calls) != tt.wantCalls {
				t.Fatalf("%d calls, want %d", len(calls), tt.wantCalls)
			}
			for i, b := range calls {
				if b != tt.body {
					t.Fatalf("attempt %d sent body %q, want %q", i+1, b, tt.body)
				}
			}
		})
	}
}

func TestTransportTimeoutAndBreaker(t *testing.T) {
	f := &flaky{block: make(chan struct{})}
	defer close(f.block)
	cfg := fast("slowsvc")
	cfg.Timeout = 5 * time.Millisecond
	cfg.BreakerFailureThreshold = 2
	cfg.BreakerDelay = time.Hour
	hc, url := newTransportClient(t, f, cfg)

	_, err := hc.Do(mustRequest(t, http.MethodPost, url, `{}`))
	if !apperr.Is(err, apperr.Unavailable) || !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want unavailable timeout", err)
	}
	if n := len(f.calls()); n != 1 {
		t.Fatalf("a POST without key was sent %d times", n)
	}
	_, _ = hc.Do(mustRequest(t, http.MethodPost, url, `{}`)) // second failure opens the breaker
	_, err = hc.Do(mustRequest(t, http.MethodGet, url, ""))
	if !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("err = %v, want breaker open", err)
	}
	if n := len(f.calls()); n != 2 {
		t.Fatalf("%d calls reached the server, want 2 (the breaker stops the third)", n)
	}
}

func TestTransportRespectsTheCallersContext(t *testing.T) {
	f := &flaky{statuses: []int{503, 503, 503}}
	var n atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1); f.ServeHTTP(w, r) })
	cfg := fast("svc")
	cfg.Backoff = Backoff{Initial: time.Hour, Max: time.Hour}
	hc, url := newTransportClient(t, h, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	req := mustRequest(t, http.MethodGet, url, "").WithContext(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("status %d", resp.StatusCode)
			}
		}
	}()
	for n.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel() // during the hour-long backoff
	<-done
	if n.Load() != 1 {
		t.Fatalf("%d attempts after the caller gave up", n.Load())
	}
}
