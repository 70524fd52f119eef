package cart

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/store"
)

// EventCartCheckedOut is published when a cart was marked checked out (it
// became an order). Its JSON Schema is in
// api/events/souk.cart.cart_checked_out.v1.json; Data is a CheckedOut, the
// CloudEvents subject the cart's id.
const EventCartCheckedOut = "souk.cart.cart_checked_out.v1"

// eventSource is the CloudEvents source of the cart's events.
const eventSource = "cart"

// CheckedOut is the data of EventCartCheckedOut.
type CheckedOut struct {
	CartID        string           `json:"cart_id"`
	OrderID       string           `json:"order_id"`
	CustomerID    *string          `json:"customer_id"`
	Email         string           `json:"email"`
	Currency      string           `json:"currency"`
	Items         []CheckedOutItem `json:"items"`
	DiscountCodes []string         `json:"discount_codes"`
	Version       int64            `json:"version"`
	CheckedOutAt  time.Time        `json:"checked_out_at"`
}

// CheckedOutItem is a line of a CheckedOut.
type CheckedOutItem struct {
	VariantID string `json:"variant_id"`
	SKU       string `json:"sku"`
	Quantity  int64  `json:"quantity"`
}

func checkedOutOf(r record) CheckedOut {
	e := CheckedOut{
		CartID: r.ID, OrderID: r.OrderID, Email: r.Email, Currency: r.Currency,
		Items: make([]CheckedOutItem, len(r.Items)), DiscountCodes: slices.Clone(r.Codes),
		Version: r.Version, CheckedOutAt: r.UpdatedAt,
	}
	if r.CustomerID != "" {
		e.CustomerID = &r.CustomerID
	}
	if e.DiscountCodes == nil {
		e.DiscountCodes = []string{}
	}
	for i, l := range r.Items {
		e.Items[i] = CheckedOutItem{VariantID: l.VariantID, SKU: l.SKU, Quantity: l.Quantity}
	}
	return e
}

// announceCheckedOut writes EventCartCheckedOut into the outbox in tx,
// after the cart's row was written.
func (s *Service) announceCheckedOut(ctx context.Context, tx *store.Tx, r record) error {
	e, err := bus.NewEvent(ctx, eventSource, EventCartCheckedOut, r.ID, checkedOutOf(r))
	if err != nil {
		return fmt.Errorf("build %s: %w", EventCartCheckedOut, err)
	}
	if err := s.outbox.Add(ctx, tx, e); err != nil {
		return fmt.Errorf("publish %s: %w", EventCartCheckedOut, err)
	}
	return nil
}
