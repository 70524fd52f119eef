// Package store opens a service's own SQL database — an embedded SQLite file
// (modernc.org/sqlite, pure Go) or PostgreSQL (pgx) — from one URL, applies the
// service's embedded migrations, and runs transactions. Queries are written
// once with `?` placeholders in the portable subset of both dialects; the
// store rewrites placeholders for PostgreSQL and normalises time arguments to
// UTC, so service code never branches on the engine except where a feature
// really differs (full-text search), for which Engine tells which one it is.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/prometheus/client_golang/prometheus"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Engine names a SQL engine.
type Engine string

// The supported engines.
const (
	SQLite   Engine = "sqlite"
	Postgres Engine = "postgres"
)

// Config says where a service's database lives.
type Config struct {
	// URL is "sqlite:<path>" (or a path ending in .db), or a PostgreSQL URL
	// "postgres://user@host:5432/db?sslmode=disable".
	URL string
	// Schema is the PostgreSQL schema the service's tables live in; it is
	// created when missing and becomes the connection's search_path, so
	// services sharing one PostgreSQL database never see each other's tables.
	// Ignored for SQLite (a file per service already separates them).
	Schema string
	// MaxOpenConns caps the connection pool (0: engine default); on SQLite
	// the read pool, beside the one writer connection.
	MaxOpenConns int
	// Logger receives what goes wrong in the background (SQLite
	// checkpoints); nil discards it.
	Logger *slog.Logger
	// Name names the database in its metrics (their db label): the service
	// it belongs to. Empty: the SQLite file's name without its extension.
	Name string
	// Registerer receives the SQLite machinery's metrics (souk_store_*, ADR
	// 18): transactions and group commits, the wait for the writer, WAL
	// checkpoints, the statement caches. Nil: no metrics. PostgreSQL
	// reports none.
	Registerer prometheus.Registerer
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate reports a configuration that cannot be opened.
func (c Config) Validate() error {
	engine, _, err := parseURL(c.URL)
	if err != nil {
		return err
	}
	if engine == Postgres && c.Schema != "" && !schemaName.MatchString(c.Schema) {
		return fmt.Errorf("schema %q: want lower-case letters, digits and underscores", c.Schema)
	}
	return nil
}

// DB is a service's database handle. It is safe for concurrent use.
//
// On PostgreSQL it is one pgx pool (pgx caches prepared statements per
// connection). On SQLite it is two pools on one file (ADR 18): a single
// writer connection that every transaction and every statement outside one
// queue for in Go — SQLite has one write lock per file, and waiting for it in
// SQLite's busy handler means sleeping in steps of up to 100 ms — and a pool
// of read-only connections for queries outside transactions, which WAL lets
// run beside the writer. Statements are prepared once per connection
// (stmtCache) and WAL checkpoints run in the background, not in a commit.
type DB struct {
	sql    *sql.DB // queries outside a transaction
	write  *sql.DB // transactions and writes: == sql on PostgreSQL
	engine Engine
	schema string
	rebind sync.Map // query string -> rewritten query (PostgreSQL only)

	readStmts, writeStmts *stmtCache     // SQLite only
	stopCheckpoints       func()         // SQLite only
	group                 *groupCommit   // SQLite only: transactions run in groups
	checkpoints           atomic.Uint64  // background checkpoints done
	metrics               *sqliteMetrics // SQLite only; nil: none
}

// Open connects to the database and checks that it answers. For SQLite it
// creates the file's directory, and turns on WAL, a busy timeout (for other
// processes on the same file), foreign keys and immediate write
// transactions.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	engine, target, _ := parseURL(cfg.URL)
	if engine == SQLite {
		log := cfg.Logger
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		name := cfg.Name
		if name == "" {
			name = metricsName(target)
		}
		metrics, err := newSQLiteMetrics(cfg.Registerer, name)
		if err != nil {
			return nil, err
		}
		return openSQLite(ctx, target, cfg.MaxOpenConns, log.With("db", target), metrics)
	}
	pool, err := openPostgres(ctx, target, cfg.Schema, cfg.MaxOpenConns)
	if err != nil {
		return nil, err
	}
	if err := pool.PingContext(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open %s database: %w", engine, err)
	}
	return &DB{sql: pool, write: pool, engine: engine, schema: cfg.Schema}, nil
}

func parseURL(raw string) (Engine, string, error) {
	switch {
	case raw == "":
		return "", "", errors.New("database URL is empty")
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		if _, err := pgx.ParseConfig(raw); err != nil {
			return "", "", fmt.Errorf("database URL: %w", err)
		}
		return Postgres, raw, nil
	case strings.HasPrefix(raw, "sqlite:"):
		p := strings.TrimPrefix(strings.TrimPrefix(raw, "sqlite:"), "//")
		if p == "" {
			return "", "", errors.New("database URL: sqlite: needs a file path")
		}
		return SQLite, p, nil
	case strings.HasSuffix(raw, ".db"):
		return SQLite, raw, nil
	}
	return "", "", fmt.Errorf("database URL %q: want postgres://… or sqlite:<path>", raw)
}

