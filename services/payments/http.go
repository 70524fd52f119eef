package payments

import (
	"net/http"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/money"
)

// Routes returns payments' Admin API. Handlers only do their job: the
// gateway wraps them with authentication, authorization (the Permission of
// each route), idempotency, body limits and metrics when it mounts them.
//
//	GET  /admin/payments?order_id=         orders:read   payments, of an order
//	GET  /admin/payments/{id}              orders:read
//	GET  /admin/payments/by-key/{key}      orders:read   the payment an authorize key made
//	POST /admin/payments/authorize         orders:write
//	POST /admin/payments/{id}/capture      orders:write
//	POST /admin/payments/{id}/void         orders:write
//	POST /admin/payments/{id}/refund       orders:refund
//	GET  /admin/payments/provider          ops:read      active provider, breakers, switches
//	POST /admin/payments/provider          ops:write     switch the active provider
//
// The operation routes are what HTTPClient calls; each takes its
// idempotency key as "key" in the body or as the Idempotency-Key header.
func (s *Service) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: http.MethodGet, Path: "/admin/payments", Permission: PermissionRead, Handler: s.handleList},
		{Method: http.MethodGet, Path: "/admin/payments/{id}", Permission: PermissionRead, Handler: s.handleGet},
		{Method: http.MethodGet, Path: "/admin/payments/by-key/{key}", Permission: PermissionRead, Handler: s.handleByKey},
		{Method: http.MethodPost, Path: "/admin/payments/authorize", Permission: PermissionWrite, Handler: s.handleAuthorize},
		{Method: http.MethodPost, Path: "/admin/payments/{id}/capture", Permission: PermissionWrite, Handler: s.handleCapture},
		{Method: http.MethodPost, Path: "/admin/payments/{id}/void", Permission: PermissionWrite, Handler: s.handleVoid},
		{Method: http.MethodPost, Path: "/admin/payments/{id}/refund", Permission: PermissionRefund, Handler: s.handleRefund},
		{Method: http.MethodGet, Path: "/admin/payments/provider", Permission: PermissionOpsRead, Handler: s.handleProviderStatus},
		{Method: http.MethodPost, Path: "/admin/payments/provider", Permission: PermissionOpsWrite, Handler: s.handleSwitchProvider},
	}
}

// authorizeBody is the body of POST /admin/payments/authorize.
type authorizeBody struct {
	Key        string      `json:"key"`
	OrderID    string      `json:"order_id"`
	Amount     money.Money `json:"amount"`
	Provider   string      `json:"provider"`
	Token      string      `json:"token"`
	CustomerID string      `json:"customer_id"`
	Email      string      `json:"email"`
}

// operationBody is the body of capture, void and refund.
type operationBody struct {
	Key    string       `json:"key"`
	Amount *money.Money `json:"amount,omitempty"`
}

// switchBody is the body of POST /admin/payments/provider.
type switchBody struct {
	Provider string `json:"provider"`
	Reason   string `json:"reason"`
}

// requestKey is the operation's key: the body's, or the Idempotency-Key
// header's; when both are given they must agree.
func requestKey(r *http.Request, body string) (string, error) {
	hdr := r.Header.Get(httpx.HeaderIdempotencyKey)
	switch {
	case body == "":
		return hdr, nil
	case hdr != "" && hdr != body:
		return "", &apperr.Error{Code: apperr.ValidationFailed, Message: "key and the Idempotency-Key header differ",
			Fields: []apperr.FieldError{{Field: "key", Code: "mismatch", Message: "differs from the Idempotency-Key header"}}}
	}
	return body, nil
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	lp, err := httpx.ParseList(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	page, err := s.List(r.Context(), r.URL.Query().Get("order_id"), lp.Limit, r.URL.Query().Get("cursor"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, page)
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	p, err := s.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.SetETag(w, p.Version)
	httpx.JSON(w, http.StatusOK, p)
}

func (s *Service) handleByKey(w http.ResponseWriter, r *http.Request) {
	p, err := s.ByKey(r.Context(), r.PathValue("key"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.SetETag(w, p.Version)
	httpx.JSON(w, http.StatusOK, p)
}

func (s *Service) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	var b authorizeBody
	if err := httpx.Decode(r, &b); err != nil {
		httpx.Error(w, r, err)
		return
	}
	key, err := requestKey(r, b.Key)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	p, err := s.Authorize(r.Context(), AuthorizeRequest{Key: key, OrderID: b.OrderID, Amount: b.Amount, Provider: b.Provider,
		Token: b.Token, CustomerID: b.CustomerID, Email: b.Email})
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.Header().Set("Location", "/admin/payments/"+p.ID)
	httpx.SetETag(w, p.Version)
	httpx.JSON(w, http.StatusCreated, p)
}

// operation decodes a capture, void or refund request. A void may come
// without a body when the key is in the header.
func operation(r *http.Request, wantAmount bool) (string, money.Money, error) {
	var b operationBody
	if r.ContentLength != 0 || r.Header.Get(httpx.HeaderIdempotencyKey) == "" {
		if err := httpx.Decode(r, &b); err != nil {
			return "", money.Money{}, err
		}
	}
	key, err := requestKey(r, b.Key)
	if err != nil {
		return "", money.Money{}, err
	}
	var amount money.Money
	switch {
	case wantAmount && b.Amount == nil:
		return "", money.Money{}, &apperr.Error{Code: apperr.ValidationFailed, Message: "amount is required",
			Fields: []apperr.FieldError{{Field: "amount", Code: "required", Message: "amount is required"}}}
	case !wantAmount && b.Amount != nil:
		return "", money.Money{}, &apperr.Error{Code: apperr.BadRequest, Message: `unknown field "amount"`,
			Fields: []apperr.FieldError{{Field: "amount", Code: "unknown_field", Message: "is not a field of this request"}}}
	case wantAmount:
		amount = *b.Amount
	}
	return key, amount, nil
}

func (s *Service) handleCapture(w http.ResponseWriter, r *http.Request) {
	key, amount, err := operation(r, true)
	if err == nil {
		var p Payment
		if p, err = s.Capture(r.Context(), key, r.PathValue("id"), amount); err == nil {
			httpx.SetETag(w, p.Version)
			httpx.JSON(w, http.StatusOK, p)
			return
		}
	}
	httpx.Error(w, r, err)
}

func (s *Service) handleVoid(w http.ResponseWriter, r *http.Request) {
	key, _, err := operation(r, false)
	if err == nil {
		var p Payment
		if p, err = s.Void(r.Context(), key, r.PathValue("id")); err == nil {
			httpx.SetETag(w, p.Version)
			httpx.JSON(w, http.StatusOK, p)
			return
		}
	}
	httpx.Error(w, r, err)
}

func (s *Service) handleRefund(w http.ResponseWriter, r *http.Request) {
	key, amount, err := operation(r, true)
	if err == nil {
		var p Payment
		if p, err = s.Refund(r.Context(), key, r.PathValue("id"), amount); err == nil {
			httpx.SetETag(w, p.Version)
			httpx.JSON(w, http.StatusOK, p)
			return
		}
	}
	httpx.Error(w, r, err)
}

func (s *Service) handleProviderStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.ProviderStatus(r.Context())
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, st)
}

func (s *Service) handleSwitchProvider(w http.ResponseWriter, r *http.Request) {
	var b switchBody
	if err := httpx.Decode(r, &b); err != nil {
		httpx.Error(w, r, err)
		return
	}
	st, err := s.SwitchProvider(r.Context(), b.Provider, b.Reason)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, st)
}
