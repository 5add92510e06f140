package otelconfig

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otelcfg/otelcfg/examples"
	"github.com/otelcfg/otelcfg/internal/otlptest"
	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// memLogs is an in-memory log exporter.
type memLogs struct {
	mu      sync.Mutex
	records []sdklog.Record
}

func (m *memLogs) Export(_ context.Context, rs []sdklog.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range rs {
		m.records = append(m.records, r.Clone())
	}
	return nil
}
func (m *memLogs) Shutdown(context.Context) error   { return nil }
func (m *memLogs) ForceFlush(context.Context) error { return nil }
func (m *memLogs) all() []sdklog.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]sdklog.Record(nil), m.records...)
}

// quiet is a configuration whose providers exist but export nowhere;
// tests add in-memory processors through the options.
const quiet = `file_format: "1.0"
tracer_provider:
  processors: []
logger_provider:
  processors: []
meter_provider:
  readers: []
`

// TestSlogRecordsCarryTraceContext is the seed's test: a slog record
// written inside an active span is exported with that span's trace_id and
// span_id; one written outside any span carries none.
func TestSlogRecordsCarryTraceContext(t *testing.T) {
	logs := &memLogs{}
	spans := tracetest.NewInMemoryExporter()
	var console bytes.Buffer
	tel, err := Start(context.Background(),
		WithBytes("otel.yaml", []byte(quiet)), WithEnv(mapLookup(nil)), WithoutGlobals(),
		WithServiceName("litellm-proxy"), WithConsole(&console),
		WithLoggerProviderOptions(sdklog.WithProcessor(sdklog.NewSimpleProcessor(logs))),
		WithTracerProviderOptions(sdktrace.WithSyncer(spans)),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())

	ctx, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "request")
	tel.Logger().InfoContext(ctx, "Received request", "model", "gpt-4o-mini")
	span.End()
	tel.Logger().InfoContext(context.Background(), "outside any span")
	tel.Logger().DebugContext(ctx, "below the default level")

	recs := logs.all()
	if len(recs) != 2 {
		t.Fatalf("exported %d records, want 2 (debug is below log_level info)", len(recs))
	}
	sc := span.SpanContext()
	if recs[0].Body().AsString() != "Received request" || recs[0].TraceID() != sc.TraceID() || recs[0].SpanID() != sc.SpanID() {
		t.Errorf("record %q has trace %s span %s, want %s %s", recs[0].Body().AsString(), recs[0].TraceID(), recs[0].SpanID(), sc.TraceID(), sc.SpanID())
	}
	if recs[1].TraceID().IsValid() || recs[1].SpanID().IsValid() {
		t.Errorf("record outside a span has trace %s span %s, want none", recs[1].TraceID(), recs[1].SpanID())
	}
	if v, _ := recs[0].Resource().Set().Value("service.name"); v.AsString() != "litellm-proxy" {
		t.Errorf("service.name = %q", v.AsString())
	}
	if !strings.Contains(console.String(), "trace_id="+sc.TraceID().String()) {
		t.Errorf("console line lacks the trace id:\n%s", console.String())
	}
}

