package inventory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/httpx"
)

// Client is what other services (orders, catalog, cart) may ask of the
// inventory. Implementations are safe for concurrent use and return
// *apperr.Error codes alike: validation_failed naming the field,
// out_of_stock with the shortages (see InsufficientStock), not_found,
// conflict, idempotency_key_reused, unavailable when the inventory cannot
// be reached.
//
// Every method is idempotent, so a caller (the checkout saga) may retry any
// of them: Reserve by its key, Release, Commit and Restock by the
// reservation's state. *Service is the in-process implementation, *HTTPClient the remote
// one; one contract suite runs against both.
type Client interface {
	// Reserve holds stock for the lines, all or nothing; the same key
	// always yields the same reservation.
	Reserve(ctx context.Context, req ReserveRequest) (Reservation, error)
	// Release gives a pending reservation's stock back (ref: id or key);
	// releasing twice is a no-op, releasing a committed one a conflict.
	Release(ctx context.Context, ref string) (Reservation, error)
	// Commit turns a pending reservation into a sale for the order.
	Commit(ctx context.Context, ref, orderID string) (Reservation, error)
	// Restock undoes a committed reservation's sale (a cancelled order),
	// once: later calls return it unchanged; a reservation that is not
	// committed is a conflict.
	Restock(ctx context.Context, ref string) (Reservation, error)
	// GetReservation returns a reservation by id or key.
	GetReservation(ctx context.Context, ref string) (Reservation, error)
	// Availability tells, per SKU, what can be sold now.
	Availability(ctx context.Context, skus []string) (map[string]Availability, error)
}

// HTTPClient is Client over the inventory's Admin API (hc must carry
// credentials holding inventory:read and inventory:write, e.g. a transport
// adding an API key). Every attempt has a timeout; as every call is
// idempotent, transport failures and 429/502/503/504 answers (and 409
// idempotency_key_in_use, the gateway's "first request still running") are
// retried with jittered exponential backoff. Problem documents become
// *apperr.Error with the remote code, message and field errors — and, for
// out_of_stock, an *InsufficientStockError rebuilt from them — so
// apperr.Is and InsufficientStock work across the wire.
type HTTPClient struct {
	base        string
	hc          *http.Client
	timeout     time.Duration // per attempt
	maxAttempts int
	backoff     time.Duration // before the second attempt; doubles after
}

var _ Client = (*HTTPClient)(nil)

// NewHTTPClient returns a client of the inventory at baseURL (the gateway
// or the inventory's own address). hc may be nil for a default client; each
// attempt is bounded by a 5 s timeout as well as by hc's own and the
// context's.
func NewHTTPClient(baseURL string, hc *http.Client) *HTTPClient {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &HTTPClient{
		base:        strings.TrimRight(baseURL, "/"),
		hc:          hc,
		timeout:     5 * time.Second,
		maxAttempts: 3,
		backoff:     50 * time.Millisecond,
	}
}

// Reserve implements Client. The key travels as the Idempotency-Key header
// and in the body, so a retry after a lost answer returns the reservation
// the first attempt made.
func (c *HTTPClient) Reserve(ctx context.Context, req ReserveRequest) (Reservation, error) {
	body := reserveBody{Key: req.Key, OrderID: req.OrderID, Lines: req.Lines}
	if req.TTL != 0 {
		if req.TTL%time.Second != 0 || req.TTL < 0 {
			if err := req.validate(); err != nil { // names ttl_seconds as the service does
				return Reservation{}, fmt.Errorf("reserve stock: %w", err)
			}
		}
		body.TTLSeconds = int64(req.TTL / time.Second)
	}
	if body.Lines == nil {
		body.Lines = []ReserveLine{}
	}
	var r Reservation
	hdr := http.Header{}
	if req.Key != "" && printable(req.Key) {
		hdr.Set(httpx.HeaderIdempotencyKey, req.Key)
	}
	if err := c.do(ctx, http.MethodPost, "/admin/reservations", nil, hdr, body, &r); err != nil {
		return Reservation{}, fmt.Errorf("reserve stock: %w", err)
	}
	return r, nil
}

// Release implements Client.
func (c *HTTPClient) Release(ctx context.Context, ref string) (Reservation, error) {
	if ref == "" {
		return Reservation{}, fmt.Errorf("release reservation: %w", notFound("reservation", ref))
	}
	var r Reservation
	if err := c.do(ctx, http.MethodPost, "/admin/reservations/"+url.PathEscape(ref)+"/release", nil, nil, nil, &r); err != nil {
		return Reservation{}, fmt.Errorf("release reservation %s: %w", ref, err)
	}
	return r, nil
}

// Commit implements Client.
func (c *HTTPClient) Commit(ctx context.Context, ref, orderID string) (Reservation, error) {
	if ref == "" {
		return Reservation{}, fmt.Errorf("commit reservation: %w", notFound("reservation", ref))
	}
	var r Reservation
	if err := c.do(ctx, http.MethodPost, "/admin/reservations/"+url.PathEscape(ref)+"/commit", nil, nil, commitBody{OrderID: orderID}, &r); err != nil {
		return Reservation{}, fmt.Errorf("commit reservation %s: %w", ref, err)
	}
	return r, nil
}

