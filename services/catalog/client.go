package catalog

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/resilience"
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
	// ListProducts returns a page of published products.
	ListProducts(ctx context.Context, q ProductQuery) (httpx.Page[Product], error)
}

// HTTPClient is Client over the Store API of a remote catalogue, through
// an httpx.Client: every call has a timeout and, as every call is an
// idempotent GET, transport failures and 429/502/503/504 answers are
// retried with jittered exponential backoff (httpx.ClientPolicy, unless
// WithPolicy gives another). Problem documents become *apperr.Error with
// the remote code, message and field errors, so apperr.Is works across the
// wire.
type HTTPClient struct {
	api    *httpx.Client
	policy *resilience.Policy
}

var _ Client = (*HTTPClient)(nil)

// HTTPClientOption tunes an HTTPClient.
type HTTPClientOption func(*HTTPClient)

// WithPolicy makes the client call through p instead of its default
// policy (httpx.ClientPolicy("catalog"): 5 s per attempt, 3 attempts, no
// breaker); pass the policy shared by every client of the catalogue.
func WithPolicy(p *resilience.Policy) HTTPClientOption {
	return func(c *HTTPClient) { c.policy = p }
}

// NewHTTPClient returns a client of the catalogue at baseURL (the gateway
// or the catalogue's own address, "http://127.0.0.1:8080"). hc may be nil
// for a default client; each attempt is bounded by the policy's timeout
// (5 s) as well as by hc's own and the context's.
func NewHTTPClient(baseURL string, hc *http.Client, opts ...HTTPClientOption) *HTTPClient {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	c := &HTTPClient{}
	for _, opt := range opts {
		opt(c)
	}
	if c.policy == nil {
		c.policy = httpx.ClientPolicy("catalog")
	}
	c.api = httpx.NewClient("catalog", baseURL, hc, httpx.WithPolicy(c.policy))
	return c
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
