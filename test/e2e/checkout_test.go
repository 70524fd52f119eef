package e2e_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soukhq/souk/services/notify"
	"github.com/soukhq/souk/services/notify/mailsink"
)

// readyCart fills a new anonymous cart with one unit of a variant and the
// details checkout needs; it returns the cart id and token.
func readyCart(t *testing.T, s *server, variant string) (string, string) {
	t.Helper()
	r := s.do(http.MethodPost, "/store/carts", map[string]any{"currency": "EUR", "email": "buyer@example.com"})
	wantStatus(t, r, http.StatusCreated)
	var c cartBody
	r.decode(t, &c)
	tok := []string{"X-Cart-Token", c.CartToken}
	wantStatus(t, s.do(http.MethodPost, "/store/carts/"+c.ID+"/items", map[string]any{"variant_id": variant, "quantity": 1}, tok...), http.StatusOK)
	addr := map[string]any{"first_name": "Bo", "last_name": "Buyer", "line1": "Dam 1", "city": "Amsterdam", "postal_code": "1012 JS", "country": "NL"}
	wantStatus(t, s.do(http.MethodPatch, "/store/carts/"+c.ID, map[string]any{"shipping_address": addr}, tok...), http.StatusOK)
	var methods struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	r = s.do(http.MethodGet, "/store/carts/"+c.ID+"/shipping-methods", nil, tok...)
	r.decode(t, &methods)
	if len(methods.Data) == 0 {
		t.Fatalf("no shipping method: %s", r.body)
	}
	wantStatus(t, s.do(http.MethodPatch, "/store/carts/"+c.ID, map[string]any{"shipping_method_id": methods.Data[0].ID}, tok...), http.StatusOK)
	return c.ID, c.CartToken
}

type stockLevel struct {
	Available int64 `json:"available"`
	Reserved  int64 `json:"reserved"`
	OnHand    int64 `json:"on_hand"`
}

