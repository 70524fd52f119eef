package payments

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v84"

	"github.com/soukhq/souk/platform/apperr/apperrtest"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/resilience"
)

// stripeMockInstall is how to get the stripe-mock binary the Stripe tests
// talk to.
const stripeMockInstall = "GOFLAGS= go install github.com/stripe/stripe-mock@v0.203.0"

// MustStartStripeMock starts stripe-mock on free loopback ports and returns
// its HTTP base URL; it is stopped when the test ends. The test is
// skipped, saying how to install it, when the binary is not found
// ($SOUK_STRIPE_MOCK, then $PATH, then $(go env GOPATH)/bin).
func MustStartStripeMock(t *testing.T) string {
	t.Helper()
	bin := stripeMockBinary()
	if bin == "" {
		t.Skipf("stripe-mock not installed; install it with: %s", stripeMockInstall)
	}
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:", "-https-addr", "127.0.0.1:")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "Listening for HTTP at address: "); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		return "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatal("stripe-mock did not say where it listens within 30s")
	}
	return ""
}

func stripeMockBinary() string {
	if p := os.Getenv("SOUK_STRIPE_MOCK"); p != "" {
		return p
	}
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	p := filepath.Join(gopath, "bin", "stripe-mock")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// recorder keeps every request and response that passes through it.
type recorder struct {
	mu        sync.Mutex
	exchanges []exchange
	next      http.RoundTripper
}

type exchange struct {
	method, path string
	header       http.Header
	form         url.Values
	status       int
	body         string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var form url.Values
	if req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(strings.NewReader(string(b)))
		form, _ = url.ParseQuery(string(b))
	}
	if req.URL.RawQuery != "" {
		form, _ = url.ParseQuery(req.URL.RawQuery)
	}
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(strings.NewReader(string(b)))
	r.mu.Lock()
	r.exchanges = append(r.exchanges, exchange{req.Method, req.URL.Path, req.Header.Clone(), form, resp.StatusCode, string(b)})
	r.mu.Unlock()
	return resp, nil
}

func (r *recorder) last(t testing.TB) exchange {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.exchanges) == 0 {
		t.Fatal("no request was made")
	}
	return r.exchanges[len(r.exchanges)-1]
}

// wantForm fails unless the exchange's form holds every name=value.
func wantForm(t testing.TB, ex exchange, kv ...string) {
	t.Helper()
	for i := 0; i+1 < len(kv); i += 2 {
		if got := ex.form.Get(kv[i]); got != kv[i+1] {
			t.Errorf("%s %s: %s = %q, want %q (form %v)", ex.method, ex.path, kv[i], got, kv[i+1], ex.form)
		}
	}
}

