// Package notify is Souk's outbound messaging: the order confirmation email
// and outbound webhooks.
//
// Emails are an outbox: the durable consumer of
// souk.orders.order_confirmed.v1 renders the email (HTML and plain text,
// from embedded templates) inside its transaction and stores it in
// notify_emails, one row per event id; a sender worker (Run) claims due rows
// with a lease, sends them over SMTP and retries failures with backoff.
//
// Webhooks are subscriptions (Admin API, permission webhooks:manage) to
// Souk event types. The durable consumer of every event creates one
// delivery per matching enabled subscription, in its transaction; a
// delivery worker (Run) posts the CloudEvent, signed with the
// subscription's secret (Souk-Signature, see VerifySignature), retries with
// exponential backoff and jitter for 24 h, disables subscriptions that keep
// failing, and refuses to connect to private, loopback, link-local and
// metadata addresses (SSRF), at creation and at connection time.
//
// Both consumers are idempotent: the bus's inbox records each event, and the
// tables' unique keys (the email's event id, the delivery's subscription and
// event id) make even a handler applied twice produce one email and one
// delivery per subscription. Sending is at least once: a process that dies
// after the SMTP server or the receiver accepted but before recording it
// sends again once the lease expires (the email keeps its Message-ID and the
// delivery its Souk-Event-Id, so receivers can tell).
package notify

import (
	"slices"
	"time"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/auth"
)

// PermissionManage is what every webhook route requires: creating,
// reading, changing and deleting subscriptions, reading their delivery log
// and retrying deliveries.
const PermissionManage auth.Permission = "webhooks:manage"

// Events notify consumes and publishes.
const (
	// EventOrderConfirmed is published by orders when an order is
	// confirmed; notify sends the confirmation email (data: OrderConfirmed).
	EventOrderConfirmed = "souk.orders.order_confirmed.v1"
	// EventWebhookDisabled is published when a subscription was disabled
	// automatically after repeated failures (data: WebhookDisabled).
	EventWebhookDisabled = "souk.notify.webhook_disabled.v1"
)

// Durable consumer names (also the inbox keys).
const (
	ConsumerOrderConfirmed = "notify-order-confirmed"
	ConsumerWebhooks       = "notify-webhooks"
)

// Id prefixes.
const (
	emailPrefix    = "eml"
	webhookPrefix  = "wh"
	deliveryPrefix = "dlv"
	secretPrefix   = "whsec_"
)

// EmailState is where an email stands.
type EmailState string

// The states of an email.
const (
	EmailPending EmailState = "pending" // waiting for its (next) attempt
	EmailSent    EmailState = "sent"    // the SMTP server accepted it
	EmailFailed  EmailState = "failed"  // given up: see LastError
)

// Email is one email in the outbox.
type Email struct {
	ID            string
	EventID       string // the event it was made for (unique)
	Kind          string // "order_confirmed"
	Reference     string // what it is about: the order id
	To            string
	Subject       string
	Text          string
	HTML          string
	State         EmailState
	Attempts      int
	LastError     string
	NextAttemptAt *time.Time // set while pending
	CreatedAt     time.Time
	UpdatedAt     time.Time
	SentAt        *time.Time
}

// Webhook is a subscription: where to post which events. The secret is
// never part of it; only creation returns it (WebhookWithSecret).
type Webhook struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	Description string   `json:"description"`
	EventTypes  []string `json:"event_types"`
	Enabled     bool     `json:"enabled"`
	// DisabledReason says why a disabled subscription is disabled (null
	// while enabled): automatically after failures, or by whom.
	DisabledReason *string    `json:"disabled_reason"`
	DisabledAt     *time.Time `json:"disabled_at"`
	// ConsecutiveFailures counts deliveries that ended failed since the
	// last successful attempt.
	ConsecutiveFailures int        `json:"consecutive_failures"`
	LastSuccessAt       *time.Time `json:"last_success_at"`
	LastFailureAt       *time.Time `json:"last_failure_at"`
	Version             int64      `json:"version"`
	CreatedAt           time.Time  `json:"created_at"`
	UpdatedAt           time.Time  `json:"updated_at"`
}

