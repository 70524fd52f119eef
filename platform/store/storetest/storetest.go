// Package storetest runs a store test against every engine: SQLite always,
// and PostgreSQL when SOUK_TEST_POSTGRES_URL is set (each test in a fresh
// schema that is dropped afterwards). Conformance suites call Run, so a store
// that behaves differently on the two engines fails the same test.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/soukhq/souk/platform/store"
)

// PostgresURLEnv names the environment variable that enables PostgreSQL suites.
const PostgresURLEnv = "SOUK_TEST_POSTGRES_URL"

// Run runs test once per available engine, as subtests named "sqlite" and
// "postgres", each with a new, migrated database.
func Run(t *testing.T, migrations []store.Migrations, test func(t *testing.T, db *store.DB)) {
	t.Helper()
	for _, engine := range []store.Engine{store.SQLite, store.Postgres} {
		t.Run(string(engine), func(t *testing.T) {
			db := MustOpen(t, engine, migrations...)
			test(t, db)
		})
	}
}

// MustOpen opens a fresh database on the engine and applies the migrations.
// PostgreSQL tests are skipped, saying why, when SOUK_TEST_POSTGRES_URL is not set.
func MustOpen(t testing.TB, engine store.Engine, migrations ...store.Migrations) *store.DB {
	t.Helper()
	ctx := context.Background()
	// Small pools: test packages run in parallel against one server.
	cfg := store.Config{MaxOpenConns: 8}
	switch engine {
	case store.SQLite:
		cfg.URL = "sqlite:" + filepath.Join(t.TempDir(), "test.db")
	case store.Postgres:
		url := os.Getenv(PostgresURLEnv)
		if url == "" {
			t.Skipf("PostgreSQL suite skipped: set %s (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run it", PostgresURLEnv)
		}
		cfg.URL = url
		cfg.Schema = "t_" + randomHex(6)
	}
	db, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open %s: %v", engine, err)
	}
	t.Cleanup(func() {
		if engine == store.Postgres {
			_, _ = db.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+cfg.Schema+` CASCADE`)
		}
		db.Close()
	})
	if err := db.Migrate(ctx, migrations...); err != nil {
		t.Fatalf("migrate %s: %v", engine, err)
	}
	return db
}

// MustOpenAgain opens another handle on db's database — its own pools and
// prepared statements, the same file or schema — closed when the test ends:
// what another process of a replicated service has. It leaves the database
// to db's test, which drops it.
func MustOpenAgain(t testing.TB, db *store.DB) *store.DB {
	t.Helper()
	ctx := context.Background()
	cfg := store.Config{MaxOpenConns: 8}
	switch db.Engine() {
	case store.SQLite:
		var file string
		if err := db.QueryRow(ctx, `SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&file); err != nil {
			t.Fatalf("find the SQLite file: %v", err)
		}
		cfg.URL = "sqlite:" + file
	case store.Postgres:
		cfg.URL, cfg.Schema = os.Getenv(PostgresURLEnv), db.Schema()
	}
	again, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open %s again: %v", db.Engine(), err)
	}
	t.Cleanup(func() { again.Close() })
	return again
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// IndexDefinition is the SQL that defines the index on db's engine (SQLite's
// sqlite_master.sql, PostgreSQL's pg_indexes.indexdef in db's schema), so a
// test can check what a migration made of it.
func IndexDefinition(t testing.TB, db *store.DB, index string) string {
	t.Helper()
	q := `SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?`
	if db.Engine() == store.Postgres {
		q = `SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = ?`
	}
	var def string
	if err := db.QueryRow(context.Background(), q, index).Scan(&def); err != nil {
		t.Fatalf("read the definition of index %s: %v", index, err)
	}
	return def
}

// SQLitePlan is SQLite's EXPLAIN QUERY PLAN of query, one step per line.
func SQLitePlan(t testing.TB, db *store.DB, query string, args ...any) string {
	t.Helper()
	rows, err := db.Query(context.Background(), `EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		t.Fatalf("explain %s: %v", query, err)
	}
	defer rows.Close()
	var plan strings.Builder
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(detail + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan.String()
}

// MigrationsUpTo is the set with only its migrations numbered version or
// lower, under the same name (so the same version table): a database made
// with it is one that ran an older release, for testing what a later
// migration does to it.
func MigrationsUpTo(t testing.TB, set store.Migrations, version int) store.Migrations {
	t.Helper()
	files := fstest.MapFS{}
	err := fs.WalkDir(set.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		prefix, _, _ := strings.Cut(path.Base(p), "_")
		n, err := strconv.Atoi(prefix)
		if err != nil {
			return fmt.Errorf("%s: no version number: %w", p, err)
		}
		if n <= version {
			data, err := fs.ReadFile(set.FS, p)
			if err != nil {
				return err
			}
			files[p] = &fstest.MapFile{Data: data}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("migrations of %s up to %d: %v", set.Name, version, err)
	}
	return store.Migrations{Name: set.Name, FS: files}
}
