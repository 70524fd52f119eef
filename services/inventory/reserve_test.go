package inventory

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/apperr/apperrtest"
	"github.com/soukhq/souk/platform/auth"
	"github.com/soukhq/souk/platform/bus/bustest"
	"github.com/soukhq/souk/platform/store"
)

func TestReserveAllOrNothing(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		a := MustCreateLocation(t, s, "A", 1)
		b := MustCreateLocation(t, s, "B", 2)
		MustSetLevel(t, s, "SHIRT", a.ID, 5)
		MustSetLevel(t, s, "SHIRT", b.ID, 5)
		MustSetLevel(t, s, "MUG", a.ID, 1)
		MustSetLevel(t, s, "MUG", b.ID, 1)

		_, err := s.Reserve(ctx, ReserveRequest{Key: "k1", OrderID: "ord_1", Lines: []ReserveLine{line("SHIRT", 8), line("MUG", 3), line("HAT", 1)}})
		apperrtest.Want(t, err, CodeOutOfStock, "lines[1].quantity", "lines[2].quantity")
		shortages, ok := InsufficientStock(err)
		want := []Shortage{{Line: 1, SKU: "MUG", Want: 3, Have: 2}, {Line: 2, SKU: "HAT", Want: 1, Have: 0}}
		if !ok || !reflect.DeepEqual(shortages, want) {
			t.Fatalf("shortages = %+v, want %+v", shortages, want)
		}
		for _, loc := range []string{a.ID, b.ID} {
			wantLevel(t, s, "SHIRT", loc, 5, 0)
			wantLevel(t, s, "MUG", loc, 1, 0)
		}
		for _, table := range []string{"inventory_reservations", "inventory_reservation_lines", "inventory_reservation_allocations"} {
			if n := countRows(t, s, `SELECT COUNT(*) FROM `+table); n != 0 {
				t.Fatalf("%d rows in %s after a failed reservation", n, table)
			}
		}
		if got := bustest.MustTypes(t, s.db, "k1"); !slices.Equal(got, []string{EventStockReservationFailed}) {
			t.Fatalf("events of the failed key: %v", got)
		}

		t.Run("the key is not consumed by a failure", func(t *testing.T) {
			r, err := s.Reserve(ctx, ReserveRequest{Key: "k1", OrderID: "ord_1", Lines: []ReserveLine{line("SHIRT", 8), line("MUG", 2)}})
			if err != nil {
				t.Fatal(err)
			}
			// SHIRT 8: no single location has 8 and MUG 2; each line by priority.
			wantLines := []ReservationLine{
				{SKU: "SHIRT", Quantity: 8, Allocations: []Allocation{{LocationID: a.ID, Quantity: 5}, {LocationID: b.ID, Quantity: 3}}},
				{SKU: "MUG", Quantity: 2, Allocations: []Allocation{{LocationID: a.ID, Quantity: 1}, {LocationID: b.ID, Quantity: 1}}},
			}
			if !reflect.DeepEqual(r.Lines, wantLines) || r.State != StatePending || r.OrderID == nil || *r.OrderID != "ord_1" {
				t.Fatalf("reservation = %+v", r)
			}
			got, err := s.GetReservation(ctx, r.ID)
			if err != nil || !reflect.DeepEqual(got, r) {
				t.Fatalf("GetReservation =\n%+v, %v\nwant\n%+v", got, err, r)
			}
		})
	})
}

func TestReservePrefersOneLocation(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		a := MustCreateLocation(t, s, "A", 1)
		b := MustCreateLocation(t, s, "B", 2)
		MustSetLevel(t, s, "SHIRT", a.ID, 5)
		MustSetLevel(t, s, "SHIRT", b.ID, 5)
		MustSetLevel(t, s, "MUG", b.ID, 5)
		r := MustReserve(t, s, "k", line("SHIRT", 2), line("MUG", 2))
		for _, l := range r.Lines {
			if len(l.Allocations) != 1 || l.Allocations[0].LocationID != b.ID {
				t.Fatalf("line %s allocated %+v, want all at B", l.SKU, l.Allocations)
			}
		}
		wantLevel(t, s, "SHIRT", a.ID, 5, 0)
		wantLevel(t, s, "SHIRT", b.ID, 5, 2)
	})
}

