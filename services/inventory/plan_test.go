package inventory

import (
	"reflect"
	"testing"
)

// lv is a level in a planner test: location, priority, stock, activity.
type lv struct {
	loc              string
	prio             int
	onHand, reserved int64
	inactive         bool
}

// stockOf builds the planner's input from levels per SKU.
func stockOf(backorder map[string]bool, levels map[string][]lv) map[string]*stock {
	out := map[string]*stock{}
	for sku, ls := range levels {
		st := &stock{item: itemRow{sku: sku, backorder: backorder[sku], version: 1}}
		for _, l := range ls {
			st.levels = append(st.levels, levelRow{sku: sku, locationID: l.loc, priority: l.prio, onHand: l.onHand, reserved: l.reserved,
				active: !l.inactive, backorder: backorder[sku]})
		}
		sortLevels(st.levels)
		out[sku] = st
	}
	return out
}

func TestPlanAllocation(t *testing.T) {
	type alloc = plannedAlloc
	for _, tt := range []struct {
		name      string
		lines     []ReserveLine
		backorder map[string]bool
		levels    map[string][]lv
		want      []plannedLine
		short     []Shortage
	}{
		{
			name:   "one location by priority",
			lines:  []ReserveLine{line("A", 2)},
			levels: map[string][]lv{"A": {{"l2", 2, 10, 0, false}, {"l1", 1, 10, 0, false}}},
			want:   []plannedLine{{"A", 2, []alloc{{"l1", 2, 0}}}},
		},
		{
			name:   "equal priority: lower id first",
			lines:  []ReserveLine{line("A", 2)},
			levels: map[string][]lv{"A": {{"lb", 1, 10, 0, false}, {"la", 1, 10, 0, false}}},
			want:   []plannedLine{{"A", 2, []alloc{{"la", 2, 0}}}},
		},
		{
			name:  "prefer a single location serving every line over the first priority",
			lines: []ReserveLine{line("A", 2), line("B", 1)},
			levels: map[string][]lv{
				"A": {{"l1", 1, 5, 0, false}, {"l2", 2, 5, 0, false}},
				"B": {{"l2", 2, 5, 0, false}},
			},
			want: []plannedLine{{"A", 2, []alloc{{"l2", 2, 0}}}, {"B", 1, []alloc{{"l2", 1, 0}}}},
		},
		{
			name:  "no single location: each line by priority",
			lines: []ReserveLine{line("A", 2), line("B", 1)},
			levels: map[string][]lv{
				"A": {{"l1", 1, 5, 0, false}},
				"B": {{"l2", 2, 5, 0, false}},
			},
			want: []plannedLine{{"A", 2, []alloc{{"l1", 2, 0}}}, {"B", 1, []alloc{{"l2", 1, 0}}}},
		},
		{
			name:   "split a line across locations, reserved counted",
			lines:  []ReserveLine{line("A", 7)},
			levels: map[string][]lv{"A": {{"l1", 1, 5, 2, false}, {"l2", 2, 3, 0, false}, {"l3", 3, 9, 7, false}}},
			want:   []plannedLine{{"A", 7, []alloc{{"l1", 3, 0}, {"l2", 3, 0}, {"l3", 1, 0}}}},
		},
		{
			name:   "inactive locations are skipped",
			lines:  []ReserveLine{line("A", 2)},
			levels: map[string][]lv{"A": {{"l1", 1, 10, 0, true}, {"l2", 2, 10, 0, false}}},
			want:   []plannedLine{{"A", 2, []alloc{{"l2", 2, 0}}}},
		},
		{
			name:   "short: all or nothing, have counts only positive active stock",
			lines:  []ReserveLine{line("A", 1), line("B", 4)},
			levels: map[string][]lv{"A": {{"l1", 1, 10, 0, false}}, "B": {{"l1", 1, 2, 0, false}, {"l2", 2, 1, 3, false}, {"l3", 3, 9, 0, true}}},
			short:  []Shortage{{Line: 1, SKU: "B", Want: 4, Have: 2}},
		},
		{
			name:  "unknown SKU and SKU without levels",
			lines: []ReserveLine{line("GHOST", 1), line("EMPTY", 1)},
			levels: map[string][]lv{
				"EMPTY": nil,
			},
			short: []Shortage{{Line: 0, SKU: "GHOST", Want: 1, Have: 0}, {Line: 1, SKU: "EMPTY", Want: 1, Have: 0}},
		},
		{
			name:      "backorder: the rest goes to the first location",
			lines:     []ReserveLine{line("A", 10)},
			backorder: map[string]bool{"A": true},
			levels:    map[string][]lv{"A": {{"l1", 1, 3, 0, false}, {"l2", 2, 2, 0, false}}},
			want:      []plannedLine{{"A", 10, []alloc{{"l1", 8, 5}, {"l2", 2, 0}}}},
		},
		{
			name:      "backorder on an already oversold first location",
			lines:     []ReserveLine{line("A", 4)},
			backorder: map[string]bool{"A": true},
			levels:    map[string][]lv{"A": {{"l1", 1, 0, 2, false}, {"l2", 2, 1, 0, false}}},
			want:      []plannedLine{{"A", 4, []alloc{{"l1", 3, 3}, {"l2", 1, 0}}}},
		},
		{
			name:      "backorder needs an active level",
			lines:     []ReserveLine{line("A", 1)},
			backorder: map[string]bool{"A": true},
			levels:    map[string][]lv{"A": {{"l1", 1, 0, 0, true}}},
			short:     []Shortage{{Line: 0, SKU: "A", Want: 1, Have: 0}},
		},
		{
			name:      "backorder is not taken while stock is there",
			lines:     []ReserveLine{line("A", 2)},
			backorder: map[string]bool{"A": true},
			levels:    map[string][]lv{"A": {{"l1", 1, 0, 0, false}, {"l2", 2, 5, 0, false}}},
			want:      []plannedLine{{"A", 2, []alloc{{"l2", 2, 0}}}},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, short := planAllocation(tt.lines, stockOf(tt.backorder, tt.levels))
			if !reflect.DeepEqual(got, tt.want) || !reflect.DeepEqual(short, tt.short) {
				t.Fatalf("plan =\n %+v, shortages %+v\nwant\n %+v, shortages %+v", got, short, tt.want, tt.short)
			}
			for _, pl := range got {
				var sum int64
				for _, a := range pl.allocs {
					sum += a.quantity
				}
				if sum != pl.quantity {
					t.Errorf("%s: allocations add up to %d, not %d", pl.sku, sum, pl.quantity)
				}
			}
		})
	}
}

