package bustest_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/bus/bustest"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

func TestReadsTheOutbox(t *testing.T) {
	storetest.Run(t, []store.Migrations{bus.Migrations}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ob := bus.NewOutbox(nil)
		for _, ev := range []struct{ typ, subject string }{
			{"souk.test.made.v1", "w_1"}, {"souk.test.made.v1", "w_2"}, {"souk.test.changed.v1", "w_1"},
		} {
			e, err := bus.NewEvent(ctx, "test", ev.typ, ev.subject, map[string]string{"id": ev.subject})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.InTx(ctx, func(tx *store.Tx) error { return ob.Add(ctx, tx, e) }); err != nil {
				t.Fatal(err)
			}
		}
		rows := bustest.MustOutbox(t, db)
		if len(rows) != 3 || rows[2].Type != "souk.test.changed.v1" || rows[2].Aggregate != "w_1" {
			t.Fatalf("rows = %+v", rows)
		}
		var e bus.Event
		if err := json.Unmarshal(rows[1].Payload, &e); err != nil || e.Subject != "w_2" {
			t.Fatalf("payload = %s (%v)", rows[1].Payload, err)
		}
		if events := bustest.MustEvents(t, db); len(events) != 3 || events[0].Type != "souk.test.made.v1" || events[0].Subject != "w_1" {
			t.Fatalf("events = %+v", events)
		}
		if got := bustest.MustTypes(t, db, "w_1"); !slices.Equal(got, []string{"souk.test.made.v1", "souk.test.changed.v1"}) {
			t.Fatalf("types of w_1 = %v", got)
		}
		if got := bustest.MustTypes(t, db, "w_3"); len(got) != 0 {
			t.Fatalf("types of w_3 = %v", got)
		}
	})
}