func TestReserveIdempotentByKey(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		loc := MustCreateLocation(t, s, "A", 1)
		MustSetLevel(t, s, "SHIRT", loc.ID, 10)
		MustSetLevel(t, s, "MUG", loc.ID, 10)
		req := ReserveRequest{Key: "ord_1:reserve", OrderID: "ord_1", Lines: []ReserveLine{line("SHIRT", 2), line("MUG", 1)}}
		first, replayed, err := s.reserve(ctx, req)
		if err != nil || replayed {
			t.Fatalf("first = %v, replayed %v", err, replayed)
		}

		t.Run("same request: same reservation, stock taken once", func(t *testing.T) {
			again := req
			again.Lines = []ReserveLine{line("MUG", 1), line("SHIRT", 2)} // order of lines does not matter
			again.TTL = time.Hour                                         // nor the TTL
			r, replayed, err := s.reserve(ctx, again)
			if err != nil || !replayed || !reflect.DeepEqual(r, first) {
				t.Fatalf("replay = %+v, %v, %v", r, replayed, err)
			}
			wantLevel(t, s, "SHIRT", loc.ID, 10, 2)
		})

		t.Run("same key, other request", func(t *testing.T) {
			for _, other := range []ReserveRequest{
				{Key: req.Key, OrderID: "ord_1", Lines: []ReserveLine{line("SHIRT", 3), line("MUG", 1)}},
				{Key: req.Key, OrderID: "ord_2", Lines: req.Lines},
				{Key: req.Key, Lines: req.Lines},
			} {
				_, err := s.Reserve(ctx, other)
				apperrtest.Want(t, err, apperr.IdempotencyKeyReused, "key")
			}
		})

		t.Run("replay after release returns the released reservation", func(t *testing.T) {
			if _, err := s.Release(ctx, first.ID); err != nil {
				t.Fatal(err)
			}
			r, err := s.Reserve(ctx, req)
			if err != nil || r.ID != first.ID || r.State != StateReleased {
				t.Fatalf("replay = %+v, %v", r, err)
			}
			wantLevel(t, s, "SHIRT", loc.ID, 10, 0)
		})
	})
}

