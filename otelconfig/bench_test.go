package otelconfig

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/otelcfg/otelcfg/examples"
	"go.opentelemetry.io/contrib/otelconf"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// benchFiles are the example config and the largest official example.
func benchFiles(b *testing.B) map[string][]byte {
	files := map[string][]byte{"example": examples.OtelYAML}
	if src, err := os.ReadFile(filepath.Join("..", "..", "shared", "conformance", "upstream-v1.0", "otel-sdk-migration-config.yaml")); err == nil {
		files["migration"] = src
	}
	return files
}

// BenchmarkLoad is the whole pipeline (parse, substitute, overlay, schema,
// lints, decode); BenchmarkParseYAMLBaseline is otelconf.ParseYAML on the
// same bytes, the baseline of the performance table.
func BenchmarkLoad(b *testing.B) {
	for name, src := range benchFiles(b) {
		b.Run(name, func(b *testing.B) {
			env := WithEnv(mapLookup(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4317"}))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Load(WithBytes("otel.yaml", src), env, WithServiceName("litellm-proxy")); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseYAMLBaseline(b *testing.B) {
	for name, src := range benchFiles(b) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := otelconf.ParseYAML(src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSlogInfoContext is one slog.InfoContext with three attributes
// inside a span, through the handler Start installs (console off), a batch
// processor and an OTLP exporter to nowhere that is never reached within
// the benchmark (the export runs on its own goroutine).
func BenchmarkSlogInfoContext(b *testing.B) {
	env := mapLookup(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
		"OTEL_BLRP_SCHEDULE_DELAY":    "100",
	})
	tel, err := Start(context.Background(), WithBytes("otel.yaml", examples.OtelYAML), WithEnv(env), WithoutGlobals(), WithConsole(nil),
		WithTracerProviderOptions(sdktrace.WithSampler(sdktrace.AlwaysSample())))
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = tel.Shutdown(ctx)
	}()
	ctx, span := tel.TracerProvider().Tracer("bench").Start(context.Background(), "request")
	defer span.End()
	log := tel.Logger()
	b.ReportAllocs()
	for b.Loop() {
		log.InfoContext(ctx, "Received request", "method", "POST", "path", "/v1/chat/completions", "user_id", "default-dev")
	}
}

func BenchmarkSlogJSONDiscardBaseline(b *testing.B) {
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		log.InfoContext(ctx, "Received request", "method", "POST", "path", "/v1/chat/completions", "user_id", "default-dev")
	}
}
