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
// Info and debug chatter (V(4), V(8)) stays off, except the one debug line
// that carries the batch span processor's count of dropped spans, which
// the SDK reports nowhere else: it becomes a "dropped spans" warning.
//
// Each message is printed at most once per interval: the first at once,
// the later ones counted (and their "dropped" counts summed) into the
// next line, so that an outage cannot flood the console; Shutdown prints
// what is still pending.
type sdkLogSink struct {
	name string
	kv   []any
	lim  *sdkLogLimiter // shared by every copy of the sink
}

func newSDKLogSink(h slog.Handler, interval time.Duration) *sdkLogSink {
	return &sdkLogSink{lim: &sdkLogLimiter{h: h, interval: interval, last: map[string]*sdkLine{}}}
}

// sdkDebug is the logr level of the SDK's debug messages.
const sdkDebug = 8

func (s *sdkLogSink) Init(logr.RuntimeInfo) {}

func (s *sdkLogSink) Enabled(level int) bool { return level <= 1 || level == sdkDebug }

func (s *sdkLogSink) Info(level int, msg string, kv ...any) {
	switch {
	case level <= 1:
		s.lim.emit(slog.LevelWarn, msg, append(append([]any{}, s.kv...), kv...))
	case level == sdkDebug && msg == "exporting spans":
		// Said before each export, with the processor's running total.
		s.lim.spanTotal(kv)
	}
}

func (s *sdkLogSink) Error(err error, msg string, kv ...any) {
	s.lim.emit(slog.LevelError, msg, append(append([]any{"error", err}, s.kv...), kv...))
}

func (s *sdkLogSink) WithValues(kv ...any) logr.LogSink {
	return &sdkLogSink{name: s.name, kv: append(append([]any{}, s.kv...), kv...), lim: s.lim}
}

func (s *sdkLogSink) WithName(name string) logr.LogSink {
	return &sdkLogSink{name: name, kv: s.kv, lim: s.lim}
}

// sdkLogLimiter prints SDK messages at a bounded rate (see sdkLogSink).
type sdkLogLimiter struct {
	h        slog.Handler
	interval time.Duration
	mu       sync.Mutex
	last     map[string]*sdkLine // by message
	spans    uint64              // the span processor's last total
}

// sdkLine is the state of one message: when it was last printed, and what
// came since.
type sdkLine struct {
	at         time.Time
	suppressed int
	dropped    uint64 // summed "dropped" counts of the suppressed ones
	level      slog.Level
	kv         []any // of the latest suppressed one
}

func (l *sdkLogLimiter) spanTotal(kv []any) {
	total, ok := countArg(kv, "total_dropped")
	if !ok {
		return
	}
	l.mu.Lock()
	// With several batch span processors the totals interleave; a total
	// below the last one starts a new count rather than a negative one.
	prev := l.spans
	if total < prev {
		prev = 0
	}
	l.spans = total
	l.mu.Unlock()
	if total > prev {
		l.emit(slog.LevelWarn, "dropped spans", []any{"dropped", total - prev})
	}
}

func (l *sdkLogLimiter) emit(level slog.Level, msg string, kv []any) {
	dropped, _ := countArg(kv, "dropped")
	now := time.Now()
	l.mu.Lock()
	if p := l.last[msg]; p != nil && now.Sub(p.at) < l.interval {
		p.suppressed++
		p.dropped += dropped
		p.level, p.kv = max(p.level, level), kv
		l.mu.Unlock()
		return
	}
	var n int
	if p := l.last[msg]; p != nil {
		n, dropped, level = p.suppressed, dropped+p.dropped, max(p.level, level)
	}
	l.last[msg] = &sdkLine{at: now}
	l.mu.Unlock()
	l.write(level, msg, kv, n, dropped)
}

// flush prints every message that was suppressed since it was last
// printed.
func (l *sdkLogLimiter) flush() {
	l.mu.Lock()
	var pending []struct {
		msg  string
		line sdkLine
	}
	for msg, p := range l.last {
		if p.suppressed > 0 {
			pending = append(pending, struct {
				msg  string
				line sdkLine
			}{msg, *p})
			*p = sdkLine{at: time.Now()}
		}
	}
	l.mu.Unlock()
	for _, p := range pending {
		// The latest message's own count is in dropped already.
		l.write(p.line.level, p.msg, p.line.kv, p.line.suppressed-1, p.line.dropped)
	}
}

func (l *sdkLogLimiter) write(level slog.Level, msg string, kv []any, suppressed int, dropped uint64) {
	ctx := context.Background()
	if !l.h.Enabled(ctx, level) {
		return
	}
	r := slog.NewRecord(time.Now(), level, "OpenTelemetry SDK: "+msg, 0)
	for i := 0; i+1 < len(kv); i += 2 {
		if k, _ := kv[i].(string); k == "dropped" {
			r.AddAttrs(slog.Uint64("dropped", dropped))
			continue
		}
		r.Add(kv[i], kv[i+1])
	}
	if suppressed > 0 {
		r.AddAttrs(slog.Int("suppressed", suppressed))
	}
	_ = l.h.Handle(ctx, r)
}

// countArg returns the non-negative integer value of key in a logr
// key/value list.
func countArg(kv []any, key string) (uint64, bool) {
	for i := 0; i+1 < len(kv); i += 2 {
		if k, _ := kv[i].(string); k != key {
			continue
		}
		switch v := kv[i+1].(type) {
		case uint64:
			return v, true
		case uint32:
			return uint64(v), true
		case int:
			return uint64(max(v, 0)), true
		case int64:
			return uint64(max(v, 0)), true
		}
	}
	return 0, false
}
