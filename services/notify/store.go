package notify

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/soukhq/souk/platform/store"
)

//go:embed migrations
var migrationsFS embed.FS

// Migrations creates notify's tables (emails, webhooks, deliveries). Apply
// it with bus.Migrations (the outbox and the consumers' inbox) to notify's
// database.
var Migrations = store.Migrations{Name: "notify", FS: migrationsFS}

// The SQL of notify. Every function takes the Querier or Tx to run in; the
// service decides the transaction. None returns sql.ErrNoRows: a missing row
// is an apperr NotFound, or a false "found"/"changed".

// nullTime turns an optional time into a query argument.
func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return *t
}

// --- emails ---

// An email is two rows (migration 00002): its delivery state in
// notify_emails, which the sender updates on every claim and outcome, and
// its message in notify_email_bodies, written once with it and never
// updated, so that those updates do not write the bodies (several KB)
// again. Whoever returns an Email reads both.

// emailStateColumns are notify_emails' columns, in scanEmailState's order.
const emailStateColumns = `id, event_id, kind, reference, recipient, state, attempts,
	last_error, next_attempt_at, created_at, updated_at, sent_at`

// selectEmails reads whole emails, e being the state row and b its message.
const selectEmails = `SELECT e.id, e.event_id, e.kind, e.reference, e.recipient, e.state, e.attempts,
	e.last_error, e.next_attempt_at, e.created_at, e.updated_at, e.sent_at, b.subject, b.text_body, b.html_body
	FROM notify_emails e JOIN notify_email_bodies b ON b.email_id = e.id`

// scanEmailState scans emailStateColumns, then extra: an Email without
// its message.
func scanEmailState(r store.RowScanner, extra ...any) (Email, error) {
	var (
		e          Email
		next, sent sql.NullTime
	)
	dest := append([]any{&e.ID, &e.EventID, &e.Kind, &e.Reference, &e.To, &e.State, &e.Attempts,
		&e.LastError, &next, &e.CreatedAt, &e.UpdatedAt, &sent}, extra...)
	if err := r.Scan(dest...); err != nil {
		return Email{}, err
	}
	e.NextAttemptAt, e.SentAt = store.TimeOrNil(next), store.TimeOrNil(sent)
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	return e, nil
}

// scanEmail scans a row of selectEmails.
func scanEmail(r store.RowScanner) (Email, error) {
	var subject, text, html string
	e, err := scanEmailState(r, &subject, &text, &html)
	if err != nil {
		return Email{}, err
	}
	e.Subject, e.Text, e.HTML = subject, text, html
	return e, nil
}

