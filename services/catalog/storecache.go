package catalog

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/httpx"
)

// Store API reads are the catalogue's hot path: every storefront page asks
// for the same few lists and products. storeCache keeps their encoded
// bodies, so a repeated read costs a map lookup instead of SQL and JSON.
//
// Freshness: every write of this process bumps a generation after its
// transaction commits, and entries of older generations are misses, so this
// process never serves a body older than its own last write. Writes made by
// other processes of the catalogue (when it runs replicated on PostgreSQL)
// are seen within the TTL at most: bodies also carry prices and stock from
// other services, which no catalogue revision covers, and checking the
// revision would add a query to every hit (ADR 0019). The Admin API and the
// Client interface never read through this cache; GetVariant has its own,
// exact across replicas (variantCache).
type storeCache struct {
	gen          atomic.Uint64
	cache        *otter.Cache[string, cachedBody]
	hits, misses prometheus.Counter
}

type cachedBody struct {
	gen  uint64
	body []byte
}

// Defaults of the Store API cache.
const (
	DefaultStoreCacheTTL   = 2 * time.Second
	DefaultStoreCacheBytes = 64 << 20
)

func newStoreCache(ttl time.Duration, maxBytes uint64) *storeCache {
	if ttl <= 0 {
		return nil
	}
	return &storeCache{cache: otter.Must(&otter.Options[string, cachedBody]{
		MaximumWeight:    maxBytes,
		Weigher:          func(k string, v cachedBody) uint32 { return uint32(len(k) + len(v.body) + 64) },
		ExpiryCalculator: otter.ExpiryWriting[string, cachedBody](ttl),
	})}
}

// instrument counts lookups with vec (label cache="store") from now on.
func (c *storeCache) instrument(vec *prometheus.CounterVec) {
	if c != nil {
		c.hits, c.misses = vec.WithLabelValues(cacheStore, "hit"), vec.WithLabelValues(cacheStore, "miss")
	}
}

// invalidate makes every cached body stale; writes call it after commit.
func (c *storeCache) invalidate() {
	if c == nil {
		return
	}
	c.gen.Add(1)
	c.cache.InvalidateAll()
}

// serve answers r from the cache (keyed by path, canonical query and
// keySuffix — what else the answer depends on), or runs load, encodes its value, caches
// the body when load succeeded, and answers with it. The body is encoded
// exactly as httpx.JSON would.
func (c *storeCache) serve(w http.ResponseWriter, r *http.Request, keySuffix string, load func() (any, error)) {
	key := ""
	var gen uint64
	if c != nil {
		key = r.URL.Path + "?" + r.URL.Query().Encode() + keySuffix
		gen = c.gen.Load()
		if hit, ok := c.cache.GetIfPresent(key); ok && hit.gen == gen {
			c.hits.Inc()
			writeBody(w, hit.body)
			return
		}
		c.misses.Inc()
	}
	v, err := load()
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		httpx.Error(w, r, err)
		return
	}
	body := buf.Bytes()
	if c != nil {
		c.cache.Set(key, cachedBody{gen: gen, body: body})
	}
	writeBody(w, body)
}

func writeBody(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