func TestReleaseAndCommitAreIdempotent(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := auth.WithPrincipal(context.Background(), auth.Principal{Subject: "key_orders", Kind: auth.KindAPIKey, Role: "admin"})
		a := MustCreateLocation(t, s, "A", 1)
		b := MustCreateLocation(t, s, "B", 2)
		MustSetLevel(t, s, "SHIRT", a.ID, 3)
		MustSetLevel(t, s, "SHIRT", b.ID, 4)

		t.Run("release twice, by id and by key", func(t *testing.T) {
			r := MustReserve(t, s, "rel", line("SHIRT", 5))
			wantLevel(t, s, "SHIRT", a.ID, 3, 3)
			wantLevel(t, s, "SHIRT", b.ID, 4, 2)
			got, err := s.Release(ctx, r.ID)
			if err != nil || got.State != StateReleased || got.ClosedAt == nil {
				t.Fatalf("release = %+v, %v", got, err)
			}
			wantLevel(t, s, "SHIRT", a.ID, 3, 0)
			wantLevel(t, s, "SHIRT", b.ID, 4, 0)
			again, err := s.Release(ctx, "rel")
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("second release = %+v, %v", again, err)
			}
			wantLevel(t, s, "SHIRT", b.ID, 4, 0)
			if got := bustest.MustTypes(t, s.db, r.ID); !slices.Equal(got, []string{EventStockReserved, EventStockReleased}) {
				t.Fatalf("events: %v", got)
			}
			_, err = s.Commit(ctx, r.ID, "ord_9")
			apperrtest.Want(t, err, apperr.Conflict)
		})

		t.Run("commit sells and writes audit rows, once", func(t *testing.T) {
			r := MustReserve(t, s, "sale", line("SHIRT", 5))
			c, err := s.Commit(ctx, r.ID, "ord_7")
			if err != nil || c.State != StateCommitted || c.OrderID == nil || *c.OrderID != "ord_7" {
				t.Fatalf("commit = %+v, %v", c, err)
			}
			wantLevel(t, s, "SHIRT", a.ID, 0, 0)
			wantLevel(t, s, "SHIRT", b.ID, 2, 0)
			again, err := s.Commit(ctx, "sale", "ord_7")
			if err != nil || !reflect.DeepEqual(again, c) {
				t.Fatalf("second commit = %+v, %v", again, err)
			}
			if again, err := s.Commit(ctx, r.ID, ""); err != nil || again.State != StateCommitted {
				t.Fatalf("commit without order id = %+v, %v", again, err)
			}
			wantLevel(t, s, "SHIRT", b.ID, 2, 0)

			page, err := s.ListAdjustments(ctx, "SHIRT", "", 100, "")
			if err != nil {
				t.Fatal(err)
			}
			var sales []Adjustment
			for _, adj := range page.Data {
				if adj.Reason == ReasonSale {
					sales = append(sales, adj)
				}
			}
			if len(sales) != 2 {
				t.Fatalf("%d sale rows, want 2 (one per location): %+v", len(sales), page.Data)
			}
			for _, adj := range sales {
				wantBefore := map[string]int64{a.ID: 3, b.ID: 4}[adj.LocationID]
				if *adj.ReservationID != r.ID || *adj.OrderID != "ord_7" || adj.Actor != "key_orders" ||
					adj.OnHandBefore != wantBefore || adj.OnHandAfter != adj.OnHandBefore+adj.Delta || adj.Delta >= 0 {
					t.Fatalf("sale row %+v", adj)
				}
			}

			_, err = s.Commit(ctx, r.ID, "ord_8")
			apperrtest.Want(t, err, apperr.Conflict)
			_, err = s.Release(ctx, r.ID)
			apperrtest.Want(t, err, apperr.Conflict)
		})

		t.Run("commit errors", func(t *testing.T) {
			MustSetLevel(t, s, "SHIRT", a.ID, 10)
			r := MustReserve(t, s, "no-order", line("SHIRT", 1))
			_, err := s.Commit(ctx, r.ID, "")
			apperrtest.Want(t, err, apperr.ValidationFailed, "order_id")
			_, err = s.Commit(ctx, r.ID, "bad\norder")
			apperrtest.Want(t, err, apperr.ValidationFailed, "order_id")
			withOrder, err := s.Reserve(ctx, ReserveRequest{Key: "with-order", OrderID: "ord_1", Lines: []ReserveLine{line("SHIRT", 1)}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Commit(ctx, withOrder.ID, "ord_2")
			apperrtest.Want(t, err, apperr.Conflict)
			for _, ref := range []string{"", "res_01JD3Q0000000000000000000A", "nope"} {
				_, err = s.Commit(ctx, ref, "ord_1")
				apperrtest.Want(t, err, apperr.NotFound)
				_, err = s.Release(ctx, ref)
				apperrtest.Want(t, err, apperr.NotFound)
				_, err = s.GetReservation(ctx, ref)
				apperrtest.Want(t, err, apperr.NotFound)
			}
		})
	})
}

