package payments

import (
	"strings"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

// Only operations still open have an entry in payment_operations_open
// (migration 00002), and recovery's query still answers from it.
func TestOpenOperationsIndexHoldsOnlyOpenOnes(t *testing.T) {
	runStores(t, func(t *testing.T, f fixture) {
		def := strings.ToLower(storetest.IndexDefinition(t, f.db, "payment_operations_open"))
		if !strings.Contains(def, "where") || !strings.Contains(def, "pending") || !strings.Contains(def, "unknown") {
			t.Errorf("payment_operations_open is %q, want it partial (pending or unknown)", def)
		}
		if f.db.Engine() != store.SQLite {
			return
		}
		plan := storetest.SQLitePlan(t, f.db, `SELECT `+opColumns+` FROM payment_operations
			WHERE state = 'unknown' OR (state = 'pending' AND lease_until < ?) ORDER BY updated_at LIMIT ?`, time.Now(), 10)
		if strings.Count(plan, "USING INDEX payment_operations_open") != 2 {
			t.Errorf("recovery's query does not search payment_operations_open for both states:\n%s", plan)
		}
	})
}
