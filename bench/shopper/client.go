package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/soukhq/souk/bench/internal/harness"
)

// client talks to one souk over keep-alive loopback connections. It is
// safe for concurrent use: each virtual user shares its transport.
type client struct {
	base  string
	hc    *http.Client
	tr    *http.Transport
	dials atomic.Int64
}

// newClient is a client for base (which must be http://127.0.0.1:port)
// keeping up to conns idle connections.
func newClient(base string, conns int) *client {
	c := &client{base: base}
	c.tr = harness.LoopbackTransport(conns, &c.dials)
	c.hc = &http.Client{Transport: c.tr, Timeout: 60 * time.Second}
	return c
}

func (c *client) close() { c.tr.CloseIdleConnections() }

// answer is one HTTP answer, its body read.
type answer struct {
	Status      int
	ContentType string
	Body        []byte
}

// problemCode is the code of a problem+json answer, "" for any other.
func (a answer) problemCode() string {
	var p struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(a.Body, &p) != nil {
		return ""
	}
	return p.Code
}

// call sends one request and reads the whole answer. headers come in
// pairs: name, value; an empty value is not sent.
func (c *client) call(ctx context.Context, method, path string, body []byte, headers ...string) (answer, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] != "" {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: b}, nil
}

// variant is a purchasable variant of the demo catalogue.
type variant struct {
	ID    string
	SKU   string
	Price int64 // EUR minor units
}

// stockLevel is what every stock level of a bought SKU is raised to before
// the load: far more than a run can sell, so out_of_stock never answers.
const stockLevel = 1_000_000

// prepareCatalogue picks up to n in-stock, EUR-priced variants, spread over
// the products (the first variant of each product, then the second, …), and
// raises every stock level of their SKUs to stockLevel with the admin key.
func (c *client) prepareCatalogue(ctx context.Context, adminKey string, n int) ([]variant, error) {
	a, err := c.call(ctx, http.MethodGet, "/store/products?limit=100&currency=EUR", nil)
	if err != nil {
		return nil, err
	}
	if a.Status != http.StatusOK {
		return nil, fmt.Errorf("GET /store/products: %d %.300s", a.Status, a.Body)
	}
	vs, err := pickVariants(a.Body, n)
	if err != nil {
		return nil, err
	}
	bearer := "Bearer " + adminKey
	for _, v := range vs {
		path := "/admin/inventory/" + url.PathEscape(v.SKU)
		a, err := c.call(ctx, http.MethodGet, path, nil, "Authorization", bearer)
		if err != nil {
			return nil, err
		}
		if a.Status != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %d %.300s", path, a.Status, a.Body)
		}
		var stock struct {
			Levels []struct {
				LocationID string `json:"location_id"`
			} `json:"levels"`
		}
		if err := json.Unmarshal(a.Body, &stock); err != nil {
			return nil, fmt.Errorf("GET %s: %w", path, err)
		}
		if len(stock.Levels) == 0 {
			return nil, fmt.Errorf("GET %s: no stock level to raise: %.300s", path, a.Body)
		}
		body := []byte(`{"on_hand":` + strconv.Itoa(stockLevel) + `}`)
		for _, l := range stock.Levels {
			p := path + "/levels/" + url.PathEscape(l.LocationID)
			a, err := c.call(ctx, http.MethodPut, p, body, "Authorization", bearer)
			if err != nil {
				return nil, err
			}
			if a.Status != http.StatusOK {
				return nil, fmt.Errorf("PUT %s: %d %.300s", p, a.Status, a.Body)
			}
		}
	}
	return vs, nil
}

// pickVariants chooses up to n variants of a GET /store/products page that
// are in stock and priced in EUR, round-robin over the products so that
// carts spread over many products (as shoppers do) rather than one.
func pickVariants(page []byte, n int) ([]variant, error) {
	var p struct {
		Data []struct {
			Variants []struct {
				ID    string `json:"id"`
				SKU   string `json:"sku"`
				Price *struct {
					Amount   int64  `json:"amount"`
					Currency string `json:"currency"`
				} `json:"price"`
				InStock *bool `json:"in_stock"`
			} `json:"variants"`
		} `json:"data"`
	}
	if err := json.Unmarshal(page, &p); err != nil {
		return nil, fmt.Errorf("decode product list: %w", err)
	}
	var out []variant
	for i := 0; len(out) < n; i++ {
		more := false
		for _, prod := range p.Data {
			if i >= len(prod.Variants) {
				continue
			}
			more = true
			v := prod.Variants[i]
			if v.ID == "" || v.SKU == "" || v.Price == nil || v.Price.Currency != "EUR" || v.InStock == nil || !*v.InStock {
				continue
			}
			out = append(out, variant{ID: v.ID, SKU: v.SKU, Price: v.Price.Amount})
			if len(out) == n {
				break
			}
		}
		if !more {
			break
		}
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("the catalogue shows %d in-stock EUR-priced variants; a cart needs 2", len(out))
	}
	return out, nil
}

