package identity

import (
	"net/http"
	"strconv"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/httpx"
)

// Routes returns identity's HTTP routes. The login, refresh and logout
// routes are public (Permission ""), under /admin/auth as well as
// /store/auth: a caller has no token before it logs in. The gateway must
// route /admin/api-keys, /admin/auth, /admin/customers, /admin/staff,
// /store/customers, /store/auth and /.well-known/jwks.json here.
func (s *Service) Routes() []httpx.Route {
	return []httpx.Route{
		// Store API: customers.
		{Method: http.MethodPost, Path: "/store/customers", Handler: s.handleRegister},
		{Method: http.MethodGet, Path: "/store/customers/me", Handler: s.handleMe},
		{Method: http.MethodGet, Path: "/store/customers/{id}", Handler: s.handleStoreGetCustomer},
		{Method: http.MethodPost, Path: "/store/auth/token", NoReplay: true, Handler: s.handleLogin(auth.KindCustomer)},
		{Method: http.MethodPost, Path: "/store/auth/refresh", NoReplay: true, Handler: s.handleRefresh(auth.KindCustomer)},
		{Method: http.MethodPost, Path: "/store/auth/logout", NoReplay: true, Handler: s.handleLogout(auth.KindCustomer)},

		// Admin API: customers and staff.
		{Method: http.MethodGet, Path: "/admin/customers", Permission: PermCustomersRead, Handler: s.handleListCustomers},
		{Method: http.MethodGet, Path: "/admin/customers/{id}", Permission: PermCustomersRead, Handler: s.handleAdminGetCustomer},
		{Method: http.MethodPatch, Path: "/admin/customers/{id}", Permission: PermCustomersWrite, Handler: s.handleUpdateCustomer},
		{Method: http.MethodPost, Path: "/admin/staff", Permission: PermStaffManage, Handler: s.handleCreateStaff},
		{Method: http.MethodGet, Path: "/admin/staff", Permission: PermStaffManage, Handler: s.handleListStaff},
		{Method: http.MethodGet, Path: "/admin/staff/{id}", Permission: PermStaffManage, Handler: s.handleGetStaff},
		{Method: http.MethodPatch, Path: "/admin/staff/{id}", Permission: PermStaffManage, Handler: s.handleUpdateStaff},

		// Admin API: staff sessions, keys, API keys.
		{Method: http.MethodPost, Path: "/admin/auth/token", NoReplay: true, Handler: s.handleLogin(auth.KindStaff)},
		{Method: http.MethodPost, Path: "/admin/auth/refresh", NoReplay: true, Handler: s.handleRefresh(auth.KindStaff)},
		{Method: http.MethodPost, Path: "/admin/auth/logout", NoReplay: true, Handler: s.handleLogout(auth.KindStaff)},
		{Method: http.MethodGet, Path: "/admin/auth/whoami", Permission: PermWhoAmI, Handler: s.handleWhoAmI},
		{Method: http.MethodPost, Path: "/admin/auth/keys/rotate", Permission: PermAuthKeysRotate, Handler: s.handleRotateKey},
		{Method: http.MethodPost, Path: "/admin/api-keys", Permission: PermAPIKeysManage, NoReplay: true, Handler: s.handleCreateKey},
		{Method: http.MethodGet, Path: "/admin/api-keys", Permission: PermAPIKeysManage, Handler: s.handleListKeys},
		{Method: http.MethodDelete, Path: "/admin/api-keys/{id}", Permission: PermAPIKeysManage, Handler: s.handleRevokeKey},

		// The public keys of access tokens, for verifiers in other processes.
		{Method: http.MethodGet, Path: JWKSPath, Handler: s.handleJWKS},
	}
}

// writeError is httpx.Error plus the Retry-After of a throttled attempt.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	retryAfterHeader(w, err)
	httpx.Error(w, r, err)
}

// noStore marks a response that carries credentials or personal data.
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// --- customers ---