// insertEmail stores e, its state and its message, unless an email for its
// event exists; it reports whether it inserted.
func insertEmail(ctx context.Context, tx *store.Tx, e Email) (bool, error) {
	inserted, err := store.ChangedOne(tx.Exec(ctx, `INSERT INTO notify_emails (id, event_id, kind, reference, recipient,
		state, attempts, last_error, next_attempt_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING`,
		e.ID, e.EventID, e.Kind, e.Reference, e.To,
		e.State, e.Attempts, e.LastError, nullTime(e.NextAttemptAt), e.CreatedAt, e.UpdatedAt))
	if err != nil || !inserted {
		return false, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO notify_email_bodies (email_id, subject, text_body, html_body) VALUES (?, ?, ?, ?)`,
		e.ID, e.Subject, e.Text, e.HTML); err != nil {
		return false, fmt.Errorf("store its message: %w", err)
	}
	return true, nil
}

func getEmail(ctx context.Context, q store.Querier, emailID string) (Email, error) {
	e, err := scanEmail(q.QueryRow(ctx, selectEmails+` WHERE e.id = ?`, emailID))
	if errors.Is(err, sql.ErrNoRows) {
		return Email{}, notFound("email", emailID)
	}
	if err != nil {
		return Email{}, fmt.Errorf("read email: %w", err)
	}
	return e, nil
}

func emailsOfEvent(ctx context.Context, q store.Querier, eventID string) ([]Email, error) {
	return store.All(ctx, q, "read emails", scanEmail, selectEmails+` WHERE e.event_id = ? ORDER BY e.id`, eventID)
}

// dueEmailsWhere is the condition of an email that is due and that nobody
// holds a lease on, with now as its two arguments.
const dueEmailsWhere = `next_attempt_at IS NOT NULL AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)`

// claimEmails takes a lease for owner, until until, on at most limit due
// emails, oldest due first, counts the attempt on each, and returns them
// (attempts counted, messages read) in that order. The inner SELECT walks
// the index notify_emails_due; the condition is repeated on the UPDATE so
// that two processes never claim one email: on SQLite the write lock makes
// claims take turns, and on PostgreSQL (READ COMMITTED) an UPDATE that
// waited for another's lock on a row checks the condition again on the row
// as that one left it, and skips it. The UPDATE writes and returns the
// state rows only; the messages are read with one more query in tx, so a
// batch is claimed with its messages or not at all. Run it in a
// transaction: on SQLite a statement outside one would go to the read-only
// pool.
func claimEmails(ctx context.Context, tx *store.Tx, owner string, now, until time.Time, limit int) ([]Email, error) {
	emails, err := store.All(ctx, tx, "claim due emails", func(r store.RowScanner) (Email, error) { return scanEmailState(r) }, `UPDATE notify_emails
		SET lease_owner = ?, lease_until = ?, attempts = attempts + 1, updated_at = ?
		WHERE id IN (SELECT id FROM notify_emails WHERE `+dueEmailsWhere+` ORDER BY next_attempt_at, id LIMIT ?)
		AND `+dueEmailsWhere+`
		RETURNING `+emailStateColumns,
		owner, until, now, now, now, limit, now, now)
	if err != nil || len(emails) == 0 {
		return nil, err
	}
	if err := readMessages(ctx, tx, emails); err != nil {
		return nil, err
	}
	// RETURNING gives no order.
	slices.SortFunc(emails, func(a, b Email) int {
		if c := a.NextAttemptAt.Compare(*b.NextAttemptAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return emails, nil
}

// readMessages fills in the subject and bodies of emails read without
// them, with one query. Every email has its message (both are inserted in
// one transaction): one missing is an error.
func readMessages(ctx context.Context, q store.Querier, emails []Email) error {
	byID := make(map[string]*Email, len(emails))
	ids := make([]string, len(emails))
	for i := range emails {
		byID[emails[i].ID], ids[i] = &emails[i], emails[i].ID
	}
	err := store.Each(ctx, q, "read email messages", func(r store.RowScanner) error {
		var emailID, subject, text, html string
		if err := r.Scan(&emailID, &subject, &text, &html); err != nil {
			return err
		}
		if e := byID[emailID]; e != nil {
			e.Subject, e.Text, e.HTML = subject, text, html
			delete(byID, emailID)
		}
		return nil
	}, `SELECT email_id, subject, text_body, html_body FROM notify_email_bodies WHERE email_id IN (`+store.Placeholders(len(ids))+`)`,
		store.Args(ids)...)
	if err != nil {
		return err
	}
	for _, emailID := range ids {
		if byID[emailID] != nil {
			return fmt.Errorf("read email messages: email %s has none in notify_email_bodies", emailID)
		}
	}
	return nil
}

// releaseEmails gives back the leases owner holds on emails it claimed but
// did not attempt, and the attempts the claim counted: they are due again
// at once, as if never claimed. An email whose lease owner lost is left
// alone.
func releaseEmails(ctx context.Context, tx *store.Tx, owner string, emailIDs []string, now time.Time) error {
	if len(emailIDs) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `UPDATE notify_emails SET lease_owner = NULL, lease_until = NULL, attempts = attempts - 1, updated_at = ?
		WHERE lease_owner = ? AND id IN (`+store.Placeholders(len(emailIDs))+`)`,
		append([]any{now, owner}, store.Args(emailIDs)...)...)
	return err
}

// finishEmail records an attempt's outcome if owner still holds the lease:
// state sent or failed (next nil), or pending again at next.
func finishEmail(ctx context.Context, q store.Querier, emailID, owner string, state EmailState, lastError string, next *time.Time, now time.Time) (bool, error) {
	var sentAt any
	if state == EmailSent {
		sentAt = now
	}
	return store.ChangedOne(q.Exec(ctx, `UPDATE notify_emails SET state = ?, last_error = ?, next_attempt_at = ?, sent_at = ?,
		lease_owner = NULL, lease_until = NULL, updated_at = ? WHERE id = ? AND lease_owner = ?`,
		state, lastError, nullTime(next), sentAt, now, emailID, owner))
}

// --- webhooks ---

const webhookColumns = `id, url, description, event_types, enabled, disabled_reason, disabled_at, consecutive_failures,
	last_success_at, last_failure_at, version, created_at, updated_at`

func scanWebhook(r store.RowScanner) (Webhook, error) {
	var (
		w                                    Webhook
		types, reason                        string
		disabledAt, lastSuccess, lastFailure sql.NullTime
	)
	err := r.Scan(&w.ID, &w.URL, &w.Description, &types, &w.Enabled, &reason, &disabledAt, &w.ConsecutiveFailures,
		&lastSuccess, &lastFailure, &w.Version, &w.CreatedAt, &w.UpdatedAt)
	if err != nil {
		return Webhook{}, err
	}
	if err := json.Unmarshal([]byte(types), &w.EventTypes); err != nil {
		return Webhook{}, fmt.Errorf("webhook %s: event_types: %w", w.ID, err)
	}
	if !w.Enabled {
		w.DisabledReason = &reason
	}
	w.DisabledAt, w.LastSuccessAt, w.LastFailureAt = store.TimeOrNil(disabledAt), store.TimeOrNil(lastSuccess), store.TimeOrNil(lastFailure)
	w.CreatedAt, w.UpdatedAt = w.CreatedAt.UTC(), w.UpdatedAt.UTC()
	return w, nil
}

func getWebhook(ctx context.Context, q store.Querier, webhookID string) (Webhook, error) {
	w, err := scanWebhook(q.QueryRow(ctx, `SELECT `+webhookColumns+` FROM notify_webhooks WHERE id = ?`, webhookID))
	if errors.Is(err, sql.ErrNoRows) {
		return Webhook{}, notFound("webhook", webhookID)
	}
	if err != nil {
		return Webhook{}, fmt.Errorf("read webhook: %w", err)
	}
	return w, nil
}

func insertWebhook(ctx context.Context, tx *store.Tx, w Webhook, secret string) error {
	types, err := json.Marshal(w.EventTypes)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO notify_webhooks (id, url, description, event_types, secret, enabled, version, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		w.ID, w.URL, w.Description, string(types), secret, w.Enabled, w.Version, w.CreatedAt, w.UpdatedAt)
	return err
}

// updateWebhook writes the user-editable fields of w and its enabled state
// if the row is still at version expected; enabling also clears the
// failure count.
func updateWebhook(ctx context.Context, tx *store.Tx, w Webhook, expected int64, resetFailures bool) (bool, error) {
	types, err := json.Marshal(w.EventTypes)
	if err != nil {
		return false, err
	}
	reason := ""
	if w.DisabledReason != nil {
		reason = *w.DisabledReason
	}
	return store.ChangedOne(tx.Exec(ctx, `UPDATE notify_webhooks SET url = ?, description = ?, event_types = ?, enabled = ?,
		disabled_reason = ?, disabled_at = ?,
		consecutive_failures = CASE WHEN ? THEN 0 ELSE consecutive_failures END,
		version = ?, updated_at = ? WHERE id = ? AND version = ?`,
		w.URL, w.Description, string(types), w.Enabled, reason, nullTime(w.DisabledAt), resetFailures,
		w.Version, w.UpdatedAt, w.ID, expected))
}

func deleteWebhook(ctx context.Context, tx *store.Tx, webhookID string) (bool, error) {
	return store.ChangedOne(tx.Exec(ctx, `DELETE FROM notify_webhooks WHERE id = ?`, webhookID))
}

func listWebhooks(ctx context.Context, q store.Querier, afterID string, limit int) ([]Webhook, error) {
	return store.All(ctx, q, "list webhooks", scanWebhook, `SELECT `+webhookColumns+` FROM notify_webhooks WHERE id > ? ORDER BY id LIMIT ?`, afterID, limit)
}

// subscription is what the fan-out needs of an enabled webhook.
type subscription struct {
	id    string
	types []string
}

func enabledSubscriptions(ctx context.Context, q store.Querier) ([]subscription, error) {
	return store.All(ctx, q, "read subscriptions", func(r store.RowScanner) (subscription, error) {
		var (
			sub   subscription
			types string
		)
		if err := r.Scan(&sub.id, &types); err != nil {
			return subscription{}, err
		}
		if err := json.Unmarshal([]byte(types), &sub.types); err != nil {
			return subscription{}, fmt.Errorf("webhook %s: event_types: %w", sub.id, err)
		}
		return sub, nil
	}, `SELECT id, event_types FROM notify_webhooks WHERE enabled = ? ORDER BY id`, true)
}

// webhookSucceeded records a successful attempt: the failure count starts
// again. It reports whether the webhook still exists.
func webhookSucceeded(ctx context.Context, tx *store.Tx, webhookID string, now time.Time) (bool, error) {
	return store.ChangedOne(tx.Exec(ctx, `UPDATE notify_webhooks SET consecutive_failures = 0, last_success_at = ? WHERE id = ?`, now, webhookID))
}

// webhookFailed records a failed attempt; final counts a delivery that
// ended failed. It reports whether the webhook still exists.
func webhookFailed(ctx context.Context, tx *store.Tx, webhookID string, final bool, now time.Time) (bool, error) {
	inc := 0
	if final {
		inc = 1
	}
	return store.ChangedOne(tx.Exec(ctx, `UPDATE notify_webhooks SET consecutive_failures = consecutive_failures + ?, last_failure_at = ? WHERE id = ?`,
		inc, now, webhookID))
}

// disableWebhook disables an enabled webhook, bumping its version; false
// when it was not enabled (any more).
func disableWebhook(ctx context.Context, tx *store.Tx, webhookID, reason string, now time.Time) (bool, error) {
	return store.ChangedOne(tx.Exec(ctx, `UPDATE notify_webhooks SET enabled = ?, disabled_reason = ?, disabled_at = ?, version = version + 1, updated_at = ?
		WHERE id = ? AND enabled = ?`, false, reason, now, now, webhookID, true))
}

// --- deliveries ---

const deliveryColumns = `id, webhook_id, event_id, event_type, status, attempts, last_status_code, last_error,
	last_attempt_at, next_attempt_at, created_at, updated_at, completed_at`

func scanDelivery(r store.RowScanner, extra ...any) (Delivery, error) {
	var (
		d                            Delivery
		code                         sql.NullInt64
		lastErr                      string
		lastAttempt, next, completed sql.NullTime
	)
	dest := append([]any{&d.ID, &d.WebhookID, &d.EventID, &d.EventType, &d.Status, &d.Attempts, &code, &lastErr,
		&lastAttempt, &next, &d.CreatedAt, &d.UpdatedAt, &completed}, extra...)
	if err := r.Scan(dest...); err != nil {
		return Delivery{}, err
	}
	if code.Valid {
		c := int(code.Int64)
		d.LastStatusCode = &c
	}
	if lastErr != "" {
		d.LastError = &lastErr
	}
	d.LastAttemptAt, d.NextAttemptAt, d.CompletedAt = store.TimeOrNil(lastAttempt), store.TimeOrNil(next), store.TimeOrNil(completed)
	d.CreatedAt, d.UpdatedAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	return d, nil
}

// insertDelivery stores a pending delivery unless the webhook already has
// one for the event; it reports whether it inserted.
func insertDelivery(ctx context.Context, tx *store.Tx, d Delivery, payload []byte, retryUntil time.Time) (bool, error) {
	return store.ChangedOne(tx.Exec(ctx, `INSERT INTO notify_webhook_deliveries (id, webhook_id, event_id, event_type, payload, status,
		attempts, next_attempt_at, retry_until, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (webhook_id, event_id) DO NOTHING`,
		d.ID, d.WebhookID, d.EventID, d.EventType, string(payload), d.Status, 0, nullTime(d.NextAttemptAt), retryUntil, d.CreatedAt, d.UpdatedAt))
}

func getDelivery(ctx context.Context, q store.Querier, webhookID, deliveryID string) (Delivery, error) {
	d, err := scanDelivery(q.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM notify_webhook_deliveries WHERE id = ? AND webhook_id = ?`,
		deliveryID, webhookID))
	if errors.Is(err, sql.ErrNoRows) {
		return Delivery{}, notFound("delivery", deliveryID)
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("read delivery: %w", err)
	}
	return d, nil
}

