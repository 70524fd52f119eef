package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The small pieces of SQL every service's store writes the same way.

// Placeholders returns n placeholders, "?, ?, …", for an IN (…) list or a
// VALUES row; Args makes the matching arguments.
func Placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// Args returns the elements of xs as query arguments:
//
//	q.Query(ctx, `… WHERE id IN (`+store.Placeholders(len(ids))+`)`, store.Args(ids)...)
func Args[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// ChangedOne reports whether the statement whose result and error it is
// given changed exactly one row — what a conditional write ("UPDATE … WHERE
// version = ?", "INSERT … ON CONFLICT DO NOTHING") tells by it:
//
//	ok, err := store.ChangedOne(tx.Exec(ctx, `UPDATE …`, …))
//
// It returns the statement's error unchanged.
func ChangedOne(res sql.Result, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

// Claim records key, with value and at, in table — a service's meta table
// of (key TEXT PRIMARY KEY, value TEXT, created_at TIMESTAMP) — once per
// database: true for the transaction that recorded it, false when it was
// there already. Two transactions racing to claim the same key never both
// win: the second waits for the first's unique key (PostgreSQL) or write
// lock (SQLite). Seeding demo data once uses it. table is a constant of the
// caller's, never user input.
func Claim(ctx context.Context, tx *Tx, table, key, value string, at time.Time) (bool, error) {
	ok, err := ChangedOne(tx.Exec(ctx, `INSERT INTO `+table+` (key, value, created_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING`, key, value, at))
	if err != nil {
		return false, fmt.Errorf("record %s: %w", key, err)
	}
	return ok, nil
}

// RowScanner is what *sql.Row and *sql.Rows have in common, so that one
// scan function reads a row of a single-row query and of a listing.
type RowScanner interface{ Scan(dest ...any) error }

// JSONText encodes v for a JSON column stored as TEXT. Only plain data
// reaches it (structs, slices and maps of strings, numbers and booleans),
// whose encoding cannot fail; a value encoding/json rejects is a
// programming error, and it panics rather than store a broken column.
func JSONText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("store: marshal %T: %v", v, err))
	}
	return string(b)
}

// TimeOrNil returns a nullable TIMESTAMP column as scanned into t: nil for
// NULL, else the time in UTC (the drivers return it in the session's zone).
func TimeOrNil(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}
