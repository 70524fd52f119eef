package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/soukhq/souk/bench/internal/harness"
	"github.com/soukhq/souk/services/notify/mailsink"
)

// instanceConfig says how to start one souk under test.
type instanceConfig struct {
	Topology     string
	Bin          string
	Dir          string // work directory of this instance: data and log
	PostgresURL  string // topoPostgres only
	NATSURL      string // topoPostgres only
	Variants     int
	ReadyTimeout time.Duration
}

// instance is one running souk with its own data (directory, or database
// and streams), ready for load: stock raised, variants chosen.
type instance struct {
	proc     *harness.Proc
	base     string // http://127.0.0.1:port
	adminKey string
	variants []variant
	infra    string         // versions of the servers it runs on, for the report
	args     []string       // souk's arguments with the random parts elided
	mail     *mailsink.Sink // receives the order confirmations
	cleanups []func(context.Context) error
}

// startInstance creates the instance's data stores, starts souk on a free
// loopback port and prepares the catalogue. On error everything it made is
// removed again.
func startInstance(ctx context.Context, cfg instanceConfig, logf func(string, ...any)) (_ *instance, err error) {
	inst := &instance{adminKey: "sk_bench_" + randomSuffix(20)}
	defer func() {
		if err != nil {
			inst.close(logf)
		}
	}()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	// The confirmation e-mails go to a sink in this process, as a shop's
	// go to its mail server: sending them is part of souk's work.
	if inst.mail, err = mailsink.Start("127.0.0.1:0", mailsink.WithMaxMessages(16)); err != nil {
		return nil, fmt.Errorf("start the mail sink: %w", err)
	}
	inst.cleanups = append(inst.cleanups, func(context.Context) error { return inst.mail.Close() })
	extra := []string{"--smtp-addr", inst.mail.Addr()} // souk's arguments after harness.ServeArgs
	inst.args = append(harness.ServeArgs("127.0.0.1:<free port>", "<tmp>"), "--smtp-addr", "127.0.0.1:<mail sink port>")
	inst.infra = "SQLite file per service, embedded NATS"
	if cfg.Topology == topoPostgres {
		suffix := randomSuffix(4)
		dbURL, pgVersion, drop, err := createDatabase(ctx, cfg.PostgresURL, "souk_bench_"+suffix)
		if err != nil {
			return nil, err
		}
		inst.cleanups = append(inst.cleanups, drop)
		stream, prefix := "BENCH_"+strings.ToUpper(suffix), "bench"+suffix
		natsVersion, deleteStreams, err := isolateStreams(ctx, cfg.NATSURL, stream)
		if err != nil {
			return nil, err
		}
		inst.cleanups = append(inst.cleanups, deleteStreams)
		extra = append(extra, "--database-url", dbURL, "--nats-url", cfg.NATSURL, "--bus-stream", stream, "--bus-subject-prefix", prefix)
		inst.args = append(inst.args, "--database-url", redactDB(dbURL), "--nats-url", cfg.NATSURL,
			"--bus-stream", "BENCH_<random>", "--bus-subject-prefix", "bench<random>")
		inst.infra = fmt.Sprintf("PostgreSQL %s (one database, a schema per service), NATS %s (external JetStream)", pgVersion, natsVersion)
	}

	inst.proc, inst.base, err = harness.StartSouk(ctx, harness.SoukConfig{
		Bin: cfg.Bin, DataDir: filepath.Join(cfg.Dir, "data"), LogPath: filepath.Join(cfg.Dir, "souk.log"), Args: extra,
		// The admin key goes in the environment (as the flag's help
		// advises), not on a command line other users can read.
		Env:          soukEnv(os.Environ(), "SOUK_ADMIN_API_KEY="+inst.adminKey),
		ReadyTimeout: cfg.ReadyTimeout, StopGrace: 20 * time.Second, Logf: logf,
	})
	if err != nil {
		return nil, err
	}
	c := newClient(inst.base, 4)
	defer c.close()
	if inst.variants, err = c.prepareCatalogue(ctx, inst.adminKey, cfg.Variants); err != nil {
		return nil, fmt.Errorf("prepare the catalogue: %w%s", err, inst.proc.LogTail())
	}
	logf("%s: souk ready on %s; carts draw from %d variants, stock raised to %d each", cfg.Topology, strings.TrimPrefix(inst.base, "http://"), len(inst.variants), stockLevel)
	return inst, nil
}

// close stops souk and removes its database and streams. Cleanup runs
// with its own deadline, so it also happens after an interrupt.
func (inst *instance) close(logf func(string, ...any)) {
	if inst.proc != nil {
		inst.proc.Stop()
	}
	if inst.mail != nil {
		logf("the mail sink received %d confirmation e-mails", inst.mail.Received())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := len(inst.cleanups) - 1; i >= 0; i-- {
		if err := inst.cleanups[i](ctx); err != nil {
			logf("cleanup: %v", err)
		}
	}
	inst.cleanups = nil
}

// createDatabase creates database name on the server of base and returns
// its URL, the server's version and a function that drops it.
func createDatabase(ctx context.Context, base, name string) (dbURL, version string, drop func(context.Context) error, err error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, base)
	if err != nil {
		return "", "", nil, fmt.Errorf("connect to PostgreSQL (-postgres-url): %w", err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(cctx, "SHOW server_version").Scan(&version); err != nil {
		return "", "", nil, fmt.Errorf("PostgreSQL version: %w", err)
	}
	version, _, _ = strings.Cut(version, " ")
	if _, err := conn.Exec(cctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop = func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", "", nil, err
	}
	u.Path = "/" + name
	return u.String(), version, drop, nil
}

// redactDB is a database URL for the report: no password, the random
// database name generalised.
func redactDB(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<database url>"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	u.Path = "/souk_bench_<random>"
	return strings.ReplaceAll(u.String(), "%3Crandom%3E", "<random>")
}

// isolateStreams checks that the NATS server answers and returns its
// version and a function deleting every stream souk may create for
// stream (stream itself and stream_…, such as the dead-letter stream).
func isolateStreams(ctx context.Context, natsURL, stream string) (version string, cleanup func(context.Context) error, err error) {
	nc, err := nats.Connect(natsURL, nats.Timeout(5*time.Second), nats.Name("souk bench/shopper"))
	if err != nil {
		return "", nil, fmt.Errorf("connect to NATS (-nats-url): %w", err)
	}
	version = nc.ConnectedServerVersion()
	nc.Close()
	cleanup = func(ctx context.Context) error {
		nc, err := nats.Connect(natsURL, nats.Timeout(5*time.Second))
		if err != nil {
			return fmt.Errorf("delete streams %s*: %w", stream, err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		names := js.StreamNames(ctx)
		var doomed []string
		for name := range names.Name() {
			if name == stream || strings.HasPrefix(name, stream+"_") {
				doomed = append(doomed, name)
			}
		}
		if err := names.Err(); err != nil && err != jetstream.ErrEndOfData {
			return fmt.Errorf("list streams: %w", err)
		}
		for _, name := range doomed {
			if err := js.DeleteStream(ctx, name); err != nil {
				return fmt.Errorf("delete stream %s: %w", name, err)
			}
		}
		return nil
	}
	return version, cleanup, nil
}

// soukEnv is this process's environment without any SOUK_ setting (each is
// a souk flag: a SOUK_DATABASE_URL left in a shell must not redirect the
// benchmark), plus extra.
func soukEnv(environ []string, extra ...string) []string {
	out := make([]string, 0, len(environ)+len(extra))
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "SOUK_") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}
