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

// The handlers below share one shape: read the request (decode, patchOf,
// servePage), call the service, and end with respond or noContent, which
// write the error as problem+json or the result with its headers.

// header sets a response header of a successful result.
type header func(http.ResponseWriter)

// noStore marks a response that carries credentials or personal data.
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// etag sets the ETag of a resource at version.
func etag(version int64) header {
	return func(w http.ResponseWriter) { httpx.SetETag(w, version) }
}

// location sets the Location of a created resource.
func location(path string) header {
	return func(w http.ResponseWriter) { w.Header().Set("Location", path) }
}

// respond ends a handler: err, when there is one, through writeError;
// otherwise the headers, in order, and v as JSON with status.
func respond(w http.ResponseWriter, r *http.Request, status int, v any, err error, headers ...header) {
	if err != nil {
		writeError(w, r, err)
		return
	}
	for _, h := range headers {
		h(w)
	}
	httpx.JSON(w, status, v)
}

// noContent ends a handler whose success has no body: err through
// writeError, or 204 No Content.
func noContent(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// decode reads the JSON body of r into a T; when it cannot, it writes the
// error and returns false, and the handler returns.
func decode[T any](w http.ResponseWriter, r *http.Request) (T, bool) {
	var v T
	if err := httpx.Decode(r, &v); err != nil {
		writeError(w, r, err)
		return v, false
	}
	return v, true
}

// patchOf reads a PATCH: the version of its If-Match header (0 without
// one), then its JSON body into a P; when either is bad, it writes the error
// and returns false, and the handler returns.
func patchOf[P any](w http.ResponseWriter, r *http.Request) (int64, P, bool) {
	version, _, err := httpx.IfMatch(r)
	if err != nil {
		writeError(w, r, err)
		var zero P
		return 0, zero, false
	}
	patch, ok := decode[P](w, r)
	return version, patch, ok
}

// servePage serves a list: it reads ?limit= and ?cursor=, calls list with
// them and writes the page it returns, with the headers.
func servePage[T any](w http.ResponseWriter, r *http.Request, list func(httpx.ListParams) ([]T, string, error), headers ...header) {
	lp, err := httpx.ParseList(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	items, next, err := list(lp)
	respond(w, r, http.StatusOK, httpx.NewPage(items, next), err, headers...)
}

// --- customers ---

func (s *Service) handleRegister(w http.ResponseWriter, r *http.Request) {
	p, ok := decode[RegisterParams](w, r)
	if !ok {
		return
	}
	p.ClientIP = ClientIP(r, s.cfg.TrustedProxies)
	c, err := s.RegisterCustomer(r.Context(), p)
	respond(w, r, http.StatusCreated, c, err, noStore, location("/store/customers/me"))
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
	if apperr.Is(err, apperr.Unauthorized) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="souk"`)
	}
	respond(w, r, http.StatusOK, c, err, noStore)
}

func (s *Service) handleListCustomers(w http.ResponseWriter, r *http.Request) {
	servePage(w, r, func(lp httpx.ListParams) ([]Customer, string, error) {
		return s.ListCustomers(r.Context(), CustomerQuery{Email: r.URL.Query().Get("email"), Limit: lp.Limit, After: lp.After})
	}, noStore)
}

func (s *Service) handleAdminGetCustomer(w http.ResponseWriter, r *http.Request) {
	c, err := s.GetCustomer(r.Context(), r.PathValue("id"))
	respond(w, r, http.StatusOK, c, err, noStore, etag(c.Version))
}

func (s *Service) handleUpdateCustomer(w http.ResponseWriter, r *http.Request) {
	version, patch, ok := patchOf[CustomerPatch](w, r)
	if !ok {
		return
	}
	c, err := s.UpdateCustomer(r.Context(), r.PathValue("id"), patch, version)
	respond(w, r, http.StatusOK, c, err, noStore, etag(c.Version))
}

// --- staff ---

func (s *Service) handleCreateStaff(w http.ResponseWriter, r *http.Request) {
	p, ok := decode[CreateStaffParams](w, r)
	if !ok {
		return
	}
	u, err := s.CreateStaff(r.Context(), p)
	respond(w, r, http.StatusCreated, u, err, etag(u.Version), location("/admin/staff/"+u.ID))
}

func (s *Service) handleListStaff(w http.ResponseWriter, r *http.Request) {
	servePage(w, r, func(lp httpx.ListParams) ([]Staff, string, error) {
		return s.ListStaff(r.Context(), lp.Limit, lp.After)
	})
}

func (s *Service) handleGetStaff(w http.ResponseWriter, r *http.Request) {
	u, err := s.GetStaff(r.Context(), r.PathValue("id"))
	respond(w, r, http.StatusOK, u, err, etag(u.Version))
}

func (s *Service) handleUpdateStaff(w http.ResponseWriter, r *http.Request) {
	version, patch, ok := patchOf[StaffPatch](w, r)
	if !ok {
		return
	}
	u, err := s.UpdateStaff(r.Context(), r.PathValue("id"), patch, version)
	respond(w, r, http.StatusOK, u, err, etag(u.Version))
}

// --- sessions ---

func (s *Service) handleLogin(kind auth.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := decode[LoginParams](w, r)
		if !ok {
			return
		}
		p.ClientIP = ClientIP(r, s.cfg.TrustedProxies)
		pair, err := s.Login(r.Context(), kind, p)
		respond(w, r, http.StatusOK, pair, err, noStore)
	}
}

// refreshRequest is the body of refresh and logout.
type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (s *Service) handleRefresh(kind auth.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, ok := decode[refreshRequest](w, r)
		if !ok {
			return
		}
		pair, err := s.Refresh(r.Context(), kind, req.RefreshToken)
		respond(w, r, http.StatusOK, pair, err, noStore)
	}
}

func (s *Service) handleLogout(kind auth.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, ok := decode[refreshRequest](w, r)
		if !ok {
			return
		}
		noContent(w, r, s.Logout(r.Context(), kind, req.RefreshToken))
	}
}

func (s *Service) handleRotateKey(w http.ResponseWriter, r *http.Request) {
	k, err := s.RotateSigningKey(r.Context())
	respond(w, r, http.StatusOK, k, err)
}

func (s *Service) handleJWKS(w http.ResponseWriter, r *http.Request) {
	set, err := s.JWKS(r.Context())
	respond(w, r, http.StatusOK, set, err, func(w http.ResponseWriter) {
		w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(s.cfg.JWKSMaxAge.Seconds())))
	})
}

// --- API keys ---

func (s *Service) handleCreateKey(w http.ResponseWriter, r *http.Request) {
	p, ok := decode[CreateAPIKeyParams](w, r)
	if !ok {
		return
	}
	k, err := s.CreateAPIKey(r.Context(), p)
	respond(w, r, http.StatusCreated, k, err, noStore)
}

func (s *Service) handleListKeys(w http.ResponseWriter, r *http.Request) {
	servePage(w, r, func(lp httpx.ListParams) ([]APIKey, string, error) {
		return s.ListAPIKeys(r.Context(), lp.Limit, lp.After)
	})
}

func (s *Service) handleRevokeKey(w http.ResponseWriter, r *http.Request) {
	noContent(w, r, s.RevokeAPIKey(r.Context(), r.PathValue("id")))
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
