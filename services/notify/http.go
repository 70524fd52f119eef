package notify

import (
	"net/http"
	"strconv"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/httpx"
)

// Routes returns the webhooks Admin API; every route requires
// webhooks:manage. Handlers only do their job: the gateway wraps them with
// authentication, authorization, idempotency, body limits and metrics when
// it mounts them. Creating a webhook is NoReplay: its answer carries the
// signing secret, which must not be kept for Idempotency-Key replays.
func (s *Service) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: http.MethodPost, Path: "/admin/webhooks", Permission: PermissionManage, NoReplay: true, Handler: s.handleCreate},
		{Method: http.MethodGet, Path: "/admin/webhooks", Permission: PermissionManage, Handler: s.handleList},
		{Method: http.MethodGet, Path: "/admin/webhooks/{id}", Permission: PermissionManage, Handler: s.handleGet},
		{Method: http.MethodPatch, Path: "/admin/webhooks/{id}", Permission: PermissionManage, Handler: s.handleUpdate},
		{Method: http.MethodDelete, Path: "/admin/webhooks/{id}", Permission: PermissionManage, Handler: s.handleDelete},
		{Method: http.MethodGet, Path: "/admin/webhooks/{id}/deliveries", Permission: PermissionManage, Handler: s.handleListDeliveries},
		{Method: http.MethodGet, Path: "/admin/webhooks/{id}/deliveries/{delivery_id}", Permission: PermissionManage, Handler: s.handleGetDelivery},
		{Method: http.MethodPost, Path: "/admin/webhooks/{id}/deliveries/{delivery_id}/retry", Permission: PermissionManage, Handler: s.handleRetry},
	}
}

func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) {
	var in WebhookInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	wh, err := s.CreateWebhook(r.Context(), in)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.Header().Set("Location", "/admin/webhooks/"+wh.ID)
	w.Header().Set("Cache-Control", "no-store") // the secret
	httpx.SetETag(w, wh.Version)
	httpx.JSON(w, http.StatusCreated, wh)
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	limit, cursor, err := listParams(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	page, err := s.ListWebhooks(r.Context(), limit, cursor)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, page)
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	wh, err := s.GetWebhook(r.Context(), r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.SetETag(w, wh.Version)
	httpx.JSON(w, http.StatusOK, wh)
}

func (s *Service) handleUpdate(w http.ResponseWriter, r *http.Request) {
	ifMatch, _, err := httpx.IfMatch(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var patch WebhookPatch
	if err := httpx.Decode(r, &patch); err != nil {
		httpx.Error(w, r, err)
		return
	}
	wh, err := s.UpdateWebhook(r.Context(), r.PathValue("id"), patch, ifMatch)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.SetETag(w, wh.Version)
	httpx.JSON(w, http.StatusOK, wh)
}

func (s *Service) handleDelete(w http.ResponseWriter, r *http.Request) {
	ifMatch, _, err := httpx.IfMatch(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	if err := s.DeleteWebhook(r.Context(), r.PathValue("id"), ifMatch); err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) handleListDeliveries(w http.ResponseWriter, r *http.Request) {
	limit, cursor, err := listParams(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	status := DeliveryStatus(r.URL.Query().Get("status"))
	page, err := s.ListDeliveries(r.Context(), r.PathValue("id"), status, limit, cursor)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, page)
}

func (s *Service) handleGetDelivery(w http.ResponseWriter, r *http.Request) {
	d, err := s.GetDelivery(r.Context(), r.PathValue("id"), r.PathValue("delivery_id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, d)
}

func (s *Service) handleRetry(w http.ResponseWriter, r *http.Request) {
	d, err := s.RetryDelivery(r.Context(), r.PathValue("id"), r.PathValue("delivery_id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusAccepted, d)
}

// listParams reads ?limit= and ?cursor= (the cursor stays encoded: the
// service decodes and checks it).
func listParams(r *http.Request) (int, string, error) {
	q := r.URL.Query()
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > httpx.MaxLimit {
			var v apperr.Validation
			v.Addf("limit", "out_of_range", "limit must be an integer from 1 to %d", httpx.MaxLimit)
			return 0, "", v.Err()
		}
		limit = n
	}
	return limit, q.Get("cursor"), nil
}
