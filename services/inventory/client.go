package inventory

import (
	"context"
	"errors"
	"fmt"
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
// adding an API key), through an httpx.Client. Every attempt has a
// timeout; as every call is idempotent, transport failures and
// 429/502/503/504 answers (and 409 idempotency_key_in_use, the gateway's
// "first request still running") are retried with jittered exponential
// backoff (httpx.ClientPolicy, unless an httpx.WithPolicy option gives
// another). Problem documents become *apperr.Error with the remote code,
// message and field errors — and, for out_of_stock, an
// *InsufficientStockError rebuilt from them — so apperr.Is and
// InsufficientStock work across the wire.
type HTTPClient struct {
	api *httpx.Client
}

var _ Client = (*HTTPClient)(nil)

// NewHTTPClient returns a client of the inventory at baseURL (the gateway
// or the inventory's own address). hc may be nil for a default client;
// each attempt is bounded by the policy's timeout (5 s) as well as by hc's
// own and the context's. opts tune the underlying httpx.Client:
// httpx.WithPolicy to share the composition root's policy for the
// inventory (breaker and bulkhead included).
func NewHTTPClient(baseURL string, hc *http.Client, opts ...httpx.ClientOption) *HTTPClient {
	return &HTTPClient{api: httpx.NewServiceClient("inventory", baseURL, hc, opts...)}
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
	var opts []httpx.CallOption
	if printable(req.Key) { // else no header: the service names the body's key as invalid
		opts = append(opts, httpx.IdempotencyKey(req.Key))
	}
	var r Reservation
	if err := c.do(ctx, http.MethodPost, "/admin/reservations", body, &r, opts...); err != nil {
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
	if err := c.do(ctx, http.MethodPost, "/admin/reservations/"+url.PathEscape(ref)+"/release", nil, &r); err != nil {
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
	if err := c.do(ctx, http.MethodPost, "/admin/reservations/"+url.PathEscape(ref)+"/commit", commitBody{OrderID: orderID}, &r); err != nil {
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
	if err := c.do(ctx, http.MethodPost, "/admin/reservations/"+url.PathEscape(ref)+"/restock", nil, &r); err != nil {
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
	if err := c.do(ctx, http.MethodGet, "/admin/reservations/"+url.PathEscape(ref), nil, &r); err != nil {
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
	if err := c.do(ctx, http.MethodGet, "/admin/inventory", nil, &page, httpx.Query(params)); err != nil {
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

// do makes the call through the httpx.Client. Every call is idempotent,
// so every one may be retried; an out_of_stock answer gets its
// *InsufficientStockError back.
func (c *HTTPClient) do(ctx context.Context, method, path string, in, out any, opts ...httpx.CallOption) error {
	opts = append(opts, httpx.Idempotent())
	return withShortages(c.api.Do(ctx, method, path, in, out, opts...))
}

// withShortages rebuilds, for an out_of_stock error from the wire, the
// *InsufficientStockError the service gave it as its cause, from the
// problem's field errors (see shortageMessage), so that InsufficientStock
// works across the wire as in process. Other errors pass unchanged.
func withShortages(err error) error {
	var e *apperr.Error
	if !errors.As(err, &e) || e.Code != CodeOutOfStock {
		return err
	}
	var shortages []Shortage
	for _, f := range e.Fields {
		if sh, ok := parseShortage(f.Field, f.Message); ok {
			shortages = append(shortages, sh)
		}
	}
	return &apperr.Error{Code: e.Code, Message: e.Message, Fields: e.Fields, Err: &InsufficientStockError{Shortages: shortages}}
}
