package cart

import (
	"context"
	"fmt"
	"time"

	"github.com/soukhq/souk/platform/auth"
)

// Defaults of Config.
const (
	DefaultMaxQuantity      = 999
	DefaultMaxLines         = 100
	DefaultIdleTTL          = 30 * 24 * time.Hour
	DefaultAnonymousIdleTTL = 7 * 24 * time.Hour
	DefaultExpiryInterval   = 5 * time.Minute
)

// Bounds of Config.
const (
	maxMaxQuantity = 1_000_000
	maxMaxLines    = 1000
	minIdleTTL     = time.Minute
	minInterval    = 100 * time.Millisecond
)

// Config tunes the cart service. Zero fields take the defaults named; the
// composition root fills it and calls Validate before New.
type Config struct {
	// MaxQuantity is the most of one variant a line may hold (default 999).
	// Adding beyond it is refused; merging carts at login caps at it.
	MaxQuantity int
	// MaxLines is the most line items a cart may hold (default 100).
	MaxLines int
	// IdleTTL is how long a customer's cart lives without a change
	// (default 30 days): every successful change pushes its expires_at to
	// now + IdleTTL.
	IdleTTL time.Duration
	// AnonymousIdleTTL is the same for anonymous carts (default 7 days, or
	// IdleTTL when that is shorter). Their token is the only way back to
	// them, and a browser that lost it will never return.
	AnonymousIdleTTL time.Duration
	// ExpiryInterval is how often Run marks idle carts expired (default 5m;
	// at least 100ms). Several processes may run it on one database.
	ExpiryInterval time.Duration
	// CustomerGroups returns the customer groups of a customer principal,
	// for group prices and promotions (identity knows them). It is called
	// with the request's context and the cart's customer: the caller's own
	// principal when the caller is that customer, else a principal with
	// only Subject and Kind (a staff read, a checkout). nil: the
	// principal's own Groups (so none when the customer is not the caller).
	CustomerGroups func(ctx context.Context, p auth.Principal) []string
}

func (c *Config) setDefaults() {
	if c.MaxQuantity == 0 {
		c.MaxQuantity = DefaultMaxQuantity
	}
	if c.MaxLines == 0 {
		c.MaxLines = DefaultMaxLines
	}
	if c.IdleTTL == 0 {
		c.IdleTTL = DefaultIdleTTL
	}
	if c.AnonymousIdleTTL == 0 {
		c.AnonymousIdleTTL = min(DefaultAnonymousIdleTTL, c.IdleTTL)
	}
	if c.ExpiryInterval == 0 {
		c.ExpiryInterval = DefaultExpiryInterval
	}
}

// Validate reports the first setting that cannot work, naming it; unset
// fields take their defaults first.
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case c.MaxQuantity < 1 || c.MaxQuantity > maxMaxQuantity:
		return fmt.Errorf("cart: MaxQuantity %d: want 1 to %d", c.MaxQuantity, maxMaxQuantity)
	case c.MaxLines < 1 || c.MaxLines > maxMaxLines:
		return fmt.Errorf("cart: MaxLines %d: want 1 to %d", c.MaxLines, maxMaxLines)
	case c.IdleTTL < minIdleTTL:
		return fmt.Errorf("cart: IdleTTL %v: want at least %v", c.IdleTTL, minIdleTTL)
	case c.AnonymousIdleTTL < minIdleTTL:
		return fmt.Errorf("cart: AnonymousIdleTTL %v: want at least %v", c.AnonymousIdleTTL, minIdleTTL)
	case c.ExpiryInterval < minInterval:
		return fmt.Errorf("cart: ExpiryInterval %v: want at least %v", c.ExpiryInterval, minInterval)
	}
	return nil
}
