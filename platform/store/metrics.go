package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/telemetry"
)

// txOutcome is how one InTx attempt on SQLite ended: the outcome label of
// souk_store_transactions_total.
type txOutcome int

const (
	txCommitted  txOutcome = iota // its work is durable
	txRolledBack                  // its function failed or panicked: its work is undone
	txCancelled                   // its context ended while it queued: it never ran
	txAborted                     // it succeeded, but its group's SQLite transaction was undone by another member's failure
	txFailed                      // BEGIN or COMMIT failed (disk full, I/O error)
	numTxOutcomes
)

var txOutcomeLabels = [numTxOutcomes]string{"committed", "rolled_back", "cancelled", "aborted", "failed"}

// checkpointMode is the argument of PRAGMA wal_checkpoint.
type checkpointMode int

const (
	checkpointPassive  checkpointMode = iota // from a read connection, every checkpointInterval
	checkpointRestart                        // through the writer, when the WAL passed walRestartFrames
	checkpointTruncate                       // through the writer, at Close
	numCheckpointModes
)

// String is the mode as PRAGMA wal_checkpoint spells it.
func (m checkpointMode) String() string {
	return [numCheckpointModes]string{"PASSIVE", "RESTART", "TRUNCATE"}[m]
}

// Results of a checkpoint, the result label of souk_store_checkpoints_total.
const (
	checkpointOK    = iota // the whole WAL was copied into the database file
	checkpointBusy         // readers still needed part of it, or SQLite reported the checkpoint busy
	checkpointError        // the checkpoint failed
	numCheckpointResults
)

var checkpointResultLabels = [numCheckpointResults]string{"ok", "busy", "error"}

// sqliteMetrics are a SQLite database's Prometheus series (ADR 18), all
// with the constant label db:
//
//	souk_store_transactions_total{outcome}                 counter (InTx attempts)
//	souk_store_group_commit_size                           histogram (transactions per SQLite transaction)
//	souk_store_writer_wait_seconds                         histogram (queued until run)
//	souk_store_checkpoints_total{mode, result}             counter
//	souk_store_checkpoint_failures_total                   counter
//	souk_store_wal_pages                                   gauge
//	souk_store_statement_cache_lookups_total{pool, result} counter
//
// Every series is resolved once, at Open, so that the commit path only adds
// to a counter it holds. A nil *sqliteMetrics records nothing.
type sqliteMetrics struct {
	transactions       [numTxOutcomes]prometheus.Counter
	groupSize          prometheus.Observer
	writerWait         prometheus.Observer
	checkpoints        [numCheckpointModes][numCheckpointResults]prometheus.Counter
	checkpointFailures prometheus.Counter
	walPages           prometheus.Gauge
	statements         *prometheus.CounterVec // pool, result; curried with db
}

