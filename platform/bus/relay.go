package bus

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/soukhq/souk/platform/store"
)

// RelayConfig tunes a Relay. The zero value is usable.
type RelayConfig struct {
	// Name labels the relay's metrics and logs, usually the service that owns
	// the outbox ("orders"); default "outbox".
	Name string
	// BatchSize is how many rows are read per query (default 100).
	BatchSize int
	// PollInterval is how often the outbox is read when nobody calls Wake,
	// which catches rows committed by other processes (default 1 s).
	PollInterval time.Duration
	// PublishTimeout bounds the publication of one row (default 10 s).
	PublishTimeout time.Duration
	// MinBackoff and MaxBackoff bound the pause after a failed publication;
	// it doubles with each consecutive failure, with jitter (defaults
	// 100 ms and 30 s).
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// Retention is how long published rows are kept, for inspection, before
	// they are deleted (default 24 h).
	Retention time.Duration
	// CleanupInterval is how often published rows older than Retention are
	// deleted (default 10 min).
	CleanupInterval time.Duration
	// LockRetry is how often a relay on PostgreSQL that is not the active
	// one tries to take over (default 5 s).
	LockRetry time.Duration
	// Gather is how long the relay waits after a Wake before it reads the
	// outbox, so that the rows of the transactions committing meanwhile go
	// out in the same batch: one query and one marking for many rows
	// instead of one each (default 10 ms; negative: none). It is added to
	// every event's delivery time. Under the checkout benchmark's load
	// (~250 orders/s, 7 events each) 2 ms gathered one or two rows per
	// read; 10 ms cut souk's CPU per order by ~3 % (bench/RESULTS.md), and
	// no event is on a path a client waits for.
	Gather time.Duration
	// ObserveInterval is how often the pending and lag gauges are
	// refreshed while the relay keeps publishing (default 1 s).
	ObserveInterval time.Duration
}

func (c *RelayConfig) setDefaults() {
	if c.Name == "" {
		c.Name = "outbox"
	}
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.Gather == 0 {
		c.Gather = 10 * time.Millisecond
	}
	if c.ObserveInterval == 0 {
		c.ObserveInterval = time.Second
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 10 * time.Second
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.Retention == 0 {
		c.Retention = 24 * time.Hour
	}
	if c.CleanupInterval == 0 {
		c.CleanupInterval = 10 * time.Minute
	}
	if c.LockRetry == 0 {
		c.LockRetry = 5 * time.Second
	}
}

// Validate reports the first setting that cannot work, naming it; unset
// fields take their defaults first.
func (c RelayConfig) Validate() error {
	c.setDefaults()
	switch {
	case c.BatchSize < 1 || c.BatchSize > 10000:
		return fmt.Errorf("bus: relay %s: BatchSize %d: want 1 to 10000", c.Name, c.BatchSize)
	case c.PollInterval < 0, c.PublishTimeout < 0, c.MinBackoff < 0, c.MaxBackoff < 0,
		c.Retention < 0, c.CleanupInterval < 0, c.LockRetry < 0:
		return fmt.Errorf("bus: relay %s: durations must be positive", c.Name)
	case c.MaxBackoff < c.MinBackoff:
		return fmt.Errorf("bus: relay %s: MaxBackoff %v is below MinBackoff %v", c.Name, c.MaxBackoff, c.MinBackoff)
	}
	return nil
}

// Relay publishes a service's outbox rows to the bus in seq order and marks
// them published. Run it once per database per process; on PostgreSQL, where
// several processes of a service share a schema, only the one holding an
// advisory lock publishes and the others stand by. Publishing is at least
// once (a crash between publish and mark publishes a row again, which the
// bus's duplicate window and the consumers' inbox absorb); per aggregate the
// order is kept, because a failure stops the batch and the same row is
// retried before any later one. Wake and Flush are safe for concurrent use.
type Relay struct {
	db      *store.DB
	pub     Publisher
	cfg     RelayConfig
	log     *slog.Logger
	metrics *Metrics

	wake    chan struct{}
	running atomic.Bool
	active  atomic.Bool
}

// NewRelay returns a relay that publishes db's outbox through pub. logger and
// metrics may be nil.
func NewRelay(db *store.DB, pub Publisher, cfg RelayConfig, logger *slog.Logger, metrics *Metrics) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if db == nil || pub == nil {
		return nil, errors.New("bus: relay: db and publisher are required")
	}
	cfg.setDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Relay{
		db:      db,
		pub:     pub,
		cfg:     cfg,
		log:     logger.With("component", "outbox-relay", "outbox", cfg.Name),
		metrics: metrics.orNew(),
		wake:    make(chan struct{}, 1),
	}, nil
}

