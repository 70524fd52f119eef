package inventory

import (
	"context"
	"reflect"
	"slices"
	"testing"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/apperr/apperrtest"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/bus/bustest"
)

func TestLocations(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		l, err := s.CreateLocation(ctx, LocationInput{Code: " rtm-dc ", Name: " Rotterdam DC ", Country: "nl", Address: "Waalhaven 1"})
		if err != nil {
			t.Fatal(err)
		}
		if l.Code != "RTM-DC" || l.Name != "Rotterdam DC" || l.Country != "NL" || l.Priority != DefaultLocationPrio || !l.Active || l.Version != 1 {
			t.Fatalf("created %+v", l)
		}
		if got, err := s.GetLocation(ctx, l.ID); err != nil || got != l {
			t.Fatalf("get = %+v, %v", got, err)
		}

		t.Run("validation and conflicts", func(t *testing.T) {
			_, err := s.CreateLocation(ctx, LocationInput{Code: "RTM-DC", Name: "Again"})
			apperrtest.Want(t, err, apperr.Conflict, "code")
			_, err = s.CreateLocation(ctx, LocationInput{Code: "bad code", Country: "Netherlands", Priority: ptr(-1)})
			apperrtest.Want(t, err, apperr.ValidationFailed, "code", "name", "country", "priority")
			_, err = s.UpdateLocation(ctx, l.ID, LocationPatch{Name: ptr("")}, 0)
			apperrtest.Want(t, err, apperr.ValidationFailed, "name")
			_, err = s.GetLocation(ctx, "loc_01JD3Q0000000000000000000A")
			apperrtest.Want(t, err, apperr.NotFound)
			_, err = s.GetLocation(ctx, "RTM-DC")
			apperrtest.Want(t, err, apperr.NotFound)
		})

		t.Run("update with If-Match", func(t *testing.T) {
			u, err := s.UpdateLocation(ctx, l.ID, LocationPatch{Priority: ptr(1), Active: ptr(false)}, 1)
			if err != nil || u.Version != 2 || u.Priority != 1 || u.Active || !u.UpdatedAt.After(l.UpdatedAt) && !u.UpdatedAt.Equal(l.UpdatedAt) {
				t.Fatalf("update = %+v, %v", u, err)
			}
			_, err = s.UpdateLocation(ctx, l.ID, LocationPatch{Name: ptr("Stale")}, 1)
			apperrtest.Want(t, err, apperr.VersionConflict)
			same, err := s.UpdateLocation(ctx, l.ID, LocationPatch{Priority: ptr(1)}, 0)
			if err != nil || same.Version != 2 {
				t.Fatalf("no-op update = %+v, %v", same, err)
			}
			other := MustCreateLocation(t, s, "LDS", 2)
			_, err = s.UpdateLocation(ctx, other.ID, LocationPatch{Code: ptr("rtm-dc")}, 0)
			apperrtest.Want(t, err, apperr.Conflict, "code")
			_, err = s.UpdateLocation(ctx, "loc_01JD3Q0000000000000000000A", LocationPatch{}, 0)
			apperrtest.Want(t, err, apperr.NotFound)
		})

		t.Run("list in allocation order, paged", func(t *testing.T) {
			MustCreateLocation(t, s, "Z", 0)
			MustCreateLocation(t, s, "Y", 2)
			var codes []string
			cursor := ""
			for {
				page, err := s.ListLocations(ctx, 2, cursor)
				if err != nil {
					t.Fatal(err)
				}
				for _, l := range page.Data {
					codes = append(codes, l.Code)
				}
				if page.NextCursor == nil {
					break
				}
				cursor = *page.NextCursor
			}
			if want := []string{"Z", "RTM-DC", "LDS", "Y"}; !slices.Equal(codes, want) {
				t.Fatalf("codes = %v, want %v", codes, want)
			}
			_, err := s.ListLocations(ctx, 101, "")
			apperrtest.Want(t, err, apperr.ValidationFailed, "limit")
			_, err = s.ListLocations(ctx, 0, "bm9wZQ")
			apperrtest.Want(t, err, apperr.ValidationFailed, "cursor")
		})
	})
}

