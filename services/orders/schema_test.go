package orders

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/bus"
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

// A database that ran 00001 keeps its saga history through 00002's
// rebuild: every step, in order, with its fields.
func TestSagaStepsMigrationKeepsHistory(t *testing.T) {
	engines(t, func(t *testing.T, engine store.Engine) {
		ctx := context.Background()
		db := storetest.MustOpen(t, engine, bus.Migrations, storetest.MigrationsUpTo(t, Migrations, 1))
		started := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
		steps := []stepRecord{
			{id: "step_01", step: "reserve_stock", action: "do", outcome: "ok", attempt: 1, started: started, finished: started.Add(time.Millisecond)},
			{id: "step_02", step: "authorize_payment", action: "do", outcome: "failed", errCode: "payment_declined", errMsg: "declined", attempt: 2, started: started.Add(time.Second), finished: started.Add(2 * time.Second)},
			{id: "step_03", step: "reserve_stock", action: "compensate", outcome: "ok", attempt: 1, started: started.Add(3 * time.Second), finished: started.Add(4 * time.Second)},
		}
		if err := db.InTx(ctx, func(tx *store.Tx) error {
			for _, r := range steps {
				if err := insertStep(ctx, tx, "ord_1", r); err != nil {
					return err
				}
			}
			return insertStep(ctx, tx, "ord_2", stepRecord{id: "step_04", step: "confirm", action: "do", outcome: "ok", attempt: 1, started: started, finished: started})
		}); err != nil {
			t.Fatal(err)
		}
		before, err := listSteps(ctx, db, "ord_1")
		if err != nil || len(before) != 3 {
			t.Fatalf("history before 00002: %v, %v", before, err)
		}

		if err := db.Migrate(ctx, Migrations); err != nil {
			t.Fatal(err)
		}
		after, err := listSteps(ctx, db, "ord_1")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := mustJSON(t, after), mustJSON(t, before); got != want {
			t.Errorf("history after 00002:\n%s\nwant\n%s", got, want)
		}
		if other, err := listSteps(ctx, db, "ord_2"); err != nil || len(other) != 1 {
			t.Errorf("the other order's history after 00002: %v, %v", other, err)
		}
	})
}
