package catalog

import (
	"context"
	"testing"

	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

// testMigrations is what the catalogue's database carries in production.
var testMigrations = []store.Migrations{bus.Migrations, Migrations}

// runStores runs test against a fresh catalogue on every engine.
func runStores(t *testing.T, test func(t *testing.T, s *Service)) {
	t.Helper()
	storetest.Run(t, testMigrations, func(t *testing.T, db *store.DB) {
		test(t, New(db, bus.NewOutbox(nil), nil))
	})
}

// MustNewSQLiteService returns a service on a fresh SQLite database.
func MustNewSQLiteService(t testing.TB) *Service {
	t.Helper()
	return New(storetest.MustOpen(t, store.SQLite, testMigrations...), bus.NewOutbox(nil), nil)
}

func MustCreateProduct(t testing.TB, s *Service, in ProductInput) Product {
	t.Helper()
	p, err := s.CreateProduct(context.Background(), in)
	if err != nil {
		t.Fatalf("CreateProduct(%q): %v", in.Title, err)
	}
	return p
}

func MustUpdateProduct(t testing.TB, s *Service, id string, patch ProductPatch) Product {
	t.Helper()
	p, err := s.UpdateProduct(context.Background(), id, patch, 0)
	if err != nil {
		t.Fatalf("UpdateProduct(%s): %v", id, err)
	}
	return p
}

func MustCreateCategory(t testing.TB, s *Service, in CategoryInput) Category {
	t.Helper()
	c, err := s.CreateCategory(context.Background(), in)
	if err != nil {
		t.Fatalf("CreateCategory(%q): %v", in.Name, err)
	}
	return c
}

func MustAdminGetProduct(t testing.TB, s *Service, id string) Product {
	t.Helper()
	p, err := s.AdminGetProduct(context.Background(), id)
	if err != nil {
		t.Fatalf("AdminGetProduct(%s): %v", id, err)
	}
	return p
}

func ptr[T any](v T) *T { return &v }

// shirtInput is a valid published product with two options and variants.
func shirtInput(title, skuPrefix string) ProductInput {
	return ProductInput{
		Title:       title,
		Description: "A shirt in washed linen.",
		Status:      StatusPublished,
		Options: []Option{
			{Name: "size", Values: []string{"S", "M"}},
			{Name: "color", Values: []string{"White", "Blue"}},
		},
		Variants: []VariantInput{
			{SKU: skuPrefix + "-S-WHT", Options: map[string]string{"size": "S", "color": "White"}, WeightGrams: 300},
			{SKU: skuPrefix + "-M-WHT", Options: map[string]string{"size": "M", "color": "White"}, WeightGrams: 310},
			{SKU: skuPrefix + "-S-BLU", Options: map[string]string{"size": "S", "color": "Blue"}, WeightGrams: 300,
				Attributes: map[string]string{"material": "linen"}},
		},
		Media: []Media{{URL: "https://example.com/shirt.jpg", Alt: "front"}},
	}
}

// simpleInput is a valid product with a single default variant.
func simpleInput(title, sku string, status Status) ProductInput {
	return ProductInput{Title: title, Status: status, Variants: []VariantInput{{SKU: sku}}}
}

// countRows counts rows of a table matching a condition.
func countRows(t testing.TB, s *Service, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// indexMatches counts the entries of the engine's full-text index itself
// (FTS5's index, not its content table; the tsvector in PostgreSQL) that
// match the word.
func indexMatches(t testing.TB, s *Service, word string) int {
	t.Helper()
	if s.db.Engine() == store.Postgres {
		return countRows(t, s, `SELECT COUNT(*) FROM catalog_search WHERE document @@ to_tsquery('english', ?)`, tsQuery([]string{word}))
	}
	return countRows(t, s, `SELECT COUNT(*) FROM catalog_search_fts WHERE catalog_search_fts MATCH ?`, fts5Query([]string{word}))
}
