package pricing

import (
	"slices"
	"time"
)

// listApplies reports whether a price list may price anything for a
// shopper of the groups in the currency at the instant: same currency,
// within its validity window [starts_at, ends_at), and either without a
// customer group or for one of the shopper's groups.
func listApplies(l PriceList, currency string, groups []string, at time.Time) bool {
	if l.Currency != currency {
		return false
	}
	if l.StartsAt != nil && at.Before(*l.StartsAt) {
		return false
	}
	if l.EndsAt != nil && !at.Before(*l.EndsAt) {
		return false
	}
	return l.CustomerGroup == nil || slices.Contains(groups, *l.CustomerGroup)
}

// moreSpecific is the most-specific-price rule: it reports whether list a
// beats list b when both apply and both price the variant.
//
//  1. a list for one of the shopper's customer groups beats a list without
//     group;
//  2. then a list with a validity window (starts_at or ends_at) beats an
//     open-ended one;
//  3. then the higher priority wins;
//  4. then the newer list (the greater id: ids sort by creation time).
func moreSpecific(a, b PriceList) bool {
	if ag, bg := a.CustomerGroup != nil, b.CustomerGroup != nil; ag != bg {
		return ag
	}
	if aw, bw := a.StartsAt != nil || a.EndsAt != nil, b.StartsAt != nil || b.EndsAt != nil; aw != bw {
		return aw
	}
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	return a.ID > b.ID
}

// priceRow is one price of a list (the list without its Prices).
type priceRow struct {
	list      PriceList
	variantID string
	amount    int64
}

// resolvePrices picks, for each variant, the price of the most specific
// applicable list among rows (see moreSpecific). Variants without an
// applicable price are absent from the result.
func resolvePrices(rows []priceRow, currency string, groups []string, at time.Time) map[string]priceRow {
	best := map[string]priceRow{}
	for _, r := range rows {
		if !listApplies(r.list, currency, groups, at) {
			continue
		}
		if cur, ok := best[r.variantID]; !ok || moreSpecific(r.list, cur.list) {
			best[r.variantID] = r
		}
	}
	return best
}
