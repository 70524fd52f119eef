package main

import (
	"strconv"

	"github.com/soukhq/souk/bench/internal/harness"
)

// work is what souk counted over a level's window, from its /metrics: the
// work behind the flows, which does not move with the machine's speed the
// way throughput does. A count is -1 when souk does not export it in that
// topology (the store's counters are SQLite's only).
type work struct {
	Transactions float64 // InTx calls committed (SQLite)
	Commits      float64 // SQLite transactions: group commits (SQLite)
	Statements   float64 // SQL statements run through the statement caches (SQLite)
	Events       float64 // events the outbox relays published
	Processed    float64 // consumer deliveries applied (a transaction each)
	Skipped      float64 // consumer deliveries declined before any transaction
}

// workBetween is the difference of two scrapes.
func workBetween(before, after harness.Counters) *work {
	delta := func(family string, labels ...string) float64 {
		a, ok := after.Sum(family, labels...)
		if !ok {
			return -1
		}
		b, _ := before.Sum(family, labels...)
		return a - b
	}
	return &work{
		Transactions: delta("souk_store_transactions_total", "outcome", "committed"),
		Commits:      delta("souk_store_group_commit_size"),
		Statements:   delta("souk_store_statement_cache_lookups_total"),
		Events:       delta("souk_bus_outbox_relayed_total"),
		Processed:    delta("souk_bus_consumer_deliveries_total", "outcome", "processed"),
		Skipped:      delta("souk_bus_consumer_deliveries_total", "outcome", "skipped"),
	}
}

// perFlow is n per completed flow, "—" when unknown.
func perFlow(n float64, flows int) string {
	if n < 0 || flows == 0 {
		return "—"
	}
	return strconv.FormatFloat(n/float64(flows), 'f', 1, 64)
}
