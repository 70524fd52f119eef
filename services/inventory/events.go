package inventory

import (
	"context"
	"fmt"
	"time"

	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/store"
)

// The events the inventory publishes. Each has a JSON Schema in
// api/events/<type>.json. Reservation events have the reservation id as
// their CloudEvents subject, stock events the SKU (so a consumer sees each
// SKU's events in order).
const (
	// EventStockReserved: a reservation was made (data: StockReserved).
	EventStockReserved = "souk.inventory.stock_reserved.v1"
	// EventStockReservationFailed: a reservation could not be served; nothing
	// was reserved (data: StockReservationFailed, subject: the request's
	// idempotency key — there is no reservation). It is written in its own
	// small transaction after the failed one rolled back, so it is
	// best-effort: a crash between the two loses it (the caller got the
	// out_of_stock answer either way).
	EventStockReservationFailed = "souk.inventory.stock_reservation_failed.v1"
	// EventStockReleased: a pending reservation's stock was given back, by
	// Release (reason "released") or the expiry sweep ("expired").
	EventStockReleased = "souk.inventory.stock_released.v1"
	// EventStockCommitted: a reservation became a sale: on_hand and
	// reserved dropped by its quantities.
	EventStockCommitted = "souk.inventory.stock_committed.v1"
	// EventStockLow: a change took a SKU's sellable stock from above its
	// low-stock threshold to the threshold or below. Once per crossing: it
	// comes again only after the stock went back above the threshold.
	EventStockLow = "souk.inventory.stock_low.v1"
	// EventStockAdjusted: a person (or the seed) changed a level's on_hand:
	// an adjustment or a PUT of the level. Sales are stock_committed.
	EventStockAdjusted = "souk.inventory.stock_adjusted.v1"
)

// eventSource is the CloudEvents source of the inventory's events.
const eventSource = "inventory"

// StockReserved is the data of souk.inventory.stock_reserved.v1.
type StockReserved struct {
	ReservationID string            `json:"reservation_id"`
	Key           string            `json:"key"`
	OrderID       *string           `json:"order_id"`
	ExpiresAt     time.Time         `json:"expires_at"`
	Lines         []ReservationLine `json:"lines"`
}

// StockReservationFailed is the data of
// souk.inventory.stock_reservation_failed.v1.
type StockReservationFailed struct {
	Key       string     `json:"key"`
	OrderID   *string    `json:"order_id"`
	Reason    string     `json:"reason"` // out_of_stock
	Shortages []Shortage `json:"shortages"`
}

// StockReleased is the data of souk.inventory.stock_released.v1.
type StockReleased struct {
	ReservationID string            `json:"reservation_id"`
	Key           string            `json:"key"`
	OrderID       *string           `json:"order_id"`
	Reason        string            `json:"reason"` // released | expired
	Lines         []ReservationLine `json:"lines"`
}

// StockCommitted is the data of souk.inventory.stock_committed.v1.
type StockCommitted struct {
	ReservationID string            `json:"reservation_id"`
	Key           string            `json:"key"`
	OrderID       string            `json:"order_id"`
	Lines         []ReservationLine `json:"lines"`
}

// StockLow is the data of souk.inventory.stock_low.v1: the SKU's sellable
// stock after the change, and its threshold.
type StockLow struct {
	SKU       string `json:"sku"`
	Available int64  `json:"available"`
	Threshold int64  `json:"threshold"`
	Backorder bool   `json:"backorder"`
}

// StockAdjusted is the data of souk.inventory.stock_adjusted.v1: the audit
// row of the change.
type StockAdjusted struct {
	AdjustmentID string `json:"adjustment_id"`
	SKU          string `json:"sku"`
	LocationID   string `json:"location_id"`
	Delta        int64  `json:"delta"`
	OnHandBefore int64  `json:"on_hand_before"`
	OnHandAfter  int64  `json:"on_hand_after"`
	Reason       Reason `json:"reason"`
	Note         string `json:"note"`
	Actor        string `json:"actor"`
}

// event is an event to be built: its type, subject and data.
type event struct {
	typ, subject string
	data         any
}

func eventAdjusted(a Adjustment) event {
	return event{EventStockAdjusted, a.SKU, StockAdjusted{
		AdjustmentID: a.ID, SKU: a.SKU, LocationID: a.LocationID, Delta: a.Delta,
		OnHandBefore: a.OnHandBefore, OnHandAfter: a.OnHandAfter, Reason: a.Reason, Note: a.Note, Actor: a.Actor,
	}}
}

func eventReserved(r Reservation) event {
	return event{EventStockReserved, r.ID, StockReserved{
		ReservationID: r.ID, Key: r.Key, OrderID: r.OrderID, ExpiresAt: r.ExpiresAt, Lines: r.Lines,
	}}
}

func eventReleased(r Reservation, reason State) event {
	return event{EventStockReleased, r.ID, StockReleased{
		ReservationID: r.ID, Key: r.Key, OrderID: r.OrderID, Reason: string(reason), Lines: r.Lines,
	}}
}

func eventCommitted(r Reservation) event {
	return event{EventStockCommitted, r.ID, StockCommitted{
		ReservationID: r.ID, Key: r.Key, OrderID: *r.OrderID, Lines: r.Lines,
	}}
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

// lowCrossing tells whether a change of a SKU's stock from prev to next
// crossed its low-stock threshold downwards: sellable above the threshold
// before, at or below it after. Measured on sellable stock, which a
// backorder never takes below zero, so a SKU sliding into backorder
// crosses once too.
func lowCrossing(prev, next StockItem) bool {
	t := next.LowStockThreshold
	return prev.sellable() > t && next.sellable() <= t
}

// checkLow emits stock_low when the change from prev to next crossed the
// SKU's threshold. Exact because the SKU is locked (see lockItems).
func (s *Service) checkLow(ctx context.Context, tx *store.Tx, prev, next StockItem) error {
	if !lowCrossing(prev, next) {
		return nil
	}
	err := s.emit(ctx, tx, event{EventStockLow, next.SKU, StockLow{
		SKU: next.SKU, Available: next.sellable(), Threshold: next.LowStockThreshold, Backorder: next.Backorder,
	}})
	if err == nil {
		tx.AfterCommit(func() { s.metrics.low(1) })
	}
	return err
}
