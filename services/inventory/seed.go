package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/soukhq/souk/platform/id"
	"github.com/soukhq/souk/platform/store"
)

// seedKey marks, in inventory_meta, that the demo stock was loaded.
const seedKey = "demo_stock_seeded"

// The demo locations.
var demoLocations = []LocationInput{
	{Code: "RTM-DC", Name: "Rotterdam DC", Address: "Waalhaven Oostzijde 1, 3087 BM Rotterdam", Country: "NL", Priority: ptrInt(1)},
	{Code: "LDS-STORE", Name: "Leeds Store", Address: "14 Briggate, Leeds LS1 6HD", Country: "GB", Priority: ptrInt(2)},
}

func ptrInt(n int) *int { return &n }

// demoStock says how many units of a SKU each demo location holds, and
// whether it takes backorders. Quantities derive from a hash of the SKU, so
// a SKU gets the same stock whatever else is seeded; by position in SKU
// order, the last SKU is out of stock, the one before it is out of stock
// but takes backorders, and every fifth from the third is low (3 units,
// under the default threshold).
func demoStock(skus []string) map[string]struct {
	onHand    [2]int64
	backorder bool
} {
	out := map[string]struct {
		onHand    [2]int64
		backorder bool
	}{}
	n := len(skus)
	for i, sku := range skus {
		h := fnv.New32a()
		h.Write([]byte(sku))
		sum := int64(h.Sum32())
		st := out[sku]
		switch {
		case n >= 2 && i == n-1: // out of stock
		case n >= 3 && i == n-2: // out of stock, backorder
			st.backorder = true
		case i%5 == 2: // low
			st.onHand = [2]int64{2, 1}
		default:
			st.onHand = [2]int64{10 + sum%40, (sum / 40) % 12}
		}
		out[sku] = st
	}
	return out
}

// Seed loads the demo stock — two locations, Rotterdam DC (priority 1) and
// Leeds Store (priority 2), and stock of each of skus at both (see
// demoStock) — once per database: the mark is written in the same
// transaction as the data, so of two processes seeding at once only one
// loads anything, and changing the stock later never gets overwritten.
// Locations with the demo codes that already exist are used as they are.
// Stock is set like any other change: audit rows (reason received) and
// stock_adjusted events. seeded tells whether this call loaded it.
func Seed(ctx context.Context, s *Service, skus []string) (seeded bool, err error) {
	skus = slices.Clone(skus)
	slices.Sort(skus)
	skus = slices.Compact(skus)
	for _, sku := range skus {
		if !validSKU(sku) {
			return false, fmt.Errorf("seed demo stock: %q is not a SKU", sku)
		}
	}
	plan := demoStock(skus)
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		seeded = false
		now := s.now()
		claimed, err := claimMeta(ctx, tx, seedKey, "v1", now)
		if err != nil || !claimed {
			return err
		}
		locIDs := make([]string, len(demoLocations))
		for i, in := range demoLocations {
			l, err := demoLocation(ctx, tx, in, now)
			if err != nil {
				return err
			}
			locIDs[i] = l.ID
		}
		for _, sku := range skus {
			st := plan[sku]
			if err := ensureItem(ctx, tx, sku, now); err != nil {
				return err
			}
			if st.backorder {
				if _, err := tx.Exec(ctx, `UPDATE inventory_items SET backorder = TRUE, version = version + 1, updated_at = ? WHERE sku = ? AND NOT backorder`,
					now, sku); err != nil {
					return fmt.Errorf("allow backorder of %s: %w", sku, err)
				}
				if err := setLevelsBackorder(ctx, tx, sku, true); err != nil {
					return err
				}
			}
			for i, locID := range locIDs {
				q := st.onHand[i]
				change := stockChange{setTo: &q, reason: ReasonReceived, note: "demo stock"}
				if _, _, err := s.changeOnHand(ctx, tx, sku, locID, change); err != nil {
					return fmt.Errorf("stock of %s: %w", sku, err)
				}
			}
		}
		seeded = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("seed demo stock: %w", err)
	}
	if seeded {
		s.log.InfoContext(ctx, "demo stock loaded", "locations", len(demoLocations), "skus", len(skus))
	}
	return seeded, nil
}

// demoLocation returns the location with in's code, creating it from in
// when there is none.
func demoLocation(ctx context.Context, tx *store.Tx, in LocationInput, now time.Time) (Location, error) {
	l, err := scanLocation(tx.QueryRow(ctx, `SELECT `+locationColumns+` FROM inventory_locations WHERE code = ?`, in.Code))
	if err == nil {
		return l, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Location{}, fmt.Errorf("read location %s: %w", in.Code, err)
	}
	l = Location{ID: id.New(locationPrefix), Code: in.Code, Name: in.Name, Address: in.Address, Country: in.Country,
		Priority: *in.Priority, Active: true, Version: 1, CreatedAt: now, UpdatedAt: now}
	if err := insertLocation(ctx, tx, l); err != nil {
		return Location{}, fmt.Errorf("create location %s: %w", in.Code, err)
	}
	return l, nil
}
