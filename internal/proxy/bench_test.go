package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/otelcfg/otelcfg/otelconfig"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// discardLogs is a log exporter that drops everything.
type discardLogs struct{}

func (discardLogs) Export(context.Context, []sdklog.Record) error { return nil }
func (discardLogs) Shutdown(context.Context) error                { return nil }
func (discardLogs) ForceFlush(context.Context) error              { return nil }

// BenchmarkChatCompletion is one proxied chat completion with telemetry
// on: server and upstream spans, GenAI and HTTP metrics, three log
// records, exported synchronously to exporters that drop them. The
// upstream is either the in-process echo or an HTTP server on loopback.
func BenchmarkChatCompletion(b *testing.B) {
	tel, err := otelconfig.Start(context.Background(),
		otelconfig.WithBytes("otel.yaml", []byte(quietOtel)),
		otelconfig.WithEnviron(nil),
		otelconfig.WithServiceName(ServiceName),
		otelconfig.WithoutGlobals(),
		otelconfig.WithConsole(nil),
		otelconfig.WithTracerProviderOptions(sdktrace.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(tracetest.NewNoopExporter()))),
		otelconfig.WithLoggerProviderOptions(sdklog.WithProcessor(sdklog.NewSimpleProcessor(discardLogs{}))),
		otelconfig.WithMeterProviderOptions(sdkmetric.WithReader(sdkmetric.NewManualReader())),
	)
	if err != nil {
		b.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	up := newFakeUpstream(b, nil)
	srv, err := New(testSettings(up.URL), tel)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	h := srv.Handler()
	for _, model := range []string{"echo", "gpt-test"} {
		for _, stream := range []bool{false, true} {
			name := model
			if stream {
				name += "/stream"
			}
			body := chatBody(model, stream, "benchmark the proxy path")
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body)))
					if rec.Code != http.StatusOK {
						b.Fatalf("status %d: %s", rec.Code, rec.Body)
					}
				}
			})
		}
	}
}
