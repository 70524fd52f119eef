package catalog

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// The values of the cache label of souk_catalog_cache_lookups_total.
const (
	cacheStore    = "store"    // Store API bodies (storeCache)
	cacheVariants = "variants" // GetVariant (variantCache)
)

// newCacheLookups returns souk_catalog_cache_lookups_total, unregistered,
// with every series at zero so that rates work from the start.
func newCacheLookups() *prometheus.CounterVec {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "souk_catalog_cache_lookups_total",
		Help: "Lookups of the catalogue's caches by cache (store: Store API bodies; variants: GetVariant) and result: hit, or miss (read from SQL).",
	}, []string{"cache", "result"})
	for _, c := range []string{cacheStore, cacheVariants} {
		vec.WithLabelValues(c, "hit")
		vec.WithLabelValues(c, "miss")
	}
	return vec
}

// WithMetrics registers the catalogue's Prometheus metrics on reg (nil:
// none): souk_catalog_cache_lookups_total{cache, result}. Registering twice
// on one registry shares the collector; any other failure to register is a
// wiring mistake and panics.
func WithMetrics(reg prometheus.Registerer) ServiceOption {
	return func(s *Service) {
		if reg == nil {
			return
		}
		err := reg.Register(s.lookups)
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			s.lookups = are.ExistingCollector.(*prometheus.CounterVec)
		} else if err != nil {
			panic("catalog: register metrics: " + err.Error())
		}
	}
}
