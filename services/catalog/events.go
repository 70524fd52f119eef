package catalog

import (
	"context"
	"fmt"

	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/store"
)

// The events the catalogue publishes. Each has a JSON Schema in
// api/events/<type>.json; Data is a ProductSnapshot of the product after the
// change, the CloudEvents subject its id.
const (
	// EventProductPublished: a product became published (created published,
	// or moved to published from draft or archived).
	EventProductPublished = "souk.catalog.product_published.v1"
	// EventProductUpdated: a product that is or once was published changed
	// in any other way (including going back to draft, or losing a deleted
	// category). Changes to products never published are not announced:
	// nobody outside the back office has seen them.
	EventProductUpdated = "souk.catalog.product_updated.v1"
	// EventProductArchived: a product that was once published became
	// archived (by PATCH, or by DELETE, which archives such products).
	EventProductArchived = "souk.catalog.product_archived.v1"
)

// eventSource is the CloudEvents source of the catalogue's events.
const eventSource = "catalog"

// ProductSnapshot is the data of every product event: enough for a consumer
// (search, pricing, carts) to update its own view without calling back.
type ProductSnapshot struct {
	ID          string            `json:"id"`
	Handle      string            `json:"handle"`
	Title       string            `json:"title"`
	Status      Status            `json:"status"`
	Version     int64             `json:"version"`
	CategoryIDs []string          `json:"category_ids"`
	Variants    []VariantSnapshot `json:"variants"`
}

// VariantSnapshot is a variant in a ProductSnapshot.
type VariantSnapshot struct {
	ID      string            `json:"id"`
	SKU     string            `json:"sku"`
	Title   string            `json:"title"`
	Options map[string]string `json:"options"`
}

func snapshotOf(p Product) ProductSnapshot {
	s := ProductSnapshot{
		ID: p.ID, Handle: p.Handle, Title: p.Title, Status: p.Status, Version: p.Version,
		CategoryIDs: p.CategoryIDs, Variants: make([]VariantSnapshot, len(p.Variants)),
	}
	if s.CategoryIDs == nil {
		s.CategoryIDs = []string{}
	}
	for i, v := range p.Variants {
		s.Variants[i] = VariantSnapshot{ID: v.ID, SKU: v.SKU, Title: v.Title, Options: v.Options}
	}
	return s
}

// eventFor names the event a change from prev (nil for a new product) to
// next announces, or "" for none. The rule: only products that have ever
// been published are announced (they may be in carts, orders and search
// indexes; drafts nobody has seen are the back office's business). For
// those:
//
//   - becoming published → product_published;
//   - becoming archived → product_archived;
//   - any other change (content, going back to draft, losing a deleted
//     category) → product_updated.
func eventFor(prev *Product, next Product) string {
	if !next.everPublished() {
		return ""
	}
	switch {
	case next.Status == StatusPublished && (prev == nil || prev.Status != StatusPublished):
		return EventProductPublished
	case next.Status == StatusArchived && (prev == nil || prev.Status != StatusArchived):
		return EventProductArchived
	case prev != nil:
		return EventProductUpdated
	}
	return ""
}

// announce writes the event for the change from prev to next into the
// outbox, in tx, after the product's rows were written.
func (s *Service) announce(ctx context.Context, tx *store.Tx, prev *Product, next Product) error {
	typ := eventFor(prev, next)
	if typ == "" {
		return nil
	}
	e, err := bus.NewEvent(ctx, eventSource, typ, next.ID, snapshotOf(next))
	if err != nil {
		return fmt.Errorf("build %s: %w", typ, err)
	}
	if err := s.outbox.Add(ctx, tx, e); err != nil {
		return fmt.Errorf("publish %s: %w", typ, err)
	}
	return nil
}
