package httpx

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/store"
)

// The headers of the idempotency protocol.
const (
	// HeaderIdempotencyKey is the request header naming the key.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderIdempotentReplayed is "true" on a response replayed from the
	// stored first response.
	HeaderIdempotentReplayed = "Idempotent-Replayed"
	// HeaderCartToken is the header of an anonymous cart's secret, which
	// scopes that shopper's idempotency keys.
	HeaderCartToken = "X-Cart-Token"
)

//go:embed migrations
var migrationsFS embed.FS

// IdempotencyMigrations creates the souk_idempotency_keys table. A service
// whose routes take Idempotency-Key applies it, next to its own migrations,
// to the database it passes to NewIdempotency.
var IdempotencyMigrations = store.Migrations{Name: "idempotency", FS: mustSub(migrationsFS, "migrations")}

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // only for a bad constant dir
	}
	return sub
}

// IdempotencyConfig tunes Idempotency. Zero fields take the defaults named.
type IdempotencyConfig struct {
	// TTL is how long a completed response is replayed (default 24h, as
	// API.md promises); after it the key may be used afresh.
	TTL time.Duration
	// MaxKeyLength bounds Idempotency-Key (default 255 characters).
	MaxKeyLength int
	// LockTimeout is how long a claim whose request never finished (the
	// process died mid-request) blocks its key before a retry may take it
	// over (default 30s). A request still running renews its claim every
	// LockTimeout/3, so a slow request is never run twice while its process
	// lives, and a dead process's claim lapses within LockTimeout.
	LockTimeout time.Duration
	// MaxBodyBytes caps the request body read to fingerprint the request
	// (default DefaultBodyLimit); a longer body is a 413.
	MaxBodyBytes int64
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
}

func (c IdempotencyConfig) withDefaults() IdempotencyConfig {
	if c.TTL <= 0 {
		c.TTL = 24 * time.Hour
	}
	if c.MaxKeyLength <= 0 {
		c.MaxKeyLength = 255
	}
	if c.LockTimeout <= 0 {
		c.LockTimeout = 30 * time.Second
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultBodyLimit
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Idempotency makes retried writes safe (API.md "retries", after Stripe). A
// request with an Idempotency-Key header claims the key, in a scope — the
// authenticated principal, else the X-Cart-Token — so two callers never see
// each other's keys. A request with neither has nobody to scope its key to:
// replaying it could hand one anonymous caller another's answer (a new
// cart's secret token, say), so it runs as if it carried no key. While the
// first request runs, a retry
// gets 409 idempotency_key_in_use (try again later); once it finished, every
// retry with the same method, path and body gets the stored response (status,
// Content-Type, Location/ETag-like headers and body, byte for byte, with
// Idempotent-Replayed: true) without the handler running again; a retry with
// anything different gets 422 idempotency_key_reused. Responses that mean
// "nothing was done, try again" — 5xx, a panic, 400, 408, 413, 415 and 429 —
// release the key instead, so the retry runs the handler. Keys expire after
// TTL.
//
// The claim is a single INSERT … ON CONFLICT DO NOTHING, so concurrent
// requests, in one process or many sharing the database, run the handler at
// most once per key. It is safe for concurrent use.
type Idempotency struct {
	db  *store.DB
	cfg IdempotencyConfig
}

// NewIdempotency returns the idempotency middleware's state over db, which
// must have IdempotencyMigrations applied.
func NewIdempotency(db *store.DB, cfg IdempotencyConfig) *Idempotency {
	return &Idempotency{db: db, cfg: cfg.withDefaults()}
}

// Middleware applies the idempotency protocol to the requests of the routes
// it wraps (mount it on POST routes, inside Authorize so the principal is
// known). Requests without Idempotency-Key, and GET, HEAD and OPTIONS
// requests, pass through untouched. A malformed key is a 400 naming
// Idempotency-Key; a failure of the database is a 500 and the handler does
// not run.
func (i *Idempotency) Middleware() Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			i.serve(next, w, r)
		})
	}
}

// Cleanup deletes the expired keys. The application calls it periodically;
// expired rows are ignored (and reused) even when it never runs, so it only
// bounds the table's size. It is safe to run concurrently with requests and
// with other Cleanup calls, in any number of processes.
func (i *Idempotency) Cleanup(ctx context.Context) error {
	if _, err := i.db.Exec(ctx, `DELETE FROM souk_idempotency_keys WHERE expires_at <= ?`, i.cfg.Now()); err != nil {
		return fmt.Errorf("delete expired idempotency keys: %w", err)
	}
	return nil
}

