package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// maxGroup bounds how many transactions one group commit holds, so that a
// transaction queued behind a group waits for a bounded amount of others'
// work.
const maxGroup = 16

// errGroupAborted is the error of a transaction that succeeded but whose
// group could not commit as a whole because another member's failure
// aborted the SQLite transaction they shared; it is retryable.
var errGroupAborted = errors.New("store: the group commit was aborted by another transaction's failure; retry")

// groupCommit runs the transactions of a SQLite database (one writer
// connection) in groups (ADR 18): the transactions queued while a group
// runs form the next group, each inside a savepoint of one SQLite
// transaction, and one COMMIT makes them all durable. A failing
// transaction rolls back to its savepoint and leaves the others alone.
// Under concurrency most of a commit's cost — writing the changed pages
// to the WAL (pages the group's transactions share are written once), the
// locks, the read snapshot — is paid once per group instead of once per
// transaction. Alone, a transaction runs as it would without it.
//
// Callers wait until their group committed (or failed): InTx returns only
// once its work is as durable as a commit makes it, and a transaction of a
// group sees the uncommitted writes of the group's earlier members — which
// commit with it or not at all.
type groupCommit struct {
	db *DB

	mu      sync.Mutex
	queue   []*txRequest
	leading bool // a goroutine is running groups

	groups atomic.Uint64 // groups run (SQLite transactions)
}

// txRequest is one InTx call waiting for, or running in, a group.
type txRequest struct {
	ctx context.Context
	fn  func(*Tx) error
	tx  *Tx

	err      error
	panicked any
	outcome  txOutcome
	queued   time.Time // when it started waiting for the writer (with metrics only)
	// lead is closed to hand the next group to this request's goroutine;
	// done when its group finished.
	lead, done chan struct{}
}

// run runs fn in the next group and returns its outcome; the caller's
// goroutine may run groups (its own and the next ones) meanwhile.
func (g *groupCommit) run(ctx context.Context, fn func(*Tx) error) (*Tx, error) {
	req := &txRequest{ctx: ctx, fn: fn, queued: g.db.metrics.now(), lead: make(chan struct{}), done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, req)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	if !lead {
		select {
		case <-req.done:
		case <-req.lead:
		}
	}
	select {
	case <-req.done:
	default:
		g.runGroups(req)
	}
	if req.panicked != nil {
		panic(req.panicked)
	}
	return req.tx, req.err
}

// runGroups runs the next group — own is its first request — and then
// hands the group after it (if any) to its first request's goroutine, so
// that no caller runs others' groups after its own.
func (g *groupCommit) runGroups(own *txRequest) {
	g.mu.Lock()
	n := min(len(g.queue), maxGroup)
	group := make([]*txRequest, n)
	copy(group, g.queue)
	g.queue = g.queue[n:]
	g.mu.Unlock()

	g.commit(group)
	g.groups.Add(1)
	g.db.metrics.grouped(group)
	for _, r := range group {
		if r != own {
			close(r.done)
		}
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queue) == 0 {
		g.leading = false
		return
	}
	close(g.queue[0].lead)
}

// commit runs a group in one SQLite transaction and records each
// request's outcome (err, panicked and outcome).
func (g *groupCommit) commit(group []*txRequest) {
	db := g.db
	// Not a request's context: one cancelled caller must not roll back
	// the others' work (its own statements still see its context).
	sqlTx, err := db.write.BeginTx(context.Background(), nil)
	if err != nil {
		for _, r := range group {
			r.err, r.outcome = fmt.Errorf("begin transaction: %w", err), txFailed
		}
		return
	}
	var unprepared []string
	defer func() { db.writeStmts.prepareAll(unprepared) }()

	if len(group) == 1 {
		r := group[0]
		r.tx = &Tx{tx: sqlTx, db: db}
		db.metrics.waited(r.queued)
		r.runAlone()
		unprepared = r.tx.unprepared
		return
	}

	committed := 0
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.err, r.outcome = err, txCancelled
			continue
		}
		r.tx = &Tx{tx: sqlTx, db: db}
		db.metrics.waited(r.queued)
		ok, aborted := r.runInSavepoint()
		unprepared = append(unprepared, r.tx.unprepared...)
		if aborted {
			// SQLite rolled the shared transaction back (or the savepoint
			// cannot be undone): nobody's work survives.
			_ = sqlTx.Rollback()
			for _, o := range group {
				if o.err == nil && o.panicked == nil {
					o.err, o.outcome = errGroupAborted, txAborted
				}
			}
			return
		}
		if ok {
			committed++
		}
	}
	if committed == 0 {
		_ = sqlTx.Rollback()
		return
	}
	if err := sqlTx.Commit(); err != nil {
		for _, r := range group {
			if r.err == nil && r.panicked == nil {
				r.err, r.outcome = fmt.Errorf("commit: %w", err), txFailed
			}
		}
	}
}

// runAlone runs a group of one: the whole transaction is the request's.
func (r *txRequest) runAlone() {
	defer func() {
		if p := recover(); p != nil {
			_ = r.tx.tx.Rollback()
			r.panicked, r.outcome = p, txRolledBack
		}
	}()
	r.outcome, r.err = r.tx.run(r.fn)
}

// runInSavepoint runs the request inside a savepoint of the group's
// transaction: released when fn succeeds (ok), rolled back to when it
// fails or panics; aborted when the savepoint could not be undone.
func (r *txRequest) runInSavepoint() (ok, aborted bool) {
	ctx := context.Background()
	if _, err := r.tx.Exec(ctx, `SAVEPOINT souk_group`); err != nil {
		r.err, r.outcome = fmt.Errorf("begin transaction: %w", err), txAborted
		return false, true
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				r.panicked = p
			}
		}()
		r.err = r.fn(r.tx)
	}()
	if r.err == nil && r.panicked == nil {
		if _, err := r.tx.Exec(ctx, `RELEASE souk_group`); err != nil {
			r.err, r.outcome = fmt.Errorf("commit: %w", err), txAborted
			return false, true
		}
		r.outcome = txCommitted // once the group commits
		return true, false
	}
	r.outcome = txRolledBack
	if _, err := r.tx.Exec(ctx, `ROLLBACK TO souk_group`); err != nil {
		return false, true
	}
	if _, err := r.tx.Exec(ctx, `RELEASE souk_group`); err != nil {
		return false, true
	}
	return false, false
}
