package inventory

import (
	"net/http"
	"strings"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/httpx"
)

// Routes returns the inventory's Admin API (inventory:read for GETs,
// inventory:write for changes and reservations) and the public
// availability route. Handlers only do their job: the gateway wraps them
// with authentication, authorization, idempotency, body limits and metrics
// when it mounts them. The gateway prefixes they live under:
// /admin/stock-locations, /admin/inventory, /admin/reservations and
// /store/inventory.
func (s *Service) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: http.MethodPost, Path: "/admin/stock-locations", Permission: PermissionWrite, Handler: s.handleCreateLocation},
		{Method: http.MethodGet, Path: "/admin/stock-locations", Permission: PermissionRead, Handler: s.handleListLocations},
		{Method: http.MethodGet, Path: "/admin/stock-locations/{id}", Permission: PermissionRead, Handler: s.handleGetLocation},
		{Method: http.MethodPatch, Path: "/admin/stock-locations/{id}", Permission: PermissionWrite, Handler: s.handleUpdateLocation},

		{Method: http.MethodGet, Path: "/admin/inventory", Permission: PermissionRead, Handler: s.handleListStock},
		{Method: http.MethodGet, Path: "/admin/inventory/{sku}", Permission: PermissionRead, Handler: s.handleGetStock},
		{Method: http.MethodPatch, Path: "/admin/inventory/{sku}", Permission: PermissionWrite, Handler: s.handleUpdateItem},
		{Method: http.MethodPut, Path: "/admin/inventory/{sku}/levels/{location_id}", Permission: PermissionWrite, Handler: s.handleSetLevel},
		{Method: http.MethodPost, Path: "/admin/inventory/{sku}/adjustments", Permission: PermissionWrite, Handler: s.handleAdjust},
		{Method: http.MethodGet, Path: "/admin/inventory/{sku}/adjustments", Permission: PermissionRead, Handler: s.handleListAdjustments},

		{Method: http.MethodPost, Path: "/admin/reservations", Permission: PermissionWrite, Handler: s.handleReserve},
		{Method: http.MethodGet, Path: "/admin/reservations/{id}", Permission: PermissionRead, Handler: s.handleGetReservation},
		{Method: http.MethodPost, Path: "/admin/reservations/{id}/release", Permission: PermissionWrite, Handler: s.handleRelease},
		{Method: http.MethodPost, Path: "/admin/reservations/{id}/commit", Permission: PermissionWrite, Handler: s.handleCommit},
		{Method: http.MethodPost, Path: "/admin/reservations/{id}/restock", Permission: PermissionWrite, Handler: s.handleRestock},

		{Method: http.MethodGet, Path: "/store/inventory/availability", Handler: s.handleAvailability},
	}
}

// --- stock locations ---

func (s *Service) handleCreateLocation(w http.ResponseWriter, r *http.Request) {
	var in LocationInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	l, err := s.CreateLocation(r.Context(), in)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.Header().Set("Location", "/admin/stock-locations/"+l.ID)
	httpx.SetETag(w, l.Version)
	httpx.JSON(w, http.StatusCreated, l)
}

