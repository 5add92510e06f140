package interceptor

import (
	"context"
	"sync"
	"testing"

	"github.com/otelcfg/otelcfg/otelconfig"
	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// quietOtel is an otel.yaml with every signal on and no exporter: tests add
// in-memory ones through options, and nothing reaches the console.
const quietOtel = `file_format: "1.0"
tracer_provider:
  processors: []
logger_provider:
  processors: []
meter_provider:
  readers: []
`

// telemetry is a started Telemetry with in-memory span and log exporters.
type telemetry struct {
	*otelconfig.Telemetry
	spans *tracetest.InMemoryExporter
	logs  *logExporter
}

func newTelemetry(t *testing.T, service string) *telemetry {
	t.Helper()
	spans := tracetest.NewInMemoryExporter()
	logs := &logExporter{}
	tel, err := otelconfig.Start(context.Background(),
		otelconfig.WithBytes("otel.yaml", []byte(quietOtel)),
		otelconfig.WithEnviron(nil),
		otelconfig.WithServiceName(service),
		otelconfig.WithoutGlobals(),
		otelconfig.WithConsole(nil),
		otelconfig.WithTracerProviderOptions(sdktrace.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(spans))),
		otelconfig.WithLoggerProviderOptions(sdklog.WithProcessor(sdklog.NewSimpleProcessor(logs))),
	)
	if err != nil {
		t.Fatalf("start telemetry: %v", err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return &telemetry{Telemetry: tel, spans: spans, logs: logs}
}

// logExporter keeps every exported log record.
type logExporter struct {
	mu      sync.Mutex
	records []sdklog.Record
}

func (e *logExporter) Export(_ context.Context, rs []sdklog.Record) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range rs {
		e.records = append(e.records, r.Clone())
	}
	return nil
}

func (e *logExporter) Shutdown(context.Context) error   { return nil }
func (e *logExporter) ForceFlush(context.Context) error { return nil }

func (e *logExporter) all() []sdklog.Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]sdklog.Record(nil), e.records...)
}

// byBody returns the records whose body is msg.
func (e *logExporter) byBody(msg string) []sdklog.Record {
	var out []sdklog.Record
	for _, r := range e.all() {
		if r.Body().AsString() == msg {
			out = append(out, r)
		}
	}
	return out
}

// attrs returns a record's attributes as strings.
func attrs(r sdklog.Record) map[string]string {
	m := map[string]string{}
	r.WalkAttributes(func(kv attribute.KeyValue) bool {
		m[string(kv.Key)] = kv.Value.Emit()
		return true
	})
	return m
}
