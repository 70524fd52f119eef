package inventory

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSeed(t *testing.T) {
	skus := make([]string, 12)
	for i := range skus {
		skus[i] = fmt.Sprintf("DEMO-%02d", i)
	}
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		seeded, err := Seed(ctx, s, append([]string{skus[3]}, skus...)) // duplicates and order do not matter
		if err != nil || !seeded {
			t.Fatalf("Seed = %v, %v", seeded, err)
		}
		locs, err := s.ListLocations(ctx, 0, "")
		if err != nil || len(locs.Data) != 2 || locs.Data[0].Name != "Rotterdam DC" || locs.Data[0].Priority != 1 ||
			locs.Data[1].Name != "Leeds Store" || locs.Data[1].Priority != 2 {
			t.Fatalf("locations %+v, %v", locs.Data, err)
		}
		av, err := s.Availability(ctx, skus)
		if err != nil {
			t.Fatal(err)
		}
		var out, low, backorder int
		for _, sku := range skus {
			a := av[sku]
			switch {
			case a.Backorder:
				backorder++
			case !a.InStock:
				out++
			case a.Available <= DefaultLowStockThreshold:
				low++
			}
			if _, err := s.GetStock(ctx, sku); err != nil {
				t.Errorf("%s not stocked: %v", sku, err)
			}
		}
		if out != 1 || backorder != 1 || low < 2 {
			t.Fatalf("%d out of stock, %d backorder, %d low: %+v", out, backorder, low, av)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM inventory_adjustments WHERE reason = 'received' AND actor = 'system'`); n < len(skus) {
			t.Fatalf("%d audit rows for the demo stock", n)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM souk_outbox WHERE event_type = ?`, EventStockAdjusted); n != countRows(t, s, `SELECT COUNT(*) FROM inventory_adjustments`) {
			t.Fatalf("%d stock_adjusted events", n)
		}

		t.Run("deterministic", func(t *testing.T) {
			other := MustNewSQLiteService(t)
			if _, err := Seed(ctx, other, skus); err != nil {
				t.Fatal(err)
			}
			for _, sku := range skus {
				x, y := MustGetStock(t, s, sku), MustGetStock(t, other, sku)
				if x.OnHand != y.OnHand || x.Backorder != y.Backorder || len(x.Levels) != len(y.Levels) {
					t.Fatalf("%s: %+v vs %+v", sku, x, y)
				}
			}
		})

		t.Run("once per database, even when seeded concurrently", func(t *testing.T) {
			var (
				wg sync.WaitGroup
				mu sync.Mutex
				n  int
			)
			for range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					seeded, err := Seed(ctx, s, []string{"EXTRA"})
					if err != nil {
						t.Errorf("Seed: %v", err)
					}
					if seeded {
						mu.Lock()
						n++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if n != 0 {
				t.Fatalf("seeded again %d times", n)
			}
			if _, err := s.GetStock(ctx, "EXTRA"); err == nil {
				t.Fatal("a second seed added stock")
			}
		})
	})

	t.Run("uses existing locations with the demo codes; rejects bad SKUs", func(t *testing.T) {
		s := MustNewSQLiteService(t)
		mine := MustCreateLocation(t, s, "RTM-DC", 9)
		if _, err := Seed(context.Background(), s, []string{"A", "B"}); err != nil {
			t.Fatal(err)
		}
		it := MustGetStock(t, s, "A")
		if it.Levels[1].LocationID != mine.ID {
			t.Fatalf("levels %+v: the existing RTM-DC (priority 9) is used", it.Levels)
		}
		if _, err := Seed(context.Background(), MustNewSQLiteService(t), []string{"bad sku"}); err == nil {
			t.Fatal("seeded a bad SKU")
		}
	})
}

func TestConfig(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{DefaultReservationTTL: 25 * time.Hour}, "DefaultReservationTTL"},
		{Config{DefaultReservationTTL: 1500 * time.Millisecond}, "DefaultReservationTTL"},
		{Config{ExpiryInterval: time.Millisecond}, "ExpiryInterval"},
		{Config{LowStockThreshold: -1}, "LowStockThreshold"},
	} {
		if err := tt.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want an error naming %s", tt.cfg, err, tt.want)
		}
	}

	var cfg Config
	fs := flag.NewFlagSet("souk", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse([]string{"-inventory-reservation-ttl=10m", "-inventory-expiry-interval=5s", "-inventory-low-stock-threshold=2"}); err != nil {
		t.Fatal(err)
	}
	if cfg != (Config{DefaultReservationTTL: 10 * time.Minute, ExpiryInterval: 5 * time.Second, LowStockThreshold: 2}) {
		t.Fatalf("flags gave %+v", cfg)
	}

	s := New(MustNewSQLiteService(t).db, nil, nil, Config{})
	if s.cfg.DefaultReservationTTL != DefaultReservationTTL || s.cfg.ExpiryInterval != DefaultExpiryInterval || s.cfg.LowStockThreshold != DefaultLowStockThreshold {
		t.Fatalf("defaults %+v", s.cfg)
	}
}
