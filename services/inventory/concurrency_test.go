package inventory

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/soukhq/souk/platform/apperr"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

// reserveConcurrently has n goroutines reserve one unit of sku each, every
// one with its own key, all released at once; it returns how many
// succeeded and how many were refused out_of_stock, and fails on any other
// error.
func reserveConcurrently(t *testing.T, c Client, sku string, n int) (ok, outOfStock int64) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		okN   atomic.Int64
		oosN  atomic.Int64
		errs  = make(chan error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := c.Reserve(context.Background(), ReserveRequest{Key: fmt.Sprintf("flash-%s-%d", sku, i), Lines: []ReserveLine{line(sku, 1)}})
			switch {
			case err == nil:
				okN.Add(1)
			case apperr.Is(err, CodeOutOfStock):
				oosN.Add(1)
			default:
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected error: %v", err)
	}
	return okN.Load(), oosN.Load()
}

// TestFlashSaleNeverOversells is the test: 200 goroutines each
// reserve 1 unit of a SKU with 50 in stock. Exactly 50 succeed, 150 are
// refused out_of_stock, and the level ends with reserved = on_hand = 50,
// available 0, never negative — on SQLite and on PostgreSQL.
func TestFlashSaleNeverOversells(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 200 concurrent reservations per engine")
	}
	runStores(t, func(t *testing.T, s *Service) {
		loc := MustCreateLocation(t, s, "DC", 1)
		MustSetLevel(t, s, "FLASH-1", loc.ID, 50)

		ok, oos := reserveConcurrently(t, s, "FLASH-1", 200)
		t.Logf("%s: %d reserved, %d out_of_stock", s.db.Engine(), ok, oos)
		if ok != 50 || oos != 150 {
			t.Fatalf("%d reserved and %d out_of_stock, want 50 and 150", ok, oos)
		}
		wantLevel(t, s, "FLASH-1", loc.ID, 50, 50)
		it := MustGetStock(t, s, "FLASH-1")
		if it.Available != 0 || it.Reserved != 50 || it.Levels[0].Available != 0 {
			t.Fatalf("stock after the sale: %+v", it)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM inventory_reservations WHERE state = 'pending'`); n != 50 {
			t.Fatalf("%d pending reservations, want 50", n)
		}
		if n := countRows(t, s, `SELECT COALESCE(SUM(quantity), 0) FROM inventory_reservation_allocations`); n != 50 {
			t.Fatalf("allocations add up to %d, want 50", n)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM inventory_stock_levels WHERE reserved > on_hand OR on_hand - reserved < 0`); n != 0 {
			t.Fatalf("%d levels oversold", n)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM souk_outbox WHERE event_type = ?`, EventStockReservationFailed); n != 150 {
			t.Fatalf("%d stock_reservation_failed events, want 150", n)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM souk_outbox WHERE event_type = ?`, EventStockLow); n != 1 {
			t.Fatalf("%d stock_low events, want exactly 1 (one crossing)", n)
		}
	})
}

// TestFlashSaleAcrossLocations: the same rush on a SKU split over two
// locations (30 + 20) takes exactly the 50 units, from both.
func TestFlashSaleAcrossLocations(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 200 concurrent reservations per engine")
	}
	runStores(t, func(t *testing.T, s *Service) {
		a := MustCreateLocation(t, s, "A", 1)
		b := MustCreateLocation(t, s, "B", 2)
		MustSetLevel(t, s, "FLASH-2", a.ID, 30)
		MustSetLevel(t, s, "FLASH-2", b.ID, 20)

		ok, oos := reserveConcurrently(t, s, "FLASH-2", 200)
		t.Logf("%s: %d reserved, %d out_of_stock", s.db.Engine(), ok, oos)
		if ok != 50 || oos != 150 {
			t.Fatalf("%d reserved and %d out_of_stock, want 50 and 150", ok, oos)
		}
		wantLevel(t, s, "FLASH-2", a.ID, 30, 30)
		wantLevel(t, s, "FLASH-2", b.ID, 20, 20)
	})
}