// TestConcurrentReleaseAndCommit: of a release and a commit racing for one
// reservation, exactly one wins, and the stock adds up either way.
func TestConcurrentReleaseAndCommit(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		loc := MustCreateLocation(t, s, "A", 1)
		MustSetLevel(t, s, "SKU", loc.ID, 100)
		for i := range 10 {
			r := MustReserve(t, s, fmt.Sprintf("race-%d", i), line("SKU", 1))
			var wg sync.WaitGroup
			var relErr, comErr error
			wg.Add(2)
			go func() { defer wg.Done(); _, relErr = s.Release(context.Background(), r.ID) }()
			go func() { defer wg.Done(); _, comErr = s.Commit(context.Background(), r.ID, "ord_x") }()
			wg.Wait()
			if (relErr == nil) == (comErr == nil) {
				t.Fatalf("release: %v, commit: %v; want exactly one to succeed", relErr, comErr)
			}
			for _, err := range []error{relErr, comErr} {
				if err != nil && !apperr.Is(err, apperr.Conflict) {
					t.Fatalf("loser's error: %v", err)
				}
			}
		}
		it := MustGetStock(t, s, "SKU")
		sold := int64(countRows(t, s, `SELECT COUNT(*) FROM inventory_reservations WHERE state = 'committed'`))
		if it.Reserved != 0 || it.OnHand != 100-sold {
			t.Fatalf("stock %+v after %d sales", it, sold)
		}
	})
}

func TestExpireStale(t *testing.T) {
	clk := newClock()
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		loc := MustCreateLocation(t, s, "A", 1)
		MustSetLevel(t, s, "SKU", loc.ID, 10)
		short, err := s.Reserve(ctx, ReserveRequest{Key: "short", Lines: []ReserveLine{line("SKU", 2)}, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		long := MustReserve(t, s, "long", line("SKU", 3)) // default TTL: 15 minutes
		if !long.ExpiresAt.Equal(clk.Now().Add(DefaultReservationTTL)) || !short.ExpiresAt.Equal(clk.Now().Add(time.Minute)) {
			t.Fatalf("expires_at %v and %v", short.ExpiresAt, long.ExpiresAt)
		}

		clk.Advance(59 * time.Second)
		if n, err := s.ExpireStale(ctx, clk.Now()); n != 0 || err != nil {
			t.Fatalf("ExpireStale before the TTL = %d, %v", n, err)
		}
		clk.Advance(time.Second)
		_, err = s.Commit(ctx, short.ID, "ord_1") // expired, not yet swept
		apperrtest.Want(t, err, apperr.Conflict)
		if n, err := s.ExpireStale(ctx, clk.Now()); n != 1 || err != nil {
			t.Fatalf("ExpireStale at the TTL = %d, %v", n, err)
		}
		wantLevel(t, s, "SKU", loc.ID, 10, 3)
		got, err := s.GetReservation(ctx, short.ID)
		if err != nil || got.State != StateExpired || got.ClosedAt == nil {
			t.Fatalf("expired reservation = %+v, %v", got, err)
		}
		if n, _ := s.ExpireStale(ctx, clk.Now()); n != 0 {
			t.Fatalf("expired %d again", n)
		}
		if r, err := s.Release(ctx, short.ID); err != nil || r.State != StateExpired {
			t.Fatalf("release of an expired reservation = %+v, %v", r, err)
		}
		if got := bustest.MustTypes(t, s.db, short.ID); !slices.Equal(got, []string{EventStockReserved, EventStockReleased}) {
			t.Fatalf("events: %v", got)
		}

		t.Run("several sweepers expire each reservation once", func(t *testing.T) {
			MustSetLevel(t, s, "BULK", loc.ID, 300)
			for i := range 150 {
				if _, err := s.Reserve(ctx, ReserveRequest{Key: fmt.Sprintf("bulk-%d", i), Lines: []ReserveLine{line("BULK", 2)}, TTL: time.Second}); err != nil {
					t.Fatal(err)
				}
			}
			clk.Advance(2 * time.Second)
			var (
				wg    sync.WaitGroup
				mu    sync.Mutex
				total int
			)
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					n, err := s.ExpireStale(ctx, clk.Now())
					if err != nil {
						t.Errorf("ExpireStale: %v", err)
					}
					mu.Lock()
					total += n
					mu.Unlock()
				}()
			}
			wg.Wait()
			if total != 150 {
				t.Fatalf("sweepers expired %d in all, want 150", total)
			}
			wantLevel(t, s, "BULK", loc.ID, 300, 0)
			if n := countRows(t, s, `SELECT COUNT(*) FROM souk_outbox WHERE event_type = ? AND payload LIKE '%"expired"%'`, EventStockReleased); n != 151 {
				t.Fatalf("%d expiry events, want 151", n)
			}
		})
	}, WithClock(clk.Now))
}