func openPostgres(ctx context.Context, raw, schema string, maxConns int) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	if schema != "" {
		if err := createSchema(ctx, cfg.Copy(), schema); err != nil {
			return nil, err
		}
		cfg.RuntimeParams["search_path"] = schema
	}
	db := stdlib.OpenDB(*cfg)
	if maxConns <= 0 {
		maxConns = 20
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

func createSchema(ctx context.Context, cfg *pgx.ConnConfig, schema string) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize())
	var pgErr *pgconn.PgError
	// Two processes creating the schema at once: the loser sees a unique violation.
	if errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "42P06") {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("create schema %s: %w", schema, err)
	}
	return nil
}

// Engine tells which engine the database runs on.
func (db *DB) Engine() Engine { return db.engine }

// Schema is the PostgreSQL schema of the service ("" for SQLite).
func (db *DB) Schema() string { return db.schema }

// SQL returns the underlying *sql.DB that may write (on SQLite the single
// writer connection), for tools: migrations, session locks. Holding one of
// its connections blocks every transaction of a SQLite database.
func (db *DB) SQL() *sql.DB { return db.write }

// Ping checks the database answers; readiness probes call it.
func (db *DB) Ping(ctx context.Context) error { return db.sql.PingContext(ctx) }

// Close stops the background checkpoints and closes the pools.
func (db *DB) Close() error {
	if db.stopCheckpoints != nil {
		db.stopCheckpoints()
	}
	err := db.sql.Close()
	if db.write != db.sql {
		err = errors.Join(err, db.write.Close())
	}
	return err
}

// Querier is what DB and Tx have in common: queries with `?` placeholders.
type Querier interface {
	Exec(ctx context.Context, query string, args ...any) (sql.Result, error)
	Query(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) *sql.Row
	Engine() Engine
}

var (
	_ Querier = (*DB)(nil)
	_ Querier = (*Tx)(nil)
)

// Exec runs a statement outside a transaction. On SQLite it runs as a
// transaction of its own in the group commit (ADR 18), so a lone write
// shares the next group's COMMIT — and its WAL frames — with the
// transactions queued beside it instead of paying for one of its own.
// Never call it from inside InTx's function: on SQLite it would wait for
// the transaction that waits for it.
func (db *DB) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if db.group != nil {
		var res sql.Result
		err := db.InTx(ctx, func(tx *Tx) error {
			var err error
			res, err = tx.Exec(ctx, query, args...)
			return err
		})
		return res, err
	}
	if st := db.writeStmts.get(ctx, query); st != nil {
		return st.ExecContext(ctx, normalize(args)...)
	}
	return db.write.ExecContext(ctx, db.bind(query), normalize(args)...)
}

// Query runs a query outside a transaction. It sees every transaction
// committed before it starts.
func (db *DB) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	query, args = db.inlineLimits(query, args)
	if st := db.readStmts.get(ctx, query); st != nil {
		return st.QueryContext(ctx, normalize(args)...)
	}
	return db.sql.QueryContext(ctx, db.bind(query), normalize(args)...)
}

// QueryRow runs a query expected to return at most one row.
func (db *DB) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	query, args = db.inlineLimits(query, args)
	if st := db.readStmts.get(ctx, query); st != nil {
		return st.QueryRowContext(ctx, normalize(args)...)
	}
	return db.sql.QueryRowContext(ctx, db.bind(query), normalize(args)...)
}

// limitMarker is how a query takes its row limit as an argument.
const limitMarker = "LIMIT ?"

// inlineLimits writes the integer argument of each "LIMIT ?" into a SQLite
// query's text and drops it from args. SQLite reads a bound LIMIT while it
// plans a statement, and so marks the prepared statement expired whenever
// that parameter is bound again: every run of a cached statement with
// LIMIT ? was parsed and planned anew (1.3 % of souk's CPU under the
// checkout benchmark, ADR 18). With the value in the text each limit is a
// statement of its own in the cache; limits come from a few page and batch
// sizes. PostgreSQL plans generically and keeps its parameters.
func (db *DB) inlineLimits(query string, args []any) (string, []any) {
	if db.engine != SQLite || !strings.Contains(query, limitMarker) {
		return query, args
	}
	var (
		b    strings.Builder
		kept = make([]any, 0, len(args))
		arg  int
	)
	for i := 0; i < len(query); i++ {
		if query[i] != '?' {
			b.WriteByte(query[i])
			continue
		}
		if arg < len(args) {
			if n, ok := limitValue(args[arg]); ok && strings.HasSuffix(query[:i+1], limitMarker) {
				b.WriteString(strconv.FormatInt(n, 10))
				arg++
				continue
			}
			kept = append(kept, args[arg])
		}
		arg++
		b.WriteByte('?')
	}
	if arg < len(args) {
		kept = append(kept, args[arg:]...)
	}
	return b.String(), kept
}

// limitValue is v as a row limit: an integer.
func limitValue(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	}
	return 0, false
}

