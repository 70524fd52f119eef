package pricing

import "testing"

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{}, true}, // default NL
		{Config{DefaultCountry: "de"}, true},
		{Config{DefaultCountry: "NLD"}, false},
		{Config{DefaultCountry: "1A"}, false},
		{Config{CacheSize: 10}, true},
		{Config{CacheSize: -1}, false},
	} {
		if err := tt.cfg.Validate(); (err == nil) != tt.ok {
			t.Errorf("Validate(%+v) = %v", tt.cfg, err)
		}
	}
	if got := (Config{}).withDefaults().DefaultCountry; got != DefaultHomeCountry {
		t.Errorf("default country = %q", got)
	}
	if got := (Config{}).withDefaults().CacheSize; got != DefaultCacheSize {
		t.Errorf("default cache size = %d", got)
	}
	if got := (Config{DefaultCountry: " be "}).withDefaults().DefaultCountry; got != "BE" {
		t.Errorf("normalised country = %q", got)
	}
}
