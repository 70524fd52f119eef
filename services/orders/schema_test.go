package orders

import (
	"strings"
	"testing"

	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

// A saga's history is one B-tree keyed by (order_id, id) (migration 00002):
// on SQLite a table without rowid, which the history read walks in key
// order; on PostgreSQL the primary key, with no other index beside it.
func TestSagaStepsKeyedByOrder(t *testing.T) {
	engines(t, func(t *testing.T, engine store.Engine) {
		e := newEnv(t, engine)
		switch engine {
		case store.SQLite:
			var def string
			if err := e.db.QueryRow(bg, `SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'orders_saga_steps'`).Scan(&def); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(def, "WITHOUT ROWID") || !strings.Contains(def, "PRIMARY KEY (order_id, id)") {
				t.Errorf("orders_saga_steps is\n%s\nwant it keyed by (order_id, id) without a rowid", def)
			}
			plan := storetest.SQLitePlan(t, e.db, `SELECT step FROM orders_saga_steps WHERE order_id = ? ORDER BY id`, "ord_1")
			if !strings.Contains(plan, "PRIMARY KEY") || strings.Contains(plan, "TEMP B-TREE") {
				t.Errorf("the history read does not walk the primary key:\n%s", plan)
			}
		case store.Postgres:
			if n := countRows(t, e.db, `SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'orders_saga_steps'`); n != 1 {
				t.Errorf("orders_saga_steps has %d indexes, want its primary key alone", n)
			}
			if def := storetest.IndexDefinition(t, e.db, "orders_saga_steps_pkey"); !strings.Contains(def, "(order_id, id)") {
				t.Errorf("orders_saga_steps_pkey is %q, want (order_id, id)", def)
			}
		}
	})
}