func TestLowCrossing(t *testing.T) {
	item := func(avail int64) StockItem {
		return StockItem{LowStockThreshold: 5, Levels: []Level{{Available: avail, LocationActive: true}}}
	}
	for _, tt := range []struct {
		before, after int64
		want          bool
	}{
		{10, 6, false}, {6, 5, true}, {10, 0, true}, {5, 4, false}, {5, 6, false}, {3, 10, false}, {6, -3, true}, {0, -1, false},
	} {
		if got := lowCrossing(item(tt.before), item(tt.after)); got != tt.want {
			t.Errorf("%d → %d: crossing = %v, want %v", tt.before, tt.after, got, tt.want)
		}
	}
}

func TestAvailabilityOf(t *testing.T) {
	for _, tt := range []struct {
		name string
		it   StockItem
		want Availability
	}{
		{"unknown", StockItem{}, Availability{}},
		{"in stock", StockItem{Levels: []Level{{Available: 3, LocationActive: true}, {Available: 9}}}, Availability{Available: 3, InStock: true}},
		{"only at an inactive location", StockItem{Levels: []Level{{Available: 9}}}, Availability{}},
		{"oversold levels count as zero", StockItem{Backorder: true, Levels: []Level{{Available: -4, LocationActive: true}, {Available: 2, LocationActive: true}}},
			Availability{Available: 2, InStock: true, Backorder: true}},
		{"backorder with nothing on hand", StockItem{Backorder: true, Levels: []Level{{Available: 0, LocationActive: true}}},
			Availability{InStock: true, Backorder: true}},
		{"backorder without an active location", StockItem{Backorder: true, Levels: []Level{{Available: 0}}}, Availability{Backorder: true}},
	} {
		if got := availabilityOf(tt.it); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestParseShortage(t *testing.T) {
	s := Shortage{Line: 3, SKU: "LIN-S:X", Want: 5, Have: 2}
	got, ok := parseShortage("lines[3].quantity", shortageMessage(s))
	if !ok || got != s {
		t.Fatalf("round trip = %+v, %v", got, ok)
	}
	for _, bad := range [][2]string{{"lines[x].quantity", "A: want 1, have 0"}, {"lines[0].quantity", "nonsense"}, {"lines[0].quantity", "A: want x"}} {
		if _, ok := parseShortage(bad[0], bad[1]); ok {
			t.Errorf("parsed %q", bad)
		}
	}
}