func TestSetLevel(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := auth.WithPrincipal(context.Background(), auth.Principal{Subject: "usr_ann", Kind: auth.KindStaff, Role: "fulfilment"})
		a := MustCreateLocation(t, s, "A", 1)
		b := MustCreateLocation(t, s, "B", 2)

		it, err := s.SetLevel(ctx, "LIN-S", a.ID, LevelInput{OnHand: 40, Reason: ReasonReceived, Note: "PO 17"}, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := StockItem{SKU: "LIN-S", OnHand: 40, Available: 40, LowStockThreshold: DefaultLowStockThreshold, Version: 1,
			Levels: []Level{{LocationID: a.ID, OnHand: 40, Available: 40, LocationActive: true, Version: 1}}}
		if !reflect.DeepEqual(it, want) {
			t.Fatalf("SetLevel =\n%+v\nwant\n%+v", it, want)
		}
		MustSetLevel(t, s, "LIN-S", b.ID, 5)
		MustReserve(t, s, "r", line("LIN-S", 38))
		got := MustGetStock(t, s, "LIN-S")
		if got.OnHand != 45 || got.Reserved != 38 || got.Available != 7 || len(got.Levels) != 2 || got.Levels[0].Reserved != 38 || got.Levels[0].Version != 2 {
			t.Fatalf("stock = %+v", got)
		}

		t.Run("below reserved is refused", func(t *testing.T) {
			_, err := s.SetLevel(ctx, "LIN-S", a.ID, LevelInput{OnHand: 37}, 0)
			apperrtest.Want(t, err, apperr.Conflict)
			wantLevel(t, s, "LIN-S", a.ID, 40, 38)
			if _, err := s.SetLevel(ctx, "LIN-S", a.ID, LevelInput{OnHand: 38}, 0); err != nil {
				t.Fatalf("exactly reserved: %v", err)
			}
			_, err = s.Adjust(ctx, "LIN-S", AdjustmentInput{LocationID: a.ID, Delta: -1, Reason: ReasonDamaged})
			apperrtest.Want(t, err, apperr.Conflict)
		})

		t.Run("If-Match on the level's version", func(t *testing.T) {
			cur := MustGetStock(t, s, "LIN-S").Levels[0]
			_, err := s.SetLevel(ctx, "LIN-S", a.ID, LevelInput{OnHand: 50}, cur.Version-1)
			apperrtest.Want(t, err, apperr.VersionConflict)
			if _, err := s.SetLevel(ctx, "LIN-S", a.ID, LevelInput{OnHand: 50}, cur.Version); err != nil {
				t.Fatal(err)
			}
		})

		t.Run("setting the same value writes nothing", func(t *testing.T) {
			n := countRows(t, s, `SELECT COUNT(*) FROM inventory_adjustments`)
			if _, err := s.SetLevel(ctx, "LIN-S", a.ID, LevelInput{OnHand: 50}, 0); err != nil {
				t.Fatal(err)
			}
			if countRows(t, s, `SELECT COUNT(*) FROM inventory_adjustments`) != n {
				t.Fatal("a no-op PUT wrote an audit row")
			}
		})

		t.Run("errors", func(t *testing.T) {
			_, err := s.SetLevel(ctx, "bad sku", a.ID, LevelInput{OnHand: -1, Reason: ReasonSale, Note: string(make([]byte, MaxNoteLen+1))}, 0)
			apperrtest.Want(t, err, apperr.ValidationFailed, "sku", "on_hand", "reason", "note")
			_, err = s.SetLevel(ctx, "LIN-S", "loc_01JD3Q0000000000000000000A", LevelInput{OnHand: 1}, 0)
			apperrtest.Want(t, err, apperr.NotFound)
			_, err = s.SetLevel(ctx, "LIN-S", "nope", LevelInput{OnHand: 1}, 0)
			apperrtest.Want(t, err, apperr.NotFound)
		})

		t.Run("audit log", func(t *testing.T) {
			page, err := s.ListAdjustments(ctx, "LIN-S", a.ID, 0, "")
			if err != nil {
				t.Fatal(err)
			}
			var got [][3]int64
			for _, adj := range page.Data {
				got = append(got, [3]int64{adj.OnHandBefore, adj.Delta, adj.OnHandAfter})
				if adj.Actor != "usr_ann" || adj.SKU != "LIN-S" || adj.LocationID != a.ID || adj.ReservationID != nil || adj.CreatedAt.IsZero() {
					t.Fatalf("row %+v", adj)
				}
			}
			want := [][3]int64{{38, 12, 50}, {40, -2, 38}, {0, 40, 40}} // newest first
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("audit rows %v, want %v", got, want)
			}
			if page.Data[2].Reason != ReasonReceived || page.Data[2].Note != "PO 17" || page.Data[1].Reason != ReasonCycleCount {
				t.Fatalf("reasons %+v", page.Data)
			}
		})
	})
}