func (s *Service) handleListLocations(w http.ResponseWriter, r *http.Request) {
	lp, err := httpx.ParseList(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	page, err := s.ListLocations(r.Context(), lp.Limit, r.URL.Query().Get("cursor"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, page)
}

func (s *Service) handleGetLocation(w http.ResponseWriter, r *http.Request) {
	l, err := s.GetLocation(r.Context(), r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.SetETag(w, l.Version)
	httpx.JSON(w, http.StatusOK, l)
}

func (s *Service) handleUpdateLocation(w http.ResponseWriter, r *http.Request) {
	ifMatch, _, err := httpx.IfMatch(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var patch LocationPatch
	if err := httpx.Decode(r, &patch); err != nil {
		httpx.Error(w, r, err)
		return
	}
	l, err := s.UpdateLocation(r.Context(), r.PathValue("id"), patch, ifMatch)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.SetETag(w, l.Version)
	httpx.JSON(w, http.StatusOK, l)
}

// --- stock ---

func (s *Service) handleListStock(w http.ResponseWriter, r *http.Request) {
	lp, err := httpx.ParseList(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var skus []string
	if vals, ok := r.URL.Query()["sku"]; ok {
		if skus, err = parseSKUList("sku", vals); err != nil {
			httpx.Error(w, r, err)
			return
		}
	}
	page, err := s.ListStock(r.Context(), skus, lp.Limit, r.URL.Query().Get("cursor"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, page)
}

func (s *Service) handleGetStock(w http.ResponseWriter, r *http.Request) {
	it, err := s.GetStock(r.Context(), r.PathValue("sku"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.SetETag(w, it.Version)
	httpx.JSON(w, http.StatusOK, it)
}

func (s *Service) handleUpdateItem(w http.ResponseWriter, r *http.Request) {
	ifMatch, _, err := httpx.IfMatch(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var patch ItemPatch
	if err := httpx.Decode(r, &patch); err != nil {
		httpx.Error(w, r, err)
		return
	}
	it, err := s.UpdateItem(r.Context(), r.PathValue("sku"), patch, ifMatch)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.SetETag(w, it.Version)
	httpx.JSON(w, http.StatusOK, it)
}

func (s *Service) handleSetLevel(w http.ResponseWriter, r *http.Request) {
	ifMatch, _, err := httpx.IfMatch(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var in LevelInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	it, err := s.SetLevel(r.Context(), r.PathValue("sku"), r.PathValue("location_id"), in, ifMatch)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, it)
}

func (s *Service) handleAdjust(w http.ResponseWriter, r *http.Request) {
	var in AdjustmentInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	a, err := s.Adjust(r.Context(), r.PathValue("sku"), in)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusCreated, a)
}

func (s *Service) handleListAdjustments(w http.ResponseWriter, r *http.Request) {
	lp, err := httpx.ParseList(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	q := r.URL.Query()
	page, err := s.ListAdjustments(r.Context(), r.PathValue("sku"), q.Get("location_id"), lp.Limit, q.Get("cursor"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, page)
}

// --- reservations ---

// reserveBody is the body of POST /admin/reservations. The key may come in
// the body or as the Idempotency-Key header (the same value when both).
type reserveBody struct {
	Key        string        `json:"key,omitempty"`
	OrderID    string        `json:"order_id,omitempty"`
	Lines      []ReserveLine `json:"lines"`
	TTLSeconds int64         `json:"ttl_seconds,omitempty"`
}

func (s *Service) handleReserve(w http.ResponseWriter, r *http.Request) {
	var body reserveBody
	if err := httpx.Decode(r, &body); err != nil {
		httpx.Error(w, r, err)
		return
	}
	header := strings.TrimSpace(r.Header.Get(httpx.HeaderIdempotencyKey))
	switch {
	case body.Key == "":
		body.Key = header
	case header != "" && header != body.Key:
		httpx.Error(w, r, &apperr.Error{Code: apperr.ValidationFailed, Message: "key and the Idempotency-Key header differ",
			Fields: []apperr.FieldError{{Field: "key", Code: "mismatch", Message: "must equal the Idempotency-Key header when both are given"}}})
		return
	}
	req := ReserveRequest{Key: body.Key, OrderID: body.OrderID, Lines: body.Lines}
	if body.TTLSeconds != 0 {
		if body.TTLSeconds < 0 || body.TTLSeconds > int64(MaxReservationTTL/time.Second) {
			req.TTL = -1 // out of range: validated (and named) by the service
		} else {
			req.TTL = time.Duration(body.TTLSeconds) * time.Second
		}
	}
	res, replayed, err := s.reserve(r.Context(), req)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.Header().Set("Location", "/admin/reservations/"+res.ID)
	if replayed {
		w.Header().Set(httpx.HeaderIdempotentReplayed, "true")
		httpx.JSON(w, http.StatusOK, res)
		return
	}
	httpx.JSON(w, http.StatusCreated, res)
}

func (s *Service) handleGetReservation(w http.ResponseWriter, r *http.Request) {
	res, err := s.GetReservation(r.Context(), r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, res)
}

func (s *Service) handleRelease(w http.ResponseWriter, r *http.Request) {
	res, err := s.Release(r.Context(), r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, res)
}

// commitBody is the optional body of POST /admin/reservations/{id}/commit.
type commitBody struct {
	OrderID string `json:"order_id,omitempty"`
}

func (s *Service) handleCommit(w http.ResponseWriter, r *http.Request) {
	var body commitBody
	if hasBody(r) {
		if err := httpx.Decode(r, &body); err != nil {
			httpx.Error(w, r, err)
			return
		}
	}
	res, err := s.Commit(r.Context(), r.PathValue("id"), body.OrderID)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, res)
}

func (s *Service) handleRestock(w http.ResponseWriter, r *http.Request) {
	res, err := s.Restock(r.Context(), r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, res)
}

// hasBody reports whether the request came with a body to decode.
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// --- storefront ---

func (s *Service) handleAvailability(w http.ResponseWriter, r *http.Request) {
	vals := r.URL.Query()["sku"]
	skus, err := parseSKUList("sku", vals)
	if err == nil && len(vals) == 0 {
		var v apperr.Validation
		v.Add("sku", "required", "name at least one SKU: ?sku=a,b")
		err = v.Err()
	}
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	avail, err := s.Availability(r.Context(), skus)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	out := struct {
		Data []PublicAvailability `json:"data"`
	}{Data: make([]PublicAvailability, len(skus))}
	for i, sku := range skus {
		out.Data[i] = publicView(sku, avail[sku])
	}
	httpx.JSON(w, http.StatusOK, out)
}
