package inventory

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config.
const (
	DefaultReservationTTL    = 15 * time.Minute
	DefaultExpiryInterval    = 30 * time.Second
	DefaultLowStockThreshold = 5
)

// Config tunes the inventory service. Zero fields take the defaults named.
type Config struct {
	// DefaultReservationTTL is how long a reservation made without a TTL
	// holds its stock before the expiry sweep gives it back (default 15m;
	// 1s to 24h).
	DefaultReservationTTL time.Duration
	// ExpiryInterval is how often Run sweeps expired reservations
	// (default 30s; at least 100ms). Several processes may sweep the same
	// database: each reservation is expired exactly once.
	ExpiryInterval time.Duration
	// LowStockThreshold is the low-stock threshold of SKUs without their
	// own (default 5): souk.inventory.stock_low.v1 is published when a
	// SKU's sellable stock falls to it or below from above it.
	LowStockThreshold int64
}

func (c *Config) setDefaults() {
	if c.DefaultReservationTTL == 0 {
		c.DefaultReservationTTL = DefaultReservationTTL
	}
	if c.ExpiryInterval == 0 {
		c.ExpiryInterval = DefaultExpiryInterval
	}
	if c.LowStockThreshold == 0 {
		c.LowStockThreshold = DefaultLowStockThreshold
	}
}

// Validate reports the first setting that cannot work, naming it; unset
// fields take their defaults first.
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case c.DefaultReservationTTL < MinReservationTTL || c.DefaultReservationTTL > MaxReservationTTL:
		return fmt.Errorf("inventory: DefaultReservationTTL %v: want %v to %v", c.DefaultReservationTTL, MinReservationTTL, MaxReservationTTL)
	case c.DefaultReservationTTL%time.Second != 0:
		return fmt.Errorf("inventory: DefaultReservationTTL %v: want whole seconds", c.DefaultReservationTTL)
	case c.ExpiryInterval < 100*time.Millisecond:
		return fmt.Errorf("inventory: ExpiryInterval %v: want at least 100ms", c.ExpiryInterval)
	case c.LowStockThreshold < 0 || c.LowStockThreshold > MaxLowStockLevel:
		return errors.New("inventory: LowStockThreshold must be from 0 to 1e9")
	}
	return nil
}

// RegisterFlags binds the settings to flags named inventory-… on fs (the
// composition root calls it; components never read flags themselves).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.DefaultReservationTTL, "inventory-reservation-ttl", DefaultReservationTTL,
		"how long a reservation holds stock unless its request says otherwise")
	fs.DurationVar(&c.ExpiryInterval, "inventory-expiry-interval", DefaultExpiryInterval,
		"how often expired reservations are released")
	fs.Int64Var(&c.LowStockThreshold, "inventory-low-stock-threshold", DefaultLowStockThreshold,
		"sellable quantity at or below which a SKU without its own threshold is low on stock")
}

// Option tunes a Service beyond its Config.
type Option func(*Service)

// WithMetrics registers the service's Prometheus metrics on reg (nil: no
// metrics). Registering twice on one registry shares the collectors.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(s *Service) { s.metrics = newMetrics(reg) }
}

// WithClock sets the clock (default time.Now); tests move it to expire
// reservations without waiting.
func WithClock(now func() time.Time) Option {
	return func(s *Service) {
		s.now = func() time.Time { return now().UTC().Truncate(time.Microsecond) }
	}
}
