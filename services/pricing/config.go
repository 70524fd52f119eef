package pricing

import (
	"fmt"
	"strings"
)

// Config is pricing's configuration. The composition root fills it in and
// calls Validate before New.
type Config struct {
	// DefaultCountry is the store's home country (ISO 3166-1 alpha-2): its
	// tax rate applies to carts without a shipping address yet, and its
	// shipping methods are the ones offered to them (default "NL").
	DefaultCountry string
	// CacheSize bounds each keyed part of the quote cache (ADR 0017): the
	// price rows of the (currency, variant) pairs it keeps, the voucher
	// codes, and the codes and target ids of the code promotions (default
	// DefaultCacheSize; a price row takes some 350 bytes). The cache never
	// serves stale definitions whatever its size; a smaller one only misses
	// more.
	CacheSize int
}

// Defaults of Config.
const (
	DefaultHomeCountry = "NL"
	DefaultCacheSize   = 100_000
)

func (c Config) withDefaults() Config {
	c.DefaultCountry = strings.ToUpper(strings.TrimSpace(c.DefaultCountry))
	if c.DefaultCountry == "" {
		c.DefaultCountry = DefaultHomeCountry
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	return c
}

// Validate reports every setting that cannot work, after defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	if !countryPattern.MatchString(c.DefaultCountry) {
		return fmt.Errorf("pricing: default country %q: want an ISO 3166-1 alpha-2 code such as NL", c.DefaultCountry)
	}
	if c.CacheSize < 0 {
		return fmt.Errorf("pricing: cache size %d: want a positive number of entries, or 0 for the default", c.CacheSize)
	}
	return nil
}
