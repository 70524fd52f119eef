package payments

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/apperr/apperrtest"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/money"
)

func TestAuthorizeTokens(t *testing.T) {
	runStores(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		for _, tt := range []struct {
			token, decline string
		}{
			{TokenVisa, ""},
			{TokenSlow, ""},
			{TokenDeclined, "card_declined"},
			{TokenInsufficientFunds, "insufficient_funds"},
			{"tok_unknown", "invalid_token"},
			{"pm_card_visa", "invalid_token"},
		} {
			t.Run(tt.token, func(t *testing.T) {
				key := "ord_1:" + tt.token
				p, err := f.Authorize(ctx, authReq(key, tt.token, 1999))
				if tt.decline != "" {
					wantDeclined(t, err, tt.decline)
					failed, err := f.ByKey(ctx, key)
					if err != nil || failed.Status != StatusFailed || failed.FailureCode != tt.decline || failed.ProviderRef != "" {
						t.Fatalf("ByKey after a decline = %+v, %v", failed, err)
					}
					if got := outboxTypes(t, f.Service, failed.ID); !reflect.DeepEqual(got, []string{"payment_failed"}) {
						t.Fatalf("events %v", got)
					}
					if f.tp.Effects(OpAuthorize, key) != 0 {
						t.Fatal("a declined card was authorized")
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !id.Valid(paymentPrefix, p.ID) || p.Status != StatusAuthorized || p.Provider != ProviderTest || p.ProviderRef == "" ||
					p.Amount != eur(1999) || p.Captured != eur(0) || p.Refunded != eur(0) || p.OrderID != "ord_"+key ||
					p.FailureCode != "" || p.Version != 1 || !p.CreatedAt.Equal(f.clock.Now()) {
					t.Fatalf("payment %+v", p)
				}
				if f.tp.Calls(OpAuthorize, key) != 1 || f.tp.Effects(OpAuthorize, key) != 1 {
					t.Fatalf("provider calls %d, effects %d", f.tp.Calls(OpAuthorize, key), f.tp.Effects(OpAuthorize, key))
				}
				if got := outboxTypes(t, f.Service, p.ID); !reflect.DeepEqual(got, []string{"payment_authorized"}) {
					t.Fatalf("events %v", got)
				}
			})
		}
	})
}

func TestAuthorizeValidation(t *testing.T) {
	f := MustNewSQLite(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name   string
		req    AuthorizeRequest
		fields []string
	}{
		{"empty", AuthorizeRequest{}, []string{"key", "order_id", "amount.amount", "amount.currency", "token"}},
		{"key with spaces", AuthorizeRequest{Key: "a b", OrderID: "o", Amount: eur(1), Token: TokenVisa}, []string{"key"}},
		{"zero amount", AuthorizeRequest{Key: "k", OrderID: "o", Amount: eur(0), Token: TokenVisa}, []string{"amount.amount"}},
		{"lower-case currency", AuthorizeRequest{Key: "k", OrderID: "o", Amount: money.Money{Amount: 1, Currency: "eur"}, Token: TokenVisa}, []string{"amount.currency"}},
		{"unknown provider", AuthorizeRequest{Key: "k", OrderID: "o", Amount: eur(1), Token: TokenVisa, Provider: "stripe"}, []string{"provider"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.Authorize(ctx, tt.req)
			apperrtest.Want(t, err, apperr.ValidationFailed, tt.fields...)
		})
	}
	if n := countRows(t, f.Service, `SELECT COUNT(*) FROM payment_operations`); n != 0 {
		t.Fatalf("%d operations recorded for invalid requests", n)
	}
}

func TestAuthorizeIsIdempotentByKey(t *testing.T) {
	runStores(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		first := MustAuthorize(t, f, "ord_1:authorize", 1999)
		for range 3 {
			again, err := f.Authorize(ctx, authReq("ord_1:authorize", TokenVisa, 1999))
			if err != nil || !reflect.DeepEqual(again, first) {
				t.Fatalf("replay = %+v, %v; want %+v", again, err, first)
			}
		}
		// Even with another token: the key names the operation.
		if again, err := f.Authorize(ctx, authReq("ord_1:authorize", TokenDeclined, 1999)); err != nil || again.ID != first.ID {
			t.Fatalf("replay with another token = %+v, %v", again, err)
		}
		if f.tp.Calls(OpAuthorize, "ord_1:authorize") != 1 {
			t.Fatalf("provider called %d times", f.tp.Calls(OpAuthorize, "ord_1:authorize"))
		}
		// The same key for another request is refused.
		_, err := f.Authorize(ctx, authReq("ord_1:authorize", TokenVisa, 2000))
		apperrtest.Want(t, err, apperr.IdempotencyKeyReused, "key")
		// A decline is replayed too, without asking the provider again.
		_, err = f.Authorize(ctx, authReq("ord_2:authorize", TokenInsufficientFunds, 500))
		wantDeclined(t, err, "insufficient_funds")
		_, err = f.Authorize(ctx, authReq("ord_2:authorize", TokenInsufficientFunds, 500))
		wantDeclined(t, err, "insufficient_funds")
		if f.tp.Calls(OpAuthorize, "ord_2:authorize") != 1 {
			t.Fatal("a replayed decline asked the provider again")
		}
		if n := countRows(t, f.Service, `SELECT COUNT(*) FROM payments`); n != 2 {
			t.Fatalf("%d payments, want 2", n)
		}
	})
}

