package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// SQLite tuning (ADR 18).
const (
	// sqliteBusyTimeout is how long a connection waits for a lock another
	// process holds (souk migrate beside a running server); within one
	// process the writer is queued for in Go and never meets it.
	sqliteBusyTimeout = 10 * time.Second
	// checkpointInterval is how often the background checkpointer copies
	// the WAL back into the database file.
	checkpointInterval = time.Second
	// walRestartFrames is the WAL size (in pages) above which a checkpoint
	// also restarts the WAL from its beginning, so that it stops growing
	// while readers keep it busy. RESTART waits for the writer connection
	// like a transaction does.
	walRestartFrames = 4096
)

// openSQLite opens the file's writer connection and its read-only pool
// (maxReaders connections; 0: twice GOMAXPROCS, at least 4), and starts the
// background checkpointer; metrics may be nil.
func openSQLite(ctx context.Context, path string, maxReaders int, log *slog.Logger, metrics *sqliteMetrics) (*DB, error) {
	memory := path == ":memory:"
	if !memory {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
	}
	write, err := sqlitePool(path, 1, "immediate")
	if err != nil {
		return nil, err
	}
	db := &DB{write: write, sql: write, engine: SQLite, metrics: metrics}
	if err := write.PingContext(ctx); err != nil { // creates the file and turns WAL on
		write.Close()
		return nil, fmt.Errorf("open sqlite database: %w", err)
	}
	db.writeStmts = newStmtCache(write)
	metrics.countStatements(db.writeStmts, "write")
	db.group = &groupCommit{db: db}
	if memory {
		// Every connection to :memory: is a database of its own: one
		// connection does everything.
		db.readStmts = db.writeStmts
		return db, nil
	}
	if maxReaders <= 0 {
		maxReaders = max(4, 2*runtime.GOMAXPROCS(0))
	}
	read, err := sqlitePool(path, maxReaders, "deferred", "query_only(1)")
	if err != nil {
		write.Close()
		return nil, err
	}
	if err := read.PingContext(ctx); err != nil {
		read.Close()
		write.Close()
		return nil, fmt.Errorf("open sqlite database: %w", err)
	}
	db.sql, db.readStmts = read, newStmtCache(read)
	metrics.countStatements(db.readStmts, "read")
	db.stopCheckpoints = db.checkpointInBackground(log)
	return db, nil
}

// sqlitePool opens a pool of n connections to the file with the pragmas
// every connection needs, and extra ones.
func sqlitePool(path string, n int, txlock string, extra ...string) (*sql.DB, error) {
	q := url.Values{}
	pragmas := []string{"journal_mode(WAL)", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()),
		"foreign_keys(1)", "synchronous(NORMAL)", "wal_autocheckpoint(0)"}
	for _, p := range append(pragmas, extra...) {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", txlock)
	pool, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	pool.SetMaxOpenConns(n)
	pool.SetMaxIdleConns(n)
	return pool, nil
}

// checkpointInBackground copies the WAL into the database file every
// checkpointInterval, from a read connection and without blocking readers
// or the writer (PASSIVE), and restarts a WAL that grew past
// walRestartFrames through the writer. SQLite would otherwise checkpoint
// inside the commit that fills the WAL, holding the write lock through the
// checkpoint's fsync. It returns the function that stops it (once).
func (db *DB) checkpointInBackground(log *slog.Logger) func() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(checkpointInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			db.checkpointOnce(ctx, log)
		}
	})
	var once sync.Once // a second Close must not checkpoint a closed pool
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			// A last full checkpoint, so the file is complete on its own.
			ctx, cancel := context.WithTimeout(context.Background(), sqliteBusyTimeout)
			defer cancel()
			_, _, _ = db.checkpoint(ctx, db.write, checkpointTruncate)
		})
	}
}

// checkpointOnce is one round of the background checkpointer: PASSIVE, and
// RESTART when the WAL passed walRestartFrames. What keeps the WAL growing
// — a failed checkpoint, a RESTART a reader kept busy — is logged.
func (db *DB) checkpointOnce(ctx context.Context, log *slog.Logger) {
	mode := checkpointPassive
	frames, _, err := db.checkpoint(ctx, db.sql, mode)
	complete := true // a PASSIVE checkpoint may leave what readers still use
	if err == nil && frames > walRestartFrames {
		mode = checkpointRestart
		complete, err = db.restart(ctx)
	}
	switch {
	case ctx.Err() != nil: // stopping
	case err != nil:
		log.Warn("store: SQLite WAL checkpoint failed; the WAL keeps growing until one succeeds", "mode", mode.String(), "error", err)
	case !complete:
		log.Warn("store: SQLite WAL restart blocked by a reader; the WAL keeps growing until one succeeds", "mode", mode.String(), "wal_pages", frames)
	}
	if err == nil {
		db.checkpoints.Add(1)
	}
}

// restartBusyTimeout is how long a RESTART checkpoint waits for readers to
// leave the WAL. It holds the writer meanwhile, so it gives up quickly (and
// is tried again at the next round) rather than stall every write for
// sqliteBusyTimeout behind a long-lived reader.
const restartBusyTimeout = 100 * time.Millisecond

// restart runs a RESTART checkpoint on the writer connection with a short
// busy timeout, restoring the usual one after it.
func (db *DB) restart(ctx context.Context) (complete bool, err error) {
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", restartBusyTimeout.Milliseconds())); err != nil {
		return false, err
	}
	_, complete, err = db.checkpoint(ctx, conn, checkpointRestart)
	// The writer must not keep the short timeout (it waits for another
	// process's writer with it); if the pragma fails, the connection goes.
	if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("PRAGMA busy_timeout = %d", sqliteBusyTimeout.Milliseconds())); rerr != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		return complete, errors.Join(err, rerr)
	}
	return complete, err
}

// rowQuerier is a pool or one of its connections.
type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// checkpoint runs one WAL checkpoint, records it in the metrics and returns
// the WAL's size in pages and whether the whole WAL was copied back
// (false: readers still needed part of it, or SQLite reported the
// checkpoint busy). A checkpoint that ctx interrupted is not recorded.
func (db *DB) checkpoint(ctx context.Context, pool rowQuerier, mode checkpointMode) (frames int, complete bool, err error) {
	var busy, copied int
	err = pool.QueryRowContext(ctx, `PRAGMA wal_checkpoint(`+mode.String()+`)`).Scan(&busy, &frames, &copied)
	if errors.Is(err, sql.ErrNoRows) {
		err = nil
	}
	complete = err == nil && busy == 0 && copied >= frames
	if ctx.Err() == nil {
		db.metrics.checkpointed(mode, frames, complete, err)
	}
	return frames, complete, err
}
