package store

import (
	"context"
	"fmt"
	"hash/fnv"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Migrations is one embedded set of migrations. FS holds the goose SQL files
// in two directories, sqlite/ and postgres/ (at its root or under
// migrations/, as `//go:embed migrations` gives them), numbered alike; most files are
// the same in both, and the few that differ (full-text search, column types)
// say so at the top. Each set records what it applied in its own version
// table, so the platform's tables (outbox, inbox, idempotency keys) and a
// service's tables migrate independently in the same database.
type Migrations struct {
	// Name is unique per database and names the version table
	// ("souk_migrations_<name>").
	Name string
	FS   fs.FS
}

// Migrate applies every pending migration of the sets, in order. On
// PostgreSQL a session advisory lock per schema and set serialises concurrent
// start-ups of the same service.
func (db *DB) Migrate(ctx context.Context, sets ...Migrations) error {
	for _, set := range sets {
		if err := db.migrate(ctx, set); err != nil {
			return fmt.Errorf("migrate %s: %w", set.Name, err)
		}
	}
	return nil
}

func (db *DB) migrate(ctx context.Context, set Migrations) error {
	p, err := db.provider(set)
	if err != nil {
		return err
	}
	_, err = p.Up(ctx)
	return err
}

// MigrateDownTo undoes the set's migrations above version, newest first,
// with their Down sections: a rollback, run by hand or by a migration's
// tests.
func (db *DB) MigrateDownTo(ctx context.Context, set Migrations, version int64) error {
	p, err := db.provider(set)
	if err != nil {
		return fmt.Errorf("migrate %s down: %w", set.Name, err)
	}
	if _, err := p.DownTo(ctx, version); err != nil {
		return fmt.Errorf("migrate %s down to %d: %w", set.Name, version, err)
	}
	return nil
}

// provider is goose on the set's directory for the engine, recording in the
// set's version table; on PostgreSQL it holds a session advisory lock per
// schema and set while it runs.
func (db *DB) provider(set Migrations) (*goose.Provider, error) {
	dir, dialect := "sqlite", goose.DialectSQLite3
	if db.engine == Postgres {
		dir, dialect = "postgres", goose.DialectPostgres
	}
	if _, err := fs.Stat(set.FS, dir); err != nil {
		dir = "migrations/" + dir // an embed.FS of a "migrations" directory
	}
	sub, err := fs.Sub(set.FS, dir)
	if err != nil {
		return nil, err
	}
	opts := []goose.ProviderOption{goose.WithTableName("souk_migrations_" + set.Name)}
	if db.engine == Postgres {
		h := fnv.New64a()
		fmt.Fprintf(h, "%s/%s", db.schema, set.Name)
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64() >> 1)))
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	return goose.NewProvider(dialect, db.write, sub, opts...)
}