func TestAuthorizeConcurrentSameKeyCallsTheProviderOnce(t *testing.T) {
	runStores(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		const n = 8
		var wg sync.WaitGroup
		got := make([]Payment, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				// tok_slow keeps the first attempt in flight while the others arrive.
				got[i], errs[i] = f.Authorize(ctx, authReq("ord_1:authorize", TokenSlow, 1999))
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("request %d: %v", i, errs[i])
			}
			if !reflect.DeepEqual(got[i], got[0]) {
				t.Fatalf("request %d got %+v, request 0 %+v", i, got[i], got[0])
			}
		}
		if c := f.tp.Calls(OpAuthorize, "ord_1:authorize"); c != 1 {
			t.Fatalf("provider called %d times for one key", c)
		}
		if e := f.tp.Total(OpAuthorize); e != 1 {
			t.Fatalf("%d authorizations, want 1", e)
		}
	})
}

// TestCrashBetweenProviderAndRecordReconciles: the process dies after the
// provider authorized and before the outcome was recorded. The key's row
// stays pending; once its lease is over, a retry asks the provider
// (Lookup), records the authorization it made, and never authorizes again.
func TestCrashBetweenProviderAndRecordReconciles(t *testing.T) {
	runStores(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		crash := errors.New("crash")
		f.afterProvider = func(Operation, string) error { return crash }
		if _, err := f.Authorize(ctx, authReq("ord_1:authorize", TokenVisa, 1999)); !errors.Is(err, crash) {
			t.Fatalf("err = %v", err)
		}
		f.afterProvider = nil
		if st := opState(t, f.Service, "ord_1:authorize"); st != OpPending {
			t.Fatalf("state %s after the crash", st)
		}
		if f.tp.Effects(OpAuthorize, "ord_1:authorize") != 1 {
			t.Fatal("the provider did not authorize before the crash")
		}

		// Within the lease, the key is held: a retry waits for it.
		short, cancel := context.WithTimeout(ctx, 500*time.Millisecond) // long enough for the reads on a loaded machine
		_, err := f.Authorize(short, authReq("ord_1:authorize", TokenVisa, 1999))
		cancel()
		apperrtest.Want(t, err, apperr.IdempotencyInFlight)

		f.clock.Advance(f.lease + time.Second)
		p, err := f.Authorize(ctx, authReq("ord_1:authorize", TokenVisa, 1999))
		if err != nil {
			t.Fatal(err)
		}
		if p.Status != StatusAuthorized || p.ProviderRef != testRef("tpi_", "ord_1:authorize") {
			t.Fatalf("payment %+v", p)
		}
		if c := f.tp.Calls(OpAuthorize, "ord_1:authorize"); c != 1 {
			t.Fatalf("provider asked to authorize %d times", c)
		}
		if c := f.tp.Calls("lookup", "ord_1:authorize"); c != 1 {
			t.Fatalf("provider looked up %d times", c)
		}
		if st := opState(t, f.Service, "ord_1:authorize"); st != OpSucceeded {
			t.Fatalf("state %s", st)
		}
	})
}

// TestCrashReconciledByByKey: the same crash, learnt by ByKey (what orders
// calls after a crash of its own) rather than by a retry.
func TestCrashReconciledByByKey(t *testing.T) {
	runStores(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		f.afterProvider = func(Operation, string) error { return errors.New("crash") }
		_, _ = f.Authorize(ctx, authReq("ord_1:authorize", TokenDeclined, 1999))
		f.afterProvider = nil
		f.clock.Advance(f.lease + time.Second)
		p, err := f.ByKey(ctx, "ord_1:authorize")
		if err != nil || p.Status != StatusFailed || p.FailureCode != "card_declined" {
			t.Fatalf("ByKey = %+v, %v", p, err)
		}
		_, err = f.Authorize(ctx, authReq("ord_1:authorize", TokenDeclined, 1999))
		wantDeclined(t, err, "card_declined")
		if f.tp.Calls(OpAuthorize, "ord_1:authorize") != 1 {
			t.Fatal("the provider was asked again")
		}
	})
}

