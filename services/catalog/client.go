package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

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
	// ListProducts returns a page of published products.
	ListProducts(ctx context.Context, q ProductQuery) (httpx.Page[Product], error)
}

// HTTPClient is Client over the Store API of a remote catalogue. Every call
// has a timeout; as every call is an idempotent GET, transport failures and
// 429/502/503/504 answers are retried with jittered exponential backoff.
// Problem documents become *apperr.Error with the remote code, message and
// field errors, so apperr.Is works across the wire.
type HTTPClient struct {
	base        string
	hc          *http.Client
	timeout     time.Duration // per attempt
	maxAttempts int
	backoff     time.Duration // before the second attempt; doubles after
}

var _ Client = (*HTTPClient)(nil)

// NewHTTPClient returns a client of the catalogue at baseURL (the gateway
// or the catalogue's own address, "http://127.0.0.1:8080"). hc may be nil
// for a default client; each attempt is bounded by a 5 s timeout as well as
// by hc's own and the context's.
func NewHTTPClient(baseURL string, hc *http.Client) *HTTPClient {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &HTTPClient{
		base:        strings.TrimRight(baseURL, "/"),
		hc:          hc,
		timeout:     5 * time.Second,
		maxAttempts: 3,
		backoff:     50 * time.Millisecond,
	}
}

// GetProduct implements Client.
func (c *HTTPClient) GetProduct(ctx context.Context, idOrHandle string) (Product, error) {
	if idOrHandle == "" {
		return Product{}, productNotFound(idOrHandle)
	}
	var p Product
	if err := c.get(ctx, "/store/products/"+url.PathEscape(idOrHandle), nil, &p); err != nil {
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
	if err := c.get(ctx, "/store/variants/"+url.PathEscape(variantID), nil, &v); err != nil {
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
	if err := c.get(ctx, "/store/products", params, &page); err != nil {
		return httpx.Page[Product]{}, fmt.Errorf("list products: %w", err)
	}
	if page.Data == nil {
		page.Data = []Product{}
	}
	return page, nil
}

// get fetches path into out, retrying what is worth retrying.
func (c *HTTPClient) get(ctx context.Context, path string, params url.Values, out any) error {
	u := c.base + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	delay := c.backoff
	for attempt := 1; ; attempt++ {
		retry, err := c.try(ctx, u, out)
		if err == nil || !retry || attempt == c.maxAttempts {
			return err
		}
		// Full jitter in [delay/2, delay*3/2): retries of many callers spread out.
		wait := delay/2 + rand.N(delay)
		select {
		case <-ctx.Done():
			return apperr.Wrap(ctx.Err(), apperr.Unavailable, "catalog call abandoned: "+ctx.Err().Error())
		case <-time.After(wait):
		}
		delay *= 2
	}
}

// try makes one attempt and tells whether a failure is worth retrying.
func (c *HTTPClient) try(ctx context.Context, u string, out any) (retry bool, err error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, u, nil)
	if err != nil {
		return false, fmt.Errorf("build catalog request: %w", err)
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, apperr.Wrap(err, apperr.Unavailable, "catalog call abandoned: "+ctx.Err().Error())
		}
		return true, apperr.Wrap(err, apperr.Unavailable, "catalog is unreachable")
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return ctx.Err() == nil, apperr.Wrap(err, apperr.Unavailable, "catalog answer was cut off")
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, out); err != nil {
			return false, apperr.Wrap(err, apperr.Unavailable, "catalog answered with malformed JSON")
		}
		return false, nil
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		retry = true
	}
	return retry, problemError(resp, body)
}

// problemError turns an error answer into the *apperr.Error it reports.
func problemError(resp *http.Response, body []byte) error {
	var p httpx.Problem
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/problem+json" && json.Unmarshal(body, &p) == nil && p.Code != "" {
		code := p.Code
		if code == apperr.Internal {
			// The catalogue failed: for the caller, a dependency is down.
			code = apperr.Unavailable
		}
		return &apperr.Error{Code: code, Message: p.Detail, Fields: p.Errors,
			Err: fmt.Errorf("catalog answered %d %s", resp.StatusCode, p.Code)}
	}
	code := apperr.Internal
	switch s := resp.StatusCode; {
	case s == http.StatusBadRequest:
		code = apperr.BadRequest
	case s == http.StatusUnauthorized:
		code = apperr.Unauthorized
	case s == http.StatusForbidden:
		code = apperr.Forbidden
	case s == http.StatusNotFound:
		code = apperr.NotFound
	case s == http.StatusConflict:
		code = apperr.Conflict
	case s == http.StatusTooManyRequests:
		code = apperr.RateLimited
	case s >= 500:
		code = apperr.Unavailable
	}
	return &apperr.Error{Code: code, Message: fmt.Sprintf("catalog answered %s", resp.Status),
		Err: errors.New(strings.TrimSpace(string(body[:min(len(body), 200)])))}
}
