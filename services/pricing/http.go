package pricing

import (
	"net/http"
	"strings"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/money"
)

// Routes returns pricing's Admin API: the back office's price lists,
// promotions, tax rates and shipping methods (pricing:read for GETs,
// pricing:write for writes), and the internal, authenticated endpoints
// behind HTTPClient under /admin/pricing/ (quotes, shipping options, code
// checks and display prices need pricing:read; redeeming and releasing
// vouchers pricing:write). Pricing has no Store API of its own: shoppers
// see prices through the catalogue and totals through their cart, which
// ask pricing through Client. Handlers only do their job: the gateway
// wraps them with authentication, authorization, idempotency, body limits
// and metrics when it mounts them.
func (s *Service) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: http.MethodPost, Path: "/admin/price-lists", Permission: PermissionWrite, Handler: s.handleCreatePriceList},
		{Method: http.MethodGet, Path: "/admin/price-lists", Permission: PermissionRead, Handler: s.handleListPriceLists},
		{Method: http.MethodGet, Path: "/admin/price-lists/{id}", Permission: PermissionRead, Handler: s.handleGetPriceList},
		{Method: http.MethodPatch, Path: "/admin/price-lists/{id}", Permission: PermissionWrite, Handler: s.handleUpdatePriceList},

		{Method: http.MethodPost, Path: "/admin/promotions", Permission: PermissionWrite, Handler: s.handleCreatePromotion},
		{Method: http.MethodGet, Path: "/admin/promotions", Permission: PermissionRead, Handler: s.handleListPromotions},
		{Method: http.MethodGet, Path: "/admin/promotions/{id}", Permission: PermissionRead, Handler: s.handleGetPromotion},
		{Method: http.MethodPatch, Path: "/admin/promotions/{id}", Permission: PermissionWrite, Handler: s.handleUpdatePromotion},

		{Method: http.MethodPost, Path: "/admin/tax-rates", Permission: PermissionWrite, Handler: s.handleCreateTaxRate},
		{Method: http.MethodGet, Path: "/admin/tax-rates", Permission: PermissionRead, Handler: s.handleListTaxRates},
		{Method: http.MethodGet, Path: "/admin/tax-rates/{id}", Permission: PermissionRead, Handler: s.handleGetTaxRate},
		{Method: http.MethodPatch, Path: "/admin/tax-rates/{id}", Permission: PermissionWrite, Handler: s.handleUpdateTaxRate},

		{Method: http.MethodPost, Path: "/admin/shipping-methods", Permission: PermissionWrite, Handler: s.handleCreateShippingMethod},
		{Method: http.MethodGet, Path: "/admin/shipping-methods", Permission: PermissionRead, Handler: s.handleListShippingMethods},
		{Method: http.MethodGet, Path: "/admin/shipping-methods/{id}", Permission: PermissionRead, Handler: s.handleGetShippingMethod},
		{Method: http.MethodPatch, Path: "/admin/shipping-methods/{id}", Permission: PermissionWrite, Handler: s.handleUpdateShippingMethod},

		{Method: http.MethodPost, Path: "/admin/pricing/quote", Permission: PermissionRead, Handler: s.handleQuote},
		{Method: http.MethodPost, Path: "/admin/pricing/shipping-options", Permission: PermissionRead, Handler: s.handleShippingOptions},
		{Method: http.MethodGet, Path: "/admin/pricing/codes/{code}", Permission: PermissionRead, Handler: s.handleCheckCode},
		{Method: http.MethodGet, Path: "/admin/pricing/prices", Permission: PermissionRead, Handler: s.handlePrices},
		{Method: http.MethodPost, Path: "/admin/pricing/redemptions", Permission: PermissionWrite, Handler: s.handleRedeem},
		{Method: http.MethodPost, Path: "/admin/pricing/redemptions/{key}/release", Permission: PermissionWrite, Handler: s.handleRelease},
	}
}

// create, get, list and update are the shapes of the admin handlers.

func create[In, Out any](fn func(*http.Request, In) (Out, error), location func(Out) (string, int64)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in In
		if err := httpx.Decode(r, &in); err != nil {
			httpx.Error(w, r, err)
			return
		}
		out, err := fn(r, in)
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		loc, version := location(out)
		w.Header().Set("Location", loc)
		httpx.SetETag(w, version)
		httpx.JSON(w, http.StatusCreated, out)
	}
}

