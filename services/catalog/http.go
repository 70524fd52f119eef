package catalog

import (
	"net/http"
	"strings"

	"github.com/soukhq/souk/platform/httpx"
)

// Routes returns the catalogue's Admin API (catalog:read for GETs,
// catalog:write for writes) and public Store API routes. Handlers only do
// their job: the gateway wraps them with authentication, authorization,
// idempotency, body limits and metrics when it mounts them.
func (s *Service) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: http.MethodPost, Path: "/admin/products", Permission: PermissionWrite, Handler: s.handleCreateProduct},
		{Method: http.MethodGet, Path: "/admin/products", Permission: PermissionRead, Handler: s.handleAdminListProducts},
		{Method: http.MethodGet, Path: "/admin/products/{id}", Permission: PermissionRead, Handler: s.handleAdminGetProduct},
		{Method: http.MethodPatch, Path: "/admin/products/{id}", Permission: PermissionWrite, Handler: s.handleUpdateProduct},
		{Method: http.MethodDelete, Path: "/admin/products/{id}", Permission: PermissionWrite, Handler: s.handleDeleteProduct},

		{Method: http.MethodPost, Path: "/admin/categories", Permission: PermissionWrite, Handler: s.handleCreateCategory},
		{Method: http.MethodGet, Path: "/admin/categories", Permission: PermissionRead, Handler: s.handleAdminListCategories},
		{Method: http.MethodGet, Path: "/admin/categories/{id}", Permission: PermissionRead, Handler: s.handleAdminGetCategory},
		{Method: http.MethodPatch, Path: "/admin/categories/{id}", Permission: PermissionWrite, Handler: s.handleUpdateCategory},
		{Method: http.MethodDelete, Path: "/admin/categories/{id}", Permission: PermissionWrite, Handler: s.handleDeleteCategory},

		{Method: http.MethodGet, Path: "/store/products", Handler: s.handleListProducts},
		{Method: http.MethodGet, Path: "/store/products/{id}", Handler: s.handleGetProduct},
		{Method: http.MethodGet, Path: "/store/categories", Handler: s.handleCategoryTree},
		{Method: http.MethodGet, Path: "/store/variants", Handler: s.handleGetVariants},
		{Method: http.MethodGet, Path: "/store/variants/{id}", Handler: s.handleGetVariant},
	}
}

// productQuery reads ?q=&category=&limit=&cursor=; limit and cursor are
// checked by httpx.ParseList, the rest by the service.
func productQuery(r *http.Request) (ProductQuery, error) {
	lp, err := httpx.ParseList(r)
	if err != nil {
		return ProductQuery{}, err
	}
	q := r.URL.Query()
	return ProductQuery{Q: q.Get("q"), Category: q.Get("category"), Limit: lp.Limit, Cursor: q.Get("cursor")}, nil
}

func (s *Service) handleCreateProduct(w http.ResponseWriter, r *http.Request) {
	var in ProductInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	p, err := s.CreateProduct(r.Context(), in)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.Header().Set("Location", "/admin/products/"+p.ID)
	httpx.SetETag(w, p.Version)
	httpx.JSON(w, http.StatusCreated, p)
}

func (s *Service) handleAdminListProducts(w http.ResponseWriter, r *http.Request) {
	q, err := productQuery(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	page, err := s.AdminListProducts(r.Context(), q, Status(r.URL.Query().Get("status")))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, page)
}