func TestRunSweeps(t *testing.T) {
	clk := newClock()
	s := MustNewSQLiteService(t, WithClock(clk.Now))
	s.cfg.ExpiryInterval = 100 * time.Millisecond
	loc := MustCreateLocation(t, s, "A", 1)
	MustSetLevel(t, s, "SKU", loc.ID, 1)
	r := MustReserve(t, s, "k", line("SKU", 1))
	clk.Advance(time.Hour)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for {
		got, err := s.GetReservation(context.Background(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == StateExpired {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}

	bad := MustNewSQLiteService(t)
	bad.cfg.ExpiryInterval = time.Millisecond
	if err := bad.Run(context.Background()); err == nil {
		t.Fatal("Run accepted an invalid config")
	}
}

func TestBackorder(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		a := MustCreateLocation(t, s, "A", 1)
		b := MustCreateLocation(t, s, "B", 2)
		MustSetLevel(t, s, "PRE", a.ID, 2)
		MustSetLevel(t, s, "PRE", b.ID, 1)
		MustSetLevel(t, s, "PLAIN", a.ID, 2)

		_, err := s.Reserve(ctx, ReserveRequest{Key: "plain", Lines: []ReserveLine{line("PLAIN", 3)}})
		apperrtest.Want(t, err, CodeOutOfStock, "lines[0].quantity")

		MustAllowBackorder(t, s, "PRE")
		r := MustReserve(t, s, "pre", line("PRE", 5))
		want := ReservationLine{SKU: "PRE", Quantity: 5, Backordered: 2, Allocations: []Allocation{
			{LocationID: a.ID, Quantity: 4, Backordered: 2}, {LocationID: b.ID, Quantity: 1}}}
		if !reflect.DeepEqual(r.Lines, []ReservationLine{want}) {
			t.Fatalf("lines = %+v", r.Lines)
		}
		it := MustGetStock(t, s, "PRE")
		if it.Available != -2 || it.Levels[0].Available != -2 || !it.Backorder {
			t.Fatalf("stock = %+v", it)
		}
		av, err := s.Availability(ctx, []string{"PRE"})
		if err != nil || av["PRE"] != (Availability{Available: 0, InStock: true, Backorder: true}) {
			t.Fatalf("availability = %+v, %v", av, err)
		}
		if _, err := s.Commit(ctx, r.ID, "ord_1"); err != nil {
			t.Fatal(err)
		}
		wantLevel(t, s, "PRE", a.ID, -2, 0) // two units owed
		wantLevel(t, s, "PRE", b.ID, 0, 0)

		// A backordered level may be counted down below what it holds.
		MustReserve(t, s, "pre-2", line("PRE", 3)) // backordered at A: -2 on hand, 3 reserved
		if _, err := s.SetLevel(ctx, "PRE", a.ID, LevelInput{OnHand: 0}, 0); err != nil {
			t.Fatalf("SetLevel below reserved with backorder: %v", err)
		}
		wantLevel(t, s, "PRE", a.ID, 0, 3)

		t.Run("turning backorder off stops new backorders", func(t *testing.T) {
			if _, err := s.UpdateItem(ctx, "PRE", ItemPatch{Backorder: ptr(false)}, 0); err != nil {
				t.Fatal(err)
			}
			_, err := s.Reserve(ctx, ReserveRequest{Key: "pre-3", Lines: []ReserveLine{line("PRE", 1)}})
			apperrtest.Want(t, err, CodeOutOfStock)
			// The oversold level keeps the relaxed check; the other is strict again.
			flagged := func() []string {
				rows, err := s.db.Query(ctx, `SELECT location_id FROM inventory_stock_levels WHERE sku = 'PRE' AND backorder ORDER BY location_id`)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				var out []string
				for rows.Next() {
					var loc string
					if err := rows.Scan(&loc); err != nil {
						t.Fatal(err)
					}
					out = append(out, loc)
				}
				return out
			}
			if got := flagged(); !slices.Equal(got, []string{a.ID}) {
				t.Fatalf("levels keeping backorder: %v, want only A (oversold)", got)
			}
			// Receiving stock is always allowed, even when A stays short of
			// its reservations; lowering it further is not.
			if _, err := s.Adjust(ctx, "PRE", AdjustmentInput{LocationID: a.ID, Delta: 1, Reason: ReasonReceived}); err != nil {
				t.Fatalf("receiving at an oversold level: %v", err)
			}
			if _, err := s.Adjust(ctx, "PRE", AdjustmentInput{LocationID: a.ID, Delta: -1, Reason: ReasonCorrection}); !apperr.Is(err, apperr.Conflict) {
				t.Fatalf("lowering an oversold level without backorder: %v", err)
			}
			wantLevel(t, s, "PRE", a.ID, 1, 3)
			MustSetLevel(t, s, "PRE", a.ID, 10) // restocked: no longer oversold
			for _, on := range []bool{true, false} {
				if _, err := s.UpdateItem(ctx, "PRE", ItemPatch{Backorder: ptr(on)}, 0); err != nil {
					t.Fatal(err)
				}
			}
			if got := flagged(); len(got) != 0 {
				t.Fatalf("levels keeping backorder after a restock: %v", got)
			}
		})
	})
}

// TestCheckIsTheLastLineOfDefence: a statement that would oversell a level
// of a SKU without backorder fails in the database itself.
func TestCheckIsTheLastLineOfDefence(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		loc := MustCreateLocation(t, s, "A", 1)
		MustSetLevel(t, s, "SKU", loc.ID, 5)
		for _, stmt := range []string{
			`UPDATE inventory_stock_levels SET reserved = 6`,
			`UPDATE inventory_stock_levels SET on_hand = -1`,
			`UPDATE inventory_stock_levels SET reserved = -1`,
		} {
			if _, err := s.db.Exec(ctx, stmt); err == nil {
				t.Errorf("%s: accepted", stmt)
			}
		}
		MustAllowBackorder(t, s, "SKU")
		if _, err := s.db.Exec(ctx, `UPDATE inventory_stock_levels SET reserved = 6`); err != nil {
			t.Errorf("backorder level refused reserved > on_hand: %v", err)
		}
		if _, err := s.db.Exec(ctx, `UPDATE inventory_stock_levels SET reserved = -1`); err == nil {
			t.Error("negative reserved accepted with backorder")
		}
	})
}