func get[Out any](fn func(*http.Request, string) (Out, error), version func(Out) int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		out, err := fn(r, r.PathValue("id"))
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		httpx.SetETag(w, version(out))
		httpx.JSON(w, http.StatusOK, out)
	}
}

func list[T any](fn func(*http.Request, int, string) (httpx.Page[T], error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		lp, err := httpx.ParseList(r)
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		p, err := fn(r, lp.Limit, r.URL.Query().Get("cursor"))
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		httpx.JSON(w, http.StatusOK, p)
	}
}

func update[Patch, Out any](fn func(*http.Request, string, Patch, int64) (Out, error), version func(Out) int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ifMatch, _, err := httpx.IfMatch(r)
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		var patch Patch
		if err := httpx.Decode(r, &patch); err != nil {
			httpx.Error(w, r, err)
			return
		}
		out, err := fn(r, r.PathValue("id"), patch, ifMatch)
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		httpx.SetETag(w, version(out))
		httpx.JSON(w, http.StatusOK, out)
	}
}

func (s *Service) handleCreatePriceList(w http.ResponseWriter, r *http.Request) {
	create(func(r *http.Request, in PriceListInput) (PriceList, error) { return s.CreatePriceList(r.Context(), in) },
		func(pl PriceList) (string, int64) { return "/admin/price-lists/" + pl.ID, pl.Version })(w, r)
}

func (s *Service) handleListPriceLists(w http.ResponseWriter, r *http.Request) {
	list(func(r *http.Request, limit int, cursor string) (httpx.Page[PriceList], error) {
		return s.ListPriceLists(r.Context(), limit, cursor)
	})(w, r)
}

func (s *Service) handleGetPriceList(w http.ResponseWriter, r *http.Request) {
	get(func(r *http.Request, id string) (PriceList, error) { return s.GetPriceList(r.Context(), id) },
		func(pl PriceList) int64 { return pl.Version })(w, r)
}

func (s *Service) handleUpdatePriceList(w http.ResponseWriter, r *http.Request) {
	update(func(r *http.Request, id string, p PriceListPatch, ifMatch int64) (PriceList, error) {
		return s.UpdatePriceList(r.Context(), id, p, ifMatch)
	}, func(pl PriceList) int64 { return pl.Version })(w, r)
}

func (s *Service) handleCreatePromotion(w http.ResponseWriter, r *http.Request) {
	create(func(r *http.Request, in PromotionInput) (Promotion, error) { return s.CreatePromotion(r.Context(), in) },
		func(p Promotion) (string, int64) { return "/admin/promotions/" + p.ID, p.Version })(w, r)
}

func (s *Service) handleListPromotions(w http.ResponseWriter, r *http.Request) {
	list(func(r *http.Request, limit int, cursor string) (httpx.Page[Promotion], error) {
		return s.ListPromotions(r.Context(), limit, cursor)
	})(w, r)
}

func (s *Service) handleGetPromotion(w http.ResponseWriter, r *http.Request) {
	get(func(r *http.Request, id string) (Promotion, error) { return s.GetPromotion(r.Context(), id) },
		func(p Promotion) int64 { return p.Version })(w, r)
}

func (s *Service) handleUpdatePromotion(w http.ResponseWriter, r *http.Request) {
	update(func(r *http.Request, id string, p PromotionPatch, ifMatch int64) (Promotion, error) {
		return s.UpdatePromotion(r.Context(), id, p, ifMatch)
	}, func(p Promotion) int64 { return p.Version })(w, r)
}

func (s *Service) handleCreateTaxRate(w http.ResponseWriter, r *http.Request) {
	create(func(r *http.Request, in TaxRateInput) (TaxRate, error) { return s.CreateTaxRate(r.Context(), in) },
		func(t TaxRate) (string, int64) { return "/admin/tax-rates/" + t.ID, t.Version })(w, r)
}

func (s *Service) handleListTaxRates(w http.ResponseWriter, r *http.Request) {
	list(func(r *http.Request, limit int, cursor string) (httpx.Page[TaxRate], error) {
		return s.ListTaxRates(r.Context(), limit, cursor)
	})(w, r)
}