// TestStripeAgainstStripeMock: the adapter's requests are well-formed for
// Stripe's API (stripe-mock validates them against Stripe's OpenAPI spec
// and answers 400 otherwise), carry the operation's key as Idempotency-Key,
// and the answers are mapped. stripe-mock is stateless (its answers are
// fixtures), so what is checked is the exchange, not the state.
func TestStripeAgainstStripeMock(t *testing.T) {
	base := MustStartStripeMock(t)
	rec := &recorder{next: http.DefaultTransport}
	p := NewStripeProvider("sk_test_123", base, &http.Client{Transport: rec, Timeout: 10 * time.Second})
	ctx := context.Background()

	res, err := p.Authorize(ctx, ProviderAuthorize{Key: "ord_1:authorize", PaymentID: "pay_1", OrderID: "ord_1",
		Amount: money.New(1999, "EUR"), Token: "pm_card_visa", Email: "ada@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	ex := rec.last(t)
	if ex.method != http.MethodPost || ex.path != "/v1/payment_intents" || ex.status != http.StatusOK {
		t.Fatalf("authorize: %s %s → %d\n%s", ex.method, ex.path, ex.status, ex.body)
	}
	if got := ex.header.Get("Idempotency-Key"); got != "ord_1:authorize" {
		t.Fatalf("Idempotency-Key %q", got)
	}
	if !strings.HasPrefix(ex.header.Get("Authorization"), "Bearer sk_test_123") {
		t.Fatalf("Authorization %q", ex.header.Get("Authorization"))
	}
	wantForm(t, ex, "amount", "1999", "currency", "eur", "capture_method", "manual", "confirm", "true",
		"error_on_requires_action", "true", "payment_method", "pm_card_visa", "payment_method_types[0]", "card",
		"receipt_email", "ada@example.com", "metadata[souk_key]", "ord_1:authorize", "metadata[souk_order_id]", "ord_1",
		"metadata[souk_payment_id]", "pay_1")
	if !strings.HasPrefix(res.Ref, "pi_") || !strings.Contains(ex.body, res.Ref) {
		t.Fatalf("Ref %q not the PaymentIntent's id", res.Ref)
	}
	// stripe-mock's fixture is a requires_payment_method intent: a decline.
	if !res.Declined() {
		t.Fatalf("fixture status mapped to %+v", res)
	}

	ref := "pi_123"
	res, err = p.Capture(ctx, ProviderCapture{Key: "ord_1:capture", Ref: ref, Amount: money.New(1500, "EUR")})
	ex = rec.last(t)
	if err != nil || ex.path != "/v1/payment_intents/"+ref+"/capture" || ex.status != http.StatusOK || res.Ref == "" || res.Declined() {
		t.Fatalf("capture: %+v, %v; %s → %d\n%s", res, err, ex.path, ex.status, ex.body)
	}
	wantForm(t, ex, "amount_to_capture", "1500")
	if ex.header.Get("Idempotency-Key") != "ord_1:capture" {
		t.Fatal("capture without its key")
	}

	res, err = p.Void(ctx, ProviderVoid{Key: "ord_1:void", Ref: ref})
	ex = rec.last(t)
	if err != nil || ex.path != "/v1/payment_intents/"+ref+"/cancel" || ex.status != http.StatusOK || res.Declined() {
		t.Fatalf("void: %+v, %v; %s → %d\n%s", res, err, ex.path, ex.status, ex.body)
	}
	wantForm(t, ex, "cancellation_reason", "abandoned")
	if ex.header.Get("Idempotency-Key") != "ord_1:void" {
		t.Fatal("void without its key")
	}

	res, err = p.Refund(ctx, ProviderRefund{Key: "ord_1:refund", Ref: ref, Amount: money.New(500, "EUR")})
	ex = rec.last(t)
	if err != nil || ex.path != "/v1/refunds" || ex.status != http.StatusOK || !strings.HasPrefix(res.OpRef, "re_") || res.Ref != ref {
		t.Fatalf("refund: %+v, %v; %s → %d\n%s", res, err, ex.path, ex.status, ex.body)
	}
	wantForm(t, ex, "payment_intent", ref, "amount", "500", "metadata[souk_key]", "ord_1:refund")
	if ex.header.Get("Idempotency-Key") != "ord_1:refund" {
		t.Fatal("refund without its key")
	}

	// Lookups: well-formed reads; the fixtures carry none of our keys.
	for _, lk := range []ProviderLookup{
		{Op: OpAuthorize, Key: "ord_1:authorize"},
		{Op: OpCapture, Key: "ord_1:capture", Ref: ref},
		{Op: OpVoid, Key: "ord_1:void", Ref: ref},
		{Op: OpRefund, Key: "ord_1:refund", Ref: ref},
	} {
		_, err := p.Lookup(ctx, lk)
		ex := rec.last(t)
		if ex.method != http.MethodGet || ex.status != http.StatusOK {
			t.Fatalf("lookup %s: %s %s → %d\n%s", lk.Op, ex.method, ex.path, ex.status, ex.body)
		}
		if lk.Op != OpCapture && !errors.Is(err, ErrNoRecord) {
			t.Fatalf("lookup %s: %v, want ErrNoRecord", lk.Op, err)
		}
	}
	wantForm(t, rec.exchanges[len(rec.exchanges)-4], "query", "metadata['souk_key']:'ord_1:authorize'")
}

// TestStripeBehindTheService: payments with Stripe as its provider runs a
// whole authorization through stripe-mock (whose fixture declines), with
// the decline recorded, and the HTTP traffic bounded by the policy.
func TestStripeBehindTheService(t *testing.T) {
	base := MustStartStripeMock(t)
	f := MustNewSQLiteWith(t, Config{Primary: ProviderStripe, StripeAPIKey: "sk_test_123", StripeBaseURL: base, Timeout: 10 * time.Second})
	_, err := f.Authorize(context.Background(), AuthorizeRequest{Key: "ord_1:authorize", OrderID: "ord_1", Amount: eur(1999), Token: "pm_card_visa"})
	apperrtest.Want(t, err, CodeDeclined)
	p, err := f.ByKey(context.Background(), "ord_1:authorize")
	if err != nil || p.Provider != ProviderStripe || p.Status != StatusFailed {
		t.Fatalf("ByKey = %+v, %v", p, err)
	}
}

// TestStripeErrorMapping: Stripe's error answers, as the official client
// parses them, become declines, retryable failures or unknown outcomes.
func TestStripeErrorMapping(t *testing.T) {
	for _, tt := range []struct {
		name      string
		status    int
		body      string
		decline   string
		retryable bool
	}{
		{"card declined", 402, `{"error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds", "message": "no"}}`, "insufficient_funds", false},
		{"card error without a decline code", 402, `{"error": {"type": "card_error", "code": "expired_card", "message": "no"}}`, "expired_card", false},
		{"invalid payment method", 400, `{"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "no such pm"}}`, "resource_missing", false},
		{"rate limited", 429, `{"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "slow"}}`, "", true},
		{"idempotent request in flight", 409, `{"error": {"type": "invalid_request_error", "code": "idempotency_key_in_use", "message": "busy"}}`, "", true},
		{"stripe failed", 500, `{"error": {"type": "api_error", "message": "oops"}}`, "", true},
		{"bad key", 401, `{"error": {"type": "invalid_request_error", "message": "Invalid API Key"}}`, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			p := NewStripeProvider("sk_test_123", srv.URL, srv.Client())
			res, err := p.Authorize(context.Background(), ProviderAuthorize{Key: "k", Amount: money.New(100, "EUR"), Token: "pm_x"})
			switch {
			case tt.decline != "":
				if err != nil || res.DeclineCode != tt.decline {
					t.Fatalf("= %+v, %v; want decline %s", res, err, tt.decline)
				}
			case err == nil:
				t.Fatalf("= %+v, want an error", res)
			case resilience.Retryable(err) != tt.retryable:
				t.Fatalf("err %v: retryable %v, want %v", err, resilience.Retryable(err), tt.retryable)
			}
		})
	}
	// A connection that fails is retryable.
	p := NewStripeProvider("sk_test_123", "http://127.0.0.1:1", nil)
	if _, err := p.Void(context.Background(), ProviderVoid{Key: "k", Ref: "pi_1"}); !resilience.Retryable(err) {
		t.Fatalf("connection refused: %v", err)
	}
}

// TestStripeIntentMapping maps every PaymentIntent status after
// confirmation.
func TestStripeIntentMapping(t *testing.T) {
	for status, decline := range map[stripe.PaymentIntentStatus]string{
		stripe.PaymentIntentStatusRequiresCapture:       "",
		stripe.PaymentIntentStatusSucceeded:             "",
		stripe.PaymentIntentStatusProcessing:            "",
		stripe.PaymentIntentStatusRequiresAction:        "authentication_required",
		stripe.PaymentIntentStatusRequiresPaymentMethod: "card_declined",
		stripe.PaymentIntentStatusCanceled:              "card_declined",
	} {
		r := intentResult(&stripe.PaymentIntent{ID: "pi_1", Status: status})
		if r.Ref != "pi_1" || r.DeclineCode != decline {
			t.Errorf("%s → %+v, want decline %q", status, r, decline)
		}
	}
	r := intentResult(&stripe.PaymentIntent{ID: "pi_1", Status: stripe.PaymentIntentStatusRequiresPaymentMethod,
		LastPaymentError: &stripe.Error{Type: stripe.ErrorTypeCard, DeclineCode: "stolen_card"}})
	if r.DeclineCode != "stolen_card" {
		t.Errorf("last payment error → %+v", r)
	}
	if got := refundResult("pi_1", &stripe.Refund{ID: "re_1", Status: stripe.RefundStatusFailed}); got.DeclineCode != "refund_failed" {
		t.Errorf("failed refund → %+v", got)
	}
	if got := refundResult("pi_1", &stripe.Refund{ID: "re_1", Status: stripe.RefundStatusPending}); got.Declined() || got.OpRef != "re_1" {
		t.Errorf("pending refund → %+v", got)
	}
}
