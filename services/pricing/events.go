package pricing

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/store"
)

// The events pricing publishes. Each has a JSON Schema in
// api/events/<type>.json.
const (
	// EventPriceChanged: a price list was created or changed in a way that
	// may change prices (its prices, tax mode, group, window or priority).
	// Data is a PriceChange; the subject is the list's id. One event per
	// changed list.
	EventPriceChanged = "souk.pricing.price_changed.v1"
	// EventVoucherRedeemed: voucher codes were redeemed for an order. Data
	// is a RedemptionSnapshot; the subject is the redemption's id.
	EventVoucherRedeemed = "souk.pricing.voucher_redeemed.v1"
	// EventVoucherReleased: a redemption's codes were given back.
	EventVoucherReleased = "souk.pricing.voucher_released.v1"
)

// eventSource is the CloudEvents source of pricing's events.
const eventSource = "pricing"

// PriceChange is the data of price_changed: the list after the change and
// the variants whose price in it may have changed (every variant of the
// list, before and after, when a list-wide field changed).
type PriceChange struct {
	PriceListID      string     `json:"price_list_id"`
	Name             string     `json:"name"`
	Currency         string     `json:"currency"`
	PricesIncludeTax bool       `json:"prices_include_tax"`
	CustomerGroup    *string    `json:"customer_group"`
	StartsAt         *time.Time `json:"starts_at"`
	EndsAt           *time.Time `json:"ends_at"`
	Priority         int        `json:"priority"`
	Version          int64      `json:"version"`
	VariantIDs       []string   `json:"variant_ids"`
}

// RedemptionSnapshot is the data of the voucher events.
type RedemptionSnapshot struct {
	ID           string   `json:"id"`
	Key          string   `json:"key"`
	OrderID      string   `json:"order_id"`
	CustomerID   string   `json:"customer_id"`
	Codes        []string `json:"codes"`
	PromotionIDs []string `json:"promotion_ids"`
	State        string   `json:"state"`
}

// changedVariants returns the variants whose price may differ between prev
// (nil for a new list) and next, sorted.
func changedVariants(prev *PriceList, next PriceList) []string {
	set := map[string]bool{}
	listWide := prev == nil || prev.PricesIncludeTax != next.PricesIncludeTax || !sameStrPtr(prev.CustomerGroup, next.CustomerGroup) ||
		!sameTimePtr(prev.StartsAt, next.StartsAt) || !sameTimePtr(prev.EndsAt, next.EndsAt) || prev.Priority != next.Priority
	old := map[string]int64{}
	if prev != nil {
		for _, p := range prev.Prices {
			old[p.VariantID] = p.Amount
			if listWide {
				set[p.VariantID] = true
			}
		}
	}
	for _, p := range next.Prices {
		if a, ok := old[p.VariantID]; listWide || !ok || a != p.Amount {
			set[p.VariantID] = true
		}
		delete(old, p.VariantID)
	}
	for v := range old { // removed from the list
		set[v] = true
	}
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

func sameStrPtr(a, b *string) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

func sameTimePtr(a, b *time.Time) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Equal(*b))
}

// announcePriceChange writes price_changed for the change from prev to
// next, unless no price can have changed (a rename).
func (s *Service) announcePriceChange(ctx context.Context, tx *store.Tx, prev *PriceList, next PriceList) error {
	variants := changedVariants(prev, next)
	if len(variants) == 0 && prev != nil {
		return nil
	}
	return s.publish(ctx, tx, EventPriceChanged, next.ID, PriceChange{
		PriceListID: next.ID, Name: next.Name, Currency: next.Currency, PricesIncludeTax: next.PricesIncludeTax,
		CustomerGroup: next.CustomerGroup, StartsAt: next.StartsAt, EndsAt: next.EndsAt, Priority: next.Priority,
		Version: next.Version, VariantIDs: variants,
	})
}

func (s *Service) publish(ctx context.Context, tx *store.Tx, typ, subject string, data any) error {
	e, err := bus.NewEvent(ctx, eventSource, typ, subject, data)
	if err != nil {
		return fmt.Errorf("build %s: %w", typ, err)
	}
	if err := s.outbox.Add(ctx, tx, e); err != nil {
		return fmt.Errorf("publish %s: %w", typ, err)
	}
	return nil
}
