package telemetry

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Propagator returns the propagator Souk uses on every boundary: W3C Trace
// Context (traceparent, tracestate) and W3C Baggage. It is stateless and safe
// for concurrent use; the same value may be shared everywhere.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// NewTracerProvider returns the tracer provider for cfg and the function that
// flushes and stops it (call it once, on shutdown, with a deadline).
//
// Spans are always created with real ids, parented on an incoming trace
// (ParentBased(AlwaysSample)), so responses carry a traceparent and logs a
// trace_id. With cfg.OTLPEndpoint set the spans are batched and exported over
// OTLP/HTTP to <endpoint>/v1/traces; without it the provider has no span
// processor and exports nothing. The provider is not installed globally
// (otel.SetTracerProvider is never called): pass it to whatever starts spans.
//
// It returns an error naming the setting when cfg is invalid or the exporter
// cannot be built. Building the exporter does not contact the collector, so
// an unreachable collector shows up only as failed exports, never as a
// start-up failure.
func NewTracerProvider(ctx context.Context, cfg Config) (trace.TracerProvider, func(context.Context) error, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	cfg = cfg.withDefaults()
	attrs := []attribute.KeyValue{attribute.String("service.name", cfg.ServiceName)}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.ServiceVersion))
	}
	// Without an exporter nothing would read a recorded span, so root spans
	// are not sampled: they still get trace and span ids (for traceparent and
	// the logs) but record nothing. A caller's sampled trace is still
	// recorded, so its sampling decision travels on unchanged.
	sampler := sdktrace.ParentBased(sdktrace.NeverSample())
	if cfg.OTLPEndpoint != "" {
		sampler = sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
	opts := []sdktrace.TracerProviderOption{
		// Set explicitly: the SDK's defaults would consult OTEL_* variables,
		// and configuration is the composition root's job.
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
		sdktrace.WithSampler(sampler),
	}
	if cfg.OTLPEndpoint != "" {
		endpoint, _ := tracesURL(cfg.OTLPEndpoint) // checked by Validate
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
		if err != nil {
			return nil, nil, fmt.Errorf("telemetry: OTLP trace exporter for %s: %w", endpoint, err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	return tp, tp.Shutdown, nil
}
