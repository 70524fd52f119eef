package orders

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/store"
)

// ConsumerName is the durable name of the read model's consumer.
const ConsumerName = "orders-customer-orders"

// statusRank orders the statuses an order passes through, so that an
// event applied late (redelivered, or retried after a later one) never
// moves the read model back. Cancelled is final.
var statusRank = map[Status]int{
	StatusPending:            0,
	StatusConfirmed:          1,
	StatusPartiallyFulfilled: 2,
	StatusFulfilled:          3,
	StatusCancelled:          4,
}

// errNotYet: an event about an order the read model has not seen placed
// yet; retried (the placed event is ahead of it in the stream).
var errNotYet = errors.New("the order's placed event has not been applied yet")

// Subscribe starts the durable consumer (ConsumerName) that feeds the
// customers' read model, GET /store/customers/me/orders, from the orders'
// own events (souk.orders.>) — not from the orders table, so the list
// works, and scales, like any other consumer of those events. Each event
// is applied in one transaction with its inbox row (a redelivery changes
// nothing), and the application itself only moves an order forward, so an
// event applied late changes nothing either. Orders of guests are not
// listed. ctx bounds the set-up; the subscription runs until the bus is
// closed. Subscribing twice is an error.
func (s *Service) Subscribe(ctx context.Context, b *bus.Bus) error {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if s.sub != nil {
		return errors.New("orders: the read model's consumer is already subscribed")
	}
	sub, err := b.Subscribe(ctx, bus.ConsumerConfig{Name: ConsumerName, Subject: "souk.orders.>", Wants: wantsEvent}, s.db, s.applyEvent)
	if err != nil {
		return fmt.Errorf("orders: subscribe the read model: %w", err)
	}
	s.sub = sub
	return nil
}

// wantsEvent declines, before any transaction, the events the read model
// has nothing to do with: a guest's order (no customer, no list) and types
// it does not follow. Every order event names its customer_id.
func wantsEvent(_ context.Context, e bus.Event) (bool, error) {
	switch e.Type {
	case EventOrderPlaced, EventOrderConfirmed, EventOrderShipped, EventOrderCancelled, EventOrderRefunded:
	default:
		return false, nil
	}
	var d struct {
		CustomerID *string `json:"customer_id"`
	}
	if err := e.Decode(&d); err != nil {
		return true, nil // the handler reports it (dead-lettered as permanent)
	}
	return d.CustomerID != nil, nil
}

// applyEvent applies one order event to the customers' read model, in tx.
func (s *Service) applyEvent(ctx context.Context, tx *store.Tx, e bus.Event) error {
	var (
		orderID    string
		customerID *string
		status     Status
		total      *money.Money
		items      = int64(-1)
		refunded   *money.Money
		creates    bool
	)
	var at time.Time
	switch e.Type {
	case EventOrderPlaced:
		var d OrderPlaced
		if err := e.Decode(&d); err != nil {
			return bus.Permanent(err)
		}
		orderID, customerID, status, total, items, creates, at = d.OrderID, d.CustomerID, StatusPending, &d.Total, itemCount(d.Items), true, d.PlacedAt
	case EventOrderConfirmed:
		var d OrderConfirmed
		if err := e.Decode(&d); err != nil {
			return bus.Permanent(err)
		}
		orderID, customerID, status, total, items, creates, at = d.OrderID, d.CustomerID, StatusConfirmed, &d.Total, itemCount(d.Items), true, d.ConfirmedAt
	case EventOrderShipped:
		var d OrderShipped
		if err := e.Decode(&d); err != nil {
			return bus.Permanent(err)
		}
		orderID, customerID, status, at = d.OrderID, d.CustomerID, d.Status, d.ShippedAt
	case EventOrderCancelled:
		var d OrderCancelled
		if err := e.Decode(&d); err != nil {
			return bus.Permanent(err)
		}
		orderID, customerID, status, at = d.OrderID, d.CustomerID, StatusCancelled, d.CancelledAt
		if d.Refunded.Amount > 0 {
			refunded = &d.Refunded
		}
	case EventOrderRefunded:
		var d OrderRefunded
		if err := e.Decode(&d); err != nil {
			return bus.Permanent(err)
		}
		orderID, customerID, refunded, at = d.OrderID, d.CustomerID, &d.RefundedTotal, d.RefundedAt
	default:
		return nil // a newer event type: not part of this read model
	}
	if customerID == nil {
		return nil // guests have no list
	}
	cur, exists, err := getCustomerOrder(ctx, tx, orderID)
	if err != nil {
		return err
	}
	if !exists {
		if !creates {
			return errNotYet
		}
		cur = customerOrderRow{CustomerOrder: CustomerOrder{ID: orderID, Status: status, Total: *total,
			RefundedTotal: money.Zero(total.Currency), ItemCount: items, PlacedAt: at, UpdatedAt: at},
			customerID: *customerID, rank: statusRank[status]}
		if refunded != nil {
			cur.RefundedTotal = *refunded
		}
		return upsertCustomerOrder(ctx, tx, cur, false)
	}
	changed := false
	if r, ok := statusRank[status]; ok && (r > cur.rank || (r == cur.rank && status != cur.Status)) {
		cur.Status, cur.rank, changed = status, r, true
	}
	if total != nil && *total != cur.Total {
		cur.Total, changed = *total, true
	}
	if items >= 0 && items != cur.ItemCount {
		cur.ItemCount, changed = items, true
	}
	if refunded != nil && refunded.Amount > cur.RefundedTotal.Amount {
		cur.RefundedTotal, changed = *refunded, true
	}
	if !changed {
		return nil
	}
	if at.After(cur.UpdatedAt) {
		cur.UpdatedAt = at
	}
	return upsertCustomerOrder(ctx, tx, cur, true)
}

func itemCount(items []EventItem) int64 {
	var n int64
	for _, it := range items {
		n += it.Quantity
	}
	return n
}