func (s *Service) handleRegister(w http.ResponseWriter, r *http.Request) {
	var p RegisterParams
	if err := httpx.Decode(r, &p); err != nil {
		writeError(w, r, err)
		return
	}
	p.ClientIP = ClientIP(r, s.cfg.TrustedProxies)
	c, err := s.RegisterCustomer(r.Context(), p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	noStore(w)
	w.Header().Set("Location", "/store/customers/me")
	httpx.JSON(w, http.StatusCreated, c)
}

func (s *Service) handleMe(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	s.serveCustomerFor(w, r, p, p.Subject)
}

func (s *Service) handleStoreGetCustomer(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	s.serveCustomerFor(w, r, p, r.PathValue("id"))
}

func (s *Service) serveCustomerFor(w http.ResponseWriter, r *http.Request, p auth.Principal, customerID string) {
	c, err := s.CustomerFor(r.Context(), p, customerID)
	if err != nil {
		if apperr.Is(err, apperr.Unauthorized) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="souk"`)
		}
		writeError(w, r, err)
		return
	}
	noStore(w)
	httpx.JSON(w, http.StatusOK, c)
}

func (s *Service) handleListCustomers(w http.ResponseWriter, r *http.Request) {
	lp, err := httpx.ParseList(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	list, next, err := s.ListCustomers(r.Context(), CustomerQuery{Email: r.URL.Query().Get("email"), Limit: lp.Limit, After: lp.After})
	if err != nil {
		writeError(w, r, err)
		return
	}
	noStore(w)
	httpx.JSON(w, http.StatusOK, httpx.NewPage(list, next))
}

func (s *Service) handleAdminGetCustomer(w http.ResponseWriter, r *http.Request) {
	c, err := s.GetCustomer(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	noStore(w)
	httpx.SetETag(w, c.Version)
	httpx.JSON(w, http.StatusOK, c)
}

func (s *Service) handleUpdateCustomer(w http.ResponseWriter, r *http.Request) {
	version, _, err := httpx.IfMatch(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var patch CustomerPatch
	if err := httpx.Decode(r, &patch); err != nil {
		writeError(w, r, err)
		return
	}
	c, err := s.UpdateCustomer(r.Context(), r.PathValue("id"), patch, version)
	if err != nil {
		writeError(w, r, err)
		return
	}
	noStore(w)
	httpx.SetETag(w, c.Version)
	httpx.JSON(w, http.StatusOK, c)
}

// --- staff ---

func (s *Service) handleCreateStaff(w http.ResponseWriter, r *http.Request) {
	var p CreateStaffParams
	if err := httpx.Decode(r, &p); err != nil {
		writeError(w, r, err)
		return
	}
	u, err := s.CreateStaff(r.Context(), p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	httpx.SetETag(w, u.Version)
	w.Header().Set("Location", "/admin/staff/"+u.ID)
	httpx.JSON(w, http.StatusCreated, u)
}

func (s *Service) handleListStaff(w http.ResponseWriter, r *http.Request) {
	lp, err := httpx.ParseList(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	list, next, err := s.ListStaff(r.Context(), lp.Limit, lp.After)
	if err != nil {
		writeError(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, httpx.NewPage(list, next))
}

func (s *Service) handleGetStaff(w http.ResponseWriter, r *http.Request) {
	u, err := s.GetStaff(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	httpx.SetETag(w, u.Version)
	httpx.JSON(w, http.StatusOK, u)
}

func (s *Service) handleUpdateStaff(w http.ResponseWriter, r *http.Request) {
	version, _, err := httpx.IfMatch(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var patch StaffPatch
	if err := httpx.Decode(r, &patch); err != nil {
		writeError(w, r, err)
		return
	}
	u, err := s.UpdateStaff(r.Context(), r.PathValue("id"), patch, version)
	if err != nil {
		writeError(w, r, err)
		return
	}
	httpx.SetETag(w, u.Version)
	httpx.JSON(w, http.StatusOK, u)
}

// --- sessions ---

func (s *Service) handleLogin(kind auth.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var p LoginParams
		if err := httpx.Decode(r, &p); err != nil {
			writeError(w, r, err)
			return
		}
		p.ClientIP = ClientIP(r, s.cfg.TrustedProxies)
		pair, err := s.Login(r.Context(), kind, p)
		if err != nil {
			writeError(w, r, err)
			return
		}
		noStore(w)
		httpx.JSON(w, http.StatusOK, pair)
	}
}

// refreshRequest is the body of refresh and logout.
type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (s *Service) handleRefresh(kind auth.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req refreshRequest
		if err := httpx.Decode(r, &req); err != nil {
			writeError(w, r, err)
			return
		}
		pair, err := s.Refresh(r.Context(), kind, req.RefreshToken)
		if err != nil {
			writeError(w, r, err)
			return
		}
		noStore(w)
		httpx.JSON(w, http.StatusOK, pair)
	}
}

func (s *Service) handleLogout(kind auth.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req refreshRequest
		if err := httpx.Decode(r, &req); err != nil {
			writeError(w, r, err)
			return
		}
		if err := s.Logout(r.Context(), kind, req.RefreshToken); err != nil {
			writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Service) handleRotateKey(w http.ResponseWriter, r *http.Request) {
	k, err := s.RotateSigningKey(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, k)
}

func (s *Service) handleJWKS(w http.ResponseWriter, r *http.Request) {
	set, err := s.JWKS(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(s.cfg.JWKSMaxAge.Seconds())))
	httpx.JSON(w, http.StatusOK, set)
}

// --- API keys ---

func (s *Service) handleCreateKey(w http.ResponseWriter, r *http.Request) {
	var p CreateAPIKeyParams
	if err := httpx.Decode(r, &p); err != nil {
		writeError(w, r, err)
		return
	}
	k, err := s.CreateAPIKey(r.Context(), p)
	if err != nil {
		writeError(w, r, err)
		return
	}
	noStore(w)
	httpx.JSON(w, http.StatusCreated, k)
}

func (s *Service) handleListKeys(w http.ResponseWriter, r *http.Request) {
	lp, err := httpx.ParseList(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	keys, next, err := s.ListAPIKeys(r.Context(), lp.Limit, lp.After)
	if err != nil {
		writeError(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, httpx.NewPage(keys, next))
}

func (s *Service) handleRevokeKey(w http.ResponseWriter, r *http.Request) {
	if err := s.RevokeAPIKey(r.Context(), r.PathValue("id")); err != nil {
		writeError(w, r, err)
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
		writeError(w, r, apperr.New(apperr.Unauthorized, "no credentials"))
		return
	}
	httpx.JSON(w, http.StatusOK, WhoAmI{Subject: p.Subject, Kind: string(p.Kind), Role: p.Role, Name: p.Name})
}
