package inventory

import (
	"context"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/clocktest"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

// testMigrations is what the inventory's database carries in production.
var testMigrations = []store.Migrations{bus.Migrations, Migrations}

// runStores runs test against a fresh inventory on every engine.
func runStores(t *testing.T, test func(t *testing.T, s *Service), opts ...Option) {
	t.Helper()
	storetest.Run(t, testMigrations, func(t *testing.T, db *store.DB) {
		test(t, New(db, bus.NewOutbox(nil), nil, Config{}, opts...))
	})
}

// MustNewSQLiteService returns a service on a fresh SQLite database.
func MustNewSQLiteService(t testing.TB, opts ...Option) *Service {
	t.Helper()
	return New(storetest.MustOpen(t, store.SQLite, testMigrations...), bus.NewOutbox(nil), nil, Config{}, opts...)
}

// newClock returns a test clock that moves only when told.
func newClock() *clocktest.Clock {
	return clocktest.New(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
}

func MustCreateLocation(t testing.TB, s *Service, code string, priority int) Location {
	t.Helper()
	l, err := s.CreateLocation(context.Background(), LocationInput{Code: code, Name: code + " warehouse", Priority: &priority})
	if err != nil {
		t.Fatalf("CreateLocation(%s): %v", code, err)
	}
	return l
}

func MustSetLevel(t testing.TB, s *Service, sku, locationID string, onHand int64) StockItem {
	t.Helper()
	it, err := s.SetLevel(context.Background(), sku, locationID, LevelInput{OnHand: onHand, Reason: ReasonReceived}, 0)
	if err != nil {
		t.Fatalf("SetLevel(%s, %s, %d): %v", sku, locationID, onHand, err)
	}
	return it
}

func MustReserve(t testing.TB, s Client, key string, lines ...ReserveLine) Reservation {
	t.Helper()
	r, err := s.Reserve(context.Background(), ReserveRequest{Key: key, Lines: lines})
	if err != nil {
		t.Fatalf("Reserve(%s): %v", key, err)
	}
	return r
}

func MustGetStock(t testing.TB, s *Service, sku string) StockItem {
	t.Helper()
	it, err := s.GetStock(context.Background(), sku)
	if err != nil {
		t.Fatalf("GetStock(%s): %v", sku, err)
	}
	return it
}

func MustAllowBackorder(t testing.TB, s *Service, sku string) {
	t.Helper()
	if _, err := s.UpdateItem(context.Background(), sku, ItemPatch{Backorder: ptr(true)}, 0); err != nil {
		t.Fatalf("UpdateItem(%s): %v", sku, err)
	}
}

func line(sku string, qty int64) ReserveLine { return ReserveLine{SKU: sku, Quantity: qty} }

func ptr[T any](v T) *T { return &v }

// level reads a level's row as it is in the database.
func level(t testing.TB, s *Service, sku, locationID string) (onHand, reserved int64) {
	t.Helper()
	err := s.db.QueryRow(context.Background(), `SELECT on_hand, reserved FROM inventory_stock_levels WHERE sku = ? AND location_id = ?`,
		sku, locationID).Scan(&onHand, &reserved)
	if err != nil {
		t.Fatalf("level %s@%s: %v", sku, locationID, err)
	}
	return onHand, reserved
}

// wantLevel fails unless the level holds onHand and reserved.
func wantLevel(t testing.TB, s *Service, sku, locationID string, onHand, reserved int64) {
	t.Helper()
	if h, r := level(t, s, sku, locationID); h != onHand || r != reserved {
		t.Fatalf("%s@%s: on_hand %d reserved %d, want %d and %d", sku, locationID, h, r, onHand, reserved)
	}
}

func countRows(t testing.TB, s *Service, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}