func TestStockLowOncePerCrossing(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		a := MustCreateLocation(t, s, "A", 1)
		b := MustCreateLocation(t, s, "B", 2)
		MustSetLevel(t, s, "LOW", a.ID, 4)
		MustSetLevel(t, s, "LOW", b.ID, 4) // 8 sellable, threshold 5
		lows := func() int {
			return countRows(t, s, `SELECT COUNT(*) FROM souk_outbox WHERE event_type = ?`, EventStockLow)
		}

		r1 := MustReserve(t, s, "r1", line("LOW", 2)) // 6
		if lows() != 0 {
			t.Fatal("stock_low above the threshold")
		}
		MustReserve(t, s, "r2", line("LOW", 1)) // 5: crossing
		MustReserve(t, s, "r3", line("LOW", 1)) // 4
		if lows() != 1 {
			t.Fatalf("%d stock_low events after one crossing", lows())
		}
		if _, err := s.Release(ctx, r1.ID); err != nil { // 6: back above
			t.Fatal(err)
		}
		if _, err := s.Adjust(ctx, "LOW", AdjustmentInput{LocationID: b.ID, Delta: -1, Reason: ReasonDamaged}); err != nil { // 5: crossing
			t.Fatal(err)
		}
		if lows() != 2 {
			t.Fatalf("%d stock_low events after the second crossing", lows())
		}
		if _, err := s.Adjust(ctx, "LOW", AdjustmentInput{LocationID: b.ID, Delta: -1, Reason: ReasonLost}); err != nil { // 4
			t.Fatal(err)
		}
		// A per-SKU threshold: 10 → raised later, not a crossing by itself.
		if _, err := s.UpdateItem(ctx, "LOW", ItemPatch{LowStockThreshold: NullableInt64{Set: true, Value: ptr(int64(10))}}, 0); err != nil {
			t.Fatal(err)
		}
		if lows() != 2 {
			t.Fatalf("%d stock_low events: a threshold change is not a crossing", lows())
		}
		if _, err := s.Adjust(ctx, "LOW", AdjustmentInput{LocationID: a.ID, Delta: 20, Reason: ReasonReceived}); err != nil { // 24
			t.Fatal(err)
		}
		MustReserve(t, s, "r4", line("LOW", 14)) // 10: crossing at the SKU's own threshold
		if lows() != 3 {
			t.Fatalf("%d stock_low events after the crossing at the SKU's threshold", lows())
		}
	})
}

