package orders

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/services/cart"
)

// Routes returns the orders' part of the Store API — checkout (the gateway
// routes POST /store/carts/{id}/checkout here), an order for its customer
// or the holder of its cart's token, a customer's order list — and of the
// Admin API: list and view orders with their saga (orders:read), cancel
// (orders:write), fulfil (orders:fulfil) and refund (orders:refund), each
// audited. Handlers only do their job: the gateway wraps them with
// authentication, authorization, idempotency, body limits and metrics.
func (s *Service) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: http.MethodPost, Path: "/store/carts/{id}/checkout", Handler: s.handleCheckout},
		{Method: http.MethodGet, Path: "/store/orders/{id}", Handler: s.handleStoreGet},
		{Method: http.MethodGet, Path: "/store/customers/me/orders", Handler: s.handleMyOrders},

		{Method: http.MethodGet, Path: "/admin/orders", Permission: PermissionRead, Handler: s.handleList},
		{Method: http.MethodGet, Path: "/admin/orders/{id}", Permission: PermissionRead, Handler: s.handleAdminGet},
		{Method: http.MethodPost, Path: "/admin/orders/{id}/cancel", Permission: PermissionWrite, Handler: s.handleCancel},
		{Method: http.MethodPost, Path: "/admin/orders/{id}/fulfilments", Permission: PermissionFulfil, Handler: s.handleFulfil},
		{Method: http.MethodPost, Path: "/admin/orders/{id}/refunds", Permission: PermissionRefund, Handler: s.handleRefund},
	}
}

// callerOf is the shopper who sent the request: their principal (the
// gateway puts a valid bearer token's principal into the context on public
// routes too) and their X-Cart-Token.
func callerOf(r *http.Request) cart.Caller {
	p, _ := auth.FromContext(r.Context())
	return cart.Caller{CartToken: strings.TrimSpace(r.Header.Get(httpx.HeaderCartToken)), Principal: p}
}

// reasonStatus is the HTTP status of the reasons httpx does not know
// (it maps out_of_stock, payment_declined and the code_… reasons itself).
var reasonStatus = map[string]int{
	ReasonPaymentUnavailable: http.StatusServiceUnavailable,
	ReasonServiceUnavailable: http.StatusServiceUnavailable,
	ReasonDeadlineExceeded:   http.StatusServiceUnavailable,
	ReasonCaptureFailed:      http.StatusPaymentRequired,
	ReasonCheckoutFailed:     http.StatusConflict,
	ReasonByStaff:            http.StatusConflict,
}

// orderProblem is a problem document naming the order it is about (RFC
// 9457 extension member order_id): the order a failed checkout created and
// cancelled, or the one a conflicting checkout ran into.
type orderProblem struct {
	httpx.Problem
	OrderID string `json:"order_id,omitempty"`
}