func (i *Idempotency) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	noteRoute(r, "")
	values, present := r.Header[HeaderIdempotencyKey]
	if !present || r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions {
		next.ServeHTTP(w, r)
		return
	}
	key, err := i.checkKey(values)
	if err != nil {
		Error(w, r, err)
		return
	}
	body, err := i.readBody(w, r)
	if err != nil {
		Error(w, r, err)
		return
	}
	r2 := *r
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r = &r2

	scope, fp := scopeOf(r), fingerprint(r, body)
	if scope == "" {
		next.ServeHTTP(w, r)
		return
	}
	c, err := i.claim(r.Context(), scope, key, fp)
	if err != nil {
		Error(w, r, fmt.Errorf("claim idempotency key: %w", err))
		return
	}
	switch c.outcome {
	case claimed:
		i.run(next, w, r, scope, key, c.owner)
	case replay:
		c.stored.writeTo(w)
	case mismatch:
		Error(w, r, apperr.New(apperr.IdempotencyKeyReused,
			"this Idempotency-Key was used with a different request; use a new key for a new request"))
	case inFlight:
		w.Header().Set("Retry-After", "1")
		Error(w, r, apperr.New(apperr.IdempotencyInFlight,
			"a request with this Idempotency-Key is still being processed; retry later"))
	}
}

func (i *Idempotency) checkKey(values []string) (string, error) {
	bad := func(msg string) error {
		return &apperr.Error{
			Code:    apperr.BadRequest,
			Message: msg,
			Fields:  []apperr.FieldError{{Field: HeaderIdempotencyKey, Code: "invalid", Message: msg}},
		}
	}
	if len(values) != 1 {
		return "", bad("send exactly one Idempotency-Key header")
	}
	key := values[0]
	ok := key != "" && len(key) <= i.cfg.MaxKeyLength
	for j := 0; ok && j < len(key); j++ {
		ok = key[j] >= 0x20 && key[j] <= 0x7e
	}
	if !ok {
		return "", bad(fmt.Sprintf("Idempotency-Key must be 1 to %d printable ASCII characters (a UUID is a good key)", i.cfg.MaxKeyLength))
	}
	return key, nil
}

// readBody reads the whole request body, which the fingerprint covers.
func (i *Idempotency) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := i.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, apperr.New(apperr.PayloadTooLarge, "request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, limit)
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(connWriter(w), r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, apperr.New(apperr.PayloadTooLarge, "request body exceeds %d bytes", tooBig.Limit)
		}
		return nil, apperr.Wrap(err, apperr.BadRequest, "the request body could not be read")
	}
	return body, nil
}

// scopeOf names whose keys a request's key is among; "" when the caller is
// anonymous.
func scopeOf(r *http.Request) string {
	if p, ok := auth.FromContext(r.Context()); ok && p.Subject != "" {
		return "sub:" + p.Subject
	}
	if t := r.Header.Get(HeaderCartToken); t != "" {
		sum := sha256.Sum256([]byte(t)) // the secret itself is never stored
		return "cart:" + hex.EncodeToString(sum[:])
	}
	return ""
}

