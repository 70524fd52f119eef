package cart

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/httpx"
)

// Routes returns the carts part of the Store API (public: a cart answers to
// its customer's token or to its X-Cart-Token, see the package comment),
// the support view GET /admin/carts/{id} (carts:read) and the internal
// routes of the orders service's HTTPClient (carts:read, carts:write).
// Handlers only do their job: the gateway wraps them with authentication,
// authorization, idempotency, body limits and metrics when it mounts them.
func (s *Service) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: http.MethodPost, Path: "/store/carts", NoReplay: true, Handler: s.handleCreate},
		{Method: http.MethodGet, Path: "/store/carts/{id}", Handler: s.handleGet},
		{Method: http.MethodPatch, Path: "/store/carts/{id}", Handler: s.handleUpdate},
		{Method: http.MethodPost, Path: "/store/carts/{id}/items", Handler: s.handleAddItem},
		{Method: http.MethodPatch, Path: "/store/carts/{id}/items/{item_id}", Handler: s.handleUpdateItem},
		{Method: http.MethodDelete, Path: "/store/carts/{id}/items/{item_id}", Handler: s.handleRemoveItem},
		{Method: http.MethodPost, Path: "/store/carts/{id}/discount-codes", Handler: s.handleAddCode},
		{Method: http.MethodDelete, Path: "/store/carts/{id}/discount-codes/{code}", Handler: s.handleRemoveCode},
		{Method: http.MethodGet, Path: "/store/carts/{id}/shipping-methods", Handler: s.handleShippingMethods},
		{Method: http.MethodPost, Path: "/store/carts/{id}/merge", Handler: s.handleMerge},

		{Method: http.MethodGet, Path: "/admin/carts/{id}", Permission: PermissionRead, Handler: s.handleAdminGet},
		{Method: http.MethodGet, Path: "/admin/carts/{id}/checkout", Permission: PermissionRead, Handler: s.handleGetForCheckout},
		{Method: http.MethodGet, Path: "/admin/carts/{id}/checkout-view", Permission: PermissionRead, Handler: s.handleCheckoutView},
		{Method: http.MethodGet, Path: "/admin/carts/{id}/validation", Permission: PermissionRead, Handler: s.handleValidate},
		{Method: http.MethodPost, Path: "/admin/carts/{id}/checked-out", Permission: PermissionWrite, Handler: s.handleMarkCheckedOut},
	}
}

// callerOf is who sent the request: its principal (the gateway puts a
// valid bearer token's principal into the context even on public routes)
// and its X-Cart-Token.
func callerOf(r *http.Request) Caller {
	p, _ := auth.FromContext(r.Context())
	return Caller{CartToken: strings.TrimSpace(r.Header.Get(httpx.HeaderCartToken)), Principal: p}
}

// writeCart answers with the cart and its version as the ETag.
func writeCart(w http.ResponseWriter, status int, c Cart) {
	httpx.SetETag(w, c.Version)
	httpx.JSON(w, status, c)
}

