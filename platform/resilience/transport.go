package resilience

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// MaxResponseBody bounds the response body Transport reads into memory.
const MaxResponseBody = 32 << 20

// Transport returns next (http.DefaultTransport when nil) wrapped in the
// policy: each request is one call of p.Do, so it gets the attempt timeout,
// the breaker and the bulkhead. A request is idempotent — and retried after
// a network error or a 429, 502, 503 or 504 answer — when its method is
// GET, HEAD, OPTIONS, PUT or DELETE, or it carries an Idempotency-Key
// header, and its body can be replayed (GetBody, which http.NewRequest
// sets for in-memory bodies); any other request is tried once. When every
// attempt ends in such an answer the last response is returned, so the
// caller still reads its problem document.
//
// The response body is read into memory (up to MaxResponseBody) inside the
// attempt, so the attempt timeout covers it and the returned body never
// dies with the attempt's context. Meant for API calls, not downloads.
func Transport(p *Policy, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{p: p, next: next}
}

type transport struct {
	p    *Policy
	next http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if replayable && idempotentRequest(req) {
		ctx = Idempotent(ctx)
	}
	var (
		resp     *http.Response
		attempts int
	)
	err := t.p.Do(ctx, func(actx context.Context) error {
		resp = nil
		attempts++
		r := req.Clone(actx)
		if attempts > 1 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return fmt.Errorf("replay request body: %w", err)
			}
			r.Body = body
		}
		res, err := t.next.RoundTrip(r)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(io.LimitReader(res.Body, MaxResponseBody+1))
		res.Body.Close()
		if err != nil {
			return MarkRetryable(fmt.Errorf("read %s response: %w", t.p.cfg.Name, err))
		}
		if len(body) > MaxResponseBody {
			return fmt.Errorf("%s response body over %d bytes", t.p.cfg.Name, MaxResponseBody)
		}
		res.Body = io.NopCloser(bytes.NewReader(body))
		res.ContentLength = int64(len(body))
		res.Header.Del("Content-Length")
		resp = res
		switch res.StatusCode {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return MarkRetryable(&statusError{name: t.p.cfg.Name, status: res.Status})
		}
		return nil
	})
	var se *statusError
	if err != nil && errors.As(err, &se) && resp != nil {
		return resp, nil
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// idempotentRequest: a method that is idempotent by definition, or a
// request carrying an idempotency key.
func idempotentRequest(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return r.Header.Get("Idempotency-Key") != ""
}

// statusError is an answer that says "try again later".
type statusError struct{ name, status string }

func (e *statusError) Error() string { return e.name + " answered " + e.status }