// Restock implements Client.
func (c *HTTPClient) Restock(ctx context.Context, ref string) (Reservation, error) {
	if ref == "" {
		return Reservation{}, fmt.Errorf("restock reservation: %w", notFound("reservation", ref))
	}
	var r Reservation
	if err := c.do(ctx, http.MethodPost, "/admin/reservations/"+url.PathEscape(ref)+"/restock", nil, nil, nil, &r); err != nil {
		return Reservation{}, fmt.Errorf("restock reservation %s: %w", ref, err)
	}
	return r, nil
}

// GetReservation implements Client.
func (c *HTTPClient) GetReservation(ctx context.Context, ref string) (Reservation, error) {
	if ref == "" {
		return Reservation{}, fmt.Errorf("get reservation: %w", notFound("reservation", ref))
	}
	var r Reservation
	if err := c.do(ctx, http.MethodGet, "/admin/reservations/"+url.PathEscape(ref), nil, nil, nil, &r); err != nil {
		return Reservation{}, fmt.Errorf("get reservation: %w", err)
	}
	return r, nil
}

// Availability implements Client, from GET /admin/inventory?sku=… (exact
// figures: the public endpoint caps them) through the same derivation the
// service uses.
func (c *HTTPClient) Availability(ctx context.Context, skus []string) (map[string]Availability, error) {
	out := make(map[string]Availability, len(skus))
	if len(skus) == 0 {
		return out, nil
	}
	params := url.Values{"sku": {strings.Join(skus, ",")}}
	var page httpx.Page[StockItem]
	if err := c.do(ctx, http.MethodGet, "/admin/inventory", params, nil, nil, &page); err != nil {
		return nil, fmt.Errorf("availability: %w", err)
	}
	for _, sku := range skus {
		out[sku] = Availability{}
	}
	for _, it := range page.Data {
		out[it.SKU] = availabilityOf(it)
	}
	return out, nil
}

// do performs the call, retrying what is worth retrying.
func (c *HTTPClient) do(ctx context.Context, method, path string, params url.Values, hdr http.Header, body, out any) error {
	u := c.base + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("encode inventory request: %w", err)
		}
	}
	delay := c.backoff
	for attempt := 1; ; attempt++ {
		retry, err := c.try(ctx, method, u, hdr, payload, out)
		if err == nil || !retry || attempt == c.maxAttempts {
			return err
		}
		// Full jitter in [delay/2, delay*3/2): retries of many callers spread out.
		wait := delay/2 + rand.N(delay)
		select {
		case <-ctx.Done():
			return apperr.Wrap(ctx.Err(), apperr.Unavailable, "inventory call abandoned: "+ctx.Err().Error())
		case <-time.After(wait):
		}
		delay *= 2
	}
}

// try makes one attempt and tells whether a failure is worth retrying.
func (c *HTTPClient) try(ctx context.Context, method, u string, hdr http.Header, payload []byte, out any) (retry bool, err error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(actx, method, u, body)
	if err != nil {
		return false, fmt.Errorf("build inventory request: %w", err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, apperr.Wrap(err, apperr.Unavailable, "inventory call abandoned: "+ctx.Err().Error())
		}
		return true, apperr.Wrap(err, apperr.Unavailable, "inventory is unreachable")
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return ctx.Err() == nil, apperr.Wrap(err, apperr.Unavailable, "inventory answer was cut off")
	}
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated {
		if err := json.Unmarshal(raw, out); err != nil {
			return false, apperr.Wrap(err, apperr.Unavailable, "inventory answered with malformed JSON")
		}
		return false, nil
	}
	perr := problemError(resp, raw)
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		retry = true
	case http.StatusConflict:
		retry = apperr.Is(perr, apperr.IdempotencyInFlight)
	}
	return retry, perr
}

// problemError turns an error answer into the *apperr.Error it reports.
func problemError(resp *http.Response, body []byte) error {
	var p httpx.Problem
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/problem+json" && json.Unmarshal(body, &p) == nil && p.Code != "" {
		code := p.Code
		if code == apperr.Internal {
			// The inventory failed: for the caller, a dependency is down.
			code = apperr.Unavailable
		}
		var cause error = fmt.Errorf("inventory answered %d %s", resp.StatusCode, p.Code)
		if code == CodeOutOfStock {
			var shortages []Shortage
			for _, f := range p.Errors {
				if sh, ok := parseShortage(f.Field, f.Message); ok {
					shortages = append(shortages, sh)
				}
			}
			cause = &InsufficientStockError{Shortages: shortages}
		}
		return &apperr.Error{Code: code, Message: p.Detail, Fields: p.Errors, Err: cause}
	}
	code := apperr.Internal
	switch s := resp.StatusCode; {
	case s == http.StatusBadRequest:
		code = apperr.BadRequest
	case s == http.StatusUnauthorized:
		code = apperr.Unauthorized
	case s == http.StatusForbidden:
		code = apperr.Forbidden
	case s == http.StatusNotFound:
		code = apperr.NotFound
	case s == http.StatusConflict:
		code = apperr.Conflict
	case s == http.StatusTooManyRequests:
		code = apperr.RateLimited
	case s >= 500:
		code = apperr.Unavailable
	}
	return &apperr.Error{Code: code, Message: fmt.Sprintf("inventory answered %s", resp.Status),
		Err: errors.New(strings.TrimSpace(string(body[:min(len(body), 200)])))}
}
