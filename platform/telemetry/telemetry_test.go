package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/soukhq/souk/platform/telemetry"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     telemetry.Config
		wantErr string // substring; "" means valid
	}{
		{"zero value takes defaults", telemetry.Config{}, ""},
		{"all set", telemetry.Config{ServiceName: "catalog", LogLevel: "DEBUG", LogFormat: "text", OTLPEndpoint: "https://otel.example:4318"}, ""},
		{"level offset", telemetry.Config{LogLevel: "warn+2"}, ""},
		{"bad level", telemetry.Config{LogLevel: "verbose"}, "LogLevel \"verbose\""},
		{"bad format", telemetry.Config{LogFormat: "xml"}, "LogFormat \"xml\": want json or text"},
		{"service name with space", telemetry.Config{ServiceName: "my service"}, "ServiceName"},
		{"endpoint not http", telemetry.Config{OTLPEndpoint: "grpc://collector:4317"}, "OTLPEndpoint"},
		{"endpoint without scheme", telemetry.Config{OTLPEndpoint: "collector:4318"}, "OTLPEndpoint"},
		{"endpoint without host", telemetry.Config{OTLPEndpoint: "http:///v1"}, "names no host"},
		{"endpoint with query", telemetry.Config{OTLPEndpoint: "http://c:4318/?x=1"}, "no query"},
		{"two errors at once", telemetry.Config{LogLevel: "loud", LogFormat: "yaml"}, "LogFormat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// MustLines parses the JSON lines a logger wrote.
func MustLines(t testing.TB, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func spanContext(t testing.TB) (context.Context, trace.SpanContext) {
	t.Helper()
	tp, shutdown, err := telemetry.NewTracerProvider(context.Background(), telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	t.Cleanup(func() { span.End() })
	return ctx, span.SpanContext()
}

func TestNewLoggerAddsContextIDs(t *testing.T) {
	spanCtx, sc := spanContext(t)
	ctx := telemetry.WithRequestID(spanCtx, "req_1")
	traceID, spanID := sc.TraceID().String(), sc.SpanID().String()

	tests := []struct {
		name string
		log  func(l *slog.Logger)
		want map[string]any // keys that must hold these values
		none []string       // keys that must be absent
		// nested: group → key → value expected inside the group
		nested map[string]map[string]any
	}{
		{
			name: "context ids on a line logged with the context",
			log:  func(l *slog.Logger) { l.InfoContext(ctx, "hello", "k", "v") },
			want: map[string]any{"msg": "hello", "service": "catalog", "request_id": "req_1", "trace_id": traceID, "span_id": spanID, "k": "v"},
		},
		{
			name: "nothing added without context values",
			log:  func(l *slog.Logger) { l.Info("plain") },
			want: map[string]any{"msg": "plain", "service": "catalog"},
			none: []string{"request_id", "trace_id", "span_id"},
		},
		{
			name: "logger attributes are not duplicated",
			log: func(l *slog.Logger) {
				l.With("request_id", "req_fixed", "trace_id", "t").InfoContext(ctx, "fixed")
			},
			want: map[string]any{"request_id": "req_fixed", "trace_id": "t", "span_id": spanID},
		},
		{
			name: "record attributes are not duplicated",
			log: func(l *slog.Logger) {
				l.LogAttrs(ctx, slog.LevelInfo, "rec", slog.String("request_id", "req_rec"))
			},
			want: map[string]any{"request_id": "req_rec", "trace_id": traceID},
		},
		{
			name: "ids stay top level inside a group",
			log: func(l *slog.Logger) {
				l.WithGroup("db").With("table", "products").InfoContext(ctx, "grouped", "rows", 3)
			},
			want:   map[string]any{"request_id": "req_1", "trace_id": traceID, "service": "catalog"},
			nested: map[string]map[string]any{"db": {"table": "products", "rows": float64(3)}},
		},
		{
			name: "below the level nothing is written",
			log:  func(l *slog.Logger) { l.DebugContext(ctx, "quiet") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf syncBuffer
			l := telemetry.NewLogger(telemetry.Config{ServiceName: "catalog"}, &buf)
			tt.log(l)
			lines := MustLines(t, buf.String())
			if tt.want == nil && tt.nested == nil {
				if len(lines) != 0 {
					t.Fatalf("got %d lines, want none: %s", len(lines), buf.String())
				}
				return
			}
			if len(lines) != 1 {
				t.Fatalf("got %d lines, want 1: %s", len(lines), buf.String())
			}
			line := lines[0]
			for k, v := range tt.want {
				if line[k] != v {
					t.Errorf("%s = %v, want %v (line %v)", k, line[k], v, line)
				}
			}
			for _, k := range tt.none {
				if _, ok := line[k]; ok {
					t.Errorf("line has %s, want none: %v", k, line)
				}
			}
			for g, kv := range tt.nested {
				group, _ := line[g].(map[string]any)
				for k, v := range kv {
					if group[k] != v {
						t.Errorf("%s.%s = %v, want %v (line %v)", g, k, group[k], v, line)
					}
				}
				for _, id := range []string{"request_id", "trace_id", "span_id"} {
					if _, ok := group[id]; ok {
						t.Errorf("%s landed inside group %s: %v", id, g, line)
					}
				}
			}
		})
	}
}

func TestNewLoggerFormatAndLevel(t *testing.T) {
	var buf syncBuffer
	l := telemetry.NewLogger(telemetry.Config{LogFormat: "text", LogLevel: "debug"}, &buf)
	l.DebugContext(telemetry.WithRequestID(context.Background(), "req_t"), "dbg")
	out := buf.String()
	for _, want := range []string{"level=DEBUG", "msg=dbg", "service=souk", "request_id=req_t"} {
		if !strings.Contains(out, want) {
			t.Errorf("text line %q lacks %q", out, want)
		}
	}

	buf = syncBuffer{}
	l = telemetry.NewLogger(telemetry.Config{LogLevel: "nonsense", LogFormat: "nonsense"}, &buf)
	l.Debug("hidden")
	l.Info("shown")
	lines := MustLines(t, buf.String()) // invalid settings fall back to JSON at info
	if len(lines) != 1 || lines[0]["msg"] != "shown" {
		t.Fatalf("lines = %v, want only the info line", lines)
	}
}

func TestRequestIDContext(t *testing.T) {
	ctx := context.Background()
	if got := telemetry.RequestIDFrom(ctx); got != "" {
		t.Fatalf("RequestIDFrom(empty) = %q", got)
	}
	if got := telemetry.RequestIDFrom(telemetry.WithRequestID(ctx, "req_x")); got != "req_x" {
		t.Fatalf("RequestIDFrom = %q, want req_x", got)
	}
}

func TestTracerProviderWithoutExporter(t *testing.T) {
	tp, shutdown, err := telemetry.NewTracerProvider(context.Background(), telemetry.Config{ServiceName: "cart"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()

	// A root span gets fresh ids but, with nothing to export it to, is not
	// sampled and records nothing.
	_, root := tp.Tracer("test").Start(context.Background(), "root")
	root.End()
	if sc := root.SpanContext(); !sc.IsValid() || sc.IsSampled() || root.IsRecording() {
		t.Fatalf("root span context = %+v (recording %v), want valid, unsampled, not recording", sc, root.IsRecording())
	}

	// A span under an incoming traceparent continues its trace.
	const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	prop := telemetry.Propagator()
	ctx := prop.Extract(context.Background(), propagation.MapCarrier{"traceparent": incoming})
	_, child := tp.Tracer("test").Start(ctx, "child")
	child.End()
	sc := child.SpanContext()
	if sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() == "00f067aa0ba902b7" || !sc.IsSampled() {
		t.Fatalf("child span context = %s/%s sampled=%v, want the incoming sampled trace with a new span", sc.TraceID(), sc.SpanID(), sc.IsSampled())
	}
	out := propagation.MapCarrier{}
	prop.Inject(trace.ContextWithSpanContext(context.Background(), sc), out)
	if !strings.HasPrefix(out["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-") {
		t.Fatalf("injected traceparent = %q", out["traceparent"])
	}
}

func TestPropagatorFields(t *testing.T) {
	fields := telemetry.Propagator().Fields()
	for _, want := range []string{"traceparent", "tracestate", "baggage"} {
		if !slices.Contains(fields, want) {
			t.Errorf("Propagator().Fields() = %v, lacks %s", fields, want)
		}
	}
}

func TestTracerProviderExportsOverOTLP(t *testing.T) {
	got := make(chan *http.Request, 4)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()

	tp, shutdown, err := telemetry.NewTracerProvider(context.Background(),
		telemetry.Config{ServiceName: "orders", OTLPEndpoint: collector.URL + "/otlp/"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("test").Start(context.Background(), "exported")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil { // flushes the batch
		t.Fatalf("shutdown: %v", err)
	}
	select {
	case r := <-got:
		if r.Method != http.MethodPost || r.URL.Path != "/otlp/v1/traces" {
			t.Fatalf("collector got %s %s, want POST /otlp/v1/traces", r.Method, r.URL.Path)
		}
	default:
		t.Fatal("collector received nothing")
	}
}

func TestNewTracerProviderRejectsBadConfig(t *testing.T) {
	_, _, err := telemetry.NewTracerProvider(context.Background(), telemetry.Config{OTLPEndpoint: "collector"})
	if err == nil || !strings.Contains(err.Error(), "OTLPEndpoint") {
		t.Fatalf("err = %v, want one naming OTLPEndpoint", err)
	}
}

func TestNewRegistry(t *testing.T) {
	a, b := telemetry.NewRegistry(), telemetry.NewRegistry() // no global state: two never collide
	mfs, err := a.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, want := range []string{"go_goroutines", "process_start_time_seconds"} {
		if !names[want] {
			t.Errorf("registry lacks %s", want)
		}
	}
	if _, err := b.Gather(); err != nil {
		t.Fatal(err)
	}
}
