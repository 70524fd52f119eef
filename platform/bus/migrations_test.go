package bus

import (
	"context"
	"database/sql"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

// nextQuery is the relay's read of pending rows (Relay.next), whose plan must
// use souk_outbox_pending.
const nextQuery = `SELECT seq, event_id, event_type, payload FROM souk_outbox WHERE published_at IS NULL ORDER BY seq LIMIT ?`

// The outbox migration 00002 (SQLite: no AUTOINCREMENT, no unique event id;
// PostgreSQL: no unique event id) on a database that has run on 00001 keeps
// every row with its seq and state, leaves the pending index in use and
// sqlite_sequence untouched by new rows, and the relay goes on in seq order.
func TestOutboxMigrationKeepsRows(t *testing.T) {
	for _, engine := range []store.Engine{store.SQLite, store.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			ctx := context.Background()
			db := storetest.MustOpen(t, engine)
			if err := db.Migrate(ctx, storetest.MigrationsUpTo(t, Migrations, 1)); err != nil {
				t.Fatalf("migrate to 00001: %v", err)
			}
			ids := mustFillOutbox(t, db)
			if engine == store.SQLite {
				if n := sequenceRows(t, db); n != 1 {
					t.Fatalf("before 00002: %d sqlite_sequence rows for souk_outbox, want 1 (AUTOINCREMENT)", n)
				}
			}
			before := mustReadOutbox(t, db)

			if err := db.Migrate(ctx, Migrations); err != nil {
				t.Fatalf("migrate to the latest: %v", err)
			}
			if after := mustReadOutbox(t, db); !slices.Equal(after, before) {
				t.Errorf("rows after the migration:\n%v\nwant\n%v", after, before)
			}
			wantIndexes := map[store.Engine][]string{
				store.SQLite:   {"souk_outbox_pending"},
				store.Postgres: {"souk_outbox_pending", "souk_outbox_pkey"},
			}[engine]
			if got := outboxIndexes(t, db); !slices.Equal(got, wantIndexes) {
				t.Errorf("indexes on souk_outbox: %v, want %v (no unique event_id)", got, wantIndexes)
			}
			if engine == store.SQLite {
				if def := tableSQL(t, db); strings.Contains(strings.ToUpper(def), "AUTOINCREMENT") {
					t.Errorf("souk_outbox is still AUTOINCREMENT: %s", def)
				}
			}
			if plan := pendingPlan(t, db); !strings.Contains(plan, "souk_outbox_pending") {
				t.Errorf("the relay's query does not use souk_outbox_pending:\n%s", plan)
			}

			// New rows: above every seq in the table, in insertion order,
			// and no sqlite_sequence bookkeeping.
			maxSeq := before[len(before)-1].seq
			ob := NewOutbox(nil)
			var added []string
			for i := range 3 {
				e := MustEvent(t, ctx, "after_migration", "agg", i)
				mustAdd(t, db, ob, e)
				added = append(added, e.ID)
			}
			for _, id := range added {
				seq := int64(countRows(t, db, `SELECT seq FROM souk_outbox WHERE event_id = ?`, id))
				if seq <= maxSeq {
					t.Errorf("new row %s has seq %d, want above %d", id, seq, maxSeq)
				}
				maxSeq = seq
			}
			if engine == store.SQLite {
				if n := sequenceRows(t, db); n != 0 {
					t.Errorf("%d sqlite_sequence rows for souk_outbox after new inserts, want none", n)
				}
			}
			// Two rows may now share an event id (nothing relies on it
			// being unique; the bus and the inbox de-duplicate).
			if _, err := db.Exec(ctx, `INSERT INTO souk_outbox (event_id, event_type, aggregate_id, payload, created_at) SELECT event_id, event_type, aggregate_id, payload, created_at FROM souk_outbox WHERE event_id = ?`, added[2]); err != nil {
				t.Errorf("insert a second row with one event id: %v", err)
			}

			// The relay publishes what was pending before and after, in seq
			// order.
			pub := &recordingPublisher{}
			r, err := NewRelay(db, pub, RelayConfig{PollInterval: 10 * time.Millisecond}, testLogger(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			MustRunRelay(t, r)
			fctx, cancel := context.WithTimeout(ctx, waitLong)
			defer cancel()
			if err := r.Flush(fctx); err != nil {
				t.Fatal(err)
			}
			want := append(slices.Clone(ids.pending), added...)
			want = append(want, added[2])
			if got := pub.published(); !slices.Equal(got, want) {
				t.Errorf("published %v\nwant %v", got, want)
			}
		})
	}
}

// 00002's Down restores 00001's shape (AUTOINCREMENT with its sqlite_sequence
// row, the unique event id) with every row, and Up applies again.
func TestOutboxMigrationDown(t *testing.T) {
	storetest.Run(t, []store.Migrations{Migrations}, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		mustFillOutbox(t, db)
		before := mustReadOutbox(t, db)
		if err := db.MigrateDownTo(ctx, Migrations, 1); err != nil {
			t.Fatal(err)
		}
		if after := mustReadOutbox(t, db); !slices.Equal(after, before) {
			t.Errorf("rows after Down:\n%v\nwant\n%v", after, before)
		}
		wantIndexes := map[store.Engine][]string{
			store.SQLite:   {"souk_outbox_pending", "sqlite_autoindex_souk_outbox_1"},
			store.Postgres: {"souk_outbox_event_id_key", "souk_outbox_pending", "souk_outbox_pkey"},
		}[db.Engine()]
		if got := outboxIndexes(t, db); !slices.Equal(got, wantIndexes) {
			t.Errorf("indexes on souk_outbox after Down: %v, want %v", got, wantIndexes)
		}
		if db.Engine() == store.SQLite {
			if def := tableSQL(t, db); !strings.Contains(strings.ToUpper(def), "AUTOINCREMENT") {
				t.Errorf("souk_outbox is not AUTOINCREMENT after Down: %s", def)
			}
			var seq int64
			if err := db.QueryRow(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'souk_outbox'`).Scan(&seq); err != nil {
				t.Fatalf("sqlite_sequence after Down: %v", err)
			}
			if maxSeq := before[len(before)-1].seq; seq != maxSeq {
				t.Errorf("sqlite_sequence says %d after Down, want the highest seq %d", seq, maxSeq)
			}
		}
		if err := db.Migrate(ctx, Migrations); err != nil {
			t.Fatalf("up again: %v", err)
		}
		if after := mustReadOutbox(t, db); !slices.Equal(after, before) {
			t.Errorf("rows after Down and Up:\n%v\nwant\n%v", after, before)
		}
	})
}

type filledOutbox struct {
	pending []string // event ids of the unpublished rows, in seq order
}

// mustFillOutbox writes six rows and leaves them as a running service
// would: the first two published, the second of them pruned (a gap in seq),
// the third published after a failed attempt, the rest pending, one of those
// after a failure.
func mustFillOutbox(t testing.TB, db *store.DB) filledOutbox {
	t.Helper()
	ctx := context.Background()
	ob := NewOutbox(nil)
	var ids []string
	for i := range 6 {
		e := MustEvent(t, ctx, "before_migration", "agg"+strconv.Itoa(i%2), i)
		mustAdd(t, db, ob, e)
		ids = append(ids, e.ID)
	}
	published := time.Now().Add(-time.Hour)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE souk_outbox SET published_at = ?, attempts = 1 WHERE event_id IN (?, ?)`, []any{published, ids[0], ids[1]}},
		{`DELETE FROM souk_outbox WHERE event_id = ?`, []any{ids[1]}},
		{`UPDATE souk_outbox SET published_at = ?, attempts = 2 WHERE event_id = ?`, []any{published, ids[2]}},
		{`UPDATE souk_outbox SET attempts = 3, last_error = 'bus down' WHERE event_id = ?`, []any{ids[4]}},
	} {
		if _, err := db.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	return filledOutbox{pending: ids[3:]}
}

// outboxRecord is one souk_outbox row, every column; times as the driver
// renders them, so that equal means unchanged.
type outboxRecord struct {
	seq                                       int64
	eventID, typ, aggregate, payload, created string
	published                                 sql.NullString
	attempts                                  int
	lastError                                 string
}

func mustReadOutbox(t testing.TB, db *store.DB) []outboxRecord {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT seq, event_id, event_type, aggregate_id, payload, created_at, published_at, attempts, last_error FROM souk_outbox ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []outboxRecord
	for rows.Next() {
		var r outboxRecord
		if err := rows.Scan(&r.seq, &r.eventID, &r.typ, &r.aggregate, &r.payload, &r.created, &r.published, &r.attempts, &r.lastError); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("the outbox is empty")
	}
	return out
}

// outboxIndexes names the indexes on souk_outbox, sorted.
func outboxIndexes(t testing.TB, db *store.DB) []string {
	t.Helper()
	q := `SELECT name FROM pragma_index_list('souk_outbox') ORDER BY name`
	if db.Engine() == store.Postgres {
		q = `SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'souk_outbox' ORDER BY indexname`
	}
	names, err := store.All(context.Background(), db, "list indexes", store.ScanString, q)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// tableSQL is souk_outbox's CREATE TABLE statement (SQLite).
func tableSQL(t testing.TB, db *store.DB) string {
	t.Helper()
	var def string
	if err := db.QueryRow(context.Background(), `SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'souk_outbox'`).Scan(&def); err != nil {
		t.Fatal(err)
	}
	return def
}

// sequenceRows counts souk_outbox's rows in sqlite_sequence (0 when that
// table does not exist).
func sequenceRows(t testing.TB, db *store.DB) int {
	t.Helper()
	if countRows(t, db, `SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_sequence'`) == 0 {
		return 0
	}
	return countRows(t, db, `SELECT COUNT(*) FROM sqlite_sequence WHERE name = 'souk_outbox'`)
}

// pendingPlan is the query plan of the relay's read. PostgreSQL is told not
// to scan the table, which on a few rows it would prefer to any index.
func pendingPlan(t testing.TB, db *store.DB) string {
	t.Helper()
	ctx := context.Background()
	explain, column := "EXPLAIN QUERY PLAN ", 3 // id, parent, notused, detail
	if db.Engine() == store.Postgres {
		explain, column = "EXPLAIN ", 0
	}
	var plan []string
	err := db.InTx(ctx, func(tx *store.Tx) error {
		if db.Engine() == store.Postgres {
			if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, explain+nextQuery, 100)
		if err != nil {
			return err
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			return err
		}
		for rows.Next() {
			vals := make([]any, len(cols))
			var detail string
			for i := range vals {
				vals[i] = new(any)
			}
			vals[column] = &detail
			if err := rows.Scan(vals...); err != nil {
				return err
			}
			plan = append(plan, detail)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatalf("explain the relay's query: %v", err)
	}
	return strings.Join(plan, "\n")
}
