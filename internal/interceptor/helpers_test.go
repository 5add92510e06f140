package interceptor

import (
	"context"
	"testing"

	"github.com/otelcfg/otelcfg/internal/telemetrytest"
	"github.com/otelcfg/otelcfg/otelconfig"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const quietOtel = telemetrytest.QuietOtel

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

// logExporter keeps every exported log record (All, ByBody).
type logExporter = telemetrytest.LogExporter

var attrs = telemetrytest.LogAttrs