// fingerprint identifies "the same request": method, path with query, body.
func fingerprint(r *http.Request, body []byte) string {
	h := sha256.New()
	io.WriteString(h, r.Method)
	io.WriteString(h, " ")
	io.WriteString(h, r.URL.RequestURI())
	io.WriteString(h, "\n")
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// The states of a key's row.
const (
	stateInProgress = "in_progress"
	stateCompleted  = "completed"
)

type outcome int

const (
	claimed  outcome = iota // the caller owns the key: run the handler
	replay                  // completed with the same request: send stored
	mismatch                // the key belongs to a different request
	inFlight                // the same request is still running
)

type claim struct {
	outcome outcome
	owner   string // claim token, when claimed
	stored  storedResponse
}

// maxClaimAttempts bounds the claim loop, which repeats only when another
// request changed the row between our statements.
const maxClaimAttempts = 5

// claim takes the key for this request, or says why it cannot.
func (i *Idempotency) claim(ctx context.Context, scope, key, fp string) (claim, error) {
	owner := newOwner()
	for range maxClaimAttempts {
		now := i.cfg.Now()
		res, err := i.db.Exec(ctx, `INSERT INTO souk_idempotency_keys
			(scope, idempotency_key, fingerprint, state, owner, created_at, locked_until, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (scope, idempotency_key) DO NOTHING`,
			scope, key, fp, stateInProgress, owner, now, now.Add(i.cfg.LockTimeout), now.Add(i.cfg.TTL))
		if err != nil {
			return claim{}, err
		}
		if n, err := res.RowsAffected(); err != nil {
			return claim{}, err
		} else if n == 1 {
			return claim{outcome: claimed, owner: owner}, nil
		}

		var (
			row                   storedResponse
			rowFP, state, holder  string
			headers               string
			lockedUntil, expireAt time.Time
		)
		err = i.db.QueryRow(ctx, `SELECT fingerprint, state, owner, status_code, content_type, headers, body, locked_until, expires_at
			FROM souk_idempotency_keys WHERE scope = ? AND idempotency_key = ?`, scope, key).
			Scan(&rowFP, &state, &holder, &row.status, &row.contentType, &headers, &row.body, &lockedUntil, &expireAt)
		if errors.Is(err, sql.ErrNoRows) {
			continue // released between our INSERT and SELECT: try again
		}
		if err != nil {
			return claim{}, err
		}
		if !expireAt.After(now) || (state == stateInProgress && !lockedUntil.After(now)) {
			// Expired, or claimed by a request that never finished: take it
			// over, unless another retry got there first.
			res, err := i.db.Exec(ctx, `UPDATE souk_idempotency_keys
				SET fingerprint = ?, state = ?, owner = ?, status_code = 0, content_type = '', headers = '', body = NULL,
				    created_at = ?, locked_until = ?, expires_at = ?
				WHERE scope = ? AND idempotency_key = ? AND owner = ?`,
				fp, stateInProgress, owner, now, now.Add(i.cfg.LockTimeout), now.Add(i.cfg.TTL), scope, key, holder)
			if err != nil {
				return claim{}, err
			}
			if n, err := res.RowsAffected(); err != nil {
				return claim{}, err
			} else if n == 1 {
				return claim{outcome: claimed, owner: owner}, nil
			}
			continue
		}
		switch {
		case rowFP != fp:
			return claim{outcome: mismatch}, nil
		case state == stateCompleted:
			if headers != "" {
				if err := json.Unmarshal([]byte(headers), &row.header); err != nil {
					return claim{}, fmt.Errorf("stored headers of an idempotency key: %w", err)
				}
			}
			return claim{outcome: replay, stored: row}, nil
		default:
			return claim{outcome: inFlight}, nil
		}
	}
	// The row kept changing under us: someone else is busy with this key.
	return claim{outcome: inFlight}, nil
}

func newOwner() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// keepResponse reports whether a response is the result of the request, to
// be replayed, rather than a refusal to process it that a retry may overcome.
func keepResponse(status int) bool {
	switch status {
	case http.StatusBadRequest, http.StatusRequestTimeout, http.StatusRequestEntityTooLarge,
		http.StatusUnsupportedMediaType, http.StatusTooManyRequests:
		return false
	}
	return status < 500
}

// finishTimeout bounds recording a response after the handler returned.
const finishTimeout = 10 * time.Second

// run calls the handler as the key's owner, then stores its response or
// releases the key.
func (i *Idempotency) run(next http.Handler, w http.ResponseWriter, r *http.Request, scope, key, owner string) {
	tw := &teeWriter{ResponseWriter: w}
	stopRenew := i.renew(r, scope, key, owner)
	defer stopRenew()
	finished := false
	defer func() {
		if !finished { // a panic (or runtime.Goexit) is on its way up: let it go on
			i.release(r, scope, key, owner)
		}
	}()
	next.ServeHTTP(tw, r)
	finished = true
	if tw.status == 0 {
		tw.snapshot(http.StatusOK)
	}
	if !keepResponse(tw.status) {
		i.release(r, scope, key, owner)
		return
	}
	headers := ""
	if len(tw.header) > 0 {
		b, _ := json.Marshal(tw.header) // map[string][]string always marshals
		headers = string(b)
	}
	// The client may be gone, yet its retry deserves the stored response.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), finishTimeout)
	defer cancel()
	res, err := i.db.Exec(ctx, `UPDATE souk_idempotency_keys
		SET state = ?, status_code = ?, content_type = ?, headers = ?, body = ?
		WHERE scope = ? AND idempotency_key = ? AND owner = ?`,
		stateCompleted, tw.status, tw.contentType, headers, tw.body.Bytes(), scope, key, owner)
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n == 0 {
			err = errors.New("the claim was taken over: the request outran LockTimeout")
		}
	}
	if err != nil {
		Logger(r.Context()).LogAttrs(ctx, slog.LevelError, "idempotency: response not recorded; a retry will wait for LockTimeout, then run again",
			slog.String("error", err.Error()), slog.String("idempotency_key", key))
	}
}

