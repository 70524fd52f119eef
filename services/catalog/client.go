package catalog

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/httpx"
)

// Client is what other services (cart, pricing) may ask the catalogue: the
// published catalogue, as the Store API shows it. Implementations are safe
// for concurrent use and return *apperr.Error codes alike: not_found for
// anything not published, validation_failed naming the bad query field,
// unavailable when the catalogue cannot be reached.
//
// *Service is the in-process implementation, *HTTPClient the remote one;
// one contract suite runs against both.
type Client interface {
	// GetProduct returns a published product by id or handle.
	GetProduct(ctx context.Context, idOrHandle string) (Product, error)
	// GetVariant returns a variant of a published product with its
	// product's id, title, handle and status.
	GetVariant(ctx context.Context, variantID string) (VariantRef, error)
	// GetVariants is GetVariant for many variants at once, answered as of
	// one revision of the catalogue: the map holds, by id, every variant
	// of variantIDs GetVariant would return, and nothing else (an id
	// GetVariant answers not_found for is absent). Duplicates are answered
	// once; no ids, an empty map. Errors: validation_failed naming "id"
	// for more than MaxVariantBatch distinct ids.
	GetVariants(ctx context.Context, variantIDs []string) (map[string]VariantRef, error)
	// ListProducts returns a page of published products.
	ListProducts(ctx context.Context, q ProductQuery) (httpx.Page[Product], error)
}

// HTTPClient is Client over the Store API of a remote catalogue, through
// an httpx.Client: every call has a timeout and, as every call is an
// idempotent GET, transport failures and 429/502/503/504 answers are
// retried with jittered exponential backoff (httpx.ClientPolicy, unless
// an httpx.WithPolicy option gives another). Problem documents become
// *apperr.Error with the remote code, message and field errors, so
// apperr.Is works across the wire.
type HTTPClient struct {
	api *httpx.Client
}

var _ Client = (*HTTPClient)(nil)

// NewHTTPClient returns a client of the catalogue at baseURL (the gateway
// or the catalogue's own address, "http://127.0.0.1:8080"). hc may be nil
// for a default client; each attempt is bounded by the policy's timeout
// (5 s) as well as by hc's own and the context's. opts tune the underlying
// httpx.Client: httpx.WithPolicy to share the composition root's policy
// for the catalogue (breaker and bulkhead included).
func NewHTTPClient(baseURL string, hc *http.Client, opts ...httpx.ClientOption) *HTTPClient {
	return &HTTPClient{api: httpx.NewServiceClient("catalog", baseURL, hc, opts...)}
}

// GetProduct implements Client.
func (c *HTTPClient) GetProduct(ctx context.Context, idOrHandle string) (Product, error) {
	if idOrHandle == "" {
		return Product{}, productNotFound(idOrHandle)
	}
	var p Product
	if err := c.api.Do(ctx, http.MethodGet, "/store/products/"+url.PathEscape(idOrHandle), nil, &p); err != nil {
		return Product{}, fmt.Errorf("get product %s: %w", idOrHandle, err)
	}
	return p, nil
}

// GetVariant implements Client.
func (c *HTTPClient) GetVariant(ctx context.Context, variantID string) (VariantRef, error) {
	if variantID == "" {
		return VariantRef{}, variantNotFound(variantID)
	}
	var v VariantRef
	if err := c.api.Do(ctx, http.MethodGet, "/store/variants/"+url.PathEscape(variantID), nil, &v); err != nil {
		return VariantRef{}, fmt.Errorf("get variant %s: %w", variantID, err)
	}
	return v, nil
}

// GetVariants implements Client, from GET /store/variants?id=…: one call
// for the ids that can be variant ids (the others GetVariant would not find
// either), none when there are none. That route never answers 404, so a
// 404 is a catalogue older than the route (a split deployment upgraded
// cart first): then it asks GetVariant for each id, as the cart used to.
func (c *HTTPClient) GetVariants(ctx context.Context, variantIDs []string) (map[string]VariantRef, error) {
	ids, err := variantBatch(variantIDs)
	if err != nil {
		return nil, err
	}
	out := make(map[string]VariantRef, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var list variantList
	params := url.Values{"id": {strings.Join(ids, ",")}}
	err = c.api.Do(ctx, http.MethodGet, "/store/variants", nil, &list, httpx.Query(params))
	if apperr.Is(err, apperr.NotFound) {
		return c.variantByVariant(ctx, ids)
	}
	if err != nil {
		return nil, fmt.Errorf("get variants: %w", err)
	}
	for _, v := range list.Data {
		out[v.ID] = v
	}
	return out, nil
}

// variantByVariant answers GetVariants from a catalogue without GET
// /store/variants, one GetVariant per id.
func (c *HTTPClient) variantByVariant(ctx context.Context, ids []string) (map[string]VariantRef, error) {
	out := make(map[string]VariantRef, len(ids))
	for _, vid := range ids {
		v, err := c.GetVariant(ctx, vid)
		if apperr.Is(err, apperr.NotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get variants: %w", err)
		}
		out[vid] = v
	}
	return out, nil
}

// ListProducts implements Client.
func (c *HTTPClient) ListProducts(ctx context.Context, q ProductQuery) (httpx.Page[Product], error) {
	params := url.Values{}
	if q.Q != "" {
		params.Set("q", q.Q)
	}
	if q.Category != "" {
		params.Set("category", q.Category)
	}
	if q.Limit != 0 {
		params.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Cursor != "" {
		params.Set("cursor", q.Cursor)
	}
	var page httpx.Page[Product]
	if err := c.api.Do(ctx, http.MethodGet, "/store/products", nil, &page, httpx.Query(params)); err != nil {
		return httpx.Page[Product]{}, fmt.Errorf("list products: %w", err)
	}
	if page.Data == nil {
		page.Data = []Product{}
	}
	return page, nil
}