func (s *Service) handleAdminGetProduct(w http.ResponseWriter, r *http.Request) {
	p, err := s.AdminGetProduct(r.Context(), r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.SetETag(w, p.Version)
	httpx.JSON(w, http.StatusOK, p)
}

func (s *Service) handleUpdateProduct(w http.ResponseWriter, r *http.Request) {
	ifMatch, _, err := httpx.IfMatch(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var patch ProductPatch
	if err := httpx.Decode(r, &patch); err != nil {
		httpx.Error(w, r, err)
		return
	}
	p, err := s.UpdateProduct(r.Context(), r.PathValue("id"), patch, ifMatch)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.SetETag(w, p.Version)
	httpx.JSON(w, http.StatusOK, p)
}

func (s *Service) handleDeleteProduct(w http.ResponseWriter, r *http.Request) {
	ifMatch, _, err := httpx.IfMatch(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	if err := s.DeleteProduct(r.Context(), r.PathValue("id"), ifMatch); err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) handleCreateCategory(w http.ResponseWriter, r *http.Request) {
	var in CategoryInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	c, err := s.CreateCategory(r.Context(), in)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.Header().Set("Location", "/admin/categories/"+c.ID)
	httpx.SetETag(w, c.Version)
	httpx.JSON(w, http.StatusCreated, c)
}

func (s *Service) handleAdminListCategories(w http.ResponseWriter, r *http.Request) {
	lp, err := httpx.ParseList(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	page, err := s.AdminListCategories(r.Context(), lp.Limit, r.URL.Query().Get("cursor"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, page)
}

func (s *Service) handleAdminGetCategory(w http.ResponseWriter, r *http.Request) {
	c, err := s.AdminGetCategory(r.Context(), r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.SetETag(w, c.Version)
	httpx.JSON(w, http.StatusOK, c)
}

func (s *Service) handleUpdateCategory(w http.ResponseWriter, r *http.Request) {
	ifMatch, _, err := httpx.IfMatch(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var patch CategoryPatch
	if err := httpx.Decode(r, &patch); err != nil {
		httpx.Error(w, r, err)
		return
	}
	c, err := s.UpdateCategory(r.Context(), r.PathValue("id"), patch, ifMatch)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.SetETag(w, c.Version)
	httpx.JSON(w, http.StatusOK, c)
}

func (s *Service) handleDeleteCategory(w http.ResponseWriter, r *http.Request) {
	ifMatch, _, err := httpx.IfMatch(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	if err := s.DeleteCategory(r.Context(), r.PathValue("id"), ifMatch); err != nil {
		httpx.Error(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) handleListProducts(w http.ResponseWriter, r *http.Request) {
	q, err := productQuery(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	currency, err := s.storeCurrency(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	s.cache.serve(w, r, s.storeKeySuffix(r), func() (any, error) {
		page, err := s.ListProducts(r.Context(), q)
		if err != nil {
			return nil, err
		}
		data, err := s.decorate(r.Context(), currency, page.Data)
		if err != nil {
			return nil, err
		}
		return httpx.Page[StoreProduct]{Data: data, NextCursor: page.NextCursor}, nil
	})
}

func (s *Service) handleGetProduct(w http.ResponseWriter, r *http.Request) {
	currency, err := s.storeCurrency(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	s.cache.serve(w, r, s.storeKeySuffix(r), func() (any, error) {
		p, err := s.GetProduct(r.Context(), r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		out, err := s.decorate(r.Context(), currency, []Product{p})
		if err != nil {
			return nil, err
		}
		return out[0], nil
	})
}

// categoryTree is the body of GET /store/categories.
type categoryTree struct {
	Data []CategoryNode `json:"data"`
}

func (s *Service) handleCategoryTree(w http.ResponseWriter, r *http.Request) {
	s.cache.serve(w, r, "", func() (any, error) {
		tree, err := s.CategoryTree(r.Context())
		return categoryTree{Data: tree}, err
	})
}

func (s *Service) handleGetVariant(w http.ResponseWriter, r *http.Request) {
	v, err := s.GetVariant(r.Context(), r.PathValue("id"))
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, v)
}

// variantList is the body of GET /store/variants: the variants found, in
// the order asked.
type variantList struct {
	Data []VariantRef `json:"data"`
}

// handleGetVariants answers GET /store/variants?id=a,b (or ?id=a&id=b):
// GetVariants, in the order asked, duplicates once.
func (s *Service) handleGetVariants(w http.ResponseWriter, r *http.Request) {
	var ids []string
	for _, v := range r.URL.Query()["id"] {
		ids = append(ids, strings.Split(v, ",")...)
	}
	refs, err := s.GetVariants(r.Context(), ids)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	out := variantList{Data: make([]VariantRef, 0, len(refs))}
	seen := make(map[string]bool, len(refs))
	for _, vid := range ids {
		if ref, ok := refs[vid]; ok && !seen[vid] {
			seen[vid] = true
			out.Data = append(out.Data, ref)
		}
	}
	httpx.JSON(w, http.StatusOK, out)
}