// TestTimeoutIsUnavailableAndReconcilesAsNotAuthorized: tok_timeout never
// answers. The caller gets unavailable, the attempt is recorded unknown,
// and reconciliation learns it was not authorized.
func TestTimeoutIsUnavailableAndReconcilesAsNotAuthorized(t *testing.T) {
	runStores(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		_, err := f.Authorize(ctx, authReq("ord_1:authorize", TokenTimeout, 1999))
		apperrtest.Want(t, err, apperr.Unavailable)
		if st := opState(t, f.Service, "ord_1:authorize"); st != OpUnknown {
			t.Fatalf("state %s, want unknown", st)
		}
		if c := f.tp.Calls(OpAuthorize, "ord_1:authorize"); c != DefaultProviderMaxAttempts {
			t.Fatalf("provider called %d times, want %d (a retried idempotent call)", c, DefaultProviderMaxAttempts)
		}
		_, err = f.ByKey(ctx, "ord_1:authorize")
		apperrtest.Want(t, err, apperr.NotFound)
		if st := opState(t, f.Service, "ord_1:authorize"); st != OpAbandoned {
			t.Fatalf("state %s after reconciliation, want abandoned", st)
		}
		if n := countRows(t, f.Service, `SELECT COUNT(*) FROM payments`); n != 0 {
			t.Fatalf("%d payments recorded", n)
		}
		if f.tp.Total(OpAuthorize) != 0 {
			t.Fatal("authorized")
		}
		// The key may be tried again; it still times out, and still is unknown.
		_, err = f.Authorize(ctx, authReq("ord_1:authorize", TokenTimeout, 1999))
		apperrtest.Want(t, err, apperr.Unavailable)
	})
}

// TestRetryAfterUnknownReconcilesBeforeCalling: an attempt whose answer
// was lost (the provider authorized, then the connection dropped) is
// reconciled by the next request with the key — one authorization.
func TestRetryAfterUnknownReconcilesBeforeCalling(t *testing.T) {
	runStores(t, func(t *testing.T, f fixture) {
		ctx := context.Background()
		lost := &lossyProvider{TestProvider: f.tp}
		s := f.Service
		s.providers[ProviderTest].Provider = lost
		_, err := s.Authorize(ctx, authReq("ord_1:authorize", TokenVisa, 1999))
		apperrtest.Want(t, err, apperr.Unavailable)
		if st := opState(t, s, "ord_1:authorize"); st != OpUnknown {
			t.Fatalf("state %s", st)
		}
		p, err := s.Authorize(ctx, authReq("ord_1:authorize", TokenVisa, 1999))
		if err != nil || p.Status != StatusAuthorized {
			t.Fatalf("retry = %+v, %v", p, err)
		}
		if f.tp.Effects(OpAuthorize, "ord_1:authorize") != 1 || f.tp.Total(OpAuthorize) != 1 {
			t.Fatal("charged twice")
		}
	})
}

// lossyProvider authorizes, then loses every answer.
type lossyProvider struct{ *TestProvider }

func (p *lossyProvider) Authorize(ctx context.Context, req ProviderAuthorize) (ProviderResult, error) {
	if _, err := p.TestProvider.Authorize(ctx, req); err != nil {
		return ProviderResult{}, err
	}
	return ProviderResult{}, errors.New("connection reset by peer")
}

func TestTransientProviderFailuresAreRetried(t *testing.T) {
	f := MustNewSQLite(t)
	f.tp.FailNext(2)
	p, err := f.Authorize(context.Background(), authReq("ord_1:authorize", TokenVisa, 1999))
	if err != nil || p.Status != StatusAuthorized {
		t.Fatalf("Authorize = %+v, %v", p, err)
	}
	if c, e := f.tp.Calls(OpAuthorize, "ord_1:authorize"), f.tp.Effects(OpAuthorize, "ord_1:authorize"); c != 3 || e != 1 {
		t.Fatalf("calls %d effects %d, want 3 and 1", c, e)
	}
}

func TestByKey(t *testing.T) {
	f := MustNewSQLite(t)
	ctx := context.Background()
	p := MustAuthorize(t, f, "ord_1:authorize", 1999)
	if got, err := f.ByKey(ctx, "ord_1:authorize"); err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("ByKey = %+v, %v", got, err)
	}
	for _, key := range []string{"never-used", "", "a b"} {
		_, err := f.ByKey(ctx, key)
		apperrtest.Want(t, err, apperr.NotFound)
	}
	MustCapture(t, f, "ord_1:capture", p.ID, 1999)
	_, err := f.ByKey(ctx, "ord_1:capture") // not an authorize key
	apperrtest.Want(t, err, apperr.NotFound)
}