func TestAdjust(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		a := MustCreateLocation(t, s, "A", 1)
		adj, err := s.Adjust(ctx, "MUG", AdjustmentInput{LocationID: a.ID, Delta: 12, Reason: ReasonReceived, Note: "ASN 4"})
		if err != nil {
			t.Fatal(err)
		}
		if adj.OnHandBefore != 0 || adj.OnHandAfter != 12 || adj.Actor != "system" || adj.Reason != ReasonReceived || adj.Note != "ASN 4" {
			t.Fatalf("adjustment %+v", adj)
		}
		for _, in := range []AdjustmentInput{
			{LocationID: a.ID, Delta: -2, Reason: ReasonDamaged},
			{LocationID: a.ID, Delta: -1, Reason: ReasonLost},
			{LocationID: a.ID, Delta: 1, Reason: ReasonReturned},
			{LocationID: a.ID, Delta: -3, Reason: ReasonCorrection},
			{LocationID: a.ID, Delta: 4, Reason: ReasonCycleCount},
		} {
			if _, err := s.Adjust(ctx, "MUG", in); err != nil {
				t.Fatalf("%+v: %v", in, err)
			}
		}
		wantLevel(t, s, "MUG", a.ID, 11, 0)
		if got := bustest.MustTypes(t, s.db, "MUG"); len(got) != 6 || got[0] != EventStockAdjusted {
			t.Fatalf("events: %v", got)
		}

		for _, tt := range []struct {
			name   string
			in     AdjustmentInput
			code   apperr.Code
			fields []string
		}{
			{"below zero", AdjustmentInput{LocationID: a.ID, Delta: -12, Reason: ReasonLost}, apperr.Conflict, nil},
			{"received must add", AdjustmentInput{LocationID: a.ID, Delta: -1, Reason: ReasonReceived}, apperr.ValidationFailed, []string{"reason"}},
			{"damaged must remove", AdjustmentInput{LocationID: a.ID, Delta: 1, Reason: ReasonDamaged}, apperr.ValidationFailed, []string{"reason"}},
			{"sale is not manual", AdjustmentInput{LocationID: a.ID, Delta: -1, Reason: ReasonSale}, apperr.ValidationFailed, []string{"reason"}},
			{"zero delta, no reason, no location", AdjustmentInput{}, apperr.ValidationFailed, []string{"delta", "reason", "location_id"}},
			{"unknown location", AdjustmentInput{LocationID: "loc_01JD3Q0000000000000000000A", Delta: 1, Reason: ReasonReceived},
				apperr.ValidationFailed, []string{"location_id"}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.Adjust(ctx, "MUG", tt.in)
				apperrtest.Want(t, err, tt.code, tt.fields...)
			})
		}
		wantLevel(t, s, "MUG", a.ID, 11, 0)

		t.Run("audit log pages and filters", func(t *testing.T) {
			b := MustCreateLocation(t, s, "B", 2)
			MustSetLevel(t, s, "MUG", b.ID, 3)
			var ids []string
			cursor := ""
			for {
				page, err := s.ListAdjustments(ctx, "MUG", "", 4, cursor)
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range page.Data {
					ids = append(ids, x.ID)
				}
				if page.NextCursor == nil {
					break
				}
				cursor = *page.NextCursor
			}
			if len(ids) != 7 || !slices.IsSortedFunc(ids, func(x, y string) int { return -compareStrings(x, y) }) {
				t.Fatalf("ids %v: want 7, newest first", ids)
			}
			only, err := s.ListAdjustments(ctx, "MUG", b.ID, 0, "")
			if err != nil || len(only.Data) != 1 || only.Data[0].LocationID != b.ID {
				t.Fatalf("filtered = %+v, %v", only, err)
			}
			_, err = s.ListAdjustments(ctx, "NOPE", "", 0, "")
			apperrtest.Want(t, err, apperr.NotFound)
			_, err = s.ListAdjustments(ctx, "MUG", "x", 0, "bad!")
			apperrtest.Want(t, err, apperr.ValidationFailed, "location_id", "cursor")
		})
	})
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestItemSettings(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		_, err := s.GetStock(ctx, "PRE-ORDER")
		apperrtest.Want(t, err, apperr.NotFound)

		it, err := s.UpdateItem(ctx, "PRE-ORDER", ItemPatch{Backorder: ptr(true), LowStockThreshold: NullableInt64{Set: true, Value: ptr(int64(2))}}, 0)
		if err != nil || !it.Backorder || it.LowStockThreshold != 2 || it.Version != 2 || len(it.Levels) != 0 {
			t.Fatalf("update = %+v, %v", it, err)
		}
		_, err = s.UpdateItem(ctx, "PRE-ORDER", ItemPatch{Backorder: ptr(false)}, 1)
		apperrtest.Want(t, err, apperr.VersionConflict)
		it, err = s.UpdateItem(ctx, "PRE-ORDER", ItemPatch{LowStockThreshold: NullableInt64{Set: true}}, 2)
		if err != nil || it.LowStockThreshold != DefaultLowStockThreshold || it.Version != 3 || !it.Backorder {
			t.Fatalf("reset threshold = %+v, %v", it, err)
		}
		same, err := s.UpdateItem(ctx, "PRE-ORDER", ItemPatch{Backorder: ptr(true)}, 0)
		if err != nil || same.Version != 3 {
			t.Fatalf("no-op = %+v, %v", same, err)
		}
		_, err = s.UpdateItem(ctx, "bad sku", ItemPatch{LowStockThreshold: NullableInt64{Set: true, Value: ptr(int64(-1))}}, 0)
		apperrtest.Want(t, err, apperr.ValidationFailed, "sku", "low_stock_threshold")

		// A new level of a backorder SKU takes backorders at once.
		a := MustCreateLocation(t, s, "A", 1)
		MustSetLevel(t, s, "PRE-ORDER", a.ID, 0)
		r := MustReserve(t, s, "pre", line("PRE-ORDER", 2))
		if r.Lines[0].Backordered != 2 {
			t.Fatalf("reservation %+v", r)
		}
	})
}

