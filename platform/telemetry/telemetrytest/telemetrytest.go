// Package telemetrytest reads, in tests, the metrics a component exported,
// so a test asserts on what an operator would see.
package telemetrytest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// MustMetric sums the samples of the metric family on g whose labels
// include the given name/value pairs ("outcome", "success", …): counters
// and gauges by their value, histograms and summaries by their sample
// count. A family that has no such sample is 0.
func MustMetric(t testing.TB, g prometheus.Gatherer, family string, labels ...string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, f := range families {
		if f.GetName() != family {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metric
				}
			}
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue() +
				float64(m.GetHistogram().GetSampleCount()) + float64(m.GetSummary().GetSampleCount())
		}
	}
	return v
}