func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) {
	var in CreateInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	c, err := s.Create(r.Context(), callerOf(r), in)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.Header().Set("Location", "/store/carts/"+c.ID)
	w.Header().Set("Cache-Control", "no-store") // the body holds the cart's secret
	writeCart(w, http.StatusCreated, c)
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	c, err := s.Get(r.Context(), callerOf(r), r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	writeCart(w, http.StatusOK, c)
}

// patchBody is the body of PATCH /store/carts/{id}. Each field is kept raw
// to tell absent (nil) from null, and decoded strictly by nullableOf.
type patchBody struct {
	Email            json.RawMessage `json:"email"`
	ShippingAddress  json.RawMessage `json:"shipping_address"`
	BillingAddress   json.RawMessage `json:"billing_address"`
	ShippingMethodID json.RawMessage `json:"shipping_method_id"`
}

func (b patchBody) patch() (Patch, error) {
	var (
		p    Patch
		errs []error
		err  error
	)
	p.Email, err = nullableOf[string](b.Email, "email")
	errs = append(errs, err)
	p.ShippingAddress, err = nullableOf[Address](b.ShippingAddress, "shipping_address")
	errs = append(errs, err)
	p.BillingAddress, err = nullableOf[Address](b.BillingAddress, "billing_address")
	errs = append(errs, err)
	p.ShippingMethodID, err = nullableOf[string](b.ShippingMethodID, "shipping_method_id")
	errs = append(errs, err)
	for _, err := range errs {
		if err != nil {
			return Patch{}, err
		}
	}
	return p, nil
}

// nullableOf decodes a raw patch field strictly (unknown fields refused),
// naming field in its errors.
func nullableOf[T any](raw json.RawMessage, field string) (Nullable[T], error) {
	raw = bytes.TrimSpace(raw)
	if raw == nil {
		return Nullable[T]{}, nil
	}
	if string(raw) == "null" {
		return Null[T](), nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var v T
	if err := dec.Decode(&v); err != nil {
		var typeErr *json.UnmarshalTypeError
		switch {
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return Nullable[T]{}, fieldError(apperr.BadRequest, field+"."+name, "unknown_field", "unknown field %q", field+"."+name)
		case errors.As(err, &typeErr):
			f := field
			if typeErr.Field != "" {
				f += "." + typeErr.Field
			}
			return Nullable[T]{}, fieldError(apperr.BadRequest, f, "invalid_type", "field %q has the wrong type (%s)", f, typeErr.Value)
		}
		return Nullable[T]{}, fieldError(apperr.BadRequest, field, "invalid", "field %q is malformed", field)
	}
	return Value(v), nil
}

func (s *Service) handleUpdate(w http.ResponseWriter, r *http.Request) {
	ifMatch, _, err := httpx.IfMatch(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var body patchBody
	if err := httpx.Decode(r, &body); err != nil {
		httpx.Error(w, r, err)
		return
	}
	p, err := body.patch()
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	c, err := s.Update(r.Context(), callerOf(r), r.PathValue("id"), p, ifMatch)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	writeCart(w, http.StatusOK, c)
}

func (s *Service) handleAddItem(w http.ResponseWriter, r *http.Request) {
	ifMatch, _, err := httpx.IfMatch(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var in ItemInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	c, err := s.AddItem(r.Context(), callerOf(r), r.PathValue("id"), in, ifMatch)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	writeCart(w, http.StatusOK, c)
}

// quantityBody is the body of PATCH /store/carts/{id}/items/{item_id}.
type quantityBody struct {
	Quantity *int64 `json:"quantity"`
}

func (s *Service) handleUpdateItem(w http.ResponseWriter, r *http.Request) {
	ifMatch, _, err := httpx.IfMatch(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var in quantityBody
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	if in.Quantity == nil {
		httpx.Error(w, r, fieldError(apperr.ValidationFailed, "quantity", "required", "quantity is required (0 removes the item)"))
		return
	}
	c, err := s.UpdateItem(r.Context(), callerOf(r), r.PathValue("id"), r.PathValue("item_id"), *in.Quantity, ifMatch)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	writeCart(w, http.StatusOK, c)
}

func (s *Service) handleRemoveItem(w http.ResponseWriter, r *http.Request) {
	ifMatch, _, err := httpx.IfMatch(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	c, err := s.RemoveItem(r.Context(), callerOf(r), r.PathValue("id"), r.PathValue("item_id"), ifMatch)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	writeCart(w, http.StatusOK, c)
}

// codeBody is the body of POST /store/carts/{id}/discount-codes.
type codeBody struct {
	Code string `json:"code"`
}

func (s *Service) handleAddCode(w http.ResponseWriter, r *http.Request) {
	ifMatch, _, err := httpx.IfMatch(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var in codeBody
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	c, err := s.AddCode(r.Context(), callerOf(r), r.PathValue("id"), in.Code, ifMatch)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	writeCart(w, http.StatusOK, c)
}

func (s *Service) handleRemoveCode(w http.ResponseWriter, r *http.Request) {
	ifMatch, _, err := httpx.IfMatch(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	c, err := s.RemoveCode(r.Context(), callerOf(r), r.PathValue("id"), r.PathValue("code"), ifMatch)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	writeCart(w, http.StatusOK, c)
}

// shippingMethods is the body of GET /store/carts/{id}/shipping-methods.
type shippingMethods struct {
	Data []ShippingMethod `json:"data"`
}

func (s *Service) handleShippingMethods(w http.ResponseWriter, r *http.Request) {
	methods, err := s.ShippingMethods(r.Context(), callerOf(r), r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, shippingMethods{Data: methods})
}

func (s *Service) handleMerge(w http.ResponseWriter, r *http.Request) {
	ifMatch, _, err := httpx.IfMatch(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	if err := decodeOptionalEmpty(r); err != nil {
		httpx.Error(w, r, err)
		return
	}
	c, err := s.Merge(r.Context(), callerOf(r), r.PathValue("id"), ifMatch)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	writeCart(w, http.StatusOK, c)
}

// decodeOptionalEmpty accepts no body or an empty JSON object, and refuses
// anything else as httpx.Decode would.
func decodeOptionalEmpty(r *http.Request) error {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return apperr.New(apperr.PayloadTooLarge, "request body exceeds %d bytes", tooBig.Limit)
		}
		return apperr.Wrap(err, apperr.BadRequest, "request body could not be read")
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	var empty struct{}
	return httpx.Decode(r, &empty)
}

func (s *Service) handleAdminGet(w http.ResponseWriter, r *http.Request) {
	c, err := s.AdminGet(r.Context(), r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	writeCart(w, http.StatusOK, c)
}

func (s *Service) handleGetForCheckout(w http.ResponseWriter, r *http.Request) {
	c, err := s.GetForCheckout(r.Context(), r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.SetETag(w, c.Version)
	httpx.JSON(w, http.StatusOK, c)
}

func (s *Service) handleMarkCheckedOut(w http.ResponseWriter, r *http.Request) {
	var in MarkCheckedOutInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	cartID := r.PathValue("id")
	if err := s.MarkCheckedOut(r.Context(), cartID, in.OrderID); err != nil {
		httpx.Error(w, r, err)
		return
	}
	c, err := s.GetForCheckout(r.Context(), cartID)
	if err != nil {
		httpx.Error(w, r, fmt.Errorf("read cart after marking it: %w", err))
		return
	}
	httpx.SetETag(w, c.Version)
	httpx.JSON(w, http.StatusOK, c)
}

func (s *Service) handleCheckoutView(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	in := CheckoutViewInput{
		CartToken:      strings.TrimSpace(r.Header.Get(httpx.HeaderCartToken)),
		CustomerID:     q.Get("customer_id"),
		CustomerGroups: q["customer_group"],
	}
	c, err := s.CheckoutView(r.Context(), r.PathValue("id"), in.caller())
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.SetETag(w, c.Version)
	httpx.JSON(w, http.StatusOK, c)
}

// validation is the body of GET /admin/carts/{id}/validation when the cart
// can be checked out; otherwise the answer is the problem saying why not.
type validation struct {
	Valid bool `json:"valid"`
}

func (s *Service) handleValidate(w http.ResponseWriter, r *http.Request) {
	if err := s.Validate(r.Context(), r.PathValue("id")); err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, validation{Valid: true})
}