func TestListStockAndAvailability(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		a := MustCreateLocation(t, s, "A", 1)
		closed := MustCreateLocation(t, s, "CLOSED", 2)
		for i, sku := range []string{"C", "A", "B"} {
			MustSetLevel(t, s, sku, a.ID, int64(i+1))
		}
		MustSetLevel(t, s, "B", closed.ID, 100)
		if _, err := s.UpdateLocation(ctx, closed.ID, LocationPatch{Active: ptr(false)}, 0); err != nil {
			t.Fatal(err)
		}

		page, err := s.ListStock(ctx, []string{"B", "NOPE", "A"}, 0, "")
		if err != nil || len(page.Data) != 2 || page.Data[0].SKU != "B" || page.Data[1].SKU != "A" || page.NextCursor != nil {
			t.Fatalf("by sku = %+v, %v", page, err)
		}
		if b := page.Data[0]; b.OnHand != 103 || b.Available != 103 || b.Levels[1].LocationActive {
			t.Fatalf("B = %+v", b)
		}
		var all []string
		cursor := ""
		for {
			page, err := s.ListStock(ctx, nil, 2, cursor)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range page.Data {
				all = append(all, it.SKU)
			}
			if page.NextCursor == nil {
				break
			}
			cursor = *page.NextCursor
		}
		if !slices.Equal(all, []string{"A", "B", "C"}) {
			t.Fatalf("all = %v", all)
		}

		av, err := s.Availability(ctx, []string{"A", "B", "NOPE"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]Availability{"A": {Available: 2, InStock: true}, "B": {Available: 3, InStock: true}, "NOPE": {}}
		if !reflect.DeepEqual(av, want) {
			t.Fatalf("availability = %+v", av)
		}
		// The inactive location's 100 units are not sellable.
		_, err = s.Reserve(ctx, ReserveRequest{Key: "k", Lines: []ReserveLine{line("B", 4)}})
		apperrtest.Want(t, err, CodeOutOfStock)
		_, err = s.Availability(ctx, []string{"bad sku"})
		apperrtest.Want(t, err, apperr.ValidationFailed, "sku")
		_, err = s.ListStock(ctx, nil, 0, "%%%")
		apperrtest.Want(t, err, apperr.ValidationFailed, "cursor")
	})
}
