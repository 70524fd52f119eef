package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/resilience"
)

// maxAnswer bounds the response body a Client reads into memory.
const maxAnswer = 16 << 20

// Client calls the JSON API of another Souk service: the one mechanism
// behind every service's HTTPClient. A call marshals its input as JSON,
// sends it (with a bearer token and an Idempotency-Key when given), and
// decodes a 2xx answer into its output. Every failure is an *apperr.Error
// that works across the wire as it does in process:
//
//   - a problem document becomes its code, detail and field errors — except
//     internal, which is unavailable to the caller (a dependency failed);
//   - an error answer that is no problem document is coded by its status
//     (404 not_found, 5xx unavailable, …; see ResponseError for the status);
//   - no answer (refused, reset, cut off, timed out) is unavailable.
//
// With a policy (WithPolicy) every attempt runs under it — attempt timeout,
// breaker, bulkhead — and an idempotent call is retried after the failures
// the policy's Config.Failure accepts (ClientPolicy's is Transient). A call
// is idempotent when its method is (GET, HEAD, OPTIONS, PUT, DELETE), when
// it carries an IdempotencyKey, or when marked Idempotent; a POST that is
// none of these is tried once (unless the policy itself is
// Config.Idempotent, or ctx is marked by resilience.Idempotent). Without a
// policy every call is one attempt, bounded by ctx and the http.Client.
//
// A Client is safe for concurrent use.
type Client struct {
	name   string
	base   string
	hc     *http.Client
	token  string
	policy *resilience.Policy
}

// ClientOption tunes a Client.
type ClientOption func(*Client)

// WithBearerToken sends the token as Authorization: Bearer on every call
// (a call's own Authorization header, see Header, wins).
func WithBearerToken(token string) ClientOption {
	return func(c *Client) { c.token = token }
}

// WithPolicy runs every call through p (nil: no policy, one attempt per
// call). Share one policy among every client of the same dependency, so
// its breaker and bulkhead see all the traffic.
func WithPolicy(p *resilience.Policy) ClientOption {
	return func(c *Client) { c.policy = p }
}

// NewClient returns a client of the service called name (which names it
// in errors: "catalog is unreachable") at baseURL, the gateway or the
// service's own address ("http://127.0.0.1:8080"). hc may be nil for a
// client without an overall timeout (the policy's attempt timeout and ctx
// bound the calls).
func NewClient(name, baseURL string, hc *http.Client, opts ...ClientOption) *Client {
	if hc == nil {
		hc = &http.Client{}
	}
	c := &Client{name: name, base: strings.TrimRight(baseURL, "/"), hc: hc}
	for _, opt := range opts {
		opt(c)
	}
	return c
}

// NewServiceClient is NewClient as a service's HTTPClient starts from it:
// with ClientPolicy(name) unless opts give a policy, and, when hc is
// nil, an http.Client with a 10 s overall timeout.
func NewServiceClient(name, baseURL string, hc *http.Client, opts ...ClientOption) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	c := NewClient(name, baseURL, hc, opts...)
	if c.policy == nil {
		c.policy = ClientPolicy(name)
	}
	return c
}

// ClientPolicy returns the policy of a service's HTTPClient that was given
// none of its own: each attempt bounded by 5 s, an idempotent call tried 3
// times in all, 50 ms apart doubling (±50 %), retried only after what
// Transient reports. It has no circuit breaker and no bulkhead limit:
// those only work in a policy shared by every call to the dependency,
// which the composition root builds and passes with WithPolicy.
func ClientPolicy(name string) *resilience.Policy {
	return resilience.MustNew(resilience.Config{
		Name:    name,
		Failure: Transient,
		// Never reached: no breaker, no bulkhead (see above).
		BreakerFailureThreshold: math.MaxInt,
		MaxConcurrent:           math.MaxInt,
	})
}

// CallOption tunes one call of Client.Do.
type CallOption func(*call)

type call struct {
	idempotent bool
	key        string
	query      url.Values
	header     http.Header
}

// Idempotent marks a call that may be repeated without changing its effect
// (a POST that reads, or one idempotent by a key in its body), so the
// policy may retry it.
func Idempotent() CallOption {
	return func(c *call) { c.idempotent = true }
}

// IdempotencyKey sends key as the Idempotency-Key header, which makes the
// call idempotent; an empty key sends nothing. The caller checks that the
// key is one the service accepts.
func IdempotencyKey(key string) CallOption {
	return func(c *call) {
		if key != "" {
			c.key = key
			c.idempotent = true
		}
	}
}

// Query adds the parameters to the call's URL.
func Query(params url.Values) CallOption {
	return func(c *call) { c.query = params }
}

// Header sets a request header of the call.
func Header(name, value string) CallOption {
	return func(c *call) {
		if c.header == nil {
			c.header = http.Header{}
		}
		c.header.Set(name, value)
	}
}

