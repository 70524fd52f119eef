package harness

import (
	"strings"
	"testing"
)

func TestCountersSum(t *testing.T) {
	const text = `# HELP souk_store_transactions_total InTx attempts.
# TYPE souk_store_transactions_total counter
souk_store_transactions_total{db="cart",outcome="committed"} 6
souk_store_transactions_total{db="orders",outcome="committed"} 8
souk_store_transactions_total{db="orders",outcome="rolled_back"} 1
# HELP souk_store_group_commit_size Group sizes.
# TYPE souk_store_group_commit_size histogram
souk_store_group_commit_size_bucket{db="cart",le="1"} 3
souk_store_group_commit_size_bucket{db="cart",le="+Inf"} 4
souk_store_group_commit_size_sum{db="cart"} 6
souk_store_group_commit_size_count{db="cart"} 4
`
	c, err := ParseCounters(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := c.Sum("souk_store_transactions_total", "outcome", "committed"); !ok || got != 14 {
		t.Errorf("committed = %v, %v; want 14", got, ok)
	}
	if got, _ := c.Sum("souk_store_transactions_total"); got != 15 {
		t.Errorf("all outcomes = %v, want 15", got)
	}
	if got, _ := c.Sum("souk_store_group_commit_size"); got != 4 {
		t.Errorf("histogram count = %v, want 4", got)
	}
	if _, ok := c.Sum("souk_absent_total"); ok {
		t.Error("an absent family reported ok")
	}
}
