package payments

import (
	"context"
	"fmt"

	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/store"
)

// The events payments publishes. Each has a JSON Schema in
// api/events/<type>.json. Payment events have the payment id as their
// CloudEvents subject, so a consumer sees each payment's events in order.
// Each is written in the transaction that records the operation, so it is
// published exactly when the change is recorded.
const (
	// EventPaymentAuthorized: the provider authorized a payment (data:
	// PaymentEvent).
	EventPaymentAuthorized = "souk.payments.payment_authorized.v1"
	// EventPaymentFailed: the provider declined an authorization; the
	// payment is failed with its failure_code.
	EventPaymentFailed = "souk.payments.payment_failed.v1"
	// EventPaymentCaptured: an authorized payment was captured (amount is
	// what was captured).
	EventPaymentCaptured = "souk.payments.payment_captured.v1"
	// EventPaymentVoided: an authorization was released uncaptured.
	EventPaymentVoided = "souk.payments.payment_voided.v1"
	// EventPaymentRefunded: part or all of a captured payment was refunded
	// (amount is this refund; refunded the total so far).
	EventPaymentRefunded = "souk.payments.payment_refunded.v1"
	// EventProviderSwitched: an operator switched the provider new
	// authorizations use (data: ProviderSwitch; subject: the switch id).
	EventProviderSwitched = "souk.payments.provider_switched.v1"
)

// eventSource is the CloudEvents source of payments' events.
const eventSource = "payments"

// PaymentEvent is the data of the payment events: the payment after the
// change, the operation's key and the amount it moved.
type PaymentEvent struct {
	PaymentID   string      `json:"payment_id"`
	OrderID     string      `json:"order_id"`
	Provider    string      `json:"provider"`
	ProviderRef string      `json:"provider_ref"`
	Status      Status      `json:"status"`
	Key         string      `json:"key"`
	Amount      money.Money `json:"amount"` // what this operation moved
	Authorized  money.Money `json:"authorized"`
	Captured    money.Money `json:"captured"`
	Refunded    money.Money `json:"refunded"`
	FailureCode string      `json:"failure_code,omitempty"`
	RefundRef   string      `json:"refund_ref,omitempty"`
}

// event is an event to be built: its type, subject and data.
type event struct {
	typ, subject string
	data         any
}

func paymentEvent(typ string, p Payment, key string, amount money.Money) event {
	return event{typ, p.ID, PaymentEvent{
		PaymentID: p.ID, OrderID: p.OrderID, Provider: p.Provider, ProviderRef: p.ProviderRef, Status: p.Status, Key: key,
		Amount: amount, Authorized: p.Amount, Captured: p.Captured, Refunded: p.Refunded, FailureCode: p.FailureCode,
	}}
}

func eventAuthorized(p Payment, key string) event {
	return paymentEvent(EventPaymentAuthorized, p, key, p.Amount)
}

func eventFailed(p Payment, key string) event {
	return paymentEvent(EventPaymentFailed, p, key, p.Amount)
}

func eventCaptured(p Payment, key string) event {
	return paymentEvent(EventPaymentCaptured, p, key, p.Captured)
}

func eventVoided(p Payment, key string) event {
	return paymentEvent(EventPaymentVoided, p, key, p.Amount)
}

func eventRefunded(p Payment, key string, amount money.Money, refundRef string) event {
	e := paymentEvent(EventPaymentRefunded, p, key, amount)
	data := e.data.(PaymentEvent)
	data.RefundRef = refundRef
	e.data = data
	return e
}

func eventProviderSwitched(sw ProviderSwitch) event {
	return event{EventProviderSwitched, sw.ID, sw}
}

// emit writes the events into the outbox, in tx, after the rows they report.
func (s *Service) emit(ctx context.Context, tx *store.Tx, events ...event) error {
	for _, ev := range events {
		e, err := bus.NewEvent(ctx, eventSource, ev.typ, ev.subject, ev.data)
		if err != nil {
			return fmt.Errorf("build %s: %w", ev.typ, err)
		}
		if err := s.outbox.Add(ctx, tx, e); err != nil {
			return fmt.Errorf("publish %s: %w", ev.typ, err)
		}
	}
	return nil
}
