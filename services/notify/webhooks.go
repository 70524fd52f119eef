package notify

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/httpx"
	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/store"
)

// Limits of a subscription.
const (
	maxEventTypes     = 100
	maxDescriptionLen = 500
)

// eventTypePattern is a Souk event type: souk.<service>.<event>.v<n>.
var eventTypePattern = regexp.MustCompile(`^souk\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.v[1-9][0-9]{0,3}$`)

// normalizeEventTypes validates a subscription's event types and returns
// them sorted without duplicates; "*" (every event) stands alone.
func normalizeEventTypes(v *apperr.Validation, types []string) []string {
	switch {
	case len(types) == 0:
		v.Add("event_types", "required", `name at least one event type, or ["*"] for every event`)
		return nil
	case len(types) > maxEventTypes:
		v.Addf("event_types", "too_many", "at most %d event types", maxEventTypes)
		return nil
	}
	out := make([]string, 0, len(types))
	for i, t := range types {
		switch {
		case t == "*":
			return []string{"*"}
		case !eventTypePattern.MatchString(t):
			v.Addf(fmt.Sprintf("event_types[%d]", i), "invalid", `must be an event type such as "souk.orders.order_confirmed.v1", or "*"`)
		}
		out = append(out, t)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func validateDescription(v *apperr.Validation, d string) {
	switch {
	case utf8.RuneCountInString(d) > maxDescriptionLen:
		v.Addf("description", "too_long", "at most %d characters", maxDescriptionLen)
	case !utf8.ValidString(d) || strings.ContainsFunc(d, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' }):
		v.Add("description", "invalid", "must be text without control characters")
	}
}

// CreateWebhook validates and stores a new, enabled subscription and
// returns it with its signing secret ("whsec_…"), which is shown this once
// and kept in notify's database to sign deliveries. The URL is checked for
// SSRF (see Config.AllowPrivateNetworks). Errors: validation_failed naming
// url, event_types[i] or description.
func (s *Service) CreateWebhook(ctx context.Context, in WebhookInput) (WebhookWithSecret, error) {
	var v apperr.Validation
	types := normalizeEventTypes(&v, in.EventTypes)
	validateDescription(&v, in.Description)
	u, err := s.checkURL(ctx, in.URL)
	if err != nil {
		if ae, ok := err.(*apperr.Error); ok {
			for _, f := range ae.Fields {
				v.Add(f.Field, f.Code, f.Message)
			}
		} else {
			return WebhookWithSecret{}, fmt.Errorf("create webhook: %w", err)
		}
	}
	if err := v.Err(); err != nil {
		return WebhookWithSecret{}, fmt.Errorf("create webhook: %w", err)
	}
	now := s.now()
	w := Webhook{
		ID: id.New(webhookPrefix), URL: u, Description: in.Description, EventTypes: types, Enabled: true,
		Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	secret := newSecret()
	if err := s.db.InTx(ctx, func(tx *store.Tx) error {
		tx.AfterCommit(s.forgetSubscriptions)
		return insertWebhook(ctx, tx, w, secret)
	}); err != nil {
		return WebhookWithSecret{}, fmt.Errorf("create webhook: %w", err)
	}
	s.log.InfoContext(ctx, "webhook created", "webhook_id", w.ID, "host", hostOf(u), "event_types", types, "actor", actor(ctx))
	return WebhookWithSecret{Webhook: w, Secret: secret}, nil
}

// GetWebhook returns a subscription (without its secret). Errors: not_found.
func (s *Service) GetWebhook(ctx context.Context, webhookID string) (Webhook, error) {
	if !id.Valid(webhookPrefix, webhookID) {
		return Webhook{}, fmt.Errorf("get webhook: %w", notFound("webhook", webhookID))
	}
	w, err := getWebhook(ctx, s.db, webhookID)
	if err != nil {
		return Webhook{}, fmt.Errorf("get webhook: %w", err)
	}
	return w, nil
}

// ListWebhooks returns a page of subscriptions, oldest first. limit is
// 1–100 (0 means 20); cursor is a previous page's NextCursor. Errors:
// validation_failed naming limit or cursor.
func (s *Service) ListWebhooks(ctx context.Context, limit int, cursor string) (httpx.Page[Webhook], error) {
	var v apperr.Validation
	limit = checkLimit(&v, limit)
	after := httpx.CursorKey(&v, cursor, idOf(webhookPrefix))
	if err := v.Err(); err != nil {
		return httpx.Page[Webhook]{}, fmt.Errorf("list webhooks: %w", err)
	}
	ws, err := listWebhooks(ctx, s.db, after, limit+1)
	if err != nil {
		return httpx.Page[Webhook]{}, fmt.Errorf("list webhooks: %w", err)
	}
	return httpx.NextPage(ws, limit, func(w Webhook) string { return w.ID }), nil
}

// UpdateWebhook applies a partial update. With ifMatch > 0 the
// subscription must still be at that version (else version_conflict).
// Enabling a disabled subscription clears its failure count and reason;
// disabling one fails its outstanding deliveries (they can be retried once
// it is enabled again). A changed URL is checked like a new one. Errors as
// CreateWebhook, plus not_found.
func (s *Service) UpdateWebhook(ctx context.Context, webhookID string, patch WebhookPatch, ifMatch int64) (Webhook, error) {
	if !id.Valid(webhookPrefix, webhookID) {
		return Webhook{}, fmt.Errorf("update webhook: %w", notFound("webhook", webhookID))
	}
	var v apperr.Validation
	var types []string
	if patch.EventTypes != nil {
		types = normalizeEventTypes(&v, *patch.EventTypes)
	}
	if patch.Description != nil {
		validateDescription(&v, *patch.Description)
	}
	var newURL string
	if patch.URL != nil {
		u, err := s.checkURL(ctx, *patch.URL)
		if ae, ok := err.(*apperr.Error); ok {
			for _, f := range ae.Fields {
				v.Add(f.Field, f.Code, f.Message)
			}
		} else if err != nil {
			return Webhook{}, fmt.Errorf("update webhook: %w", err)
		}
		newURL = u
	}
	if err := v.Err(); err != nil {
		return Webhook{}, fmt.Errorf("update webhook: %w", err)
	}
	var (
		out     Webhook
		failed  int64
		written bool
	)
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		tx.AfterCommit(s.forgetSubscriptions)
		failed, written = 0, false
		cur, err := getWebhook(ctx, tx, webhookID)
		if err != nil {
			return err
		}
		if ifMatch > 0 && cur.Version != ifMatch {
			return versionConflict("webhook", ifMatch, cur.Version)
		}
		next := cur
		changed := false
		if patch.URL != nil && newURL != cur.URL {
			next.URL, changed = newURL, true
		}
		if patch.EventTypes != nil && !slices.Equal(types, cur.EventTypes) {
			next.EventTypes, changed = types, true
		}
		if patch.Description != nil && *patch.Description != cur.Description {
			next.Description, changed = *patch.Description, true
		}
		now := s.now()
		enabling := patch.Enabled != nil && *patch.Enabled && !cur.Enabled
		disabling := patch.Enabled != nil && !*patch.Enabled && cur.Enabled
		switch {
		case enabling:
			next.Enabled, next.DisabledReason, next.DisabledAt, changed = true, nil, nil, true
		case disabling:
			reason := "disabled by " + actor(ctx)
			next.Enabled, next.DisabledReason, next.DisabledAt, changed = false, &reason, &now, true
		}
		if !changed {
			out = cur
			return nil
		}
		next.Version, next.UpdatedAt = cur.Version+1, now
		ok, err := updateWebhook(ctx, tx, next, cur.Version, enabling)
		if err != nil {
			return fmt.Errorf("write webhook: %w", err)
		}
		if !ok {
			return versionConflict("webhook", cur.Version, cur.Version+1)
		}
		if disabling {
			if failed, err = failOutstanding(ctx, tx, webhookID, "not attempted: the webhook was disabled", now); err != nil {
				return fmt.Errorf("fail outstanding deliveries: %w", err)
			}
		}
		if enabling {
			next.ConsecutiveFailures = 0
			tx.AfterCommit(s.wakeWebhooks)
		}
		out, written = next, true
		return nil
	})
	if err != nil {
		return Webhook{}, fmt.Errorf("update webhook: %w", err)
	}
	if written {
		s.log.InfoContext(ctx, "webhook updated", "webhook_id", out.ID, "enabled", out.Enabled, "version", out.Version,
			"failed_outstanding", failed, "actor", actor(ctx))
	}
	return out, nil
}

// DeleteWebhook deletes a subscription and its delivery log; deliveries
// under way finish without being recorded. With ifMatch > 0 it must still
// be at that version. Errors: not_found, version_conflict.
func (s *Service) DeleteWebhook(ctx context.Context, webhookID string, ifMatch int64) error {
	if !id.Valid(webhookPrefix, webhookID) {
		return fmt.Errorf("delete webhook: %w", notFound("webhook", webhookID))
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		tx.AfterCommit(s.forgetSubscriptions)
		cur, err := getWebhook(ctx, tx, webhookID)
		if err != nil {
			return err
		}
		if ifMatch > 0 && cur.Version != ifMatch {
			return versionConflict("webhook", ifMatch, cur.Version)
		}
		ok, err := deleteWebhook(ctx, tx, webhookID)
		if err != nil {
			return fmt.Errorf("delete webhook: %w", err)
		}
		if !ok {
			return notFound("webhook", webhookID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete webhook: %w", err)
	}
	s.log.InfoContext(ctx, "webhook deleted", "webhook_id", webhookID, "actor", actor(ctx))
	return nil
}

// ListDeliveries returns a page of a subscription's delivery log, newest
// first, optionally only those with a status. Errors: not_found (no such
// webhook), validation_failed naming status, limit or cursor.
func (s *Service) ListDeliveries(ctx context.Context, webhookID string, status DeliveryStatus, limit int, cursor string) (httpx.Page[Delivery], error) {
	if _, err := s.GetWebhook(ctx, webhookID); err != nil {
		return httpx.Page[Delivery]{}, fmt.Errorf("list deliveries: %w", err)
	}
	var v apperr.Validation
	switch status {
	case "", DeliveryPending, DeliveryRetrying, DeliverySucceeded, DeliveryFailed:
	default:
		v.Add("status", "invalid", "must be pending, retrying, succeeded or failed")
	}
	limit = checkLimit(&v, limit)
	before := httpx.CursorKey(&v, cursor, idOf(deliveryPrefix))
	if err := v.Err(); err != nil {
		return httpx.Page[Delivery]{}, fmt.Errorf("list deliveries: %w", err)
	}
	ds, err := listDeliveries(ctx, s.db, webhookID, status, before, limit+1)
	if err != nil {
		return httpx.Page[Delivery]{}, fmt.Errorf("list deliveries: %w", err)
	}
	return httpx.NextPage(ds, limit, func(d Delivery) string { return d.ID }), nil
}

// GetDelivery returns one delivery of a subscription. Errors: not_found.
func (s *Service) GetDelivery(ctx context.Context, webhookID, deliveryID string) (Delivery, error) {
	if !id.Valid(webhookPrefix, webhookID) || !id.Valid(deliveryPrefix, deliveryID) {
		return Delivery{}, fmt.Errorf("get delivery: %w", notFound("delivery", deliveryID))
	}
	d, err := getDelivery(ctx, s.db, webhookID, deliveryID)
	if err != nil {
		return Delivery{}, fmt.Errorf("get delivery: %w", err)
	}
	return d, nil
}

// RetryDelivery schedules an attempt of a delivery now, whatever its
// status. A pending or retrying delivery keeps its schedule otherwise; a
// succeeded or failed one gets exactly one more attempt (it is failed
// again if that attempt fails). Errors: not_found; conflict when the
// subscription is disabled (enable it first) or an attempt is under way.
func (s *Service) RetryDelivery(ctx context.Context, webhookID, deliveryID string) (Delivery, error) {
	if !id.Valid(webhookPrefix, webhookID) || !id.Valid(deliveryPrefix, deliveryID) {
		return Delivery{}, fmt.Errorf("retry delivery: %w", notFound("delivery", deliveryID))
	}
	var out Delivery
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		d, err := getDelivery(ctx, tx, webhookID, deliveryID)
		if err != nil {
			return err
		}
		w, err := getWebhook(ctx, tx, webhookID)
		if err != nil {
			return err
		}
		if !w.Enabled {
			return apperr.New(apperr.Conflict, "webhook %s is disabled; enable it (PATCH with {\"enabled\": true}) before retrying its deliveries", webhookID)
		}
		now := s.now()
		busy, err := leased(ctx, tx, deliveryID, now)
		if err != nil {
			return fmt.Errorf("read delivery lease: %w", err)
		}
		if busy {
			return apperr.New(apperr.Conflict, "delivery %s is being attempted right now; look at it again in a moment", deliveryID)
		}
		var retryUntil *time.Time
		status := d.Status
		if d.Status == DeliverySucceeded || d.Status == DeliveryFailed {
			retryUntil, status = &now, DeliveryRetrying
		}
		if _, err := scheduleNow(ctx, tx, deliveryID, status, retryUntil, now); err != nil {
			return fmt.Errorf("schedule delivery: %w", err)
		}
		out, err = getDelivery(ctx, tx, webhookID, deliveryID)
		if err != nil {
			return err
		}
		tx.AfterCommit(s.wakeWebhooks)
		return nil
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("retry delivery: %w", err)
	}
	s.log.InfoContext(ctx, "webhook delivery retry requested", "webhook_id", webhookID, "delivery_id", deliveryID, "actor", actor(ctx))
	return out, nil
}

// checkLimit validates a page size; 0 means the default.
func checkLimit(v *apperr.Validation, limit int) int {
	switch {
	case limit == 0:
		return httpx.DefaultLimit
	case limit < 1 || limit > httpx.MaxLimit:
		v.Addf("limit", "out_of_range", "limit must be from 1 to %d", httpx.MaxLimit)
	}
	return limit
}

// idOf parses the key of a cursor that holds an id with the prefix.
func idOf(prefix string) func(key string) (string, bool) {
	return func(key string) (string, bool) { return key, id.Valid(prefix, key) }
}

// actor names who made a change, for logs: the caller's principal, or
// "system".
func actor(ctx context.Context) string {
	if p, ok := auth.FromContext(ctx); ok && p.Subject != "" {
		return p.Subject
	}
	return "system"
}
