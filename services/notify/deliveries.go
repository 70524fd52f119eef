package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/store"
)

// eventSource is the CloudEvents source of notify's events.
const eventSource = "notify"

// deliveryLeaseMargin is added to WebhookTimeout for a delivery's lease.
const deliveryLeaseMargin = 30 * time.Second

// subscriptionsTTL is how long the webhook consumer trusts the enabled
// subscriptions it read (ADR 14): a webhook created or re-enabled through
// this process is seen by the next event; one created or re-enabled
// through another process on the same database receives the events
// published from at most this long after.
const subscriptionsTTL = time.Second

// subscriptionsCache holds the enabled subscriptions as last read.
type subscriptionsCache struct {
	mu   sync.Mutex
	subs []subscription
	read time.Time // when the read started; zero: read again
	gen  uint64    // bumped by every webhook write of this process
}

// wantsType reports whether an enabled webhook subscribes to the event
// type: the events of a shop without webhooks (most of them) then cost no
// transaction, and the bus does not even decode them (its WantsType). It
// trusts what it read up to subscriptionsTTL ago; the handler reads the
// subscriptions again in its transaction, so a webhook disabled meanwhile
// never gets a delivery.
func (s *Service) wantsType(ctx context.Context, eventType string) (bool, error) {
	subs, err := s.enabledSubscriptions(ctx)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(subs, func(sub subscription) bool { return matches(sub.types, eventType) }), nil
}

func (s *Service) enabledSubscriptions(ctx context.Context) ([]subscription, error) {
	c := &s.subscriptions
	c.mu.Lock()
	if !c.read.IsZero() && time.Since(c.read) < subscriptionsTTL {
		subs := c.subs
		c.mu.Unlock()
		return subs, nil
	}
	gen := c.gen
	c.mu.Unlock()
	started := time.Now()
	subs, err := enabledSubscriptions(ctx, s.db)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen == gen { // no write of this process committed during the read
		c.subs, c.read = subs, started
	}
	c.mu.Unlock()
	return subs, nil
}

// forgetSubscriptions makes the next event read the subscriptions again;
// every webhook write calls it after its commit.
func (s *Service) forgetSubscriptions() {
	c := &s.subscriptions
	c.mu.Lock()
	c.gen++
	c.read = time.Time{}
	c.mu.Unlock()
}

// handleEvent is the bus.Handler of every Souk event: in tx, it creates one
// pending delivery per enabled subscription that wants the event's type.
// The (webhook, event) key is unique, so applying an event twice creates
// nothing new.
func (s *Service) handleEvent(ctx context.Context, tx *store.Tx, e bus.Event) error {
	subs, err := enabledSubscriptions(ctx, tx)
	if err != nil {
		return err
	}
	var payload []byte
	now := s.now()
	created := 0
	for _, sub := range subs {
		if !matches(sub.types, e.Type) {
			continue
		}
		if payload == nil {
			if payload, err = json.Marshal(e); err != nil {
				return bus.Permanent(fmt.Errorf("marshal %s %s: %w", e.Type, e.ID, err))
			}
		}
		d := Delivery{
			ID: id.New(deliveryPrefix), WebhookID: sub.id, EventID: e.ID, EventType: e.Type,
			Status: DeliveryPending, NextAttemptAt: &now, CreatedAt: now, UpdatedAt: now,
		}
		ok, err := insertDelivery(ctx, tx, d, payload, now.Add(s.cfg.WebhookRetryFor))
		if err != nil {
			return fmt.Errorf("create delivery of %s to %s: %w", e.ID, sub.id, err)
		}
		if ok {
			created++
		}
	}
	if created > 0 {
		tx.AfterCommit(s.wakeWebhooks)
	}
	return nil
}