// renew keeps the claim alive while its request runs: every LockTimeout/3
// it pushes locked_until forward, so only a claim whose process died lapses.
// The returned function stops it.
func (i *Idempotency) renew(r *http.Request, scope, key, owner string) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(i.cfg.LockTimeout / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), finishTimeout)
				_, err := i.db.Exec(ctx, `UPDATE souk_idempotency_keys SET locked_until = ?
					WHERE scope = ? AND idempotency_key = ? AND owner = ? AND state = ?`,
					i.cfg.Now().Add(i.cfg.LockTimeout), scope, key, owner, stateInProgress)
				cancel()
				if err != nil {
					Logger(r.Context()).Warn("idempotency: claim not renewed", "error", err, "idempotency_key", key)
				}
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// release deletes the caller's claim so the key may be used again.
func (i *Idempotency) release(r *http.Request, scope, key, owner string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), finishTimeout)
	defer cancel()
	_, err := i.db.Exec(ctx, `DELETE FROM souk_idempotency_keys WHERE scope = ? AND idempotency_key = ? AND owner = ?`,
		scope, key, owner)
	if err != nil {
		Logger(r.Context()).LogAttrs(ctx, slog.LevelError, "idempotency: key not released; a retry will wait for LockTimeout",
			slog.String("error", err.Error()), slog.String("idempotency_key", key))
	}
}

// replayedHeaders are the response headers stored and replayed besides
// Content-Type. Per-request headers (X-Request-Id, traceparent) are not:
// a replay carries its own.
var replayedHeaders = []string{"Location", "ETag", "Last-Modified", "Content-Language", "Retry-After"}

// storedResponse is a recorded first response.
type storedResponse struct {
	status      int
	contentType string
	header      http.Header
	body        []byte
}

func (s storedResponse) writeTo(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range s.header {
		h[http.CanonicalHeaderKey(k)] = v
	}
	if s.contentType != "" {
		h.Set("Content-Type", s.contentType)
	}
	h.Set(HeaderIdempotentReplayed, "true")
	w.WriteHeader(s.status)
	_, _ = w.Write(s.body)
}

// teeWriter writes the response through to the client and keeps a copy.
type teeWriter struct {
	http.ResponseWriter
	status      int
	contentType string
	header      http.Header
	body        bytes.Buffer
}

// snapshot records the status and the replayed headers as they are sent.
func (t *teeWriter) snapshot(status int) {
	t.status = status
	h := t.ResponseWriter.Header()
	t.contentType = h.Get("Content-Type")
	for _, k := range replayedHeaders {
		if v := h.Values(k); len(v) > 0 {
			if t.header == nil {
				t.header = http.Header{}
			}
			t.header[http.CanonicalHeaderKey(k)] = append([]string(nil), v...)
		}
	}
}

func (t *teeWriter) WriteHeader(code int) {
	if t.status == 0 && code >= 200 {
		t.snapshot(code)
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *teeWriter) Write(p []byte) (int, error) {
	if t.status == 0 {
		t.snapshot(http.StatusOK)
	}
	t.body.Write(p) // all of it: the stored copy must not depend on the client
	return t.ResponseWriter.Write(p)
}

// Flush sends buffered data to the client, as http.Flusher.
func (t *teeWriter) Flush() {
	if t.status == 0 {
		t.snapshot(http.StatusOK)
	}
	_ = http.NewResponseController(t.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (t *teeWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }
