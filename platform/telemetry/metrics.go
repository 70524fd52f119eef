package telemetry

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// NewRegistry returns a new Prometheus registry holding the Go runtime
// collector (go_*) and the process collector (process_*). Every metric of the
// process registers on it (never on prometheus.DefaultRegisterer) and
// GET /metrics serves it, with promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).
// A registry is safe for concurrent use.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Register registers c on reg and returns it. When reg already holds an
// equal collector — same names, help and labels, registered by another
// instance of the same component in the process (two buses, a service per
// unit) — it returns that one instead, so every instance reports into the
// same series. A nil reg registers nothing and returns c: its values are
// kept but not exported. It fails when reg holds a different collector
// under one of c's names, or an equal one of another type than C — which is
// why C should be the collector's concrete type (*prometheus.CounterVec),
// as type inference makes it when c is a constructor's result.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register metrics: %w", err)
}

// MustRegister is Register for callers to whom a clash is a wiring mistake:
// it panics where Register fails.
func MustRegister[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	c, err := Register(reg, c)
	if err != nil {
		panic("telemetry: " + err.Error())
	}
	return c
}