// Wake asks the relay to read the outbox now rather than at its next poll.
// It never blocks; wake-ups that arrive while one is pending coalesce. Give
// it to NewOutbox. A relay backing off after a failure ignores it.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Active reports whether this relay is currently the one publishing (always
// true on SQLite once Run started; on PostgreSQL, while it holds the lock).
func (r *Relay) Active() bool { return r.active.Load() }

// Run publishes until ctx is cancelled, then returns nil after finishing the
// row in hand (its publication and marking are not cut short). It never
// gives up on a failing bus: it backs off and retries the same row. Run
// returns an error only when the relay is already running.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("bus: relay %s is already running", r.cfg.Name)
	}
	defer r.running.Store(false)
	defer r.active.Store(false)
	var lock *advisoryLock
	if r.db.Engine() == store.Postgres {
		lock = newAdvisoryLock(r.db, "souk_outbox/"+r.db.Schema())
		defer lock.release()
	}

	nextCleanup, nextObserve := time.Now(), time.Now()
	var (
		failures     int
		failingSince time.Time
		lastReport   time.Time
		pending      int
	)
	for ctx.Err() == nil {
		if lock != nil {
			held, err := lock.acquire(ctx)
			if err != nil && ctx.Err() == nil {
				r.log.Warn("bus: relay could not check its PostgreSQL advisory lock", "error", err)
			}
			if was := r.active.Swap(held); was != held {
				if held {
					r.log.Info("bus: relay is now the active publisher for this schema")
				} else {
					r.log.Info("bus: relay stands by: another process publishes this schema's outbox")
				}
			}
			if !held {
				r.sleep(ctx, r.cfg.LockRetry, nil)
				continue
			}
		} else {
			r.active.Store(true)
		}

		err := r.drain(ctx)
		if err != nil || !time.Now().Before(nextObserve) {
			pending, _ = r.observe(ctx)
			nextObserve = time.Now().Add(r.cfg.ObserveInterval)
		}
		if !time.Now().Before(nextCleanup) {
			r.prune(ctx)
			nextCleanup = time.Now().Add(r.cfg.CleanupInterval)
		}
		if err != nil && ctx.Err() == nil {
			failures++
			if failures == 1 {
				failingSince = time.Now()
			}
			delay := backoff(failures, r.cfg.MinBackoff, r.cfg.MaxBackoff)
			if failures == 1 || time.Since(lastReport) >= 30*time.Second {
				lastReport = time.Now()
				r.log.Warn("bus: outbox relay cannot publish; events wait in the outbox and are retried in order",
					"pending", pending, "failures", failures, "failing_for", time.Since(failingSince).Round(time.Second),
					"retry_in", delay.Round(time.Millisecond), "error", err)
			}
			r.sleep(ctx, delay, nil)
			continue
		}
		if failures > 0 && err == nil {
			r.log.Info("bus: outbox relay publishes again", "failures", failures, "outage", time.Since(failingSince).Round(time.Millisecond))
			failures = 0
		}
		if r.sleep(ctx, r.cfg.PollInterval, r.wake) && r.cfg.Gather > 0 {
			r.sleep(ctx, r.cfg.Gather, nil)
		}
	}
	return nil
}

// sleep waits for d, ctx, or a wake-up when wake is non-nil; true when
// woken.
func (r *Relay) sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
		return true
	}
	return false
}

