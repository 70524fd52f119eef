package store

import (
	"context"
	"database/sql"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// maxCachedStmts bounds a pool's prepared statements. Queries are constant
// text in service code except IN lists, whose text depends on how many ids
// they hold; past the bound a statement simply runs unprepared.
const maxCachedStmts = 2048

// stmtCache keeps one *sql.Stmt per SQL text for a pool, so each statement
// is parsed and planned once per connection instead of on every call:
// modernc.org/sqlite prepares every unprepared call from scratch, which was
// a quarter of the checkout's CPU (bench/RESULTS.md). Used on SQLite only;
// pgx caches statements per connection itself. A nil cache caches nothing.
type stmtCache struct {
	pool         *sql.DB
	hits, misses prometheus.Counter // lookups; nil: not counted
	mu           sync.RWMutex
	m            map[string]*sql.Stmt
}

func newStmtCache(pool *sql.DB) *stmtCache {
	return &stmtCache{pool: pool, m: make(map[string]*sql.Stmt)}
}

// lookup returns query's statement when it is prepared, and counts the
// lookup.
func (c *stmtCache) lookup(query string) (*sql.Stmt, bool) {
	c.mu.RLock()
	st, ok := c.m[query]
	c.mu.RUnlock()
	switch {
	case c.hits == nil:
	case ok:
		c.hits.Inc()
	default:
		c.misses.Inc()
	}
	return st, ok
}

// wants reports whether query would be cached if prepared.
func (c *stmtCache) wants(query string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.m[query]
	return !ok && len(c.m) < maxCachedStmts
}

// get returns query's statement, preparing it on the pool when missing; nil
// when c is nil, full, or the query does not prepare (the caller then runs
// it unprepared and meets the error there).
func (c *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	if c == nil {
		return nil
	}
	if st, ok := c.lookup(query); ok {
		return st
	}
	if !c.wants(query) {
		return nil
	}
	return c.prepare(ctx, query)
}

// prepareAll prepares the queries a transaction ran unprepared.
func (c *stmtCache) prepareAll(queries []string) {
	if c == nil {
		return
	}
	for _, q := range queries {
		c.prepare(context.Background(), q)
	}
}

func (c *stmtCache) prepare(ctx context.Context, query string) *sql.Stmt {
	st, err := c.pool.PrepareContext(context.WithoutCancel(ctx), query)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.m[query]; ok {
		st.Close()
		return prev
	}
	if len(c.m) >= maxCachedStmts {
		st.Close()
		return nil
	}
	c.m[query] = st
	return st
}