// newSQLiteMetrics registers the metrics of the database named name on reg;
// nil when reg is nil. Databases of one process share the collectors, each
// with its own db label. It fails when reg holds other collectors under
// the same names.
func newSQLiteMetrics(reg prometheus.Registerer, name string) (*sqliteMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	db := prometheus.Labels{"db": name}
	transactions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "souk_store_transactions_total",
		Help: "InTx attempts on a SQLite database by outcome: committed; rolled_back (its function failed or panicked); " +
			"cancelled (its context ended while it queued); aborted (another member's failure undid its group commit; retried); " +
			"failed (BEGIN or COMMIT failed: disk full, I/O error).",
	}, []string{"db", "outcome"})
	groupSize := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "souk_store_group_commit_size",
		Help:    "InTx calls run as one SQLite transaction (group commit), cancelled ones included.",
		Buckets: []float64{1, 2, 3, 4, 6, 8, 12, maxGroup},
	}, []string{"db"})
	writerWait := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "souk_store_writer_wait_seconds",
		Help:    "Time an InTx call on SQLite waited for the writer connection: from queueing to its function starting.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9), // 100 µs … 6.6 s
	}, []string{"db"})
	checkpoints := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "souk_store_checkpoints_total",
		Help: "SQLite WAL checkpoints by mode (passive, restart, truncate) and result: ok (the whole WAL copied back), " +
			"busy (readers still needed part of it, or SQLite reported it busy), error.",
	}, []string{"db", "mode", "result"})
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "souk_store_checkpoint_failures_total",
		Help: "SQLite WAL checkpoints that left the WAL growing: failed ones, and restart or truncate ones a reader kept busy.",
	}, []string{"db"})
	walPages := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "souk_store_wal_pages",
		Help: "Pages in the SQLite WAL, as last seen by a checkpoint.",
	}, []string{"db"})
	statements := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "souk_store_statement_cache_lookups_total",
		Help: "Lookups of a statement in a SQLite pool's (read, write) prepared-statement cache, by result: hit, miss (run unprepared or prepared then).",
	}, []string{"db", "pool", "result"})
	var errs [7]error
	transactions, errs[0] = telemetry.Register(reg, transactions)
	groupSize, errs[1] = telemetry.Register(reg, groupSize)
	writerWait, errs[2] = telemetry.Register(reg, writerWait)
	checkpoints, errs[3] = telemetry.Register(reg, checkpoints)
	failures, errs[4] = telemetry.Register(reg, failures)
	walPages, errs[5] = telemetry.Register(reg, walPages)
	statements, errs[6] = telemetry.Register(reg, statements)
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}

	m := &sqliteMetrics{
		groupSize:          groupSize.With(db),
		writerWait:         writerWait.With(db),
		checkpointFailures: failures.With(db),
		walPages:           walPages.With(db),
		statements:         statements.MustCurryWith(db),
	}
	for o, label := range txOutcomeLabels {
		m.transactions[o] = transactions.WithLabelValues(name, label)
	}
	for mode := range numCheckpointModes {
		for r, result := range checkpointResultLabels {
			m.checkpoints[mode][r] = checkpoints.WithLabelValues(name, strings.ToLower(mode.String()), result)
		}
	}
	return m, nil
}

// metricsName is the db label of a SQLite file's metrics when
// Config.Name is empty: the file's name without its extension.
func metricsName(path string) string {
	base := filepath.Base(path)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// countStatements makes c count its lookups as the pool's.
func (m *sqliteMetrics) countStatements(c *stmtCache, pool string) {
	if m == nil {
		return
	}
	c.hits = m.statements.WithLabelValues(pool, "hit")
	c.misses = m.statements.WithLabelValues(pool, "miss")
}

// now is the time a transaction starts queueing for the writer; without
// metrics it is not read.
func (m *sqliteMetrics) now() time.Time {
	if m == nil {
		return time.Time{}
	}
	return time.Now()
}

// waited records how long a transaction queued before it ran.
func (m *sqliteMetrics) waited(queued time.Time) {
	if m != nil {
		m.writerWait.Observe(time.Since(queued).Seconds())
	}
}

// grouped records a group commit: its size and its members' outcomes.
func (m *sqliteMetrics) grouped(group []*txRequest) {
	if m == nil {
		return
	}
	m.groupSize.Observe(float64(len(group)))
	for _, r := range group {
		m.transactions[r.outcome].Inc()
	}
}

// checkpointed records a checkpoint: frames is the WAL's size in pages
// (-1 when the file is not in WAL mode), complete whether the whole WAL was
// copied back.
func (m *sqliteMetrics) checkpointed(mode checkpointMode, frames int, complete bool, err error) {
	if m == nil {
		return
	}
	result := checkpointOK
	switch {
	case err != nil:
		result = checkpointError
	case !complete:
		result = checkpointBusy
	}
	m.checkpoints[mode][result].Inc()
	if err != nil || (!complete && mode != checkpointPassive) {
		m.checkpointFailures.Inc()
	}
	if err == nil && frames >= 0 {
		m.walPages.Set(float64(frames))
	}
}
