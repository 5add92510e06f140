package otelconfig

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel/trace"
)

// levelHandler drops records below a minimum level before any work is
// done, then hands the rest to every child (the OTel bridge and/or the
// console).
type levelHandler struct {
	min      slog.Level
	children []slog.Handler
}

func newLevelHandler(min slog.Level, children ...slog.Handler) slog.Handler {
	var hs []slog.Handler
	for _, c := range children {
		if c != nil {
			hs = append(hs, c)
		}
	}
	if len(hs) == 1 {
		if lh, ok := hs[0].(*levelHandler); ok {
			return &levelHandler{min: max(min, lh.min), children: lh.children}
		}
	}
	return &levelHandler{min: min, children: hs}
}

func (h *levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if l < h.min {
		return false
	}
	for _, c := range h.children {
		if c.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (h *levelHandler) Handle(ctx context.Context, r slog.Record) error {
	if len(h.children) == 1 {
		return h.children[0].Handle(ctx, r)
	}
	var errs []error
	for _, c := range h.children {
		if c.Enabled(ctx, r.Level) {
			if err := c.Handle(ctx, r.Clone()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (h *levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := &levelHandler{min: h.min, children: make([]slog.Handler, len(h.children))}
	for i, c := range h.children {
		n.children[i] = c.WithAttrs(as)
	}
	return n
}

func (h *levelHandler) WithGroup(name string) slog.Handler {
	n := &levelHandler{min: h.min, children: make([]slog.Handler, len(h.children))}
	for i, c := range h.children {
		n.children[i] = c.WithGroup(name)
	}
	return n
}

// consoleHandler writes human-readable lines and appends the trace_id and
// span_id of the span in the record's context, so console logs correlate
// with traces just like exported records do.
type consoleHandler struct {
	inner slog.Handler
}

// NewConsoleHandler returns the human-readable handler otelconfig installs
// for the console: slog's text format plus trace_id/span_id.
func NewConsoleHandler(w io.Writer, level slog.Leveler) slog.Handler {
	return &consoleHandler{inner: slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})}
}

func (h *consoleHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *consoleHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.inner.Handle(ctx, r)
}

func (h *consoleHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &consoleHandler{inner: h.inner.WithAttrs(as)}
}

func (h *consoleHandler) WithGroup(name string) slog.Handler {
	return &consoleHandler{inner: h.inner.WithGroup(name)}
}

// rateLimitedErrors reports OpenTelemetry's internal errors (failed
// exports, dropped data) at a bounded rate: the first one at once, then at
// most one line per interval with a count of those suppressed, so an
// unreachable collector cannot flood the console.
type rateLimitedErrors struct {
	log        *slog.Logger
	interval   time.Duration
	mu         sync.Mutex
	last       time.Time
	suppressed int
	total      atomic.Int64
}

func (r *rateLimitedErrors) Handle(err error) {
	r.total.Add(1)
	r.mu.Lock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.interval {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	n := r.suppressed
	r.suppressed = 0
	r.last = now
	r.mu.Unlock()
	args := []any{"error", err.Error()}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	r.log.Warn("OpenTelemetry export problem", args...)
}

// sdkLogSink routes the OpenTelemetry SDK's own diagnostics (logr) to the
// console at their real severity: its warnings (V(1): "dropped log
// records", failed exports) become slog warnings, its errors slog errors.
// Info and debug chatter (V(4), V(8)) stays off. The SDK reports drops at
// most once per export interval, so the rate is bounded by design.
type sdkLogSink struct {
	h    slog.Handler
	name string
	kv   []any
}

func (s *sdkLogSink) Init(logr.RuntimeInfo) {}

func (s *sdkLogSink) Enabled(level int) bool { return level <= 1 }

func (s *sdkLogSink) Info(level int, msg string, kv ...any) {
	if level > 1 {
		return
	}
	s.log(slog.LevelWarn, msg, kv...)
}

func (s *sdkLogSink) Error(err error, msg string, kv ...any) {
	s.log(slog.LevelError, msg, append([]any{"error", err}, kv...)...)
}

func (s *sdkLogSink) log(l slog.Level, msg string, kv ...any) {
	ctx := context.Background()
	if !s.h.Enabled(ctx, l) {
		return
	}
	r := slog.NewRecord(time.Now(), l, "OpenTelemetry SDK: "+msg, 0)
	r.Add(append(append([]any{}, s.kv...), kv...)...)
	_ = s.h.Handle(ctx, r)
}

func (s *sdkLogSink) WithValues(kv ...any) logr.LogSink {
	return &sdkLogSink{h: s.h, name: s.name, kv: append(append([]any{}, s.kv...), kv...)}
}

func (s *sdkLogSink) WithName(name string) logr.LogSink {
	return &sdkLogSink{h: s.h, name: name, kv: s.kv}
}
