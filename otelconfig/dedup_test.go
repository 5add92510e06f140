package otelconfig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/trace"
)

// recordText is everything an exporter reads from r but the resource (the
// providers compared have different ones) and the observed timestamp (the
// SDK's clock when the producer leaves it unset).
func recordText(r sdklog.Record) string {
	var b strings.Builder
	sc := r.InstrumentationScope()
	fmt.Fprintf(&b, "scope %q %q %q %s\n", sc.Name, sc.Version, sc.SchemaURL, kvsText(sc.Attributes.ToSlice()))
	fmt.Fprintf(&b, "event %q time %d severity %d %q\n", r.EventName(), r.Timestamp().UnixNano(), r.Severity(), r.SeverityText())
	fmt.Fprintf(&b, "trace %s span %s flags %s\n", r.TraceID(), r.SpanID(), r.TraceFlags())
	fmt.Fprintf(&b, "body %s\n", valueText(r.Body()))
	var kvs []attribute.KeyValue
	r.WalkAttributes(func(kv attribute.KeyValue) bool { kvs = append(kvs, kv); return true })
	fmt.Fprintf(&b, "attributes %s dropped %d", kvsText(kvs), r.DroppedAttributes())
	return b.String()
}

func kvsText(kvs []attribute.KeyValue) string {
	parts := make([]string, len(kvs))
	for i, kv := range kvs {
		parts[i] = fmt.Sprintf("%q=%s", kv.Key, valueText(kv.Value))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func valueText(v attribute.Value) string {
	switch v.Type() {
	case attribute.MAP:
		return "map" + kvsText(v.AsMap())
	case attribute.SLICE:
		var parts []string
		for _, e := range v.AsSlice() {
			parts = append(parts, valueText(e))
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return v.Type().String() + ":" + v.Emit()
}

// sameRecords fails unless got and want hold the same records in the same
// order.
func sameRecords(t *testing.T, got, want []sdklog.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records exported, the SDK alone exports %d", len(got), len(want))
	}
	for i := range got {
		if g, w := recordText(got[i]), recordText(want[i]); g != w {
			t.Errorf("record %d:\n got: %s\nwant: %s", i, g, w)
		}
		if got[i].ObservedTimestamp().IsZero() {
			t.Errorf("record %d has no observed timestamp", i)
		}
	}
}

// refProvider is an SDK provider as it comes (de-duplicating) with the
// given options: what the differential tests compare with.
func refProvider(t *testing.T, opts ...sdklog.LoggerProviderOption) (*sdklog.LoggerProvider, *memLogs) {
	t.Helper()
	logs := &memLogs{}
	lp := sdklog.NewLoggerProvider(append(opts, sdklog.WithProcessor(sdklog.NewSimpleProcessor(logs)))...)
	t.Cleanup(func() { _ = lp.Shutdown(context.Background()) })
	return lp, logs
}

// startDedup starts Telemetry from src with in-memory log export and the
// given extra provider options, and checks that the de-duplicating
// provider is in use over an SDK provider that does not de-duplicate.
func startDedup(t *testing.T, src string, opts ...sdklog.LoggerProviderOption) (*Telemetry, *dedupProvider, *memLogs) {
	t.Helper()
	logs := &memLogs{}
	opts = append(opts, sdklog.WithProcessor(sdklog.NewSimpleProcessor(logs)))
	tel, err := Start(context.Background(), WithBytes("otel.yaml", []byte(src)), WithEnv(mapLookup(nil)),
		WithoutGlobals(), WithConsole(nil), WithLoggerProviderOptions(opts...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	dp, ok := tel.LoggerProvider().(*dedupProvider)
	if !ok {
		t.Fatalf("the logger provider is a %T, want the de-duplicating one", tel.LoggerProvider())
	}
	if !sdkAllowsDup(dp.sdk) {
		t.Fatal("the SDK provider de-duplicates itself: the fast path is off")
	}
	return tel, dp, logs
}

// countLimits are the attribute count limits the differential tests run
// under: the limit decides which repeated keys the SDK counts as dropped.
var countLimits = []struct {
	name string
	opts []sdklog.LoggerProviderOption
}{
	{"default limit", nil},
	{"no limit", []sdklog.LoggerProviderOption{sdklog.WithAttributeCountLimit(-1)}},
	{"limit 0", []sdklog.LoggerProviderOption{sdklog.WithAttributeCountLimit(0)}},
	{"limit 1", []sdklog.LoggerProviderOption{sdklog.WithAttributeCountLimit(1)}},
	{"limit 2", []sdklog.LoggerProviderOption{sdklog.WithAttributeCountLimit(2)}},
	{"limit 3", []sdklog.LoggerProviderOption{sdklog.WithAttributeCountLimit(3)}},
	{"limit 17", []sdklog.LoggerProviderOption{sdklog.WithAttributeCountLimit(17)}},
}

var (
	testTime = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	testCtx  = trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
	}))
)

// many returns n attributes k0…k(n-1) followed by repeats of k3, k1 and
// the last key.
func many(n int) []any {
	var args []any
	for i := range n {
		args = append(args, fmt.Sprintf("k%d", i), i)
	}
	return append(args, "k3", "again", "k1", true, fmt.Sprintf("k%d", n-1), 1.5)
}

// slogCases are slog calls, on a logger possibly derived with With and
// WithGroup, several of which repeat keys in each of the ways slog code
// can.
var slogCases = []struct {
	name   string
	derive func(slog.Handler) slog.Handler
	args   []any
}{
	{"no repeat", nil, []any{"method", "POST", "path", "/v1/chat/completions", "user_id", "default-dev"}},
	{"no attributes", nil, nil},
	{"top level", nil, []any{"k", 1, "j", "x", "k", 2}},
	{"top level, order and last value", nil, []any{"a", 1, "b", 2, "a", 3, "c", 4, "b", 5, "a", "six"}},
	{"repeat beyond the limits", nil, []any{"a", 1, "b", 2, "c", 3, "c", 4, "d", 5, "c", 6, "a", 7}},
	{"via With", func(h slog.Handler) slog.Handler {
		return h.WithAttrs([]slog.Attr{slog.String("k", "a"), slog.Int("m", 1)})
	}, []any{"k", "b"}},
	{"via With twice", func(h slog.Handler) slog.Handler {
		return h.WithAttrs([]slog.Attr{slog.Int("k", 1)}).WithAttrs([]slog.Attr{slog.Int("k", 2)})
	}, []any{"x", 1}},
	{"via a group", func(h slog.Handler) slog.Handler {
		return h.WithGroup("g").WithAttrs([]slog.Attr{slog.Int("k", 1)})
	}, []any{"k", 2}},
	{"nested groups", func(h slog.Handler) slog.Handler {
		return h.WithAttrs([]slog.Attr{slog.Int("g", 0)}).WithGroup("g").WithAttrs([]slog.Attr{slog.Int("k", 1)}).
			WithGroup("h").WithAttrs([]slog.Attr{slog.Int("z", 1)})
	}, []any{"z", 2, "k", 3, "z", 4}},
	{"group attribute", nil, []any{slog.Group("g", "a", 1, "a", 2, slog.Group("n", "x", 1, "x", "two")), "g", "later", "h", 1}},
	{"group attribute last", nil, []any{"g", "first", slog.Group("g", "a", 1, "a", 2)}},
	{"error and exception keys", nil, []any{"err", errors.New("boom"), "exception.message", "mine", "exception.message", "again"}},
	{"empty keys", nil, []any{slog.Int("", 1), "a", 1, slog.Any("", nil), "a", 2, slog.Group("", "b", 1, "a", 3)}},
	{"values converted to maps", nil, []any{"m", map[string]int{"x": 1, "y": 2}, "s", []map[string]int{{"a": 1}}, "m", 1}},
	{"many", nil, many(20)},
	{"many, no repeat", nil, many(18)[:36]},
}

// TestDedupSlogMatchesSDK: the handler Start installs, over an SDK
// provider built not to de-duplicate, exports exactly what otelslog over
// an SDK provider that de-duplicates exports, for slog calls that repeat
// keys at the top level, through With, through groups and inside group
// values, under several attribute count limits.
func TestDedupSlogMatchesSDK(t *testing.T) {
	for _, lim := range countLimits {
		t.Run(lim.name, func(t *testing.T) {
			tel, _, got := startDedup(t, quiet, lim.opts...)
			lp, want := refProvider(t, lim.opts...)
			ref := otelslog.NewHandler(ScopeName, otelslog.WithLoggerProvider(lp))
			for _, c := range slogCases {
				ours, theirs := tel.Logger().Handler(), slog.Handler(ref)
				if c.derive != nil {
					ours, theirs = c.derive(ours), c.derive(theirs)
				}
				r := slog.NewRecord(testTime, slog.LevelWarn, c.name, 0)
				r.Add(c.args...)
				if err := ours.Handle(testCtx, r.Clone()); err != nil {
					t.Fatal(err)
				}
				if err := theirs.Handle(testCtx, r.Clone()); err != nil {
					t.Fatal(err)
				}
			}
			sameRecords(t, got.all(), want.all())
		})
	}
}

// logCases are records as any producer of the OpenTelemetry logs API
// (another bridge, direct use) may emit them.
var logCases = []struct {
	name string
	rec  func() log.Record
}{
	{"top level, every type", func() log.Record {
		var r log.Record
		r.AddAttributes(attribute.Int("a", 1), attribute.String("b", "x"), attribute.Bool("a", true),
			attribute.Float64("c", 1.5), attribute.Int64Slice("b", []int64{1, 2}), attribute.String("a", "last"))
		return r
	}},
	{"map value", func() log.Record {
		var r log.Record
		r.AddAttributes(attribute.Map("m", attribute.Int("a", 1), attribute.String("b", "x"), attribute.Int("a", 2)))
		return r
	}},
	{"nested maps and slices", func() log.Record {
		inner := attribute.Map("in", attribute.Int("x", 1), attribute.Int("x", 2), attribute.Int("y", 3))
		slice := attribute.Slice("s", attribute.MapValue(attribute.Int("p", 1), attribute.Int("p", 2)), attribute.IntValue(7),
			attribute.SliceValue(attribute.MapValue(attribute.Int("q", 1), attribute.Int("q", 2))))
		var r log.Record
		r.AddAttributes(attribute.String("plain", "v"), attribute.Map("m", inner, attribute.Int("z", 1), inner), slice)
		return r
	}},
	{"maps without repeats", func() log.Record {
		var r log.Record
		r.AddAttributes(attribute.Map("m", attribute.Int("a", 1), attribute.Map("n", attribute.Int("b", 1))),
			attribute.Slice("s", attribute.IntValue(1), attribute.MapValue(attribute.Int("c", 1))))
		return r
	}},
	{"a map later replaced", func() log.Record {
		var r log.Record
		r.AddAttributes(attribute.Map("m", attribute.Int("a", 1), attribute.Int("a", 2)), attribute.Int("n", 1), attribute.String("m", "scalar"))
		return r
	}},
	{"one attribute, a map with repeats", func() log.Record {
		var r log.Record
		r.AddAttributes(attribute.Map("m", attribute.Int("a", 1), attribute.Int("a", 2)))
		return r
	}},
	{"body map", func() log.Record {
		var r log.Record
		r.SetBody(attribute.MapValue(attribute.String("msg", "a"), attribute.String("msg", "b"),
			attribute.Slice("s", attribute.MapValue(attribute.Int("x", 1), attribute.Int("x", 2)))))
		r.AddAttributes(attribute.Int("a", 1), attribute.Int("b", 2))
		return r
	}},
	{"error and exception keys", func() log.Record {
		var r log.Record
		r.SetErr(errors.New("boom"))
		r.AddAttributes(attribute.String("exception.type", "T1"), attribute.Int("a", 1), attribute.String("exception.type", "T2"))
		return r
	}},
	{"error beyond the limit", func() log.Record {
		var r log.Record
		r.SetErr(errors.New("boom"))
		r.AddAttributes(attribute.Int("a", 1), attribute.Int("b", 1), attribute.Int("a", 2), attribute.Int("c", 1), attribute.Int("c", 2))
		return r
	}},
	{"event, severity, timestamps", func() log.Record {
		var r log.Record
		r.SetEventName("my.event")
		r.SetTimestamp(testTime)
		r.SetObservedTimestamp(testTime.Add(time.Second))
		r.SetSeverity(log.SeverityError2)
		r.SetSeverityText("ERROR2")
		r.SetBody(attribute.StringValue("body"))
		r.AddAttributes(attribute.Int("a", 1), attribute.Int("a", 2))
		return r
	}},
	{"empty keys", func() log.Record {
		var r log.Record
		r.AddAttributes(attribute.Int("", 1), attribute.Int("a", 1), attribute.Int("", 2), attribute.Int("a", 2),
			attribute.Map("m", attribute.Int("", 1), attribute.Int("", 2)))
		return r
	}},
	{"many", func() log.Record {
		var r log.Record
		for i := range 20 {
			r.AddAttributes(attribute.Int(fmt.Sprintf("k%d", i), i))
		}
		r.AddAttributes(attribute.Int("k19", -1), attribute.Int("k2", -2), attribute.Map("k5", attribute.Int("a", 1), attribute.Int("a", 2)))
		return r
	}},
}

// TestDedupLogAPIMatchesSDK: records emitted through the provider Start
// exposes (as another bridge or direct users of the logs API do) come out
// exactly as from an SDK provider that de-duplicates: repeated top-level
// keys, repeated keys in map values at any depth (in slices too), in the
// body, in the instrumentation scope's attributes, under several attribute
// count limits.
func TestDedupLogAPIMatchesSDK(t *testing.T) {
	scopeOpts := []log.LoggerOption{
		log.WithInstrumentationVersion("1.2.3"), log.WithSchemaURL("https://example.com/schema"),
		log.WithInstrumentationAttributes(attribute.String("s", "v"),
			attribute.Map("m", attribute.Int("a", 1), attribute.Int("a", 2), attribute.Map("n", attribute.Int("b", 1), attribute.Int("b", 2)))),
	}
	for _, lim := range countLimits {
		t.Run(lim.name, func(t *testing.T) {
			tel, _, got := startDedup(t, quiet, lim.opts...)
			lp, want := refProvider(t, lim.opts...)
			for _, scoped := range []bool{false, true} {
				var opts []log.LoggerOption
				if scoped {
					opts = scopeOpts
				}
				ours, theirs := tel.LoggerProvider().Logger("producer", opts...), lp.Logger("producer", opts...)
				for _, c := range logCases {
					ours.Emit(testCtx, c.rec())
					theirs.Emit(testCtx, c.rec())
				}
			}
			sameRecords(t, got.all(), want.all())
		})
	}
}

// TestDedupTestsHaveTeeth: without the de-duplicating layer, the SDK
// provider Start builds would export the repeated keys the tests above
// check are gone.
func TestDedupTestsHaveTeeth(t *testing.T) {
	_, dp, got := startDedup(t, quiet)
	lp, want := refProvider(t)
	for _, c := range logCases {
		dp.sdk.Logger("producer").Emit(testCtx, c.rec())
		lp.Logger("producer").Emit(testCtx, c.rec())
	}
	differ := 0
	g, w := got.all(), want.all()
	for i := range g {
		if recordText(g[i]) != recordText(w[i]) {
			differ++
		}
	}
	if differ < len(logCases)-2 {
		t.Errorf("only %d of %d records differ without de-duplication", differ, len(logCases))
	}
}

// TestDedupWithConfiguredLimit: the limit the SDK resolves from the
// configuration (not from an option the caller passes) is the one the
// de-duplication follows.
func TestDedupWithConfiguredLimit(t *testing.T) {
	src := quiet + "attribute_limits:\n  attribute_count_limit: 2\n"
	tel, dp, got := startDedup(t, src)
	if dp.limit != 2 {
		t.Fatalf("limit read from the SDK provider = %d, want 2", dp.limit)
	}
	lp, want := refProvider(t, sdklog.WithAttributeCountLimit(2))
	tel.Logger().InfoContext(testCtx, "m", "a", 1, "b", 2, "c", 3, "c", 4, "a", 5)
	otelslog.NewLogger(ScopeName, otelslog.WithLoggerProvider(lp)).InfoContext(testCtx, "m", "a", 1, "b", 2, "c", 3, "c", 4, "a", 5)
	g, w := got.all(), want.all()
	if len(g) != 1 || len(w) != 1 {
		t.Fatalf("records: %d and %d", len(g), len(w))
	}
	// The timestamps differ (two calls); the rest must not.
	g[0].SetTimestamp(w[0].Timestamp())
	sameRecords(t, g, w)
	if g[0].DroppedAttributes() != 2 {
		t.Errorf("dropped %d, want 2 (c twice)", g[0].DroppedAttributes())
	}
}

// TestDedupForGlobalProducers: other producers that log through the
// global LoggerProvider Start installs (another otelslog handler, direct
// users of the logs API) get the SDK's de-duplication too.
func TestDedupForGlobalProducers(t *testing.T) {
	prevSlog := slog.Default()
	defer slog.SetDefault(prevSlog)
	logs := &memLogs{}
	tel, err := Start(context.Background(), WithBytes("otel.yaml", []byte(quiet)), WithEnv(mapLookup(nil)), WithConsole(nil),
		WithLoggerProviderOptions(sdklog.WithProcessor(sdklog.NewSimpleProcessor(logs))))
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	if _, ok := otel.GetLoggerProvider().(*dedupProvider); !ok {
		t.Fatalf("the global logger provider is a %T", otel.GetLoggerProvider())
	}
	lp, want := refProvider(t)

	other := otelslog.NewHandler("other/bridge") // the global provider
	ref := otelslog.NewHandler("other/bridge", otelslog.WithLoggerProvider(lp))
	r := slog.NewRecord(testTime, slog.LevelInfo, "from another bridge", 0)
	r.Add("k", 1, "j", 2, "k", 3, slog.Group("g", "a", 1, "a", 2))
	_ = other.Handle(testCtx, r.Clone())
	_ = ref.Handle(testCtx, r.Clone())
	for _, c := range logCases {
		otel.GetLoggerProvider().Logger("other/direct").Emit(testCtx, c.rec())
		lp.Logger("other/direct").Emit(testCtx, c.rec())
	}
	sameRecords(t, logs.all(), want.all())
}

// TestCallerAllowingDuplicates: a caller that passes
// sdklog.WithAllowKeyDuplication keeps its duplicates.
func TestCallerAllowingDuplicates(t *testing.T) {
	logs := &memLogs{}
	tel, err := Start(context.Background(), WithBytes("otel.yaml", []byte(quiet)), WithEnv(mapLookup(nil)), WithoutGlobals(), WithConsole(nil),
		WithLoggerProviderOptions(sdklog.WithAllowKeyDuplication(), sdklog.WithProcessor(sdklog.NewSimpleProcessor(logs))))
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	lp, want := refProvider(t, sdklog.WithAllowKeyDuplication())
	for _, c := range logCases {
		tel.LoggerProvider().Logger("producer").Emit(testCtx, c.rec())
		lp.Logger("producer").Emit(testCtx, c.rec())
	}
	sameRecords(t, logs.all(), want.all())
	if got := logs.all()[0].AttributesLen(); got != 6 {
		t.Errorf("%d attributes, want the 6 given, repeats kept", got)
	}
}

// TestInternalFieldsReadable: the SDK and attribute versions in go.mod
// still have the fields dedup.go reads; were they renamed, Start would
// silently fall back to the SDK's slower de-duplication, and the check of
// group values to a copy.
func TestInternalFieldsReadable(t *testing.T) {
	if !sdkFieldsReadable() {
		t.Fatal("sdklog.LoggerProvider no longer has the fields otelconfig reads; see dedup.go")
	}
	if !flatReadable {
		t.Fatal("attribute.Value no longer has the fields otelconfig reads; see dedup.go")
	}
	lp := sdklog.NewLoggerProvider(sdklog.WithAttributeCountLimit(7), sdklog.WithAllowKeyDuplication())
	if sdkCountLimit(lp) != 7 || !sdkAllowsDup(lp) {
		t.Errorf("read limit %d, allow duplicates %v; want 7, true", sdkCountLimit(lp), sdkAllowsDup(lp))
	}
	lp = sdklog.NewLoggerProvider()
	if sdkCountLimit(lp) != 128 || sdkAllowsDup(lp) {
		t.Errorf("read limit %d, allow duplicates %v; want the defaults 128, false", sdkCountLimit(lp), sdkAllowsDup(lp))
	}
}

// TestDedupCheckDoesNotAllocate: a record without repeated keys passes
// the check without an allocation, up to the size compared on the stack,
// with map and slice values of scalars (slog groups) too.
func TestDedupCheckDoesNotAllocate(t *testing.T) {
	var r log.Record
	r.AddAttributes(attribute.Map("group", attribute.Int("a", 1), attribute.String("b", "x"), attribute.Bool("c", true)),
		attribute.Slice("list", attribute.IntValue(1), attribute.StringValue("x")))
	for i := range smallRecord - 2 {
		r.AddAttributes(attribute.String(fmt.Sprintf("k%d", i), "v"))
	}
	if n := testing.AllocsPerRun(100, func() {
		if recordHasDup(&r) {
			t.Fatal("duplicates found where there are none")
		}
	}); n != 0 {
		t.Errorf("%v allocations per check", n)
	}
}