// backoff is the pause after the n-th consecutive failure: min doubled n-1
// times, capped at max, with equal jitter (between half and all of it).
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := hi
	if n-1 < 32 {
		if x := lo << (n - 1); x > 0 && x < hi {
			d = x
		}
	}
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

type outboxRow struct {
	seq     int64
	eventID string
	typ     string
	payload string
}

// drain publishes pending rows batch by batch until none is left, ctx is
// cancelled (after the row in hand), or a publication fails (then it stops:
// no later row may overtake the failed one).
func (r *Relay) drain(ctx context.Context) error {
	for {
		batch, err := r.next(ctx)
		if err != nil {
			return fmt.Errorf("read outbox: %w", err)
		}
		if len(batch) == 0 {
			return nil
		}
		done := make([]int64, 0, len(batch))
		var pubErr error
		for _, row := range batch {
			if ctx.Err() != nil {
				break
			}
			if err := r.publish(ctx, row); err != nil {
				pubErr = err
				r.metrics.relayFailures.WithLabelValues(r.cfg.Name).Inc()
				r.recordFailure(ctx, row, err)
				break
			}
			done = append(done, row.seq)
		}
		if err := r.markPublished(ctx, done); err != nil {
			return err
		}
		if pubErr != nil || ctx.Err() != nil || len(batch) < r.cfg.BatchSize {
			return pubErr
		}
	}
}

func (r *Relay) next(ctx context.Context) ([]outboxRow, error) {
	rows, err := r.db.Query(ctx,
		`SELECT seq, event_id, event_type, payload FROM souk_outbox WHERE published_at IS NULL ORDER BY seq LIMIT ?`,
		r.cfg.BatchSize)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var batch []outboxRow
	for rows.Next() {
		var row outboxRow
		if err := rows.Scan(&row.seq, &row.eventID, &row.typ, &row.payload); err != nil {
			return nil, err
		}
		batch = append(batch, row)
	}
	return batch, rows.Err()
}