// TestReplanAfterLostRace: when the stock a plan counted on is taken
// before the plan's conditional UPDATE runs, the UPDATE matches no row, the
// attempt is rolled back to the savepoint and the reservation is planned
// again — never overselling. On PostgreSQL the competitor is a real
// transaction that commits in between (possible because the levels are
// read, not locked); SQLite allows no second writer, so there the
// competitor writes inside the reservation's transaction, and its write is
// rolled back with the attempt.
func TestReplanAfterLostRace(t *testing.T) {
	reg := prometheus.NewRegistry()
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		a := MustCreateLocation(t, s, "A", 1)
		b := MustCreateLocation(t, s, "B", 2)
		MustSetLevel(t, s, "SKU", a.ID, 3)
		MustSetLevel(t, s, "SKU", b.ID, 3)
		pg := s.db.Engine() == store.Postgres
		// thief takes n units at loc after the plan, the first times plans.
		thief := func(loc string, n int64, times int) {
			s.afterPlan = func(ctx context.Context, tx *store.Tx) error {
				if times == 0 {
					return nil
				}
				times--
				var q store.Querier = tx
				if pg {
					q = s.db // another connection: commits at once
				}
				_, err := q.Exec(ctx, `UPDATE inventory_stock_levels SET reserved = reserved + ? WHERE sku = 'SKU' AND location_id = ?`, n, loc)
				return err
			}
		}
		conflicts := func() float64 { return counterValue(t, s.metrics.conflicts) }
		before := conflicts()

		thief(a.ID, 2, 1) // A drops to 1 after the plan took 2 from it
		r := MustReserve(t, s, "k1", line("SKU", 2))
		if got := conflicts() - before; got != 1 {
			t.Fatalf("conflicts counted %v, want 1", got)
		}
		if pg {
			if len(r.Lines[0].Allocations) != 1 || r.Lines[0].Allocations[0].LocationID != b.ID {
				t.Fatalf("re-planned allocations %+v, want all from B", r.Lines[0].Allocations)
			}
			wantLevel(t, s, "SKU", a.ID, 3, 2) // the competitor's
			wantLevel(t, s, "SKU", b.ID, 3, 2) // ours
		} else {
			wantLevel(t, s, "SKU", a.ID, 3, 2) // ours: the competitor's write went with the attempt
		}

		// Stock that keeps vanishing: give up after maxReplans, nothing reserved.
		s.afterPlan = func(ctx context.Context, tx *store.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE inventory_stock_levels SET reserved = reserved + 1 WHERE sku = 'SKU'`)
			return err
		}
		snapshot := MustGetStock(t, s, "SKU")
		before = conflicts()
		_, err := s.Reserve(ctx, ReserveRequest{Key: "k2", Lines: []ReserveLine{line("SKU", 1)}})
		apperrtest.Want(t, err, apperr.Conflict)
		if got := conflicts() - before; got != maxReplans {
			t.Fatalf("conflicts counted %v, want %d", got, maxReplans)
		}
		s.afterPlan = nil
		if it := MustGetStock(t, s, "SKU"); !reflect.DeepEqual(it, snapshot) {
			t.Fatalf("stock changed by a failed reservation:\n%+v\n%+v", it, snapshot)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM inventory_reservations WHERE idempotency_key = 'k2'`); n != 0 {
			t.Fatal("the failed reservation kept its row")
		}
	}, WithMetrics(reg))
}