// TestConcurrentMultiLineReservations: buyers of two SKUs in both orders
// at once neither oversell nor deadlock for good (lock order is by SKU).
func TestConcurrentMultiLineReservations(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	runStores(t, func(t *testing.T, s *Service) {
		a := MustCreateLocation(t, s, "A", 1)
		b := MustCreateLocation(t, s, "B", 2)
		for _, loc := range []string{a.ID, b.ID} {
			MustSetLevel(t, s, "X", loc, 10)
			MustSetLevel(t, s, "Y", loc, 10)
		}
		var (
			wg sync.WaitGroup
			ok atomic.Int64
		)
		for i := range 60 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lines := []ReserveLine{line("X", 1), line("Y", 1)}
				if i%2 == 1 {
					lines = []ReserveLine{line("Y", 1), line("X", 1)}
				}
				_, err := s.Reserve(context.Background(), ReserveRequest{Key: fmt.Sprintf("multi-%d", i), Lines: lines})
				switch {
				case err == nil:
					ok.Add(1)
				case !apperr.Is(err, CodeOutOfStock):
					t.Errorf("reserve %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 20 {
			t.Fatalf("%d multi-line reservations, want 20 (20 units of each SKU)", ok.Load())
		}
		for _, sku := range []string{"X", "Y"} {
			if it := MustGetStock(t, s, sku); it.Reserved != 20 || it.Available != 0 {
				t.Fatalf("%s: %+v", sku, it)
			}
		}
	})
}

// TestConcurrentSameKey: many concurrent reserves with one key make one
// reservation and take the stock once.
func TestConcurrentSameKey(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		loc := MustCreateLocation(t, s, "DC", 1)
		MustSetLevel(t, s, "KEYED", loc.ID, 10)
		var (
			wg  sync.WaitGroup
			ids sync.Map
		)
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := s.Reserve(context.Background(), ReserveRequest{Key: "order-1:reserve", OrderID: "ord_1", Lines: []ReserveLine{line("KEYED", 3)}})
				if err != nil {
					t.Errorf("reserve: %v", err)
					return
				}
				ids.Store(r.ID, true)
			}()
		}
		wg.Wait()
		n := 0
		ids.Range(func(_, _ any) bool { n++; return true })
		if n != 1 {
			t.Fatalf("%d distinct reservations for one key", n)
		}
		wantLevel(t, s, "KEYED", loc.ID, 10, 3)
		if c := countRows(t, s, `SELECT COUNT(*) FROM inventory_reservations`); c != 1 {
			t.Fatalf("%d reservation rows", c)
		}
	})
}

// BenchmarkReserveHotSKU measures reservations of one hot SKU from parallel
// goroutines (SQLite; PostgreSQL too when SOUK_TEST_POSTGRES_URL is set):
// the throughput ceiling of a flash sale, one short transaction at a time.
func BenchmarkReserveHotSKU(b *testing.B) {
	for _, engine := range []store.Engine{store.SQLite, store.Postgres} {
		b.Run(string(engine), func(b *testing.B) {
			s := New(storetest.MustOpen(b, engine, testMigrations...), nil, nil, Config{})
			loc := MustCreateLocation(b, s, "A", 1)
			MustSetLevel(b, s, "HOT", loc.ID, MaxQuantity)
			var n atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := fmt.Sprintf("bench-%d", n.Add(1))
					if _, err := s.Reserve(context.Background(), ReserveRequest{Key: key, Lines: []ReserveLine{line("HOT", 1)}}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// TestConcurrentRestocksRestockOnce: a cancelled order's sale undone by
// several callers at once (a retried compensation racing the first one)
// puts the units back on hand once.
func TestConcurrentRestocksRestockOnce(t *testing.T) {
	runStores(t, func(t *testing.T, s *Service) {
		a := MustCreateLocation(t, s, "A", 1)
		b := MustCreateLocation(t, s, "B", 2)
		MustSetLevel(t, s, "R", a.ID, 2)
		MustSetLevel(t, s, "R", b.ID, 5)
		r := MustReserve(t, s, "ord_r/reserve", line("R", 4))
		if _, err := s.Commit(context.Background(), r.ID, "ord_r"); err != nil {
			t.Fatal(err)
		}
		if it := MustGetStock(t, s, "R"); it.OnHand != 3 || it.Reserved != 0 {
			t.Fatalf("after the sale: %+v", it)
		}
		allocations := 0
		for _, l := range r.Lines {
			allocations += len(l.Allocations)
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, err := s.Restock(context.Background(), r.Key); err != nil {
					t.Errorf("Restock: %v", err)
				}
			})
		}
		wg.Wait()
		wantLevel(t, s, "R", a.ID, 2, 0)
		wantLevel(t, s, "R", b.ID, 5, 0)
		if n := countRows(t, s, `SELECT COUNT(*) FROM inventory_adjustments WHERE reason = 'returned'`); n != allocations {
			t.Fatalf("%d returned audit rows, want %d (one per allocation)", n, allocations)
		}
	})
}
