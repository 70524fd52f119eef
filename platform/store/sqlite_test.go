package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func openTestSQLite(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.db")
	// Metrics on, so every test runs their code too; assertions read db.metrics.
	db, err := Open(context.Background(), Config{URL: "sqlite:" + path, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// On the writer pool directly: the tests' counts of transactions and
	// groups start at zero.
	if _, err := db.write.Exec(`CREATE TABLE counters (id TEXT PRIMARY KEY, n INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db, path
}

// mustInsertCounters inserts n counters, ids prefix0 … prefix<n-1>, one
// statement at a time.
func mustInsertCounters(t testing.TB, db *DB, prefix string, n int) {
	t.Helper()
	for i := range n {
		if _, err := db.Exec(context.Background(), `INSERT INTO counters (id, n) VALUES (?, ?)`, fmt.Sprint(prefix, i), i); err != nil {
			t.Fatal(err)
		}
	}
}

// Every transaction of the process queues for the one writer connection
// instead of meeting SQLITE_BUSY: none fails, none is lost.
func TestSQLiteWritersQueue(t *testing.T) {
	db, _ := openTestSQLite(t)
	ctx := context.Background()
	if _, err := db.Exec(ctx, `INSERT INTO counters (id, n) VALUES (?, ?)`, "c", 0); err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 40, 25
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for range goroutines {
		wg.Go(func() {
			for range each {
				errs <- db.InTx(ctx, func(tx *Tx) error {
					var n int
					if err := tx.QueryRow(ctx, `SELECT n FROM counters WHERE id = ?`, "c").Scan(&n); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, `UPDATE counters SET n = ? WHERE id = ?`, n+1, "c")
					return err
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a transaction failed: %v", err)
		}
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT n FROM counters WHERE id = ?`, "c").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != goroutines*each {
		t.Fatalf("n = %d, want %d (lost updates)", n, goroutines*each)
	}
}

// Reads outside a transaction run on the read-only pool: they see what
// committed, and cannot write.
func TestSQLiteReadPool(t *testing.T) {
	db, _ := openTestSQLite(t)
	ctx := context.Background()
	if db.sql == db.write {
		t.Fatal("one pool for reads and writes")
	}
	if got := db.write.Stats().MaxOpenConnections; got != 1 {
		t.Fatalf("writer pool of %d connections, want 1", got)
	}
	if err := db.InTx(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO counters (id, n) VALUES (?, ?)`, "r", 7)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT n FROM counters WHERE id = ?`, "r").Scan(&n); err != nil || n != 7 {
		t.Fatalf("read after commit = %d, %v; want 7", n, err)
	}
	rows, err := db.Query(ctx, `INSERT INTO counters (id, n) VALUES (?, ?) RETURNING n`, "x", 1)
	if err == nil {
		for rows.Next() {
		}
		err = rows.Err()
		rows.Close()
	}
	if err == nil {
		t.Fatal("a write through Query (the read pool) succeeded")
	}
}

// A statement is prepared once and reused, in and outside transactions;
// the cache is bounded and statements past the bound still run.
func TestStatementCache(t *testing.T) {
	db, _ := openTestSQLite(t)
	ctx := context.Background()
	const q = `SELECT COUNT(*) FROM counters WHERE n >= ?`
	var n int
	if err := db.QueryRow(ctx, q, 0).Scan(&n); err != nil {
		t.Fatal(err)
	}
	first, ok := db.readStmts.lookup(q)
	if !ok {
		t.Fatal("a query outside a transaction was not cached")
	}
	if err := db.QueryRow(ctx, q, 1).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if again, _ := db.readStmts.lookup(q); again != first {
		t.Fatal("the cached statement was replaced")
	}

	const ins = `INSERT INTO counters (id, n) VALUES (?, ?)`
	for i := range 3 {
		if err := db.InTx(ctx, func(tx *Tx) error {
			_, err := tx.Exec(ctx, ins, fmt.Sprint("t", i), i)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		// Run unprepared inside the first transaction, prepared after it.
		if _, ok := db.writeStmts.lookup(ins); !ok {
			t.Fatalf("after transaction %d the insert is not prepared", i+1)
		}
	}

	// Past the bound: statements run, the cache stays bounded.
	for i := range maxCachedStmts + 10 {
		if err := db.QueryRow(ctx, fmt.Sprintf(`SELECT %d + COUNT(*) FROM counters`, i)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != i+3 {
			t.Fatalf("query %d = %d, want %d", i, n, i+3)
		}
	}
	db.readStmts.mu.RLock()
	size := len(db.readStmts.m)
	db.readStmts.mu.RUnlock()
	if size != maxCachedStmts {
		t.Fatalf("%d cached statements, want the bound %d", size, maxCachedStmts)
	}
	// A statement that does not prepare fails where it runs, with SQLite's error.
	if _, err := db.Query(ctx, `SELECT nope FROM counters`); err == nil {
		t.Fatal("a bad statement ran")
	}
}

// Closing checkpoints the whole WAL into the database file.
func TestSQLiteCloseCheckpoints(t *testing.T) {
	db, path := openTestSQLite(t)
	ctx := context.Background()
	mustInsertCounters(t, db, "k", 200)
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("no WAL after writes: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() != 0 {
		t.Fatalf("WAL of %d bytes after Close, want it checkpointed and truncated", fi.Size())
	}
	if n := mustCounter(t, db.metrics.checkpoints[checkpointTruncate][checkpointOK]); n != 1 {
		t.Errorf("%v truncate checkpoints recorded, want 1", n)
	}
	if pages := mustGauge(t, db.metrics.walPages); pages != 0 {
		t.Errorf("WAL of %v pages recorded after Close, want 0", pages)
	}
	again, err := Open(ctx, Config{URL: "sqlite:" + path})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	var n int
	if err := again.QueryRow(ctx, `SELECT COUNT(*) FROM counters`).Scan(&n); err != nil || n != 200 {
		t.Fatalf("after reopening: %d rows, %v; want 200", n, err)
	}
}

// Commits never checkpoint; the background checkpointer does, while
// writes go on.
func TestSQLiteBackgroundCheckpoint(t *testing.T) {
	db, _ := openTestSQLite(t)
	ctx := context.Background()
	var auto int
	if err := db.InTx(ctx, func(tx *Tx) error {
		return tx.QueryRow(ctx, `PRAGMA wal_autocheckpoint`).Scan(&auto)
	}); err != nil || auto != 0 {
		t.Fatalf("writer's wal_autocheckpoint = %d, %v; want 0", auto, err)
	}
	before := db.checkpoints.Load()
	deadline := time.Now().Add(20 * checkpointInterval)
	for i := 0; db.checkpoints.Load() < before+2; i++ {
		if _, err := db.Exec(ctx, `INSERT INTO counters (id, n) VALUES (?, ?)`, fmt.Sprint("b", i), i); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d background checkpoints in %v, want 2", db.checkpoints.Load()-before, 20*checkpointInterval)
		}
		time.Sleep(checkpointInterval / 10)
	}
	passive := db.metrics.checkpoints[checkpointPassive]
	if n := mustCounter(t, passive[checkpointOK]) + mustCounter(t, passive[checkpointBusy]); n < 2 {
		t.Errorf("%v passive checkpoints recorded, want at least the 2 done", n)
	}
}

// Transactions queued while one runs commit together, each in its own
// savepoint: a failing or panicking one leaves nothing and the others
// commit; a cancelled one never runs. A statement run outside a
// transaction (DB.Exec, number 4) joins the group as one of them.
func TestGroupCommit(t *testing.T) {
	db, _ := openTestSQLite(t)
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- db.InTx(ctx, func(tx *Tx) error {
			close(started)
			<-release
			_, err := tx.Exec(ctx, `INSERT INTO counters (id, n) VALUES (?, ?)`, "first", 0)
			return err
		})
	}()
	<-started
	groupsBefore := db.group.groups.Load()

	boom := errors.New("boom")
	cancelled, cancel := context.WithCancel(ctx)
	type outcome struct {
		err      error
		panicked any
	}
	results := make([]chan outcome, 6)
	for i := range results {
		results[i] = make(chan outcome, 1)
		c := ctx
		if i == 5 {
			c = cancelled
		}
		go func() {
			defer func() {
				if p := recover(); p != nil {
					results[i] <- outcome{panicked: p}
				}
			}()
			if i == 4 {
				_, err := db.Exec(c, `INSERT INTO counters (id, n) VALUES (?, ?)`, fmt.Sprint("g", i), i)
				results[i] <- outcome{err: err}
				return
			}
			err := db.InTx(c, func(tx *Tx) error {
				if _, err := tx.Exec(ctx, `INSERT INTO counters (id, n) VALUES (?, ?)`, fmt.Sprint("g", i), i); err != nil {
					return err
				}
				switch i {
				case 1:
					return boom
				case 3:
					panic("kaput")
				}
				return nil
			})
			results[i] <- outcome{err: err}
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		db.group.mu.Lock()
		queued := len(db.group.queue)
		db.group.mu.Unlock()
		if queued == len(results) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d transactions queued, want %d", queued, len(results))
		}
	}
	cancel()
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	got := make([]outcome, len(results))
	for i, ch := range results {
		got[i] = <-ch
	}
	for i, o := range got {
		switch i {
		case 1:
			if !errors.Is(o.err, boom) {
				t.Errorf("transaction 1 = %v, want its own error", o.err)
			}
		case 3:
			if o.panicked != "kaput" {
				t.Errorf("transaction 3 panicked with %v, want its own panic", o.panicked)
			}
		case 5:
			if !errors.Is(o.err, context.Canceled) {
				t.Errorf("cancelled transaction = %v, want context.Canceled", o.err)
			}
		default:
			if o.err != nil || o.panicked != nil {
				t.Errorf("transaction %d = %v / %v, want committed", i, o.err, o.panicked)
			}
		}
	}
	if n := db.group.groups.Load() - groupsBefore; n != 2 {
		t.Errorf("%d groups for the blocked transaction and the six queued behind it, want 2", n)
	}
	// The metrics saw both groups: one of 1, one of 6 (the cancelled one
	// included), and each transaction's outcome; all but the cancelled one
	// waited for the writer and ran.
	if count, sum := mustHistogram(t, db.metrics.groupSize); count != 2 || sum != 7 {
		t.Errorf("group sizes: %d groups of %v transactions in all, want 2 of 7", count, sum)
	}
	if count, _ := mustHistogram(t, db.metrics.writerWait); count != 6 {
		t.Errorf("%d writer waits recorded, want 6", count)
	}
	wantOutcomes := map[txOutcome]float64{txCommitted: 4, txRolledBack: 2, txCancelled: 1}
	for o, c := range db.metrics.transactions {
		if got := mustCounter(t, c); got != wantOutcomes[txOutcome(o)] {
			t.Errorf("%v transactions %s, want %v", got, txOutcomeLabels[o], wantOutcomes[txOutcome(o)])
		}
	}
	rows, err := db.Query(ctx, `SELECT id FROM counters ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if want := []string{"first", "g0", "g2", "g4"}; fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("rows %v, want %v (the failed, panicked and cancelled ones left nothing)", ids, want)
	}
}

// A RESTART checkpoint that a reader keeps busy gives up (reported
// incomplete, tried again at the next round) instead of holding the writer
// for the whole busy timeout, and leaves the writer's busy timeout as it
// was; once the reader is gone it completes.
func TestSQLiteRestartBlockedByReader(t *testing.T) {
	db, _ := openTestSQLite(t)
	ctx := context.Background()
	// No background checkpoint may empty the WAL before the reader starts:
	// a reader of a fully checkpointed WAL reads the file and blocks nothing.
	db.stopCheckpoints()
	mustInsertCounters(t, db, "r", 50)
	reader, err := db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM counters`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	mustInsertCounters(t, db, "s", 50) // frames the reader's snapshot predates
	complete, err := db.restart(ctx)
	if err != nil || complete {
		t.Fatalf("restart under a reader: complete %v, %v; want an incomplete one", complete, err)
	}
	var timeout int64
	if err := db.write.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&timeout); err != nil || timeout != sqliteBusyTimeout.Milliseconds() {
		t.Fatalf("writer's busy_timeout after restart = %d, %v; want %d", timeout, err, sqliteBusyTimeout.Milliseconds())
	}
	if err := reader.Rollback(); err != nil {
		t.Fatal(err)
	}
	if complete, err := db.restart(ctx); err != nil || !complete {
		t.Fatalf("restart without readers: complete %v, %v", complete, err)
	}
}

// "LIMIT ?" takes its integer argument into the text on SQLite (a bound
// LIMIT expires the prepared statement at every bind); other placeholders
// and their arguments stay as they are, and PostgreSQL keeps them all.
func TestInlineLimits(t *testing.T) {
	sqlite, pg := &DB{engine: SQLite}, &DB{engine: Postgres}
	tests := []struct {
		query string
		args  []any
		want  string
		kept  []any
	}{
		{`SELECT id FROM t WHERE a = ? ORDER BY id LIMIT ?`, []any{"x", 20},
			`SELECT id FROM t WHERE a = ? ORDER BY id LIMIT 20`, []any{"x"}},
		{`UPDATE t SET s = ? WHERE id IN (SELECT id FROM t WHERE d <= ? LIMIT ?) AND d <= ? RETURNING id`, []any{"s", 1, int64(5), 2},
			`UPDATE t SET s = ? WHERE id IN (SELECT id FROM t WHERE d <= ? LIMIT 5) AND d <= ? RETURNING id`, []any{"s", 1, 2}},
		{`SELECT id FROM t LIMIT ? OFFSET ?`, []any{int32(10), 30},
			`SELECT id FROM t LIMIT 10 OFFSET ?`, []any{30}},
		{`SELECT id FROM t WHERE a = ? LIMIT ?`, []any{"x", "not a number"},
			`SELECT id FROM t WHERE a = ? LIMIT ?`, []any{"x", "not a number"}},
		{`SELECT id FROM t WHERE a = ?`, []any{7},
			`SELECT id FROM t WHERE a = ?`, []any{7}},
	}
	for _, tt := range tests {
		got, kept := sqlite.inlineLimits(tt.query, tt.args)
		if got != tt.want || !slices.Equal(kept, tt.kept) {
			t.Errorf("inlineLimits(%q, %v) = %q, %v; want %q, %v", tt.query, tt.args, got, kept, tt.want, tt.kept)
		}
		if got, kept := pg.inlineLimits(tt.query, tt.args); got != tt.query || !slices.Equal(kept, tt.args) {
			t.Errorf("on PostgreSQL inlineLimits(%q) = %q, %v; want it unchanged", tt.query, got, kept)
		}
	}

	// Through the store: the limit applies, and each limit is a cached
	// statement of its own.
	db, _ := openTestSQLite(t)
	mustInsertCounters(t, db, "l", 5)
	for _, limit := range []int{2, 3, 2} {
		ids, err := All(context.Background(), db, "read counters", ScanString, `SELECT id FROM counters WHERE n >= ? ORDER BY id LIMIT ?`, 0, limit)
		if err != nil || len(ids) != limit {
			t.Fatalf("LIMIT %d read %v, %v", limit, ids, err)
		}
	}
	db.readStmts.mu.RLock()
	defer db.readStmts.mu.RUnlock()
	for _, q := range []string{"LIMIT 2", "LIMIT 3", "LIMIT ?"} {
		_, cached := db.readStmts.m[`SELECT id FROM counters WHERE n >= ? ORDER BY id `+q]
		if want := q != "LIMIT ?"; cached != want {
			t.Errorf("statement with %s cached: %v, want %v", q, cached, want)
		}
	}
}