// WebhookWithSecret is a new subscription with its signing secret, which
// is shown this once.
type WebhookWithSecret struct {
	Webhook
	Secret string `json:"secret"`
}

// Matches reports whether the subscription wants events of the type.
func (w Webhook) Matches(eventType string) bool {
	return matches(w.EventTypes, eventType)
}

func matches(types []string, eventType string) bool {
	return slices.Contains(types, "*") || slices.Contains(types, eventType)
}

// WebhookInput creates a subscription. EventTypes are event types
// ("souk.orders.order_confirmed.v1") or ["*"] for every event.
type WebhookInput struct {
	URL         string   `json:"url"`
	EventTypes  []string `json:"event_types"`
	Description string   `json:"description,omitempty"`
}

// WebhookPatch changes a subscription; nil fields stay. Enabling a
// disabled subscription clears its failure count; disabling one fails its
// outstanding deliveries.
type WebhookPatch struct {
	URL         *string   `json:"url,omitempty"`
	EventTypes  *[]string `json:"event_types,omitempty"`
	Description *string   `json:"description,omitempty"`
	Enabled     *bool     `json:"enabled,omitempty"`
}

// DeliveryStatus is where a webhook delivery stands.
type DeliveryStatus string

// The states of a delivery.
const (
	DeliveryPending   DeliveryStatus = "pending"   // not attempted yet
	DeliveryRetrying  DeliveryStatus = "retrying"  // attempted, failed, next attempt scheduled
	DeliverySucceeded DeliveryStatus = "succeeded" // a 2xx answer
	DeliveryFailed    DeliveryStatus = "failed"    // given up: retries exhausted, or the subscription was disabled
)

// Delivery is one event for one subscription, and how its attempts went:
// the delivery log.
type Delivery struct {
	ID             string         `json:"id"`
	WebhookID      string         `json:"webhook_id"`
	EventID        string         `json:"event_id"`
	EventType      string         `json:"event_type"`
	Status         DeliveryStatus `json:"status"`
	Attempts       int            `json:"attempts"`
	LastStatusCode *int           `json:"last_status_code"`
	LastError      *string        `json:"last_error"`
	LastAttemptAt  *time.Time     `json:"last_attempt_at"`
	NextAttemptAt  *time.Time     `json:"next_attempt_at"`
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
	CompletedAt    *time.Time     `json:"completed_at"`
}

// WebhookDisabled is the data of souk.notify.webhook_disabled.v1.
type WebhookDisabled struct {
	WebhookID string `json:"webhook_id"`
	// URL is the subscription's origin, scheme and host only: the event
	// goes to every consumer (and "*" subscriptions), and a URL's path or
	// query may hold a token.
	URL string `json:"url"`
	// Reason is "consecutive_failures" (MaxConsecutiveFailures deliveries
	// in a row ended failed) or "failing" (nothing succeeded for
	// DisableAfter).
	Reason              string     `json:"reason"`
	Message             string     `json:"message"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	LastSuccessAt       *time.Time `json:"last_success_at"`
	LastError           string     `json:"last_error"`
	DeliveryID          string     `json:"delivery_id"`
	DisabledAt          time.Time  `json:"disabled_at"`
}

// Reasons of WebhookDisabled.
const (
	DisabledConsecutiveFailures = "consecutive_failures"
	DisabledFailing             = "failing"
)

func notFound(kind, ref string) error {
	return apperr.New(apperr.NotFound, "no %s %q", kind, ref)
}

func versionConflict(kind string, want, have int64) error {
	return apperr.New(apperr.VersionConflict, "%s is at version %d, not %d; fetch it again and retry", kind, have, want)
}