// listDeliveries returns a webhook's deliveries newest first, before the id
// beforeID ("" for the first page), optionally of one status.
func listDeliveries(ctx context.Context, q store.Querier, webhookID string, status DeliveryStatus, beforeID string, limit int) ([]Delivery, error) {
	query := `SELECT ` + deliveryColumns + ` FROM notify_webhook_deliveries WHERE webhook_id = ?`
	args := []any{webhookID}
	if status != "" {
		query += ` AND status = ?`
		args = append(args, status)
	}
	if beforeID != "" {
		query += ` AND id < ?`
		args = append(args, beforeID)
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	return store.All(ctx, q, "list deliveries", func(r store.RowScanner) (Delivery, error) { return scanDelivery(r) }, query, args...)
}

// dueDeliveries returns ids of deliveries of enabled webhooks whose attempt
// is due and that nobody holds a lease on, oldest due first.
func dueDeliveries(ctx context.Context, q store.Querier, now time.Time, limit int) ([]string, error) {
	return store.All(ctx, q, "read due deliveries", store.ScanString, `SELECT d.id FROM notify_webhook_deliveries d JOIN notify_webhooks w ON w.id = d.webhook_id
		WHERE d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= ? AND (d.lease_until IS NULL OR d.lease_until < ?) AND w.enabled = ?
		ORDER BY d.next_attempt_at, d.id LIMIT ?`, now, now, true, limit)
}

// claimDelivery takes a lease on a due delivery and counts the attempt:
// the conditional UPDATE lets exactly one of several processes have it.
func claimDelivery(ctx context.Context, q store.Querier, deliveryID, owner string, now, until time.Time) (bool, error) {
	return store.ChangedOne(q.Exec(ctx, `UPDATE notify_webhook_deliveries SET lease_owner = ?, lease_until = ?, attempts = attempts + 1, updated_at = ?
		WHERE id = ? AND next_attempt_at IS NOT NULL AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)`,
		owner, until, now, deliveryID, now, now))
}

// claimed is a delivery this process holds the lease on, with what the
// attempt needs.
type claimed struct {
	Delivery
	owner      string
	payload    []byte
	retryUntil time.Time
	url        string
	secret     string
}

func loadClaimed(ctx context.Context, q store.Querier, deliveryID, owner string) (claimed, bool, error) {
	var (
		c          claimed
		payload    string
		leaseOwner sql.NullString
	)
	cols := `d.id, d.webhook_id, d.event_id, d.event_type, d.status, d.attempts, d.last_status_code, d.last_error,
		d.last_attempt_at, d.next_attempt_at, d.created_at, d.updated_at, d.completed_at`
	d, err := scanDelivery(q.QueryRow(ctx, `SELECT `+cols+`, d.payload, d.retry_until, d.lease_owner, w.url, w.secret
		FROM notify_webhook_deliveries d JOIN notify_webhooks w ON w.id = d.webhook_id WHERE d.id = ?`, deliveryID),
		&payload, &c.retryUntil, &leaseOwner, &c.url, &c.secret)
	if errors.Is(err, sql.ErrNoRows) {
		return claimed{}, false, nil
	}
	if err != nil {
		return claimed{}, false, fmt.Errorf("read delivery: %w", err)
	}
	if leaseOwner.String != owner {
		return claimed{}, false, nil
	}
	c.Delivery, c.owner, c.payload, c.retryUntil = d, owner, []byte(payload), c.retryUntil.UTC()
	return c, true, nil
}

// finishDelivery records an attempt's outcome if owner still holds the
// lease. next is set for retrying, nil for succeeded and failed.
func finishDelivery(ctx context.Context, tx *store.Tx, c claimed, status DeliveryStatus, code int, lastError string, next *time.Time, now time.Time) (bool, error) {
	var codeArg, completed any
	if code > 0 {
		codeArg = code
	}
	if next == nil {
		completed = now
	}
	return store.ChangedOne(tx.Exec(ctx, `UPDATE notify_webhook_deliveries SET status = ?, last_status_code = ?, last_error = ?,
		last_attempt_at = ?, next_attempt_at = ?, completed_at = ?, lease_owner = NULL, lease_until = NULL, updated_at = ?
		WHERE id = ? AND lease_owner = ?`,
		status, codeArg, lastError, now, nullTime(next), completed, now, c.ID, c.owner))
}

// failOutstanding fails a webhook's pending and retrying deliveries that
// no attempt is running for (those finish on their own and, the webhook
// being disabled, fail then).
func failOutstanding(ctx context.Context, tx *store.Tx, webhookID, reason string, now time.Time) (int64, error) {
	res, err := tx.Exec(ctx, `UPDATE notify_webhook_deliveries SET status = ?, last_error = ?, next_attempt_at = NULL, completed_at = ?, updated_at = ?
		WHERE webhook_id = ? AND next_attempt_at IS NOT NULL AND (lease_until IS NULL OR lease_until < ?)`,
		DeliveryFailed, reason, now, now, webhookID, now)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// leased reports whether an attempt of the delivery holds a lease now.
func leased(ctx context.Context, q store.Querier, deliveryID string, now time.Time) (bool, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT COUNT(*) FROM notify_webhook_deliveries WHERE id = ? AND lease_until IS NOT NULL AND lease_until >= ?`,
		deliveryID, now).Scan(&n)
	return n > 0, err
}

// scheduleNow makes a delivery due now; retryUntil, when set, also
// replaces its retry deadline and reopens a finished delivery.
func scheduleNow(ctx context.Context, tx *store.Tx, deliveryID string, status DeliveryStatus, retryUntil *time.Time, now time.Time) (bool, error) {
	if retryUntil == nil {
		return store.ChangedOne(tx.Exec(ctx, `UPDATE notify_webhook_deliveries SET next_attempt_at = ?, updated_at = ? WHERE id = ? AND next_attempt_at IS NOT NULL`,
			now, now, deliveryID))
	}
	return store.ChangedOne(tx.Exec(ctx, `UPDATE notify_webhook_deliveries SET status = ?, next_attempt_at = ?, retry_until = ?, completed_at = NULL, updated_at = ?
		WHERE id = ?`, status, now, *retryUntil, now, deliveryID))
}
