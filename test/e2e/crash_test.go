package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crashKey is the admin key the crash test's processes share.
const crashKey = "sk_e2e_crash_0123456789abcdef0123456789abcdef"

// node is one incarnation of the souk binary on a fixed address.
type node struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startNode(t *testing.T, bin, addr, dataDir string, logs io.Writer) *node {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--demo", "--addr", addr, "--data-dir", dataDir,
		"--smtp-addr", "127.0.0.1:1", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "SOUK_ADMIN_API_KEY="+crashKey)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &node{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(n.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return n
			}
		}
		select {
		case <-n.done:
			t.Fatalf("souk exited during start-up")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("souk did not become ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (n *node) kill() {
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// client is a tiny JSON client that retries while the server is down.
type client struct {
	base string
	hc   *http.Client
}

type reply struct {
	code int
	body []byte
}

// call sends one request; a transport error (the server was killed) is
// retried with the very same request — for POSTs with the same
// Idempotency-Key — until an answer comes or ctx ends.
func (c *client) call(ctx context.Context, method, path string, body any, headers ...string) (reply, error) {
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	for {
		req, _ := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(raw))
		if raw != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := c.hc.Do(req)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			// 409 idempotency_key_in_use: the first attempt is still running.
			if rerr == nil && !(resp.StatusCode == http.StatusConflict && bytes.Contains(b, []byte("idempotency_key_in_use"))) {
				return reply{resp.StatusCode, b}, nil
			}
		}
		select {
		case <-ctx.Done():
			return reply{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *client) admin(ctx context.Context, method, path string, body any, headers ...string) (reply, error) {
	return c.call(ctx, method, path, body, append([]string{"Authorization", "Bearer " + crashKey}, headers...)...)
}

var orderID = regexp.MustCompile(`ord_[0-9A-HJKMNP-TV-Z]{26}`)

// TestCrashUnderCheckoutLoad is guarantee 2: the real binary under checkout
// load is killed with SIGKILL at random moments, several times, and
// restarted on the same data. Afterwards every order the API acknowledged
// ends confirmed or cancelled, stock is conserved per SKU (initial on hand =
// available + reserved + sold), no order was captured twice, and the voucher
// was never redeemed beyond its limit.
func TestCrashUnderCheckoutLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it repeatedly")
	}
	bin, err := mustBuild()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dataDir := t.TempDir()
	logs := &syncBuffer{}
	defer func() {
		if t.Failed() {
			t.Logf("souk logs:\n%s", logs.String())
		}
	}()
	n := startNode(t, bin, addr, dataDir, logs)
	defer func() { n.kill() }()

	c := &client{base: "http://" + addr, hc: &http.Client{Timeout: 10 * time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// Two SKUs with a known stock: 25 on hand each, at one location.
	var page struct {
		Data []struct {
			Variants []struct {
				ID    string `json:"id"`
				SKU   string `json:"sku"`
				Price *money `json:"price"`
			} `json:"variants"`
		} `json:"data"`
	}
	r, err := c.call(ctx, http.MethodGet, "/store/products?limit=100&currency=EUR", nil)
	if err != nil || json.Unmarshal(r.body, &page) != nil {
		t.Fatalf("products: %v %s", err, r.body)
	}
	type sku struct{ variant, sku string }
	var skus []sku
	for _, p := range page.Data {
		if len(skus) == 2 {
			break
		}
		if v := p.Variants[0]; v.Price != nil {
			skus = append(skus, sku{v.ID, v.SKU})
		}
	}
	initial := map[string]int64{}
	for _, s := range skus {
		var item struct {
			Levels []struct {
				LocationID string `json:"location_id"`
			} `json:"levels"`
		}
		r, _ := c.admin(ctx, http.MethodGet, "/admin/inventory/"+s.sku, nil)
		if json.Unmarshal(r.body, &item) != nil || len(item.Levels) == 0 {
			t.Fatalf("inventory of %s: %s", s.sku, r.body)
		}
		for i, l := range item.Levels {
			onHand := 0
			if i == 0 {
				onHand = 25
			}
			if r, _ := c.admin(ctx, http.MethodPut, "/admin/inventory/"+s.sku+"/levels/"+l.LocationID, map[string]any{"on_hand": onHand}); r.code != 200 {
				t.Fatalf("set stock: %d %s", r.code, r.body)
			}
		}
		initial[s.sku] = 25
	}
	// A voucher with a total limit of 3.
	r, _ = c.admin(ctx, http.MethodPost, "/admin/promotions", map[string]any{
		"name": "Crash 5", "type": "percentage", "value": 5, "target": "order",
		"codes": []string{"CRASH5"}, "usage_limit": 3, "combinable": true,
	})
	var promo struct {
		ID string `json:"id"`
	}
	if r.code != http.StatusCreated || json.Unmarshal(r.body, &promo) != nil {
		t.Fatalf("create voucher: %d %s", r.code, r.body)
	}

	// Shoppers: each flow ends in a checkout, retried with the same
	// Idempotency-Key across crashes; every order id answered is recorded.
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	shopper := func(w int) {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s := skus[rand.IntN(len(skus))]
			r, err := c.call(ctx, http.MethodPost, "/store/carts", map[string]any{"currency": "EUR", "email": fmt.Sprintf("shopper%d.%d@example.com", w, i)})
			if err != nil {
				return
			}
			var cart cartBody
			if r.code != http.StatusCreated || json.Unmarshal(r.body, &cart) != nil {
				continue // a cart created just before a crash may answer oddly; start again
			}
			tok := []string{"X-Cart-Token", cart.CartToken}
			c.call(ctx, http.MethodPost, "/store/carts/"+cart.ID+"/items", map[string]any{"variant_id": s.variant, "quantity": 1 + rand.IntN(2)}, tok...)
			c.call(ctx, http.MethodPatch, "/store/carts/"+cart.ID, map[string]any{"shipping_address": map[string]any{
				"first_name": "C", "last_name": "Rash", "line1": "Dam 1", "city": "Amsterdam", "postal_code": "1012 JS", "country": "NL"}}, tok...)
			var methods struct {
				Data []struct {
					ID string `json:"id"`
				} `json:"data"`
			}
			r, _ = c.call(ctx, http.MethodGet, "/store/carts/"+cart.ID+"/shipping-methods", nil, tok...)
			if json.Unmarshal(r.body, &methods) != nil || len(methods.Data) == 0 {
				continue
			}
			c.call(ctx, http.MethodPatch, "/store/carts/"+cart.ID, map[string]any{"shipping_method_id": methods.Data[0].ID}, tok...)
			if rand.IntN(3) == 0 {
				c.call(ctx, http.MethodPost, "/store/carts/"+cart.ID+"/discount-codes", map[string]any{"code": "CRASH5"}, tok...)
			}
			r, err = c.call(ctx, http.MethodPost, "/store/carts/"+cart.ID+"/checkout",
				map[string]any{"payment": map[string]any{"provider": "test", "token": "tok_visa"}},
				append(tok, "Idempotency-Key", fmt.Sprintf("crash-%d-%d", w, i))...)
			if err != nil {
				return
			}
			if id := orderID.Find(r.body); id != nil && r.code < 500 {
				mu.Lock()
				acked[string(id)] = true
				mu.Unlock()
			}
		}
	}
	for w := range 6 {
		wg.Add(1)
		go shopper(w)
	}

	// Kill and restart three times, at random moments.
	for range 3 {
		time.Sleep(time.Duration(400+rand.IntN(1200)) * time.Millisecond)
		n.kill()
		n = startNode(t, bin, addr, dataDir, logs)
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	mu.Lock()
	ackedIDs := make([]string, 0, len(acked))
	for id := range acked {
		ackedIDs = append(ackedIDs, id)
	}
	mu.Unlock()
	if len(ackedIDs) < 10 {
		t.Fatalf("only %d orders were acknowledged: the load did not run", len(ackedIDs))
	}

	// Every acknowledged order reaches a final state.
	type orderView struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Total  money  `json:"total"`
		Items  []struct {
			SKU      string `json:"sku"`
			Quantity int64  `json:"quantity"`
		} `json:"items"`
		DiscountCodes []string `json:"discount_codes"`
		Payment       struct {
			Captured money `json:"captured"`
		} `json:"payment"`
	}
	final := func(s string) bool { return s == "confirmed" || s == "cancelled" }
	for _, id := range ackedIDs {
		for {
			r, _ := c.admin(ctx, http.MethodGet, "/admin/orders/"+id, nil)
			var o orderView
			if r.code == 200 && json.Unmarshal(r.body, &o) == nil && final(o.Status) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("acknowledged order %s never finished: %d %s", id, r.code, r.body)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// Let every saga of the store finish (orders never acknowledged too),
	// then read all orders.
	var all []orderView
	for {
		all = all[:0]
		cursor, pending := "", 0
		for {
			path := "/admin/orders?limit=100"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			r, _ := c.admin(ctx, http.MethodGet, path, nil)
			var pg struct {
				Data       []orderView `json:"data"`
				NextCursor *string     `json:"next_cursor"`
			}
			if json.Unmarshal(r.body, &pg) != nil {
				t.Fatalf("list orders: %s", r.body)
			}
			for _, o := range pg.Data {
				if !final(o.Status) {
					pending++
				}
			}
			all = append(all, pg.Data...)
			if pg.NextCursor == nil {
				break
			}
			cursor = *pg.NextCursor
		}
		if pending == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d orders never finished", pending)
		}
		time.Sleep(300 * time.Millisecond)
	}

	// Stock is conserved, per SKU.
	sold := map[string]int64{}
	confirmed, voucherUses := 0, 0
	for _, o := range all {
		if o.Status != "confirmed" {
			continue
		}
		confirmed++
		for _, it := range o.Items {
			sold[it.SKU] += it.Quantity
		}
		for _, code := range o.DiscountCodes {
			if strings.EqualFold(code, "CRASH5") {
				voucherUses++
			}
		}
	}
	for _, s := range skus {
		var item struct {
			OnHand, Reserved, Available int64
		}
		r, _ := c.admin(ctx, http.MethodGet, "/admin/inventory/"+s.sku, nil)
		var raw struct {
			OnHand    int64 `json:"on_hand"`
			Reserved  int64 `json:"reserved"`
			Available int64 `json:"available"`
		}
		if json.Unmarshal(r.body, &raw) != nil {
			t.Fatalf("inventory: %s", r.body)
		}
		item.OnHand, item.Reserved, item.Available = raw.OnHand, raw.Reserved, raw.Available
		if item.Available+item.Reserved+sold[s.sku] != initial[s.sku] || item.Reserved != 0 || item.Available < 0 {
			t.Errorf("%s: initial %d ≠ available %d + reserved %d + sold %d", s.sku, initial[s.sku], item.Available, item.Reserved, sold[s.sku])
		}
	}

	// No order was captured twice (or captured when cancelled).
	for _, o := range all {
		r, _ := c.admin(ctx, http.MethodGet, "/admin/payments?order_id="+o.ID, nil)
		var pays struct {
			Data []struct {
				Status   string `json:"status"`
				Captured money  `json:"captured"`
			} `json:"data"`
		}
		if json.Unmarshal(r.body, &pays) != nil {
			t.Fatalf("payments of %s: %s", o.ID, r.body)
		}
		var captured int64
		n := 0
		for _, p := range pays.Data {
			if p.Captured.Amount > 0 {
				captured += p.Captured.Amount
				n++
			}
		}
		switch {
		case n > 1:
			t.Errorf("order %s has %d captured payments", o.ID, n)
		case o.Status == "confirmed" && captured != o.Total.Amount:
			t.Errorf("confirmed order %s captured %d of %d", o.ID, captured, o.Total.Amount)
		case o.Status == "cancelled" && captured != 0:
			t.Errorf("cancelled order %s captured %d", o.ID, captured)
		}
	}

	// The voucher never went beyond its limit.
	var p struct {
		Usage []struct {
			Code string `json:"code"`
			Used int64  `json:"used"`
		} `json:"usage"`
	}
	r, _ = c.admin(ctx, http.MethodGet, "/admin/promotions/"+promo.ID, nil)
	if json.Unmarshal(r.body, &p) != nil {
		t.Fatalf("promotion: %s", r.body)
	}
	for _, u := range p.Usage {
		if u.Used > 3 {
			t.Errorf("voucher %s used %d times, limit 3", u.Code, u.Used)
		}
	}
	if voucherUses > 3 {
		t.Errorf("%d confirmed orders used CRASH5, limit 3", voucherUses)
	}
	t.Logf("%d orders acknowledged, %d in the store, %d confirmed, sold %v, voucher used %d times", len(ackedIDs), len(all), confirmed, sold, voucherUses)
}
