package cart

import (
	"strings"
	"testing"

	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

// Guests' carts stay out of the customer index (migration 00002), and the
// merge-on-login lookup can still use it: SQLite refuses INDEXED BY an
// index the query's WHERE does not imply the partial condition of.
func TestCustomerIndexLeavesGuestsOut(t *testing.T) {
	runStores(t, func(t *testing.T, e *env) {
		def := strings.ToLower(storetest.IndexDefinition(t, e.db, "cart_carts_customer"))
		if !strings.Contains(def, "where") || !strings.Contains(def, "customer_id is not null") {
			t.Errorf("cart_carts_customer is %q, want it partial (customer_id IS NOT NULL)", def)
		}
		if e.db.Engine() != store.SQLite {
			return
		}
		plan := storetest.SQLitePlan(t, e.db, `SELECT id FROM cart_carts INDEXED BY cart_carts_customer
			WHERE customer_id = ? AND status = ? AND currency = ? AND id <> ? AND expires_at > ?
			ORDER BY updated_at DESC, id DESC LIMIT 1`, "cus_1", string(StatusActive), "EUR", "", testStart)
		if !strings.Contains(plan, "cart_carts_customer") {
			t.Errorf("the customer's cart lookup does not use cart_carts_customer:\n%s", plan)
		}
	})
}
