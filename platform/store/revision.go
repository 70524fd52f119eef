package store

import (
	"context"
	"fmt"
)

// Revision names a one-row counter table of a service's: a value that
// changes with every committed transaction that bumps it, so a process that
// finds the value it cached data under knows that data is current, whichever
// process wrote last (revcache; ADRs 17 and 19). The service's migrations
// create the table, with the one row starting at a random value so that a
// database made anew never repeats the revisions of one a running process
// cached:
//
//	CREATE TABLE x_revision (id INTEGER PRIMARY KEY CHECK (id = 1), n BIGINT NOT NULL);
//	INSERT INTO x_revision (id, n) VALUES (1, abs(random() % 1000000000000)); -- SQLite
//	INSERT INTO x_revision (id, n) VALUES (1, floor(random() * 1000000000000)::BIGINT); -- PostgreSQL
//
// A Revision is a constant of the service's; it holds no state.
type Revision struct {
	// Table is the counter table's name, a constant of the service's,
	// never user input.
	Table string
}

// Bump records in tx that what the revision covers changes. Every
// transaction that writes it must call Bump before it commits. On PostgreSQL
// it holds the row's lock until commit, so such transactions serialise;
// SQLite's write transactions are serialised already.
func (r Revision) Bump(ctx context.Context, tx *Tx) error {
	if _, err := tx.Exec(ctx, `UPDATE `+r.Table+` SET n = n + 1 WHERE id = 1`); err != nil {
		return fmt.Errorf("bump %s: %w", r.Table, err)
	}
	return nil
}

// Read returns the revision as committed now (in a transaction, as that
// transaction sees it). Revisions only tell equal from different: a database
// made anew starts anywhere, so a higher value is not a newer state.
func (r Revision) Read(ctx context.Context, q Querier) (int64, error) {
	var n int64
	if err := q.QueryRow(ctx, `SELECT n FROM `+r.Table+` WHERE id = 1`).Scan(&n); err != nil {
		return 0, fmt.Errorf("read %s: %w", r.Table, err)
	}
	return n, nil
}