func TestReserveValidation(t *testing.T) {
	s := MustNewSQLiteService(t)
	long := make([]ReserveLine, MaxSKUsPerRequest+1)
	for i := range long {
		long[i] = line(fmt.Sprintf("S%d", i), 1)
	}
	for _, tt := range []struct {
		name   string
		req    ReserveRequest
		fields []string
	}{
		{"no key, no lines", ReserveRequest{}, []string{"key", "lines"}},
		{"bad lines", ReserveRequest{Key: "k", Lines: []ReserveLine{line("A", 1), line("A", 0), line("bad sku", 1), line("", 2)}},
			[]string{"lines[1].sku", "lines[1].quantity", "lines[2].sku", "lines[3].sku"}},
		{"too many lines", ReserveRequest{Key: "k", Lines: long}, []string{"lines"}},
		{"huge quantity", ReserveRequest{Key: "k", Lines: []ReserveLine{line("A", MaxQuantity+1)}}, []string{"lines[0].quantity"}},
		{"bad ttl", ReserveRequest{Key: "k", Lines: []ReserveLine{line("A", 1)}, TTL: 25 * time.Hour}, []string{"ttl_seconds"}},
		{"fractional ttl", ReserveRequest{Key: "k", Lines: []ReserveLine{line("A", 1)}, TTL: 1500 * time.Millisecond}, []string{"ttl_seconds"}},
		{"bad key and order", ReserveRequest{Key: "k\x00", OrderID: "o\n", Lines: []ReserveLine{line("A", 1)}}, []string{"key", "order_id"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Reserve(context.Background(), tt.req)
			apperrtest.Want(t, err, apperr.ValidationFailed, tt.fields...)
		})
	}
}

func TestReservationMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := MustNewSQLiteService(t, WithMetrics(reg), WithMetrics(reg)) // registering twice shares
	ctx := context.Background()
	loc := MustCreateLocation(t, s, "A", 1)
	MustSetLevel(t, s, "SKU", loc.ID, 6)
	r := MustReserve(t, s, "a", line("SKU", 1))
	MustReserve(t, s, "a", line("SKU", 1))
	_, _ = s.Reserve(ctx, ReserveRequest{Key: "b", Lines: []ReserveLine{line("SKU", 99)}})
	_, _ = s.Release(ctx, r.ID)
	_, _ = s.Release(ctx, r.ID)
	c := MustReserve(t, s, "c", line("SKU", 1))
	_, _ = s.Commit(ctx, c.ID, "ord_1")
	MustReserve(t, s, "d", line("SKU", 1))
	for outcome, want := range map[string]float64{
		outcomeReserved: 3, outcomeIdempotentReplay: 1, outcomeOutOfStock: 1, outcomeReleased: 1, outcomeCommitted: 1, outcomeExpired: 0,
	} {
		if got := counterValue(t, s.metrics.reservations.WithLabelValues(outcome)); got != want {
			t.Errorf("%s = %v, want %v", outcome, got, want)
		}
	}
	if got := counterValue(t, s.metrics.stockLow); got != 2 { // 6→5, released to 6, 6→5
		t.Errorf("stock_low = %v, want 2", got)
	}
	families, err := reg.Gather()
	n := 0
	for _, f := range families {
		n += len(f.GetMetric())
	}
	if err != nil || n != 8 {
		t.Errorf("gathered %d series, %v", n, err)
	}
	// No registry, no metrics, no panics.
	quiet := MustNewSQLiteService(t, WithMetrics(nil))
	MustSetLevel(t, quiet, "SKU", MustCreateLocation(t, quiet, "A", 1).ID, 1)
	MustReserve(t, quiet, "a", line("SKU", 1))
}

// counterValue reads a counter's value.
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
