package store

import (
	"context"
	"fmt"
)

// All runs query on q and returns its rows, each read by scan, in the order
// the query returns them (nil for none): the loop every listing writes.
// Its errors, the query's, scan's first or the rows', are wrapped with
// what, a verb phrase such as "list webhooks". It closes the rows before it
// returns, so a caller in a transaction may query again at once.
func All[T any](ctx context.Context, q Querier, what string, scan func(RowScanner) (T, error), query string, args ...any) ([]T, error) {
	var out []T
	err := Each(ctx, q, what, func(r RowScanner) error {
		v, err := scan(r)
		if err != nil {
			return err
		}
		out = append(out, v)
		return nil
	}, query, args...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Each runs query on q and calls fn with each of its rows in turn,
// stopping at fn's first error: for a reader that gathers rows into a map
// or onto rows read before. Errors and closing as in All.
func Each(ctx context.Context, q Querier, what string, fn func(RowScanner) error, query string, args ...any) error {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// ScanString reads a row of one text column, such as an id: the scan of
// All for a listing of ids.
func ScanString(r RowScanner) (string, error) {
	var s string
	err := r.Scan(&s)
	return s, err
}