// TestCheckoutEndToEnd is the purchase through the real server: the saga
// confirms the order, the confirmation email reaches an SMTP server and the
// subscribed webhook receives the signed event; a declined card gives its
// stock back; one Idempotency-Key sent twice at once makes one order.
func TestCheckoutEndToEnd(t *testing.T) {
	for name, topology := range topologies(t) {
		t.Run(name, func(t *testing.T) {
			sink, err := mailsink.Start("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer sink.Close()
			s := mustStart(t, append(topology(t), "--demo", "--smtp-addr", sink.Addr(), "--webhooks-allow-private")...)

			// A webhook receiver that checks the signature.
			var (
				mu       sync.Mutex
				received []string
			)
			var secret string
			hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				defer mu.Unlock()
				if err := notify.VerifySignature(secret, r.Header.Get("Souk-Signature"), body, 5*time.Minute, time.Now()); err != nil {
					t.Errorf("webhook signature: %v", err)
					w.WriteHeader(http.StatusBadRequest)
					return
				}
				received = append(received, string(body))
			}))
			defer hook.Close()
			r := s.admin(http.MethodPost, "/admin/webhooks", map[string]any{"url": hook.URL, "event_types": []string{"souk.orders.order_confirmed.v1"}})
			wantStatus(t, r, http.StatusCreated)
			var wh struct {
				Secret string `json:"secret"`
			}
			r.decode(t, &wh)
			mu.Lock()
			secret = wh.Secret
			mu.Unlock()

			var page struct {
				Data []struct {
					Variants []struct {
						ID      string `json:"id"`
						SKU     string `json:"sku"`
						Price   *money `json:"price"`
						InStock *bool  `json:"in_stock"`
					} `json:"variants"`
				} `json:"data"`
			}
			s.do(http.MethodGet, "/store/products?currency=EUR&limit=100", nil).decode(t, &page)
			var variant, sku string
			for _, p := range page.Data {
				if v := p.Variants[0]; v.Price != nil && v.InStock != nil && *v.InStock {
					variant, sku = v.ID, v.SKU
					break
				}
			}
			stock := func() stockLevel {
				var l stockLevel
				s.admin(http.MethodGet, "/admin/inventory/"+sku, nil).decode(t, &l)
				return l
			}
			before := stock()

			// A declined card: 402, the stock back where it was.
			id, tok := readyCart(t, s, variant)
			r = s.do(http.MethodPost, "/store/carts/"+id+"/checkout", map[string]any{"payment": map[string]any{"provider": "test", "token": "tok_declined"}}, "X-Cart-Token", tok, "Idempotency-Key", "declined-1")
			if r.StatusCode != http.StatusPaymentRequired || r.problemCode(t) != "payment_declined" {
				t.Fatalf("declined checkout: %d %s", r.StatusCode, r.body)
			}
			if after := stock(); after != before {
				t.Fatalf("stock after a declined checkout %+v, before %+v", after, before)
			}

			// The same cart, a good card, the same key sent twice at once:
			// one order, one sale.
			var wg sync.WaitGroup
			answers := make([]response, 2)
			for i := range answers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					answers[i] = s.do(http.MethodPost, "/store/carts/"+id+"/checkout", map[string]any{"payment": map[string]any{"provider": "test", "token": "tok_visa"}}, "X-Cart-Token", tok, "Idempotency-Key", "good-1")
				}()
			}
			wg.Wait()
			var order struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			}
			for _, a := range answers {
				if a.StatusCode == http.StatusCreated {
					a.decode(t, &order)
				} else if a.StatusCode != http.StatusConflict { // 409: the twin still ran
					t.Fatalf("checkout: %d %s", a.StatusCode, a.body)
				}
			}
			if order.ID == "" {
				// both collided in flight: the retry returns the first answer
				r = s.do(http.MethodPost, "/store/carts/"+id+"/checkout", map[string]any{"payment": map[string]any{"provider": "test", "token": "tok_visa"}}, "X-Cart-Token", tok, "Idempotency-Key", "good-1")
				wantStatus(t, r, http.StatusCreated)
				r.decode(t, &order)
			}
			if order.Status != "confirmed" {
				t.Fatalf("order = %+v", order)
			}
			replay := s.do(http.MethodPost, "/store/carts/"+id+"/checkout", map[string]any{"payment": map[string]any{"provider": "test", "token": "tok_visa"}}, "X-Cart-Token", tok, "Idempotency-Key", "good-1")
			if !strings.Contains(string(replay.body), order.ID) {
				t.Fatalf("retry made another answer: %s", replay.body)
			}
			if after := stock(); after.OnHand != before.OnHand-1 || after.Reserved != before.Reserved {
				t.Fatalf("stock after one sale %+v, before %+v", after, before)
			}
			var pays struct {
				Data []struct {
					Captured money `json:"captured"`
				} `json:"data"`
			}
			s.admin(http.MethodGet, "/admin/payments?order_id="+order.ID, nil).decode(t, &pays)
			captured := 0
			for _, p := range pays.Data {
				if p.Captured.Amount > 0 {
					captured++
				}
			}
			if captured != 1 {
				t.Fatalf("%d captured payments for one order: %+v", captured, pays.Data)
			}

			// The shopper sees the order with the cart token; staff see the saga.
			wantStatus(t, s.do(http.MethodGet, "/store/orders/"+order.ID, nil, "X-Cart-Token", tok), http.StatusOK)
			if r := s.do(http.MethodGet, "/store/orders/"+order.ID, nil); r.StatusCode != http.StatusNotFound {
				t.Fatalf("order without credentials: %d", r.StatusCode)
			}
			var view struct {
				Saga struct {
					Steps []struct {
						Step    string `json:"step"`
						Outcome string `json:"outcome"`
					} `json:"steps"`
				} `json:"saga"`
			}
			r = s.admin(http.MethodGet, "/admin/orders/"+order.ID, nil)
			wantStatus(t, r, http.StatusOK)
			r.decode(t, &view)
			if len(view.Saga.Steps) < 4 {
				t.Fatalf("saga history: %s", r.body)
			}

			// One email and one webhook delivery for the confirmation.
			deadline := time.Now().Add(30 * time.Second)
			for {
				mails := 0
				for _, m := range sink.Messages() {
					if strings.Contains(m.Subject, order.ID) {
						mails++
					}
				}
				mu.Lock()
				hooks := 0
				for _, b := range received {
					if strings.Contains(b, order.ID) {
						hooks++
					}
				}
				mu.Unlock()
				if mails == 1 && hooks == 1 {
					break
				}
				if mails > 1 || hooks > 1 || time.Now().After(deadline) {
					t.Fatalf("for order %s: %d emails and %d webhook deliveries, want 1 and 1", order.ID, mails, hooks)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}