// bind rewrites `?` placeholders to `$n` for PostgreSQL. Queries never contain
// a literal question mark outside a placeholder (pass it as an argument).
func (db *DB) bind(query string) string {
	if db.engine != Postgres {
		return query
	}
	if q, ok := db.rebind.Load(query); ok {
		return q.(string)
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	q := b.String()
	db.rebind.Store(query, q)
	return q
}

// normalize stores every time in UTC, so that SQLite's text timestamps
// compare in time order and both engines return the same instant.
func normalize(args []any) []any {
	for i, a := range args {
		switch v := a.(type) {
		case time.Time:
			args[i] = v.UTC()
		case *time.Time:
			if v != nil {
				args[i] = v.UTC()
			} else {
				args[i] = nil
			}
		}
	}
	return args
}

// Tx is a transaction on a service's database.
type Tx struct {
	tx          *sql.Tx
	db          *DB
	afterCommit []func()
	unprepared  []string // statements to prepare for the next transactions (SQLite)
}

// Engine tells which engine the transaction runs on.
func (tx *Tx) Engine() Engine { return tx.db.engine }

// Exec runs a statement in the transaction.
func (tx *Tx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	query, args = tx.db.inlineLimits(query, args)
	if st := tx.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, normalize(args)...)
	}
	return tx.tx.ExecContext(ctx, tx.db.bind(query), normalize(args)...)
}

// Query runs a query in the transaction.
func (tx *Tx) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	query, args = tx.db.inlineLimits(query, args)
	if st := tx.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, normalize(args)...)
	}
	return tx.tx.QueryContext(ctx, tx.db.bind(query), normalize(args)...)
}

// QueryRow runs a query expected to return at most one row.
func (tx *Tx) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	query, args = tx.db.inlineLimits(query, args)
	if st := tx.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, normalize(args)...)
	}
	return tx.tx.QueryRowContext(ctx, tx.db.bind(query), normalize(args)...)
}

// stmt is the writer's prepared statement of query bound to the
// transaction, or nil: then the statement runs unprepared this time, and is
// prepared once the transaction has given the writer connection back
// (preparing on the pool now would wait for this very transaction).
func (tx *Tx) stmt(ctx context.Context, query string) *sql.Stmt {
	c := tx.db.writeStmts
	if c == nil {
		return nil
	}
	if st, ok := c.lookup(query); ok {
		return tx.tx.StmtContext(ctx, st)
	}
	if c.wants(query) {
		tx.unprepared = append(tx.unprepared, query)
	}
	return nil
}

// AfterCommit registers fn to run after the transaction commits (never when
// it rolls back). The outbox uses it to wake its relay.
func (tx *Tx) AfterCommit(fn func()) { tx.afterCommit = append(tx.afterCommit, fn) }

// maxAttempts bounds how often InTx re-runs a transaction that lost a
// serialization race or a deadlock.
const maxAttempts = 5

// InTx runs fn in a transaction and commits when fn returns nil; otherwise it
// rolls back and returns fn's error unchanged. A transaction that fails with
// a serialization failure or deadlock (PostgreSQL) or a busy database
// (SQLite) is retried a few times with a short backoff, so fn must do nothing
// outside the transaction that cannot be repeated.
func (db *DB) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = db.inTx(ctx, fn)
		if err == nil || attempt == maxAttempts || !db.Retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt*attempt) * 5 * time.Millisecond):
		}
	}
}

func (db *DB) inTx(ctx context.Context, fn func(tx *Tx) error) error {
	var tx *Tx
	if db.group != nil {
		var err error
		if tx, err = db.group.run(ctx, fn); err != nil {
			return err
		}
	} else {
		sqlTx, err := db.write.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
		tx = &Tx{tx: sqlTx, db: db}
		if _, err := tx.run(fn); err != nil {
			return err
		}
	}
	for _, f := range tx.afterCommit {
		f()
	}
	return nil
}

// run runs fn and commits, or rolls back when fn fails or panics (and
// panics again); the outcome tells fn's failure from the commit's.
func (tx *Tx) run(fn func(tx *Tx) error) (txOutcome, error) {
	defer func() {
		if p := recover(); p != nil {
			_ = tx.tx.Rollback()
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		_ = tx.tx.Rollback()
		return txRolledBack, err
	}
	if err := tx.tx.Commit(); err != nil {
		return txFailed, fmt.Errorf("commit: %w", err)
	}
	return txCommitted, nil
}

// IsUniqueViolation reports whether err is a unique or primary key violation.
func (db *DB) IsUniqueViolation(err error) bool { return IsUniqueViolation(err) }

// IsUniqueViolation reports whether err, from either engine, is a unique or
// primary key constraint violation.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		c := sqErr.Code()
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// IsForeignKeyViolation reports whether err, from either engine, is a foreign
// key constraint violation.
func IsForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23503"
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		return sqErr.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	return false
}

// Retryable reports whether err is a transient concurrency failure that a
// repeated transaction may not meet: PostgreSQL serialization failure or
// deadlock, SQLite busy or locked.
func (db *DB) Retryable(err error) bool {
	if errors.Is(err, errGroupAborted) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "40001" || pgErr.Code == "40P01"
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		c := sqErr.Code() & 0xff
		return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
	}
	return false
}