// DeliverPending makes one attempt at each delivery that is due, up to
// Config.WebhookConcurrency at once, and returns how many it attempted.
// Each is claimed with a lease first, so several processes may call it at
// once and never post the same attempt twice. Run calls it; cancelling ctx
// lets the attempts under way finish (bounded by WebhookTimeout) and
// records them.
func (s *Service) DeliverPending(ctx context.Context) (int, error) {
	now := s.now()
	due, err := dueDeliveries(ctx, s.db, now, s.cfg.WebhookConcurrency)
	if err != nil {
		return 0, fmt.Errorf("find due deliveries: %w", err)
	}
	var (
		batch []claimed
		errs  []error
	)
	for _, deliveryID := range due {
		owner := id.New("lease")
		ok, err := claimDelivery(ctx, s.db, deliveryID, owner, now, now.Add(s.cfg.WebhookTimeout+deliveryLeaseMargin))
		if err != nil {
			errs = append(errs, fmt.Errorf("claim delivery %s: %w", deliveryID, err))
			continue
		}
		if !ok {
			continue // another process has it
		}
		c, ok, err := loadClaimed(ctx, s.db, deliveryID, owner)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			batch = append(batch, c)
		}
	}
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	run := context.WithoutCancel(ctx)
	for _, c := range batch {
		wg.Go(func() {
			if err := s.attempt(run, c); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return len(batch), errors.Join(errs...)
}

// result is the outcome of one POST.
type result struct {
	code     int    // HTTP status; 0 without an answer
	kind     string // without an answer: timeout, refused or error
	err      string // for the delivery log; "" on success
	duration time.Duration
}

func (r result) ok() bool { return r.code >= 200 && r.code < 300 }

// attempt posts a claimed delivery and records the outcome.
func (s *Service) attempt(ctx context.Context, c claimed) error {
	r := s.post(ctx, c, s.now())
	return s.record(ctx, c, r)
}

// maxErrorBody is how much of a failed answer's body the delivery log keeps.
const maxErrorBody = 256

// post sends the delivery's CloudEvent, signed at sentAt.
func (s *Service) post(ctx context.Context, c claimed, sentAt time.Time) result {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(c.payload))
	if err != nil {
		return result{kind: "error", err: "cannot build the request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Souk-Webhooks/1")
	req.Header.Set(HeaderWebhookID, c.WebhookID)
	req.Header.Set(HeaderEventID, c.EventID)
	req.Header.Set(HeaderEventType, c.EventType)
	req.Header.Set(HeaderDeliveryID, c.ID)
	req.Header.Set(HeaderDeliveryAttempt, strconv.Itoa(c.Attempts))
	req.Header.Set(HeaderSignature, Sign(c.secret, sentAt, c.payload))
	start := time.Now()
	resp, err := s.http.Do(req)
	if err != nil {
		r := result{kind: "error", duration: time.Since(start)}
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the URL is in the log already; keep the cause
		}
		var nerr net.Error
		switch {
		case errors.Is(err, ErrDisallowedAddress):
			r.kind = "refused"
		case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
			r.kind = "timeout"
			err = fmt.Errorf("no answer within %v: %w", s.cfg.WebhookTimeout, err)
		}
		r.err = oneLine(err.Error())
		return r
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	r := result{code: resp.StatusCode, duration: time.Since(start)}
	if !r.ok() {
		r.err = "HTTP " + strconv.Itoa(resp.StatusCode)
		if body := printable(snippet); body != "" {
			r.err += ": " + body
		}
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			r.err += " (redirects are not followed; use the final URL)"
		}
	}
	return r
}

// printable keeps a body snippet fit for the delivery log: one line of
// printable text.
func printable(b []byte) string {
	s := strings.ToValidUTF8(string(b), "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	return oneLine(s)
}

// errLeaseLost: the delivery's lease went to someone else (or a disabling
// failed it) before the outcome was recorded.
var errLeaseLost = errors.New("lease lost")

// record writes an attempt's outcome: the delivery's status and schedule,
// the subscription's failure count, and its automatic disabling.
func (s *Service) record(ctx context.Context, c claimed, r result) error {
	var (
		outcome  string
		disabled *WebhookDisabled
		gone     bool
		latency  time.Duration
		next     *time.Time
	)
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		disabled, gone, next = nil, false, nil
		now := s.now()
		if r.ok() {
			// The subscription's row first, then the delivery's: every
			// writer takes them in that order.
			exists, err := webhookSucceeded(ctx, tx, c.WebhookID, now)
			if err != nil {
				return fmt.Errorf("record success on webhook: %w", err)
			}
			if !exists {
				gone = true
				return nil
			}
			ok, err := finishDelivery(ctx, tx, c, DeliverySucceeded, r.code, "", nil, now)
			if err != nil {
				return fmt.Errorf("record delivery: %w", err)
			}
			if !ok {
				return errLeaseLost
			}
			outcome, latency = hookSucceeded, now.Sub(c.CreatedAt)
			return nil
		}

		w, err := getWebhook(ctx, tx, c.WebhookID)
		if apperr.Is(err, apperr.NotFound) {
			gone = true
			return nil
		}
		if err != nil {
			return err
		}
		final := !now.Before(c.retryUntil) || !w.Enabled
		if !final {
			n := now.Add(s.jitter(backoff(s.cfg.WebhookRetrySchedule, c.Attempts))).Truncate(time.Microsecond)
			if n.After(c.retryUntil) {
				n = c.retryUntil // the last attempt is made when the window ends
			}
			next = &n
		}
		if _, err := webhookFailed(ctx, tx, c.WebhookID, final, now); err != nil {
			return fmt.Errorf("record failure on webhook: %w", err)
		}
		status := DeliveryRetrying
		outcome = hookRetried
		if final {
			status, outcome = DeliveryFailed, hookFailed
		}
		ok, err := finishDelivery(ctx, tx, c, status, r.code, r.err, next, now)
		if err != nil {
			return fmt.Errorf("record delivery: %w", err)
		}
		if !ok {
			return errLeaseLost
		}
		if !final || !w.Enabled {
			return nil
		}
		// Read again after the update: the counts as they are now.
		if w, err = getWebhook(ctx, tx, c.WebhookID); err != nil {
			return err
		}
		disabled, err = s.maybeDisable(ctx, tx, w, c, r, now)
		return err
	})
	s.metrics.delivery(outcomeOr(outcome, hookRetried), r.code, r.kind, r.duration)
	switch {
	case errors.Is(err, errLeaseLost):
		s.log.InfoContext(ctx, "webhook attempt not recorded: the delivery was taken over or failed meanwhile",
			"delivery_id", c.ID, "webhook_id", c.WebhookID, "status_code", r.code)
		return nil
	case err != nil:
		return fmt.Errorf("record attempt of delivery %s: %w", c.ID, err)
	case gone:
		s.log.InfoContext(ctx, "webhook attempt not recorded: the webhook was deleted", "delivery_id", c.ID, "webhook_id", c.WebhookID)
		return nil
	}
	attrs := []any{"delivery_id", c.ID, "webhook_id", c.WebhookID, "event_id", c.EventID, "event_type", c.EventType,
		"attempt", c.Attempts, "status_code", r.code, "duration", r.duration.Round(time.Millisecond)}
	switch outcome {
	case hookSucceeded:
		s.metrics.delivered(latency)
		s.log.DebugContext(ctx, "webhook delivered", attrs...)
	case hookRetried:
		s.log.InfoContext(ctx, "webhook attempt failed; retrying later", append(attrs, "next_attempt_at", *next, "error", r.err)...)
	case hookFailed:
		s.log.WarnContext(ctx, "webhook delivery failed for good; fix the endpoint, then retry it with POST /admin/webhooks/{id}/deliveries/{delivery_id}/retry",
			append(attrs, "error", r.err)...)
	}
	if disabled != nil {
		s.metrics.disabledWebhook()
		s.log.WarnContext(ctx, "webhook disabled after repeated failures; fix the endpoint, enable it again with PATCH /admin/webhooks/{id} {\"enabled\": true}, then retry the failed deliveries",
			"webhook_id", disabled.WebhookID, "origin", disabled.URL, "reason", disabled.Reason, "message", disabled.Message,
			"consecutive_failures", disabled.ConsecutiveFailures, "last_error", disabled.LastError)
	}
	return nil
}

