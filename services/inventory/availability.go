package inventory

import (
	"context"
	"fmt"

	"github.com/soukhq/souk/platform/apperr"
)

// PublicAvailabilityCap is the most the public availability endpoint ever
// says is available. Exact stock figures are business data: polled, they
// reveal sales velocity to competitors, and they tell a bot precisely how
// many units to grab to empty a shelf. "Only 3 left" needs nothing above a
// small cap, so the storefront gets min(available, 10); the exact figures
// stay behind inventory:read.
const PublicAvailabilityCap = 10

// Availability returns, for each SKU, what the storefront needs: sellable
// quantity, whether one unit can be ordered now, whether the SKU takes
// backorders. SKUs the inventory does not know are in the map, not in
// stock. Errors: validation_failed "sku" (a malformed SKU, more than 100).
func (s *Service) Availability(ctx context.Context, skus []string) (map[string]Availability, error) {
	var v apperr.Validation
	for _, sku := range skus {
		if !validSKU(sku) {
			v.Addf("sku", "invalid", "%q is not a SKU", sku)
		}
	}
	if len(skus) > MaxSKUsPerRequest {
		v.Addf("sku", "too_many", "at most %d SKUs at once", MaxSKUsPerRequest)
	}
	if err := v.Err(); err != nil {
		return nil, fmt.Errorf("availability: %w", err)
	}
	st, err := readStock(ctx, s.db, skus)
	if err != nil {
		return nil, fmt.Errorf("availability: %w", err)
	}
	out := make(map[string]Availability, len(skus))
	for _, sku := range skus {
		if x := st[sku]; x != nil {
			out[sku] = availabilityOf(x.view(s.cfg.LowStockThreshold))
		} else {
			out[sku] = Availability{}
		}
	}
	return out, nil
}

// PublicAvailability is one SKU in GET /store/inventory/availability:
// Available is capped at PublicAvailabilityCap.
type PublicAvailability struct {
	SKU       string `json:"sku"`
	InStock   bool   `json:"in_stock"`
	Available int64  `json:"available"`
	Backorder bool   `json:"backorder"`
}

func publicView(sku string, a Availability) PublicAvailability {
	return PublicAvailability{SKU: sku, InStock: a.InStock, Available: min(max(a.Available, 0), PublicAvailabilityCap), Backorder: a.Backorder}
}
