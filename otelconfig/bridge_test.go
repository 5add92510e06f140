package otelconfig

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/bridges/otelslog"
	sdklog "go.opentelemetry.io/otel/sdk/log"
)

type secret string

func (s secret) LogValue() slog.Value { return slog.StringValue("[REDACTED]") }

// TestBridgeShortcutMatchesOtelslog: bridgeHandler exports exactly what
// otelslog exports, for the records it converts itself (every scalar kind,
// every level, up to five attributes) and for those it hands to otelslog.
func TestBridgeShortcutMatchesOtelslog(t *testing.T) {
	levels := []slog.Level{slog.LevelDebug - 4, slog.LevelDebug, slog.LevelInfo, slog.LevelInfo + 1, slog.LevelWarn, slog.LevelError, slog.LevelError + 8}
	cases := []struct {
		name string
		args []any
	}{
		{"none", nil},
		{"the benchmark's", []any{"method", "POST", "path", "/v1/chat/completions", "user_id", "default-dev"}},
		{"ints", []any{"a", 1, "b", int64(math.MinInt64), slog.Int64("c", math.MaxInt64)}},
		{"uints", []any{slog.Uint64("a", 7), slog.Uint64("b", math.MaxInt64), slog.Uint64("c", math.MaxInt64+1), slog.Uint64("d", math.MaxUint64)}},
		{"floats", []any{"a", 1.5, "b", math.Inf(-1), "c", math.NaN(), "d", math.Copysign(0, -1)}},
		{"bools, durations, times", []any{"a", true, "b", false, "c", 1500 * time.Millisecond, "d", testTime, "e", time.Time{}}},
		{"five", []any{"a", 1, "b", 2, "c", 3, "d", 4, "e", 5}},
		{"six", []any{"a", 1, "b", 2, "c", 3, "d", 4, "e", 5, "f", 6}},
		{"repeated key", []any{"a", 1, "a", 2}},
		{"error", []any{"a", 1, "err", errors.New("boom")}},
		{"error first", []any{"err", errors.New("boom"), "a", 1}},
		{"any", []any{"s", struct{ X int }{1}, "l", []int{1, 2}}},
		{"any first", []any{"l", []int{1, 2}, "a", 1}},
		{"group", []any{"a", 1, slog.Group("g", "b", 2)}},
		{"group first", []any{slog.Group("g", "b", 2), "a", 1}},
		{"log valuer", []any{"key", secret("sk-123")}},
		{"empty keys", []any{slog.Int("", 1), slog.Any("", nil), "a", 1}},
		{"empty group key", []any{slog.Group("", "a", 1)}},
	}
	derive := []struct {
		name string
		fn   func(slog.Handler) slog.Handler
	}{
		{"root", func(h slog.Handler) slog.Handler { return h }},
		{"With", func(h slog.Handler) slog.Handler { return h.WithAttrs([]slog.Attr{slog.String("w", "x")}) }},
		{"WithGroup", func(h slog.Handler) slog.Handler { return h.WithGroup("g") }},
	}
	lp1, got := refProvider(t)
	lp2, want := refProvider(t)
	ours, theirs := newBridgeHandler(lp1), otelslog.NewHandler(ScopeName, otelslog.WithLoggerProvider(lp2))
	for _, d := range derive {
		o, th := d.fn(ours), d.fn(theirs)
		for _, l := range levels {
			for _, c := range cases {
				r := slog.NewRecord(testTime, l, d.name+" "+c.name, 0)
				r.Add(c.args...)
				if err := o.Handle(testCtx, r.Clone()); err != nil {
					t.Fatal(err)
				}
				_ = th.Handle(testCtx, r.Clone())
			}
		}
	}
	sameRecords(t, got.all(), want.all())
	if n := len(got.all()); n != len(derive)*len(levels)*len(cases) {
		t.Errorf("%d records", n)
	}
}

// TestBridgeShortcutTaken: the scalar record is converted without the
// buffer otelslog allocates (the provider has no processor, so the SDK
// allocates nothing either).
func TestBridgeShortcutTaken(t *testing.T) {
	h := newBridgeHandler(sdklog.NewLoggerProvider())
	r := slog.NewRecord(testTime, slog.LevelInfo, "Received request", 0)
	r.Add("method", "POST", "status", 200, "took", time.Millisecond)
	if n := testing.AllocsPerRun(100, func() { _ = h.Handle(context.Background(), r) }); n != 0 {
		t.Errorf("%v allocations per record: the shortcut was not taken", n)
	}
}
