package telemetry_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/soukhq/souk/platform/telemetry"
)

func TestRegister(t *testing.T) {
	opts := prometheus.CounterOpts{Name: "souk_test_things_total", Help: "Things."}

	t.Run("registers", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		c := prometheus.NewCounterVec(opts, []string{"kind"})
		got, err := telemetry.Register(reg, c)
		if err != nil || got != c {
			t.Fatalf("Register = %p, %v; want the collector given, nil", got, err)
		}
		got.WithLabelValues("a").Inc()
		families, err := reg.Gather()
		if err != nil || len(families) != 1 || families[0].GetName() != opts.Name {
			t.Fatalf("gathered %v, %v; want %s", families, err, opts.Name)
		}
	})

	t.Run("an equal collector is shared", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		first := telemetry.MustRegister(reg, prometheus.NewCounterVec(opts, []string{"kind"}))
		second, err := telemetry.Register(reg, prometheus.NewCounterVec(opts, []string{"kind"}))
		if err != nil {
			t.Fatal(err)
		}
		if second != first {
			t.Fatal("the second registration did not return the registered collector")
		}
		second.WithLabelValues("a").Inc()
		if got := mustValue(t, first.WithLabelValues("a")); got != 1 {
			t.Fatalf("first instance sees %v, want 1", got)
		}
	})

	t.Run("nil registerer keeps the collector unexported", func(t *testing.T) {
		c := prometheus.NewCounter(opts)
		if got, err := telemetry.Register(nil, c); err != nil || got != c {
			t.Fatalf("Register(nil) = %p, %v; want the collector given, nil", got, err)
		}
		if got := telemetry.MustRegister(nil, c); got != c {
			t.Fatal("MustRegister(nil) did not return the collector given")
		}
	})

	newVec := func() *prometheus.CounterVec { return prometheus.NewCounterVec(opts, []string{"kind"}) }
	clashes := []struct {
		name     string
		existing prometheus.Collector
		add      *prometheus.CounterVec
	}{
		{"different labels", prometheus.NewCounterVec(opts, []string{"other"}), newVec()},
		{"different help", prometheus.NewCounterVec(prometheus.CounterOpts{Name: opts.Name, Help: "Not ours."}, []string{"kind"}), newVec()},
		// Same descriptor, so an AlreadyRegisteredError, but not a *CounterVec.
		{"another collector type", prometheus.NewCounter(opts), prometheus.NewCounterVec(opts, nil)},
	}
	for _, tc := range clashes {
		t.Run("clash: "+tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			reg.MustRegister(tc.existing)
			if _, err := telemetry.Register(reg, tc.add); err == nil {
				t.Fatal("Register succeeded over a different collector of the same name")
			}
			defer func() {
				if recover() == nil {
					t.Fatal("MustRegister did not panic over a different collector of the same name")
				}
			}()
			telemetry.MustRegister(reg, tc.add)
		})
	}
}

// mustValue is a counter's value.
func mustValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