// The steps of one flow, in order.
type step int

const (
	stepCreateCart step = iota
	stepAddItem1
	stepAddItem2
	stepAddress
	stepShippingMethods
	stepShippingMethod
	stepCheckout
	numSteps
)

var stepNames = [numSteps]string{
	"POST /store/carts",
	"POST /store/carts/{id}/items (1st)",
	"POST /store/carts/{id}/items (2nd)",
	"PATCH /store/carts/{id} (email, address)",
	"GET /store/carts/{id}/shipping-methods",
	"PATCH /store/carts/{id} (shipping method)",
	"POST /store/carts/{id}/checkout",
}

func (s step) String() string { return stepNames[s] }

// stepPoll names the polling of an order answered 202, in errors.
const stepPoll = "GET /store/orders/{id} (after 202)"

// flowPlan is what one flow buys and the names it uses.
type flowPlan struct {
	Items          [2]string // two different variant ids
	Email          string
	IdempotencyKey string
}

// outcome is how a flow ended.
type outcome int

const (
	outcomeError      outcome = iota
	outcomeConfirmed          // checkout answered 201 confirmed
	outcomeProcessing         // checkout answered 202 processing, then the order was confirmed
)

// flowError is why a flow failed: at which step, with which answer.
type flowError struct {
	Step   string
	Status int    // 0: no HTTP answer (transport error) or a bad 2xx body
	Code   string // problem code, or a short cause when there is none
	Detail string
}

// Key groups equal failures in the report.
func (e *flowError) Key() string {
	switch {
	case e.Status == 0:
		return fmt.Sprintf("%s → %s", e.Step, e.Code)
	case e.Code == "":
		return fmt.Sprintf("%s → %d", e.Step, e.Status)
	default:
		return fmt.Sprintf("%s → %d %s", e.Step, e.Status, e.Code)
	}
}

func (e *flowError) Error() string { return e.Key() + ": " + e.Detail }

// flowResult is what one flow measured.
type flowResult struct {
	Start, End time.Time // first request sent; checkout answer (or failure) read
	Steps      [numSteps]time.Duration
	Outcome    outcome
	// UntilConfirmed is the time from sending the checkout to seeing the
	// order confirmed, for flows whose checkout answered 202.
	UntilConfirmed time.Duration
	Err            *flowError
}

// Static request bodies: the same for every flow.
var (
	createCartBody = []byte(`{"currency":"EUR"}`)
	checkoutBody   = []byte(`{"payment":{"provider":"test","token":"tok_visa"}}`)
	address        = map[string]string{
		"first_name": "Grace", "last_name": "Hopper", "line1": "Keizersgracht 1",
		"city": "Amsterdam", "postal_code": "1015 AA", "country": "NL",
	}
)

