// Package bus is Souk's event bus: CloudEvents 1.0 envelopes on NATS
// JetStream (embedded in-process by default, an external cluster by URL), a
// transactional outbox that writes an event in the same database transaction
// as the change it reports, a relay that publishes outbox rows in order, and
// durable consumers that dedupe by event id in their own database,
// acknowledge only after their transaction commits, retry with backoff and
// dead-letter what keeps failing.
package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/soukhq/souk/platform/id"
)

// Event is a CloudEvents 1.0 event in JSON structured mode. Type is
// "souk.<service>.<event>.v1" and doubles as the NATS subject; Subject is the
// aggregate id (per-aggregate order is kept by the outbox); ID ("evt_…") is
// the consumers' idempotency key. TraceParent/TraceState carry the W3C trace
// context (the CloudEvents distributed-tracing extension).
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	DataSchema      string          `json:"dataschema,omitempty"`
	TraceParent     string          `json:"traceparent,omitempty"`
	TraceState      string          `json:"tracestate,omitempty"`
	Data            json.RawMessage `json:"data"`
}

// NewEvent builds an event of the type about the subject, marshalling data
// and capturing the trace context of ctx. source is the publishing service
// ("catalog"); typ must start with "souk.<source>.".
func NewEvent(ctx context.Context, source, typ, subject string, data any) (Event, error) {
	if !strings.HasPrefix(typ, "souk."+source+".") {
		return Event{}, fmt.Errorf("event type %q must start with %q", typ, "souk."+source+".")
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("marshal %s data: %w", typ, err)
	}
	e := Event{
		SpecVersion:     "1.0",
		ID:              id.New("evt"),
		Source:          source,
		Type:            typ,
		Subject:         subject,
		Time:            time.Now().UTC(),
		DataContentType: "application/json",
		Data:            raw,
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	e.TraceParent, e.TraceState = carrier["traceparent"], carrier["tracestate"]
	return e, nil
}

// Context returns ctx extended with the trace context carried by the event,
// so a consumer's span continues the publisher's trace.
func (e Event) Context(ctx context.Context) context.Context {
	carrier := propagation.MapCarrier{}
	if e.TraceParent != "" {
		carrier["traceparent"] = e.TraceParent
	}
	if e.TraceState != "" {
		carrier["tracestate"] = e.TraceState
	}
	return propagation.TraceContext{}.Extract(ctx, carrier)
}

// Decode unmarshals the event's data into v.
func (e Event) Decode(v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("decode %s %s: %w", e.Type, e.ID, err)
	}
	return nil
}
