package cart

import (
	"strings"
	"testing"

	"github.com/soukhq/souk/platform/store"
)

// Guests' carts stay out of the customer index (migration 00002), and the
// merge-on-login lookup can still use it: SQLite refuses INDEXED BY an
// index the query's WHERE does not imply the partial condition of.
func TestCustomerIndexLeavesGuestsOut(t *testing.T) {
	runStores(t, func(t *testing.T, e *env) {
		var def string
		q := `SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'cart_carts_customer'`
		want := "where customer_id is not null"
		if e.db.Engine() == store.Postgres {
			q = `SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'cart_carts_customer'`
			want = "where (customer_id is not null)"
		}
		if err := e.db.QueryRow(bg, q).Scan(&def); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.ToLower(def), want) {
			t.Errorf("cart_carts_customer is %q, want it partial (%s)", def, want)
		}
		if e.db.Engine() != store.SQLite {
			return
		}
		rows, err := e.db.Query(bg, `EXPLAIN QUERY PLAN SELECT id FROM cart_carts INDEXED BY cart_carts_customer
			WHERE customer_id = ? AND status = ? AND currency = ? AND id <> ? AND expires_at > ?
			ORDER BY updated_at DESC, id DESC LIMIT 1`, "cus_1", string(StatusActive), "EUR", "", testStart)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var plan strings.Builder
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan.WriteString(detail + "\n")
		}
		if !strings.Contains(plan.String(), "cart_carts_customer") {
			t.Errorf("the customer's cart lookup does not use cart_carts_customer:\n%s", plan.String())
		}
	})
}