func outcomeOr(o, dflt string) string {
	if o == "" {
		return dflt
	}
	return o
}

// maybeDisable applies the automatic disabling rules after a delivery to w
// ended failed: MaxConsecutiveFailures deliveries in a row failed, or
// nothing succeeded since this delivery was created at least DisableAfter
// ago. It disables w, fails its outstanding deliveries and publishes
// souk.notify.webhook_disabled.v1, all in tx; it returns the event's data,
// or nil when w stays enabled.
func (s *Service) maybeDisable(ctx context.Context, tx *store.Tx, w Webhook, c claimed, r result, now time.Time) (*WebhookDisabled, error) {
	var reason, message string
	switch {
	case w.ConsecutiveFailures >= s.cfg.MaxConsecutiveFailures:
		reason = DisabledConsecutiveFailures
		message = fmt.Sprintf("disabled automatically: %d deliveries in a row failed (last error: %s)", w.ConsecutiveFailures, r.err)
	case now.Sub(c.CreatedAt) >= s.cfg.DisableAfter && (w.LastSuccessAt == nil || w.LastSuccessAt.Before(c.CreatedAt)):
		reason = DisabledFailing
		since := "ever"
		if w.LastSuccessAt != nil {
			since = "since " + w.LastSuccessAt.Format(time.RFC3339)
		}
		message = fmt.Sprintf("disabled automatically: no delivery succeeded for %s (none %s; last error: %s)",
			now.Sub(c.CreatedAt).Round(time.Minute), since, r.err)
	default:
		return nil, nil
	}
	tx.AfterCommit(s.forgetSubscriptions)
	ok, err := disableWebhook(ctx, tx, w.ID, message, now)
	if err != nil {
		return nil, fmt.Errorf("disable webhook: %w", err)
	}
	if !ok {
		return nil, nil // disabled meanwhile
	}
	if _, err := failOutstanding(ctx, tx, w.ID, "not attempted: the webhook was disabled after repeated failures", now); err != nil {
		return nil, fmt.Errorf("fail outstanding deliveries: %w", err)
	}
	data := WebhookDisabled{
		WebhookID: w.ID, URL: originOf(w.URL), Reason: reason, Message: message, ConsecutiveFailures: w.ConsecutiveFailures,
		LastSuccessAt: w.LastSuccessAt, LastError: r.err, DeliveryID: c.ID, DisabledAt: now,
	}
	e, err := bus.NewEvent(ctx, eventSource, EventWebhookDisabled, w.ID, data)
	if err != nil {
		return nil, err
	}
	if err := s.outbox.Add(ctx, tx, e); err != nil {
		return nil, fmt.Errorf("publish %s: %w", EventWebhookDisabled, err)
	}
	return &data, nil
}

// originOf is a URL's scheme and host ("https://hooks.example.com"): what
// may be shown beyond the Admin API (paths and queries may hold tokens).
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// hostOf is a URL's host, for logs (paths and queries may hold tokens).
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}