func TestLogLevelFromEnv(t *testing.T) {
	logs := &memLogs{}
	tel, err := Start(context.Background(),
		WithBytes("otel.yaml", []byte(quiet)), WithEnv(mapLookup(map[string]string{"OTEL_LOG_LEVEL": "warn"})), WithoutGlobals(), WithConsole(nil),
		WithLoggerProviderOptions(sdklog.WithProcessor(sdklog.NewSimpleProcessor(logs))),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	tel.Logger().Info("dropped")
	tel.Logger().Warn("kept")
	if recs := logs.all(); len(recs) != 1 || recs[0].Body().AsString() != "kept" {
		t.Fatalf("records = %v", recs)
	}
}

// TestDisabled: OTEL_SDK_DISABLED=true turns all OpenTelemetry setup off,
// but slog still writes human-readable lines to the console.
func TestDisabled(t *testing.T) {
	logs := &memLogs{}
	var console bytes.Buffer
	tel, err := Start(context.Background(),
		WithBytes("otel.yaml", []byte(quiet)), WithEnv(mapLookup(map[string]string{"OTEL_SDK_DISABLED": "true"})),
		WithoutGlobals(), WithConsole(&console),
		WithLoggerProviderOptions(sdklog.WithProcessor(sdklog.NewSimpleProcessor(logs))),
	)
	if err != nil {
		t.Fatal(err)
	}
	if tel.Enabled() {
		t.Error("Enabled() = true")
	}
	ctx, span := tel.TracerProvider().Tracer("t").Start(context.Background(), "x")
	if span.SpanContext().IsValid() {
		t.Error("a disabled tracer provider made a real span")
	}
	tel.Logger().InfoContext(ctx, "still on the console")
	span.End()
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(logs.all()) != 0 {
		t.Error("records were exported while disabled")
	}
	if !strings.Contains(console.String(), "still on the console") {
		t.Errorf("console = %q", console.String())
	}
}

// TestShutdown: flushes once, bounded by the context; a second call is
// harmless and returns the same result.
func TestShutdown(t *testing.T) {
	logs := &memLogs{}
	tel, err := Start(context.Background(),
		WithBytes("otel.yaml", []byte(quiet)), WithEnv(mapLookup(nil)), WithoutGlobals(), WithConsole(nil),
		WithLoggerProviderOptions(sdklog.WithProcessor(sdklog.NewBatchProcessor(logs, sdklog.WithExportInterval(time.Hour)))),
	)
	if err != nil {
		t.Fatal(err)
	}
	tel.Logger().Info("buffered until shutdown")
	if n := len(logs.all()); n != 0 {
		t.Fatalf("exported %d before shutdown", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(logs.all()); n != 1 {
		t.Fatalf("exported %d after shutdown, want the buffered record flushed", n)
	}
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
	var nilTel *Telemetry
	if err := nilTel.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownRespectsDeadline(t *testing.T) {
	// An OTLP exporter pointed at a port nobody listens on: shutdown
	// tries to flush but must give up when the context does.
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_BSP_EXPORT_TIMEOUT": "60000", "OTEL_EXPORTER_OTLP_TIMEOUT": "60000"}
	tel, err := Start(context.Background(), WithBytes("otel.yaml", readTestdata(t, "console.yaml")), WithEnv(mapLookup(env)), WithoutGlobals(), WithConsole(nil))
	if err != nil {
		t.Fatal(err)
	}
	_, span := tel.TracerProvider().Tracer("t").Start(context.Background(), "x")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tel.Shutdown(ctx) }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("shutdown reported success although nothing could be exported")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("shutdown ignored its context deadline")
	}
}

func TestStartRefusesInvalidConfig(t *testing.T) {
	tel, err := Start(context.Background(), WithBytes("bad.yaml", []byte("file_format: \"1.0\"\ndisabled: maybe\n")), WithEnv(mapLookup(nil)), WithoutGlobals())
	var ce *Error
	if tel != nil || !errors.As(err, &ce) || ce.Diagnostics[0].Line != 2 {
		t.Fatalf("tel = %v, err = %v", tel, err)
	}
}

// TestOTELConfigFileHiddenFromNewSDK: otelconf.NewSDK replaces the model
// it is given with the file named by OTEL_CONFIG_FILE; Start must keep
// the overlaid model.
func TestOTELConfigFileHiddenFromNewSDK(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(other, []byte("file_format: \"1.0\"\ndisabled: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OTEL_CONFIG_FILE", other)
	tel, err := Start(context.Background(), WithBytes("otel.yaml", []byte(quiet)), WithoutGlobals(), WithConsole(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	_, span := tel.TracerProvider().Tracer("t").Start(context.Background(), "x")
	if !span.SpanContext().IsValid() {
		t.Fatal("the SDK loaded OTEL_CONFIG_FILE instead of the given model")
	}
	if os.Getenv("OTEL_CONFIG_FILE") != other {
		t.Error("OTEL_CONFIG_FILE was not restored")
	}
}

// TestConformanceFiles: the official v1.0 examples all load and start.
// Plain otelconf v0.27.0 refuses two of them (all-null tls blocks).
func TestConformanceFiles(t *testing.T) {
	dir := filepath.Join("..", "..", "shared", "conformance", "upstream-v1.0")
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(files) == 0 {
		t.Skipf("conformance files not found in %s (they live in the project's shared folder, not in a user's clone)", dir)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			tel, err := Start(context.Background(), WithFile(f), WithEnv(mapLookup(nil)), WithoutGlobals(), WithConsole(nil), WithServiceName("litellm-proxy"))
			if err != nil {
				t.Fatal(err)
			}
			if !tel.Enabled() {
				t.Error("not enabled")
			}
			for _, d := range tel.Config().Diagnostics {
				if d.Severity == SeverityError {
					t.Errorf("error diagnostic: %v", d)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = tel.Shutdown(ctx) // nothing listens on localhost:4318; flush errors are expected
		})
	}
}

func TestExemplarFilterApplied(t *testing.T) {
	cfg, err := Load(WithBytes("m.yaml", []byte("file_format: \"1.0\"\nmeter_provider:\n  readers: []\n  exemplar_filter: always_off\n")), WithEnv(mapLookup(nil)))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(meterExtras(cfg.Model)); got != 1 {
		t.Fatalf("meter extras = %d, want the exemplar filter applied", got)
	}
}

// TestFullQueueDropsAndCounts: with the exporter stuck, log calls still
// return at once (the batch queue drops), and the number dropped reaches
// the console as a warning from the SDK.
func TestFullQueueDropsAndCounts(t *testing.T) {
	rcv := otlptest.NewGRPC(t)
	rcv.SetDelay(time.Hour) // accepts, never answers
	var console syncWriter
	prev := slog.Default()
	defer slog.SetDefault(prev)
	env := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.Endpoint(),
		"OTEL_BLRP_MAX_QUEUE_SIZE":    "10",
		"OTEL_BLRP_SCHEDULE_DELAY":    "50",
		"OTEL_BLRP_EXPORT_TIMEOUT":    "200",
	}
	tel, err := Start(context.Background(), WithBytes("otel.yaml", examples.OtelYAML), WithEnv(mapLookup(env)), WithConsole(&console))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		for i := 0; i < 2000; i++ {
			tel.Logger().Info("burst", "i", i)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("log calls blocked on a stuck exporter")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(console.String(), "dropped log records") && time.Now().Before(deadline) {
		tel.Logger().Info("more")
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(console.String(), "OpenTelemetry SDK: dropped log records") {
		t.Errorf("no dropped-records warning on the console:\n%s", truncate(console.String(), 2000))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_ = tel.Shutdown(ctx)
}

type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestLimitsApplied: the limits otelconf v0.27.0 ignores (span event and
// link limits, the global attribute_limits) reach the SDK.
func TestLimitsApplied(t *testing.T) {
	src := `file_format: "1.0"
attribute_limits:
  attribute_count_limit: 2
tracer_provider:
  processors: []
  limits:
    event_count_limit: 1
logger_provider:
  processors: []
`
	spans := tracetest.NewInMemoryExporter()
	logs := &memLogs{}
	tel, err := Start(context.Background(), WithBytes("l.yaml", []byte(src)), WithEnv(mapLookup(nil)), WithoutGlobals(), WithConsole(nil),
		WithTracerProviderOptions(sdktrace.WithSyncer(spans)),
		WithLoggerProviderOptions(sdklog.WithProcessor(sdklog.NewSimpleProcessor(logs))))
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	ctx, span := tel.TracerProvider().Tracer("t").Start(context.Background(), "s")
	span.AddEvent("one")
	span.AddEvent("two")
	span.SetAttributes(attribute.Int("a", 1), attribute.Int("b", 2), attribute.Int("c", 3))
	tel.Logger().InfoContext(ctx, "m", "a", 1, "b", 2, "c", 3)
	span.End()
	got := spans.GetSpans()
	if len(got) != 1 || len(got[0].Events) != 1 || got[0].DroppedEvents != 1 {
		t.Errorf("span events kept %d, dropped %d; want event_count_limit 1 applied", len(got[0].Events), got[0].DroppedEvents)
	}
	if len(got[0].Attributes) != 2 {
		t.Errorf("span attributes %d; want the global attribute_count_limit 2 applied", len(got[0].Attributes))
	}
	if recs := logs.all(); len(recs) != 1 || recs[0].AttributesLen() != 2 {
		t.Errorf("log record attributes: want the global limit 2 applied (%v)", recs)
	}
}
