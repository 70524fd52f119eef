// Package bustest reads, in tests, what a service's transactions wrote to
// its outbox (bus.Outbox, the souk_outbox table), so a test can check which
// events a change announced and what they carry.
package bustest

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/store"
)

// OutboxRow is one event in the outbox.
type OutboxRow struct {
	Type      string // the event type ("souk.catalog.product_published.v1")
	Aggregate string // the id of what changed
	Payload   []byte // the JSON-encoded bus.Event
}

// MustOutbox returns every row of db's outbox, in the order written.
func MustOutbox(t testing.TB, db *store.DB) []OutboxRow {
	t.Helper()
	return mustQuery(t, db, "")
}

// mustQuery returns the outbox rows matching the condition (SQL after
// WHERE; "" for all), in the order written.
func mustQuery(t testing.TB, db *store.DB, cond string, args ...any) []OutboxRow {
	t.Helper()
	if cond != "" {
		cond = " WHERE " + cond
	}
	rows, err := db.Query(context.Background(), `SELECT event_type, aggregate_id, payload FROM souk_outbox`+cond+` ORDER BY seq`, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []OutboxRow
	for rows.Next() {
		var (
			r       OutboxRow
			payload string
		)
		if err := rows.Scan(&r.Type, &r.Aggregate, &payload); err != nil {
			t.Fatal(err)
		}
		r.Payload = []byte(payload)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// MustEvents returns the events of db's outbox, decoded, in the order
// written.
func MustEvents(t testing.TB, db *store.DB) []bus.Event {
	t.Helper()
	var out []bus.Event
	for _, r := range MustOutbox(t, db) {
		var e bus.Event
		if err := json.Unmarshal(r.Payload, &e); err != nil {
			t.Fatalf("outbox row of %s: %v", r.Type, err)
		}
		out = append(out, e)
	}
	return out
}

// MustTypes returns the types of the events written for the aggregate, in
// order.
func MustTypes(t testing.TB, db *store.DB, aggregateID string) []string {
	t.Helper()
	var out []string
	for _, r := range mustQuery(t, db, "aggregate_id = ?", aggregateID) {
		out = append(out, r.Type)
	}
	return out
}