// Do calls method path (relative to the base URL, escaped by the caller)
// with in as the JSON body (nil: none), and decodes a 2xx answer into out
// (nil, or a 204: nothing is decoded). The error is nil or an
// *apperr.Error as Client describes; when ctx ends before an answer, it is
// unavailable ("call abandoned") and wraps ctx's error.
func (c *Client) Do(ctx context.Context, method, path string, in, out any, opts ...CallOption) error {
	var cl call
	for _, opt := range opts {
		opt(&cl)
	}
	u := c.base + path
	if len(cl.query) > 0 {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		u += sep + cl.query.Encode()
	}
	var payload []byte
	if in != nil {
		var err error
		if payload, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encode %s request: %w", c.name, err)
		}
	}
	attempt := func(actx context.Context) error {
		return c.attempt(ctx, actx, method, u, payload, out, &cl)
	}
	var err error
	if c.policy == nil {
		err = attempt(ctx)
	} else {
		pctx := ctx
		if cl.idempotent || idempotentMethod(method) {
			pctx = resilience.Idempotent(ctx)
		}
		err = c.policy.Do(pctx, attempt)
	}
	if err != nil && ctx.Err() != nil && Transient(err) {
		// The caller gave up while a retry was due: say so, not why the
		// last attempt failed.
		return apperr.Wrap(ctx.Err(), apperr.Unavailable, c.name+" call abandoned: "+ctx.Err().Error())
	}
	return err
}

func idempotentMethod(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// attempt makes one attempt under actx; ctx is the caller's, which tells
// a failure of the service from the caller giving up.
func (c *Client) attempt(ctx, actx context.Context, method, u string, payload []byte, out any, cl *call) error {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(actx, method, u, body)
	if err != nil {
		return fmt.Errorf("build %s request: %w", c.name, err)
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if cl.key != "" {
		req.Header.Set(HeaderIdempotencyKey, cl.key)
	}
	for k, vs := range cl.header {
		req.Header[k] = vs
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return apperr.Wrap(err, apperr.Unavailable, c.name+" call abandoned: "+ctx.Err().Error())
		}
		return markTransient(apperr.Wrap(err, apperr.Unavailable, c.name+" is unreachable"))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		e := apperr.Wrap(err, apperr.Unavailable, c.name+" answer was cut off")
		if ctx.Err() != nil {
			return e
		}
		return markTransient(e)
	}
	if len(raw) > maxAnswer {
		return apperr.New(apperr.Unavailable, "%s answered with over %d bytes", c.name, maxAnswer)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.answerError(resp, raw)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return apperr.Wrap(err, apperr.Unavailable, c.name+" answered with malformed JSON")
	}
	return nil
}

// answerError turns an error answer into the *apperr.Error it reports.
func (c *Client) answerError(resp *http.Response, body []byte) error {
	re := &ResponseError{Service: c.name, StatusCode: resp.StatusCode, Status: resp.Status}
	var (
		e *apperr.Error
		p Problem
	)
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/problem+json" && json.Unmarshal(body, &p) == nil && p.Code != "" {
		re.Code = p.Code
		code := p.Code
		if code == apperr.Internal {
			code = apperr.Unavailable // the service failed: for the caller, a dependency is down
		}
		e = &apperr.Error{Code: code, Message: p.Detail, Fields: p.Errors, Err: re}
	} else {
		re.Body = strings.TrimSpace(string(body[:min(len(body), 200)]))
		e = &apperr.Error{Code: codeOfStatus(resp.StatusCode), Message: c.name + " answered " + resp.Status, Err: re}
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusBadGateway,
		resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusGatewayTimeout,
		p.Code == apperr.IdempotencyInFlight: // the first request with the key is still running
		return markTransient(e)
	}
	return e
}

// codeOfStatus codes an error answer that is not a problem document: the
// statuses that stand for one code (StatusOf's inverse, where there is
// one), 5xx as unavailable, anything else internal.
func codeOfStatus(status int) apperr.Code {
	switch {
	case status == http.StatusBadRequest:
		return apperr.BadRequest
	case status == http.StatusUnauthorized:
		return apperr.Unauthorized
	case status == http.StatusPaymentRequired:
		return "payment_declined"
	case status == http.StatusForbidden:
		return apperr.Forbidden
	case status == http.StatusNotFound:
		return apperr.NotFound
	case status == http.StatusConflict:
		return apperr.Conflict
	case status == http.StatusTooManyRequests:
		return apperr.RateLimited
	case status >= 500:
		return apperr.Unavailable
	}
	return apperr.Internal
}

// ResponseError is the cause (apperr.Error.Err) of an error answer: who
// answered what. errors.As finds it, for callers that map statuses
// themselves.
type ResponseError struct {
	Service    string
	StatusCode int
	Status     string      // "404 Not Found"
	Code       apperr.Code // the problem document's code; "" when there was none
	Body       string      // the start of a body that was no problem document
}

func (e *ResponseError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%s answered %d %s", e.Service, e.StatusCode, e.Code)
	}
	if e.Body == "" {
		return e.Service + " answered " + e.Status
	}
	return e.Service + " answered " + e.Status + ": " + e.Body
}

// transientError marks, inside an *apperr.Error, a failure another
// attempt may not meet.
type transientError struct{ err error }

func (e *transientError) Error() string {
	if e.err == nil {
		return "transient failure"
	}
	return e.err.Error()
}

func (e *transientError) Unwrap() error { return e.err }

func markTransient(e *apperr.Error) *apperr.Error {
	e.Err = &transientError{err: e.Err}
	return e
}

// Transient reports whether err is a failure of a Client call that another
// attempt may not meet: no answer while the caller still waited (refused,
// reset, cut off), an attempt that timed out (resilience.ErrTimeout), or
// an answer that says "later" (429, 502, 503, 504, idempotency_key_in_use).
// It is the Config.Failure of ClientPolicy. resilience.Retryable is
// broader: it also retries every unavailable answer, a remote internal
// error and a malformed answer included.
func Transient(err error) bool {
	var te *transientError
	return errors.As(err, &te) || errors.Is(err, resilience.ErrTimeout)
}