// runFlow runs one shopper flow and fills r. A 202 checkout is followed by
// polling the order (with the cart token) until it is confirmed or
// pollDeadline has passed since the checkout was sent.
func (c *client) runFlow(ctx context.Context, p flowPlan, pollDeadline time.Duration, r *flowResult) {
	*r = flowResult{Start: time.Now()}
	defer func() { r.End = time.Now() }()
	fail := func(s string, a answer, code, detail string) {
		if code == "" {
			code = a.problemCode()
		}
		if detail == "" {
			detail = fmt.Sprintf("%.300s", a.Body)
		}
		r.Err = &flowError{Step: s, Status: a.Status, Code: code, Detail: detail}
	}
	// do runs step s and requires a 2xx answer.
	do := func(s step, method, path string, body []byte, headers ...string) (answer, bool) {
		t0 := time.Now()
		a, err := c.call(ctx, method, path, body, headers...)
		r.Steps[s] = time.Since(t0)
		if err != nil {
			fail(s.String(), answer{}, "transport error", err.Error())
			return a, false
		}
		if a.Status < 200 || a.Status > 299 {
			fail(s.String(), a, "", "")
			return a, false
		}
		return a, true
	}

	a, ok := do(stepCreateCart, http.MethodPost, "/store/carts", createCartBody)
	if !ok {
		return
	}
	var cart struct {
		ID        string `json:"id"`
		CartToken string `json:"cart_token"`
	}
	if err := json.Unmarshal(a.Body, &cart); err != nil || cart.ID == "" || cart.CartToken == "" {
		fail(stepCreateCart.String(), a, "bad body", fmt.Sprintf("no id and cart_token: %.300s", a.Body))
		return
	}
	cartPath := "/store/carts/" + url.PathEscape(cart.ID)
	tok := cart.CartToken

	for i, s := range []step{stepAddItem1, stepAddItem2} {
		body, _ := json.Marshal(map[string]any{"variant_id": p.Items[i], "quantity": 1})
		if _, ok := do(s, http.MethodPost, cartPath+"/items", body, "X-Cart-Token", tok); !ok {
			return
		}
	}
	body, _ := json.Marshal(map[string]any{"email": p.Email, "shipping_address": address})
	if _, ok := do(stepAddress, http.MethodPatch, cartPath, body, "X-Cart-Token", tok); !ok {
		return
	}
	if a, ok = do(stepShippingMethods, http.MethodGet, cartPath+"/shipping-methods", nil, "X-Cart-Token", tok); !ok {
		return
	}
	var methods struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(a.Body, &methods); err != nil || len(methods.Data) == 0 || methods.Data[0].ID == "" {
		fail(stepShippingMethods.String(), a, "no shipping method", fmt.Sprintf("%.300s", a.Body))
		return
	}
	body, _ = json.Marshal(map[string]any{"shipping_method_id": methods.Data[0].ID})
	if _, ok := do(stepShippingMethod, http.MethodPatch, cartPath, body, "X-Cart-Token", tok); !ok {
		return
	}

	sent := time.Now()
	if a, ok = do(stepCheckout, http.MethodPost, cartPath+"/checkout", checkoutBody, "X-Cart-Token", tok, "Idempotency-Key", p.IdempotencyKey); !ok {
		return
	}
	var order struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(a.Body, &order); err != nil || order.ID == "" {
		fail(stepCheckout.String(), a, "bad body", fmt.Sprintf("no order id: %.300s", a.Body))
		return
	}
	switch {
	case a.Status == http.StatusCreated && order.Status == "confirmed":
		r.Outcome = outcomeConfirmed
	case a.Status == http.StatusAccepted && order.Status == "processing":
		if err := c.awaitConfirmed(ctx, order.ID, tok, sent.Add(pollDeadline)); err != nil {
			r.Err = err
			return
		}
		r.UntilConfirmed = time.Since(sent)
		r.Outcome = outcomeProcessing
	default:
		fail(stepCheckout.String(), a, "status "+strconv.Quote(order.Status), "")
	}
}

// pollInterval bounds how often an order answered 202 is polled.
const (
	firstPoll = 10 * time.Millisecond
	maxPoll   = 200 * time.Millisecond
)

// awaitConfirmed polls GET /store/orders/{id} with the cart token until the
// order is confirmed (nil), reaches another final state, or deadline passes.
func (c *client) awaitConfirmed(ctx context.Context, orderID, cartToken string, deadline time.Time) *flowError {
	path := "/store/orders/" + url.PathEscape(orderID)
	wait := firstPoll
	last := "processing"
	for {
		select {
		case <-ctx.Done():
			return &flowError{Step: stepPoll, Code: "interrupted", Detail: ctx.Err().Error()}
		case <-time.After(wait):
		}
		wait = min(2*wait, maxPoll)
		a, err := c.call(ctx, http.MethodGet, path, nil, "X-Cart-Token", cartToken)
		switch {
		case err != nil:
			if errors.Is(err, context.Canceled) {
				return &flowError{Step: stepPoll, Code: "interrupted", Detail: err.Error()}
			}
			return &flowError{Step: stepPoll, Code: "transport error", Detail: err.Error()}
		case a.Status != http.StatusOK:
			return &flowError{Step: stepPoll, Status: a.Status, Code: a.problemCode(), Detail: fmt.Sprintf("%.300s", a.Body)}
		}
		var o struct {
			Status string `json:"status"`
		}
		_ = json.Unmarshal(a.Body, &o)
		switch o.Status {
		case "confirmed":
			return nil
		case "failed", "cancelled", "canceled", "rejected", "declined":
			// The saga ended without an order to ship: waiting longer will
			// not change that.
			return &flowError{Step: stepPoll, Status: a.Status, Code: "status " + strconv.Quote(o.Status), Detail: fmt.Sprintf("%.300s", a.Body)}
		}
		last = o.Status
		if time.Now().After(deadline) {
			return &flowError{Step: stepPoll, Code: "not confirmed in time",
				Detail: fmt.Sprintf("order %s still %q at the poll deadline", orderID, last)}
		}
	}
}