// publish publishes one row; cancelling ctx does not cut it short.
func (r *Relay) publish(ctx context.Context, row outboxRow) error {
	var e Event
	if err := json.Unmarshal([]byte(row.payload), &e); err != nil {
		return fmt.Errorf("outbox row %d (%s %s) does not hold a CloudEvent: %w", row.seq, row.typ, row.eventID, err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.PublishTimeout)
	defer cancel()
	if err := r.pub.Publish(ctx, e); err != nil {
		return fmt.Errorf("outbox row %d: %w", row.seq, err)
	}
	r.metrics.outboxRelayed.WithLabelValues(r.cfg.Name).Inc()
	return nil
}

// dbContext is for bookkeeping that must finish even when ctx is cancelled.
func dbContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

func (r *Relay) markPublished(ctx context.Context, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	ctx, cancel := dbContext(ctx)
	defer cancel()
	args := make([]any, 0, len(seqs)+1)
	args = append(args, time.Now())
	for _, s := range seqs {
		args = append(args, s)
	}
	q := `UPDATE souk_outbox SET published_at = ?, attempts = attempts + 1, last_error = '' WHERE seq IN (?` +
		strings.Repeat(", ?", len(seqs)-1) + `)`
	if _, err := r.db.Exec(ctx, q, args...); err != nil {
		// The events are on the bus; they will be published again, and the
		// duplicate window and the consumers' inbox absorb that.
		return fmt.Errorf("mark %d outbox rows published: %w", len(seqs), err)
	}
	return nil
}

func (r *Relay) recordFailure(ctx context.Context, row outboxRow, cause error) {
	ctx, cancel := dbContext(ctx)
	defer cancel()
	if _, err := r.db.Exec(ctx, `UPDATE souk_outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?`,
		oneLine(cause.Error(), 2000), row.seq); err != nil {
		r.log.Warn("bus: could not record a failed publication", "seq", row.seq, "error", err)
	}
}

// observe updates the pending and lag gauges and returns the pending count.
func (r *Relay) observe(ctx context.Context) (int, error) {
	ctx, cancel := dbContext(ctx)
	defer cancel()
	n, err := r.Pending(ctx)
	if err != nil {
		return 0, err
	}
	lag := 0.0
	if n > 0 {
		var oldest time.Time
		err := r.db.QueryRow(ctx, `SELECT created_at FROM souk_outbox WHERE published_at IS NULL ORDER BY seq LIMIT 1`).Scan(&oldest)
		if err == nil {
			lag = max(time.Since(oldest).Seconds(), 0)
		}
	}
	r.metrics.outboxPending.WithLabelValues(r.cfg.Name).Set(float64(n))
	r.metrics.outboxLag.WithLabelValues(r.cfg.Name).Set(lag)
	return n, nil
}

// prune deletes published rows older than the retention.
func (r *Relay) prune(ctx context.Context) {
	ctx, cancel := dbContext(ctx)
	defer cancel()
	res, err := r.db.Exec(ctx, `DELETE FROM souk_outbox WHERE published_at IS NOT NULL AND published_at < ?`,
		time.Now().Add(-r.cfg.Retention))
	if err != nil {
		r.log.Warn("bus: could not prune published outbox rows", "error", err)
		return
	}
	if n, _ := res.RowsAffected(); n > 0 {
		r.log.Debug("bus: pruned published outbox rows", "rows", n)
	}
}

// Pending counts the outbox rows not yet published (committed ones only).
// Safe for concurrent use, with or without Run.
func (r *Relay) Pending(ctx context.Context) (int, error) {
	var n int
	if err := r.db.QueryRow(ctx, `SELECT COUNT(*) FROM souk_outbox WHERE published_at IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("bus: count pending outbox rows: %w", err)
	}
	return n, nil
}

// Flush wakes the relay and waits until the outbox has no pending row,
// bounded by ctx; on timeout it returns ctx's error with the pending count.
// Something must be running the relay (Run here, or the active relay of
// another process on PostgreSQL). Graceful shutdown and tests use it.
func (r *Relay) Flush(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		r.Wake()
		n, err := r.Pending(ctx)
		if err == nil && n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("bus: flush outbox %s: %w", r.cfg.Name, err)
			}
			return fmt.Errorf("bus: flush outbox %s: %d events still pending: %w", r.cfg.Name, n, ctx.Err())
		case <-t.C:
		}
	}
}

// advisoryLock is a PostgreSQL session advisory lock held on a dedicated
// connection: whoever holds it publishes the schema's outbox. It is used by
// one goroutine only.
type advisoryLock struct {
	db   *store.DB
	key  int64
	conn *sql.Conn
}

func newAdvisoryLock(db *store.DB, name string) *advisoryLock {
	h := fnv.New64a()
	h.Write([]byte(name))
	return &advisoryLock{db: db, key: int64(h.Sum64() >> 1)}
}

// acquire reports whether the lock is held, taking it when it is free. A
// held lock whose connection stopped answering counts as lost.
func (l *advisoryLock) acquire(ctx context.Context) (bool, error) {
	if l.conn != nil {
		err := l.conn.PingContext(ctx)
		if err == nil {
			return true, nil
		}
		discard(l.conn)
		l.conn = nil
		if ctx.Err() != nil {
			return false, err
		}
	}
	conn, err := l.db.SQL().Conn(ctx)
	if err != nil {
		return false, err
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, l.key).Scan(&ok); err != nil {
		discard(conn)
		return false, err
	}
	if !ok {
		_ = conn.Close()
		return false, nil
	}
	l.conn = conn
	return true, nil
}

func (l *advisoryLock) release() {
	if l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = l.conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, l.key)
	discard(l.conn)
	l.conn = nil
}

// discard closes the connection instead of returning it to the pool, so a
// session lock can never outlive its holder on a pooled connection.
func discard(c *sql.Conn) {
	_ = c.Raw(func(any) error { return driver.ErrBadConn })
	_ = c.Close()
}