func (s *Service) handleGetTaxRate(w http.ResponseWriter, r *http.Request) {
	get(func(r *http.Request, id string) (TaxRate, error) { return s.GetTaxRate(r.Context(), id) },
		func(t TaxRate) int64 { return t.Version })(w, r)
}

func (s *Service) handleUpdateTaxRate(w http.ResponseWriter, r *http.Request) {
	update(func(r *http.Request, id string, p TaxRatePatch, ifMatch int64) (TaxRate, error) {
		return s.UpdateTaxRate(r.Context(), id, p, ifMatch)
	}, func(t TaxRate) int64 { return t.Version })(w, r)
}

func (s *Service) handleCreateShippingMethod(w http.ResponseWriter, r *http.Request) {
	create(func(r *http.Request, in ShippingMethodInput) (ShippingMethod, error) {
		return s.CreateShippingMethod(r.Context(), in)
	},
		func(m ShippingMethod) (string, int64) { return "/admin/shipping-methods/" + m.ID, m.Version })(w, r)
}

func (s *Service) handleListShippingMethods(w http.ResponseWriter, r *http.Request) {
	list(func(r *http.Request, limit int, cursor string) (httpx.Page[ShippingMethod], error) {
		return s.ListShippingMethods(r.Context(), limit, cursor)
	})(w, r)
}

func (s *Service) handleGetShippingMethod(w http.ResponseWriter, r *http.Request) {
	get(func(r *http.Request, id string) (ShippingMethod, error) { return s.GetShippingMethod(r.Context(), id) },
		func(m ShippingMethod) int64 { return m.Version })(w, r)
}

func (s *Service) handleUpdateShippingMethod(w http.ResponseWriter, r *http.Request) {
	update(func(r *http.Request, id string, p ShippingMethodPatch, ifMatch int64) (ShippingMethod, error) {
		return s.UpdateShippingMethod(r.Context(), id, p, ifMatch)
	}, func(m ShippingMethod) int64 { return m.Version })(w, r)
}

// --- internal endpoints of HTTPClient ---

func (s *Service) handleQuote(w http.ResponseWriter, r *http.Request) {
	var req QuoteRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.Error(w, r, err)
		return
	}
	q, err := s.Quote(r.Context(), req)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, q)
}

// shippingOptionList is the body of POST /admin/pricing/shipping-options.
type shippingOptionList struct {
	Data []ShippingOption `json:"data"`
}

func (s *Service) handleShippingOptions(w http.ResponseWriter, r *http.Request) {
	var req QuoteRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.Error(w, r, err)
		return
	}
	opts, err := s.ShippingOptions(r.Context(), req)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, shippingOptionList{Data: opts})
}

// codeCheck is the body of a successful GET /admin/pricing/codes/{code}.
type codeCheck struct {
	Code  string `json:"code"`
	Valid bool   `json:"valid"`
}

func (s *Service) handleCheckCode(w http.ResponseWriter, r *http.Request) {
	code := r.PathValue("code")
	q := r.URL.Query()
	if err := s.CheckCode(r.Context(), code, q.Get("currency"), q.Get("customer_id")); err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, codeCheck{Code: NormalizeCode(code), Valid: true})
}

// priceMap is the body of GET /admin/pricing/prices.
type priceMap struct {
	Currency string                 `json:"currency"`
	Prices   map[string]money.Money `json:"prices"`
}

// splitList reads a comma-separated query parameter.
func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func (s *Service) handlePrices(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("currency") == "" {
		httpx.Error(w, r, &apperr.Error{Code: apperr.ValidationFailed, Message: "currency is required",
			Fields: []apperr.FieldError{{Field: "currency", Code: "required", Message: "currency is required"}}})
		return
	}
	prices, err := s.Prices(r.Context(), q.Get("currency"), splitList(q.Get("groups")), splitList(q.Get("variant_ids")))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	cur, _ := money.ParseCurrency(q.Get("currency"))
	httpx.JSON(w, http.StatusOK, priceMap{Currency: cur, Prices: prices})
}

func (s *Service) handleRedeem(w http.ResponseWriter, r *http.Request) {
	var req RedeemRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.Error(w, r, err)
		return
	}
	red, err := s.Redeem(r.Context(), req)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusCreated, red)
}

func (s *Service) handleRelease(w http.ResponseWriter, r *http.Request) {
	if err := s.Release(r.Context(), r.PathValue("key")); err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
