package orders

import (
	"context"
	"fmt"
	"time"

	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/store"
)

// The events the orders service publishes, each with a JSON Schema in
// api/events/<type>.json. Their CloudEvents subject is the order id, so a
// consumer sees each order's events in order.
const (
	// EventOrderPlaced: checkout created the order, pending, with its
	// frozen totals (data: OrderPlaced).
	EventOrderPlaced = "souk.orders.order_placed.v1"
	// EventOrderConfirmed: the saga finished: stock committed, payment
	// authorized (and captured per policy) (data: OrderConfirmed; notify
	// sends the confirmation from it).
	EventOrderConfirmed = "souk.orders.order_confirmed.v1"
	// EventOrderCancelled: the order was cancelled, by its saga failing or
	// by staff, with the reason (data: OrderCancelled).
	EventOrderCancelled = "souk.orders.order_cancelled.v1"
	// EventOrderShipped: a fulfilment shipped (part of) the order (data:
	// OrderShipped).
	EventOrderShipped = "souk.orders.order_shipped.v1"
	// EventOrderRefunded: money was given back (data: OrderRefunded).
	EventOrderRefunded = "souk.orders.order_refunded.v1"
)

// eventSource is the CloudEvents source of the orders' events.
const eventSource = "orders"

// EventItem is an order line as the events describe it.
type EventItem struct {
	VariantID    string      `json:"variant_id"`
	SKU          string      `json:"sku"`
	Title        string      `json:"title"`
	VariantTitle string      `json:"variant_title"`
	Quantity     int64       `json:"quantity"`
	UnitPrice    money.Money `json:"unit_price"`
	Total        money.Money `json:"total"`
}

// OrderPlaced is the data of souk.orders.order_placed.v1.
type OrderPlaced struct {
	OrderID       string      `json:"order_id"`
	CartID        string      `json:"cart_id"`
	CustomerID    *string     `json:"customer_id"`
	Email         string      `json:"email"`
	Currency      string      `json:"currency"`
	Items         []EventItem `json:"items"`
	Subtotal      money.Money `json:"subtotal"`
	DiscountTotal money.Money `json:"discount_total"`
	ShippingTotal money.Money `json:"shipping_total"`
	TaxTotal      money.Money `json:"tax_total"`
	Total         money.Money `json:"total"`
	PlacedAt      time.Time   `json:"placed_at"`
}

// OrderConfirmed is the data of souk.orders.order_confirmed.v1. Its shape
// is fixed: notify renders the confirmation email from exactly these
// fields.
type OrderConfirmed struct {
	OrderID         string      `json:"order_id"`
	CustomerID      *string     `json:"customer_id"`
	Email           string      `json:"email"`
	Currency        string      `json:"currency"`
	Items           []EventItem `json:"items"`
	Subtotal        money.Money `json:"subtotal"`
	DiscountTotal   money.Money `json:"discount_total"`
	ShippingTotal   money.Money `json:"shipping_total"`
	TaxTotal        money.Money `json:"tax_total"`
	Total           money.Money `json:"total"`
	ShippingAddress *Address    `json:"shipping_address"`
	ConfirmedAt     time.Time   `json:"confirmed_at"`
}

// OrderCancelled is the data of souk.orders.order_cancelled.v1. Refunded
// is what was given back as it was cancelled (zero when the payment was
// voided or never made).
type OrderCancelled struct {
	OrderID     string      `json:"order_id"`
	CustomerID  *string     `json:"customer_id"`
	Email       string      `json:"email"`
	Reason      string      `json:"reason"`
	Message     string      `json:"message"`
	Refunded    money.Money `json:"refunded"`
	CancelledAt time.Time   `json:"cancelled_at"`
}

// OrderShipped is the data of souk.orders.order_shipped.v1. Status is the
// order's after the shipment: partially_fulfilled or fulfilled.
type OrderShipped struct {
	OrderID        string           `json:"order_id"`
	CustomerID     *string          `json:"customer_id"`
	Email          string           `json:"email"`
	FulfilmentID   string           `json:"fulfilment_id"`
	Items          []FulfilmentItem `json:"items"`
	TrackingNumber *string          `json:"tracking_number"`
	Carrier        *string          `json:"carrier"`
	Status         Status           `json:"status"`
	ShippedAt      time.Time        `json:"shipped_at"`
}

// OrderRefunded is the data of souk.orders.order_refunded.v1.
type OrderRefunded struct {
	OrderID       string      `json:"order_id"`
	CustomerID    *string     `json:"customer_id"`
	RefundID      string      `json:"refund_id"`
	Amount        money.Money `json:"amount"`
	RefundedTotal money.Money `json:"refunded_total"`
	Reason        string      `json:"reason"`
	RefundedAt    time.Time   `json:"refunded_at"`
}

func eventItems(items []Item) []EventItem {
	out := make([]EventItem, len(items))
	for i, it := range items {
		out[i] = EventItem{VariantID: it.VariantID, SKU: it.SKU, Title: it.Title, VariantTitle: it.VariantTitle,
			Quantity: it.Quantity, UnitPrice: it.UnitPrice, Total: it.Total}
	}
	return out
}

func placedData(o Order) OrderPlaced {
	return OrderPlaced{OrderID: o.ID, CartID: o.CartID, CustomerID: o.CustomerID, Email: o.Email, Currency: o.Currency,
		Items: eventItems(o.Items), Subtotal: o.Subtotal, DiscountTotal: o.DiscountTotal, ShippingTotal: o.ShippingTotal,
		TaxTotal: o.TaxTotal, Total: o.Total, PlacedAt: o.CreatedAt}
}

func confirmedData(o Order) OrderConfirmed {
	return OrderConfirmed{OrderID: o.ID, CustomerID: o.CustomerID, Email: o.Email, Currency: o.Currency,
		Items: eventItems(o.Items), Subtotal: o.Subtotal, DiscountTotal: o.DiscountTotal, ShippingTotal: o.ShippingTotal,
		TaxTotal: o.TaxTotal, Total: o.Total, ShippingAddress: o.ShippingAddress, ConfirmedAt: *o.ConfirmedAt}
}

// emit writes an event into the outbox, in tx, after the rows it reports.
func (s *Service) emit(ctx context.Context, tx *store.Tx, typ, orderID string, data any) error {
	e, err := bus.NewEvent(ctx, eventSource, typ, orderID, data)
	if err != nil {
		return fmt.Errorf("build %s: %w", typ, err)
	}
	if err := s.outbox.Add(ctx, tx, e); err != nil {
		return fmt.Errorf("publish %s: %w", typ, err)
	}
	return nil
}
