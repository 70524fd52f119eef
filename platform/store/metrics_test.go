package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The SQLite metrics are registered under their names, with the database's
// name as the db label (by default its file's name); databases of one
// process share the collectors; nil exports nothing; a clash fails Open.
func TestSQLiteMetricsRegistration(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	for _, cfg := range []Config{
		{URL: "sqlite:" + filepath.Join(dir, "orders.db"), Name: "orders", Registerer: reg},
		{URL: "sqlite:" + filepath.Join(dir, "catalog.db"), Registerer: reg},
	} {
		db, err := Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if err := db.InTx(ctx, func(tx *Tx) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
		if f.GetHelp() == "" {
			t.Errorf("%s has no HELP", f.GetName())
		}
		var dbs []string
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "db" && !slices.Contains(dbs, l.GetValue()) {
					dbs = append(dbs, l.GetValue())
				}
			}
		}
		slices.Sort(dbs)
		if want := []string{"catalog", "orders"}; !slices.Equal(dbs, want) {
			t.Errorf("%s: db labels %v, want %v", f.GetName(), dbs, want)
		}
	}
	want := []string{
		"souk_store_checkpoint_failures_total",
		"souk_store_checkpoints_total",
		"souk_store_group_commit_size",
		"souk_store_statement_cache_lookups_total",
		"souk_store_transactions_total",
		"souk_store_wal_pages",
		"souk_store_writer_wait_seconds",
	}
	if !slices.Equal(names, want) {
		t.Errorf("metrics %v, want %v", names, want)
	}

	db, err := Open(ctx, Config{URL: "sqlite:" + filepath.Join(dir, "quiet.db")})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db.metrics != nil {
		t.Error("metrics without a Registerer")
	}

	clash := prometheus.NewRegistry()
	clash.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "souk_store_wal_pages", Help: "not ours"}))
	if db, err := Open(ctx, Config{URL: "sqlite:" + filepath.Join(dir, "clash.db"), Registerer: clash}); err == nil {
		db.Close()
		t.Error("Open registered its metrics over a clashing collector")
	}
}

// Each InTx attempt counts once by outcome, its group and its wait for the
// writer are observed, and statements are counted as cache hits or misses.
func TestSQLiteTransactionMetrics(t *testing.T) {
	db, _ := openTestSQLite(t)
	ctx := context.Background()
	boom := errors.New("boom")
	for i := range 4 {
		err := db.InTx(ctx, func(tx *Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO counters (id, n) VALUES (?, ?)`, fmt.Sprint("m", i), i); err != nil {
				return err
			}
			if i == 3 {
				return boom
			}
			return nil
		})
		if (i < 3 && err != nil) || (i == 3 && !errors.Is(err, boom)) {
			t.Fatalf("transaction %d = %v", i, err)
		}
	}
	wantOutcomes := map[txOutcome]float64{txCommitted: 3, txRolledBack: 1}
	for o, c := range db.metrics.transactions {
		if got := mustCounter(t, c); got != wantOutcomes[txOutcome(o)] {
			t.Errorf("%v transactions %s, want %v", got, txOutcomeLabels[o], wantOutcomes[txOutcome(o)])
		}
	}
	// One after the other, each transaction is a group of its own.
	if count, sum := mustHistogram(t, db.metrics.groupSize); count != 4 || sum != 4 {
		t.Errorf("group sizes: %d groups of %v transactions in all, want 4 of 4", count, sum)
	}
	if count, _ := mustHistogram(t, db.metrics.writerWait); count != 4 {
		t.Errorf("%d writer waits recorded, want 4", count)
	}

	// The insert ran unprepared in the first transaction, prepared in the
	// others; a query outside a transaction is prepared on its first run.
	if hits, misses := mustCounter(t, db.writeStmts.hits), mustCounter(t, db.writeStmts.misses); hits != 3 || misses != 1 {
		t.Errorf("writer statement cache: %v hits, %v misses; want 3, 1", hits, misses)
	}
	for range 3 {
		var n int
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM counters`).Scan(&n); err != nil || n != 3 {
			t.Fatalf("count = %d, %v; want 3", n, err)
		}
	}
	if hits, misses := mustCounter(t, db.readStmts.hits), mustCounter(t, db.readStmts.misses); hits != 2 || misses != 1 {
		t.Errorf("read statement cache: %v hits, %v misses; want 2, 1", hits, misses)
	}
}

// Checkpoints count by mode and result, record the WAL's size, and a
// failing one counts as a failure.
func TestSQLiteCheckpointMetrics(t *testing.T) {
	db, _ := openTestSQLite(t)
	ctx := context.Background()
	mustInsertCounters(t, db, "c", 50)
	// The background checkpointer runs only PASSIVE ones on so small a WAL,
	// and no write follows: RESTART's count and the WAL size are ours.
	frames, complete, err := db.checkpoint(ctx, db.write, checkpointRestart)
	if err != nil || !complete || frames <= 0 {
		t.Fatalf("restart checkpoint: %d pages, complete %v, %v; want a complete one of some pages", frames, complete, err)
	}
	if n := mustCounter(t, db.metrics.checkpoints[checkpointRestart][checkpointOK]); n != 1 {
		t.Errorf("%v restart checkpoints recorded ok, want 1", n)
	}
	if pages := mustGauge(t, db.metrics.walPages); pages != float64(frames) {
		t.Errorf("WAL of %v pages recorded, want %d", pages, frames)
	}
	if n := mustCounter(t, db.metrics.checkpointFailures); n != 0 {
		t.Errorf("%v checkpoint failures before any failed", n)
	}

	closed, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	if _, _, err := db.checkpoint(ctx, closed, checkpointPassive); err == nil {
		t.Fatal("a checkpoint on a closed pool succeeded")
	}
	if n := mustCounter(t, db.metrics.checkpoints[checkpointPassive][checkpointError]); n != 1 {
		t.Errorf("%v passive checkpoints recorded as errors, want 1", n)
	}
	if n := mustCounter(t, db.metrics.checkpointFailures); n != 1 {
		t.Errorf("%v checkpoint failures, want 1", n)
	}
	if pages := mustGauge(t, db.metrics.walPages); pages != float64(frames) {
		t.Errorf("a failed checkpoint changed the recorded WAL size to %v pages", pages)
	}
}

func mustMetric(t testing.TB, m prometheus.Metric) *dto.Metric {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	return &out
}

// mustCounter is a counter's value.
func mustCounter(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	return mustMetric(t, c).GetCounter().GetValue()
}

// mustGauge is a gauge's value.
func mustGauge(t testing.TB, g prometheus.Gauge) float64 {
	t.Helper()
	return mustMetric(t, g).GetGauge().GetValue()
}

// mustHistogram is a histogram's sample count and sum.
func mustHistogram(t testing.TB, o prometheus.Observer) (uint64, float64) {
	t.Helper()
	h := mustMetric(t, o.(prometheus.Metric)).GetHistogram()
	return h.GetSampleCount(), h.GetSampleSum()
}