// writeProblem answers err as problem+json, with the order id when the
// error is about an order.
func writeProblem(w http.ResponseWriter, r *http.Request, err error, orderID string) {
	if orderID == "" {
		var (
			c *CancelledError
			x *ExistingOrderError
		)
		switch {
		case errors.As(err, &c):
			orderID = c.OrderID
		case errors.As(err, &x):
			orderID = x.OrderID
		}
	}
	if orderID == "" {
		httpx.Error(w, r, err)
		return
	}
	p := orderProblem{Problem: httpx.ProblemFor(err), OrderID: orderID}
	if st, ok := reasonStatus[string(p.Code)]; ok {
		p.Status, p.Title = st, http.StatusText(st)
	}
	p.Instance, p.RequestID = r.URL.Path, httpx.RequestIDFrom(r.Context())
	if p.Status >= 500 {
		httpx.Logger(r.Context()).LogAttrs(r.Context(), slog.LevelWarn, "checkout failed",
			slog.String("error", err.Error()), slog.String("code", string(p.Code)), slog.String("order_id", orderID))
		w.Header().Set("Retry-After", "1")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(p) // plain data: always encodes
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_, _ = w.Write(buf.Bytes())
}

// processing is the body of a checkout answered 202: the order is placed
// and its saga still runs; GET /store/orders/{id} tells how it ends.
type processing struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

func (s *Service) handleCheckout(w http.ResponseWriter, r *http.Request) {
	var in CheckoutInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	o, err := s.Checkout(r.Context(), r.PathValue("id"), callerOf(r), in, r.Header.Get(httpx.HeaderIdempotencyKey))
	switch {
	case err != nil:
		writeProblem(w, r, err, o.ID)
	case o.Status == StatusPending:
		w.Header().Set("Location", "/store/orders/"+o.ID)
		httpx.JSON(w, http.StatusAccepted, processing{ID: o.ID, Status: "processing"})
	default:
		w.Header().Set("Location", "/store/orders/"+o.ID)
		httpx.SetETag(w, o.Version)
		httpx.JSON(w, http.StatusCreated, o)
	}
}

func (s *Service) handleStoreGet(w http.ResponseWriter, r *http.Request) {
	o, err := s.Get(r.Context(), callerOf(r), r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.SetETag(w, o.Version)
	httpx.JSON(w, http.StatusOK, o)
}

func (s *Service) handleMyOrders(w http.ResponseWriter, r *http.Request) {
	p, ok := auth.FromContext(r.Context())
	if !ok || p.Kind != auth.KindCustomer {
		w.Header().Set("WWW-Authenticate", `Bearer realm="souk"`)
		httpx.Error(w, r, apperr.New(apperr.Unauthorized, "a customer access token is required"))
		return
	}
	limit, err := limitOf(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	page, err := s.CustomerOrders(r.Context(), p.Subject, limit, r.URL.Query().Get("cursor"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, page)
}

// limitOf reads ?limit= (the service checks its range).
func limitOf(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n == 0 {
		return 0, fieldError(apperr.ValidationFailed, "limit", "out_of_range", "limit must be an integer from 1 to %d", httpx.MaxLimit)
	}
	return n, nil
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	limit, err := limitOf(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	q := r.URL.Query()
	page, err := s.List(r.Context(), ListFilter{Status: Status(q.Get("status")), CustomerID: q.Get("customer_id"), Limit: limit, Cursor: q.Get("cursor")})
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, page)
}

func (s *Service) handleAdminGet(w http.ResponseWriter, r *http.Request) {
	o, err := s.AdminGet(r.Context(), r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.SetETag(w, o.Version)
	httpx.JSON(w, http.StatusOK, o)
}

func (s *Service) handleCancel(w http.ResponseWriter, r *http.Request) {
	var in CancelInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	o, err := s.Cancel(r.Context(), r.PathValue("id"), in)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	status := http.StatusOK
	if o.Status != StatusCancelled {
		status = http.StatusAccepted // the saga is still compensating
	}
	httpx.SetETag(w, o.Version)
	httpx.JSON(w, status, o)
}

func (s *Service) handleFulfil(w http.ResponseWriter, r *http.Request) {
	var in FulfilmentInput
	if err := decodeOptional(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	o, err := s.Fulfil(r.Context(), r.PathValue("id"), in)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.Header().Set("Location", "/admin/orders/"+o.ID)
	httpx.SetETag(w, o.Version)
	httpx.JSON(w, http.StatusCreated, o)
}

func (s *Service) handleRefund(w http.ResponseWriter, r *http.Request) {
	var in RefundInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	rf, err := s.Refund(r.Context(), r.PathValue("id"), in, r.Header.Get(httpx.HeaderIdempotencyKey))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.Header().Set("Location", "/admin/orders/"+r.PathValue("id"))
	httpx.JSON(w, http.StatusCreated, rf)
}

// decodeOptional decodes a body that may be absent (all defaults).
func decodeOptional(r *http.Request, v any) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil
	}
	return httpx.Decode(r, v)
}
