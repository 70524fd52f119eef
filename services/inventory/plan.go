package inventory

import (
	"cmp"
	"slices"
)

// plannedLine is where one line of a reservation request is taken from.
type plannedLine struct {
	sku      string
	quantity int64
	allocs   []plannedAlloc // in allocation order
}

// plannedAlloc is the part of a line taken from one location; backordered
// of its quantity are reserved beyond the location's stock.
type plannedAlloc struct {
	locationID  string
	quantity    int64
	backordered int64
}

// planAllocation decides where each line's units come from, given the
// stock read in the reservation's transaction. The strategy:
//
//  1. One location for everything: the first active location, in priority
//     order (lower first, then by id), whose available stock covers every
//     line. One parcel is cheaper and faster than several.
//  2. Otherwise each line on its own, split across the active locations in
//     priority order, taking what each has available until the line is
//     covered.
//  3. A line still short is backordered when its SKU takes backorders: the
//     rest goes to the SKU's first active location in priority order (the
//     one restocked first), marked as backordered. A SKU without any level
//     at an active location cannot be backordered: nowhere to ship from.
//  4. Any other line still short fails the whole request (all or nothing):
//     the shortages name each such line with what was wanted and what was
//     sellable.
//
// Inactive locations are never allocated from. The plan is only a
// proposal: applying it is a conditional UPDATE per allocation (reserveAt),
// and if the stock moved since it was read, the reservation plans again.
func planAllocation(lines []ReserveLine, st map[string]*stock) ([]plannedLine, []Shortage) {
	type location struct {
		id       string
		priority int
	}
	active := make(map[string][]levelRow, len(lines))
	var locations []location
	seen := map[string]bool{}
	for _, l := range lines {
		x := st[l.SKU]
		if x == nil {
			continue
		}
		for _, lv := range x.levels {
			if !lv.active {
				continue
			}
			active[l.SKU] = append(active[l.SKU], lv)
			if !seen[lv.locationID] {
				seen[lv.locationID] = true
				locations = append(locations, location{lv.locationID, lv.priority})
			}
		}
		slices.SortFunc(active[l.SKU], func(a, b levelRow) int {
			return cmp.Or(cmp.Compare(a.priority, b.priority), cmp.Compare(a.locationID, b.locationID))
		})
	}
	slices.SortFunc(locations, func(a, b location) int {
		return cmp.Or(cmp.Compare(a.priority, b.priority), cmp.Compare(a.id, b.id))
	})

	// 1. One location that has every line.
	for _, loc := range locations {
		covers := true
		for _, l := range lines {
			i := slices.IndexFunc(active[l.SKU], func(lv levelRow) bool { return lv.locationID == loc.id })
			if i < 0 || active[l.SKU][i].available() < l.Quantity {
				covers = false
				break
			}
		}
		if covers {
			plan := make([]plannedLine, len(lines))
			for i, l := range lines {
				plan[i] = plannedLine{sku: l.SKU, quantity: l.Quantity, allocs: []plannedAlloc{{locationID: loc.id, quantity: l.Quantity}}}
			}
			return plan, nil
		}
	}

	// 2–4. Line by line, by priority, then backorder or fail.
	var (
		plan      []plannedLine
		shortages []Shortage
	)
	for i, l := range lines {
		levels := active[l.SKU]
		remaining, have := l.Quantity, int64(0)
		var allocs []plannedAlloc
		for _, lv := range levels {
			avail := lv.available()
			if avail <= 0 {
				continue
			}
			have += avail
			if take := min(avail, remaining); take > 0 {
				allocs = append(allocs, plannedAlloc{locationID: lv.locationID, quantity: take})
				remaining -= take
			}
		}
		if remaining > 0 {
			backorder := st[l.SKU] != nil && st[l.SKU].item.backorder
			if !backorder || len(levels) == 0 {
				shortages = append(shortages, Shortage{Line: i, SKU: l.SKU, Want: l.Quantity, Have: have})
				continue
			}
			first := levels[0].locationID
			if len(allocs) > 0 && allocs[0].locationID == first {
				allocs[0].quantity += remaining
				allocs[0].backordered += remaining
			} else {
				allocs = append([]plannedAlloc{{locationID: first, quantity: remaining, backordered: remaining}}, allocs...)
			}
		}
		plan = append(plan, plannedLine{sku: l.SKU, quantity: l.Quantity, allocs: allocs})
	}
	if len(shortages) > 0 {
		return nil, shortages
	}
	return plan, nil
}

// applied returns a copy of the stock with the plan's reservations added,
// to compare sellable stock before and after.
func applied(st *stock, pl plannedLine) *stock {
	c := &stock{item: st.item, levels: slices.Clone(st.levels)}
	for _, a := range pl.allocs {
		for i := range c.levels {
			if c.levels[i].locationID == a.locationID {
				c.levels[i].reserved += a.quantity
			}
		}
	}
	return c
}
