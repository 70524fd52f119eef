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
	dir, dialect := "sqlite", goose.DialectSQLite3
	if db.engine == Postgres {
		dir, dialect = "postgres", goose.DialectPostgres
	}
	if _, err := fs.Stat(set.FS, dir); err != nil {
		dir = "migrations/" + dir // an embed.FS of a "migrations" directory
	}
	sub, err := fs.Sub(set.FS, dir)
	if err != nil {
		return err
	}
	opts := []goose.ProviderOption{goose.WithTableName("souk_migrations_" + set.Name)}
	if db.engine == Postgres {
		h := fnv.New64a()
		fmt.Fprintf(h, "%s/%s", db.schema, set.Name)
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64() >> 1)))
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db.write, sub, opts...)
	if err != nil {
		return err
	}
	_, err = p.Up(ctx)
	return err
}
