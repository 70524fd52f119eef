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
}

// DefaultHomeCountry is Config.DefaultCountry's default.
const DefaultHomeCountry = "NL"

func (c Config) withDefaults() Config {
	c.DefaultCountry = strings.ToUpper(strings.TrimSpace(c.DefaultCountry))
	if c.DefaultCountry == "" {
		c.DefaultCountry = DefaultHomeCountry
	}
	return c
}

// Validate reports every setting that cannot work, after defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	if !countryPattern.MatchString(c.DefaultCountry) {
		return fmt.Errorf("pricing: default country %q: want an ISO 3166-1 alpha-2 code such as NL", c.DefaultCountry)
	}
	return nil
}
