package telemetrytest_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/telemetry/telemetrytest"
)

func TestMustMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "calls_total"}, []string{"name", "outcome"})
	state := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "state"}, []string{"name"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "latency_seconds"}, []string{"name"})
	reg.MustRegister(calls, state, latency)
	calls.WithLabelValues("a", "success").Add(3)
	calls.WithLabelValues("a", "failure").Add(1)
	calls.WithLabelValues("b", "success").Add(5)
	state.WithLabelValues("a").Set(2)
	latency.WithLabelValues("a").Observe(0.1)
	latency.WithLabelValues("a").Observe(0.2)
	for _, tt := range []struct {
		family string
		labels []string
		want   float64
	}{
		{"calls_total", nil, 9},
		{"calls_total", []string{"name", "a"}, 4},
		{"calls_total", []string{"name", "a", "outcome", "success"}, 3},
		{"calls_total", []string{"name", "c"}, 0},
		{"state", []string{"name", "a"}, 2},
		{"latency_seconds", []string{"name", "a"}, 2},
		{"nothing", nil, 0},
	} {
		if got := telemetrytest.MustMetric(t, reg, tt.family, tt.labels...); got != tt.want {
			t.Errorf("%s %v = %v, want %v", tt.family, tt.labels, got, tt.want)
		}
	}
}
