package identity

import (
	"net/http"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/httpx"
)

// Routes returns identity's HTTP routes.
func (s *Service) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: http.MethodPost, Path: "/admin/api-keys", Permission: PermAPIKeysManage, Handler: s.handleCreateKey},
		{Method: http.MethodGet, Path: "/admin/api-keys", Permission: PermAPIKeysManage, Handler: s.handleListKeys},
		{Method: http.MethodDelete, Path: "/admin/api-keys/{id}", Permission: PermAPIKeysManage, Handler: s.handleRevokeKey},
		{Method: http.MethodGet, Path: "/admin/auth/whoami", Permission: PermWhoAmI, Handler: s.handleWhoAmI},
	}
}

// PermWhoAmI is held by every staff role: it tells a caller who it is.
const PermWhoAmI auth.Permission = "auth:whoami"

func (s *Service) handleCreateKey(w http.ResponseWriter, r *http.Request) {
	var p CreateAPIKeyParams
	if err := httpx.Decode(r, &p); err != nil {
		httpx.Error(w, r, err)
		return
	}
	k, err := s.CreateAPIKey(r.Context(), p)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.JSON(w, http.StatusCreated, k)
}

func (s *Service) handleListKeys(w http.ResponseWriter, r *http.Request) {
	lp, err := httpx.ParseList(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	keys, next, err := s.ListAPIKeys(r.Context(), lp.Limit, lp.After)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, httpx.NewPage(keys, next))
}

func (s *Service) handleRevokeKey(w http.ResponseWriter, r *http.Request) {
	if err := s.RevokeAPIKey(r.Context(), r.PathValue("id")); err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// WhoAmI is the caller as the API sees it.
type WhoAmI struct {
	Subject string `json:"subject"`
	Kind    string `json:"kind"`
	Role    string `json:"role"`
	Name    string `json:"name"`
}

func (s *Service) handleWhoAmI(w http.ResponseWriter, r *http.Request) {
	p, ok := auth.FromContext(r.Context())
	if !ok {
		httpx.Error(w, r, apperr.New(apperr.Unauthorized, "no credentials"))
		return
	}
	httpx.JSON(w, http.StatusOK, WhoAmI{Subject: p.Subject, Kind: string(p.Kind), Role: p.Role, Name: p.Name})
}
