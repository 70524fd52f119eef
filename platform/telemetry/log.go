package telemetry

import (
	"context"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// The attribute keys the logger adds from the context. Other packages (the
// HTTP access log) use the same keys so a line never carries two spellings.
const (
	KeyService   = "service"
	KeyRequestID = "request_id"
	KeyTraceID   = "trace_id"
	KeySpanID    = "span_id"
)

type requestIDKey struct{}

// WithRequestID returns a context carrying the request id, which every
// logger made by NewLogger adds to the lines logged with that context.
// (httpx.WithRequestID is the same function; the key lives here so that this
// package need not import the HTTP layer.)
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFrom returns the request id of the context, or "" when it has none.
func RequestIDFrom(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey{}).(string)
	return s
}

// NewLogger returns a structured logger writing to w in cfg.LogFormat at
// cfg.LogLevel, with a "service" attribute on every line. Lines logged with
// a context (InfoContext, LogAttrs, …) also get "request_id" (from
// WithRequestID) and "trace_id"/"span_id" (from the context's valid span),
// unless the logger or the line already carries those keys. The ids always
// sit at the top level of a line, even inside WithGroup.
//
// cfg should have passed Validate: an unknown level falls back to info and an
// unknown format to JSON rather than failing. The logger is safe for
// concurrent use when w is (os.Stderr is; wrap a bytes.Buffer in a lock).
func NewLogger(cfg Config, w io.Writer) *slog.Logger {
	cfg = cfg.withDefaults()
	level, err := parseLevel(cfg.LogLevel)
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(NewContextHandler(h)).With(slog.String(KeyService, cfg.ServiceName))
}

// keySet records which of the context-derived keys a logger or line already has.
type keySet uint8

const (
	hasRequestID keySet = 1 << iota
	hasTraceID
	hasSpanID
	hasAll = hasRequestID | hasTraceID | hasSpanID
)

func keyBit(key string) keySet {
	switch key {
	case KeyRequestID:
		return hasRequestID
	case KeyTraceID:
		return hasTraceID
	case KeySpanID:
		return hasSpanID
	}
	return 0
}

// op is a WithGroup or WithAttrs call made after the first group was opened;
// the handler replays them when it must add top-level attributes.
type op struct {
	group string
	attrs []slog.Attr
}

// ContextHandler is a slog.Handler that adds the request id and the trace
// and span ids of the logging context to every record before passing it to
// the handler it wraps. NewLogger uses it; it is exported for callers that
// build their own base handler. It is safe for concurrent use when the
// wrapped handler is.
type ContextHandler struct {
	base slog.Handler // the wrapped handler with the attributes added before any group
	ops  []op         // WithGroup/WithAttrs calls after the first group
	full slog.Handler // base with ops applied
	has  keySet       // context keys already present at the top level
}

var _ slog.Handler = (*ContextHandler)(nil)

// NewContextHandler wraps h; see ContextHandler.
func NewContextHandler(h slog.Handler) *ContextHandler {
	return &ContextHandler{base: h, full: h}
}

// Enabled reports whether the wrapped handler handles records at the level.
func (h *ContextHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.full.Enabled(ctx, l)
}

// Handle adds the context's ids that the logger and the record lack, at the
// top level, and passes the record on.
func (h *ContextHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.has == hasAll || ctx == nil {
		return h.full.Handle(ctx, r)
	}
	has := h.has
	if len(h.ops) == 0 && r.NumAttrs() > 0 {
		r.Attrs(func(a slog.Attr) bool {
			has |= keyBit(a.Key)
			return has != hasAll
		})
	}
	var buf [3]slog.Attr
	add := buf[:0]
	if has&hasRequestID == 0 {
		if id := RequestIDFrom(ctx); id != "" {
			add = append(add, slog.String(KeyRequestID, id))
		}
	}
	if has&(hasTraceID|hasSpanID) != hasTraceID|hasSpanID {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			if has&hasTraceID == 0 {
				add = append(add, slog.String(KeyTraceID, sc.TraceID().String()))
			}
			if has&hasSpanID == 0 {
				add = append(add, slog.String(KeySpanID, sc.SpanID().String()))
			}
		}
	}
	if len(add) == 0 {
		return h.full.Handle(ctx, r)
	}
	if len(h.ops) == 0 {
		r = r.Clone() // the caller's record may share its attribute storage
		r.AddAttrs(add...)
		return h.base.Handle(ctx, r)
	}
	// A group is open: attributes added to the record would land inside it,
	// so rebuild the handler with the ids ahead of the groups. Rare (request
	// logging seldom uses groups), hence not worth caching.
	nh := h.base.WithAttrs(add)
	for _, o := range h.ops {
		nh = o.apply(nh)
	}
	return nh.Handle(ctx, r)
}

func (o op) apply(h slog.Handler) slog.Handler {
	if o.group != "" {
		return h.WithGroup(o.group)
	}
	return h.WithAttrs(o.attrs)
}

// WithAttrs returns a handler whose records carry attrs; a top-level
// request_id, trace_id or span_id among them stops the handler adding its own.
func (h *ContextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	nh := *h
	if len(h.ops) == 0 {
		for _, a := range attrs {
			nh.has |= keyBit(a.Key)
		}
		nh.base = h.base.WithAttrs(attrs)
		nh.full = nh.base
		return &nh
	}
	nh.ops = append(h.ops[:len(h.ops):len(h.ops)], op{attrs: attrs})
	nh.full = h.full.WithAttrs(attrs)
	return &nh
}

// WithGroup returns a handler that nests later attributes under name; the
// context ids stay at the top level.
func (h *ContextHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	nh := *h
	nh.ops = append(h.ops[:len(h.ops):len(h.ops)], op{group: name})
	nh.full = h.full.WithGroup(name)
	return &nh
}
