package harness

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// probeRecord is the probe's unit of work: JSON of the size and shape of a
// cart line, the kind of work souk does most outside SQLite.
type probeRecord struct {
	ID       string   `json:"id"`
	SKU      string   `json:"sku"`
	Title    string   `json:"title"`
	Quantity int64    `json:"quantity"`
	Amount   int64    `json:"amount"`
	Tags     []string `json:"tags"`
}

// newProbeDoc is the probe's input: 2000 records.
func newProbeDoc() []probeRecord {
	doc := make([]probeRecord, 2000)
	for i := range doc {
		doc[i] = probeRecord{ID: fmt.Sprintf("item_%026d", i), SKU: fmt.Sprintf("SKU-%d", i), Title: "Breton striped tee, navy",
			Quantity: int64(i % 7), Amount: int64(i * 137), Tags: []string{"cotton", "summer", "sale"}}
	}
	return doc
}

// Probe times a fixed piece of CPU work on one core — encoding and decoding
// the same JSON document, the best of rounds runs — as a reading of how
// fast the machine runs right now. On the shared VMs the benchmarks run on
// the same code takes from ~4.8 to ~8 ms of CPU per shopper flow depending
// on the minute, and the kernel reports no steal time: the probe, run just
// before and after a level while the machine is otherwise idle, tells a
// slow minute from a slower build. Compare CPU per flow across runs
// relative to it.
func Probe(rounds int) time.Duration {
	probeDoc := newProbeDoc()
	times := make([]time.Duration, 0, max(rounds, 1))
	for range max(rounds, 1) {
		start := time.Now()
		for range 4 {
			b, err := json.Marshal(probeDoc)
			if err != nil {
				panic(err) // a fixed, valid document
			}
			var back []probeRecord
			if err := json.Unmarshal(b, &back); err != nil || len(back) != len(probeDoc) {
				panic(fmt.Sprintf("harness: probe round trip: %d records, %v", len(back), err))
			}
		}
		times = append(times, time.Since(start))
	}
	return slices.Min(times)
}
