package bench

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/otelcfg/otelcfg/examples"
	"github.com/otelcfg/otelcfg/internal/otlptest"
	"github.com/otelcfg/otelcfg/otelconfig"
	"go.opentelemetry.io/contrib/otelconf"
	"go.opentelemetry.io/otel"
)

// ConformanceDir is where the official example files are read from,
// relative to this directory (the repository's ../shared).
var ConformanceDir = filepath.Join("..", "..", "shared", "conformance", "upstream-v1.0")

// largestConformance is the largest official example file.
const largestConformance = "otel-sdk-migration-config.yaml"

// loadFiles are the inputs of the load figure: the example config and the
// largest official example (skipped, with a message, when ../shared is
// absent).
func loadFiles(b *testing.B) []struct {
	name string
	src  []byte
} {
	files := []struct {
		name string
		src  []byte
	}{{"example", examples.OtelYAML}}
	src, err := os.ReadFile(filepath.Join(ConformanceDir, largestConformance))
	if err != nil {
		b.Logf("skipping the conformance file: %v", err)
		return files
	}
	return append(files, struct {
		name string
		src  []byte
	}{"conformance", src})
}

func lookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// BenchmarkLoad is the whole pipeline a service boot runs before starting
// the SDK: parse, substitute, overlay, schema, semantic checks, decode.
func BenchmarkLoad(b *testing.B) {
	env := otelconfig.WithEnv(lookup(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4317"}))
	for _, f := range loadFiles(b) {
		b.Run(f.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				cfg, err := otelconfig.Load(otelconfig.WithBytes("otel.yaml", f.src), env, otelconfig.WithServiceName("litellm-proxy"))
				if err != nil || cfg.Model == nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseYAML is the baseline of BenchmarkLoad: otelconf.ParseYAML
// on the same bytes.
func BenchmarkParseYAML(b *testing.B) {
	for _, f := range loadFiles(b) {
		b.Run(f.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := otelconf.ParseYAML(f.src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// dropCounter counts the log records the SDK reports as dropped (its
// "dropped log records" warning, at most once per export).
type dropCounter struct{ n atomic.Int64 }

func (d *dropCounter) Enabled(context.Context, slog.Level) bool { return true }
func (d *dropCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "dropped") {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "dropped" {
				switch v := a.Value.Resolve(); v.Kind() {
				case slog.KindUint64:
					d.n.Add(int64(v.Uint64()))
				case slog.KindInt64:
					d.n.Add(v.Int64())
				}
			}
			return true
		})
	}
	return nil
}
func (d *dropCounter) WithAttrs([]slog.Attr) slog.Handler { return d }
func (d *dropCounter) WithGroup(string) slog.Handler      { return d }

// startSlog starts telemetry the way a service does with
// examples/otel.yaml and OTEL_EXPORTER_OTLP_ENDPOINT pointing at a real
// OTLP/gRPC receiver on loopback, console off, and returns the logger
// Start built (the otelslog bridge behind otelconfig's level handler) and a
// context holding a sampled span.
func startSlog(b *testing.B, rcv *otlptest.Receiver, env map[string]string, console io.Writer) (*otelconfig.Telemetry, *slog.Logger, context.Context) {
	env["OTEL_EXPORTER_OTLP_ENDPOINT"] = rcv.Endpoint()
	tel, err := otelconfig.Start(context.Background(),
		otelconfig.WithBytes("otel.yaml", examples.OtelYAML),
		otelconfig.WithEnv(lookup(env)),
		otelconfig.WithServiceName("litellm-proxy"),
		otelconfig.WithoutGlobals(), otelconfig.WithConsole(console))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = tel.Shutdown(ctx)
	})
	ctx, span := tel.TracerProvider().Tracer("bench").Start(context.Background(), "request")
	b.Cleanup(func() { span.End() })
	if !span.SpanContext().IsSampled() {
		b.Fatal("the span is not sampled")
	}
	return tel, tel.Logger(), ctx
}

func logOnce(log *slog.Logger, ctx context.Context) {
	log.InfoContext(ctx, "Received request", "method", "POST", "path", "/v1/chat/completions", "user_id", "default-dev")
}

// flushEvery keeps the batch processor's queue under its export batch size
// (512 in examples/otel.yaml), so that no export is triggered while the
// timer runs.
const flushEvery = 400

// BenchmarkSlogInfoContext is one slog.InfoContext with three attributes
// inside a sampled span, through the handler Start installs, the batch
// log processor of examples/otel.yaml and its OTLP/gRPC exporter to a real
// receiver. The timed part is the caller's: every flushEvery calls the
// timer stops and ForceFlush exports the batch to the receiver, so the
// exporter's work (which runs on its own goroutine in a service) is not
// mixed into ns/op and allocs/op; it is reported apart, per record, as
// export-ns/op. The periodic export timer is pushed out of the way
// (OTEL_BLRP_SCHEDULE_DELAY) for the same reason. At the end every record
// must have reached the receiver.
func BenchmarkSlogInfoContext(b *testing.B) { benchSlogFlushed(b, nil) }

// BenchmarkSlogInfoContextConsole is the same call with the console on
// (writing to io.Discard), as the services run: the record goes to the
// bridge and to the human-readable console handler.
func BenchmarkSlogInfoContextConsole(b *testing.B) { benchSlogFlushed(b, io.Discard) }

func benchSlogFlushed(b *testing.B, console io.Writer) {
	rcv, err := otlptest.Start(otlptest.ProtocolGRPC)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rcv.Close) // after the telemetry's shutdown (cleanups run last first)
	rcv.SetMaxItems(0)
	tel, log, ctx := startSlog(b, rcv, map[string]string{"OTEL_BLRP_SCHEDULE_DELAY": "3600000"}, console)
	lp, ok := tel.LoggerProvider().(interface{ ForceFlush(context.Context) error })
	if !ok {
		b.Fatal("the logger provider cannot flush")
	}
	flush := func() time.Duration {
		start := time.Now()
		if err := lp.ForceFlush(context.Background()); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	flush() // connect the exporter before measuring
	rcv.Reset()
	var export time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i > 0 && i%flushEvery == 0 {
			b.StopTimer()
			export += flush()
			b.StartTimer()
		}
		logOnce(log, ctx)
	}
	b.StopTimer()
	export += flush()
	b.ReportMetric(float64(export.Nanoseconds())/float64(b.N), "export-ns/op")
	if got := rcv.Received(otlptest.SignalLogs); got != b.N {
		b.Fatalf("the receiver got %d log records, want %d", got, b.N)
	}
}

// BenchmarkSlogInfoContextStalled is the same call, hammered, while every
// export hangs for 200ms: the queue is full almost all the time, so the
// call must drop (and the SDK count) records, never wait. dropped/op is
// what the SDK reported dropped.
func BenchmarkSlogInfoContextStalled(b *testing.B) {
	rcv, err := otlptest.Start(otlptest.ProtocolGRPC)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rcv.Close) // after the telemetry's shutdown (cleanups run last first)
	rcv.SetMaxItems(0)
	rcv.SetDelay(200 * time.Millisecond)
	drops := &dropCounter{}
	// The SDK reports drops through otel's global logger; nothing else in
	// this test binary logs there.
	otel.SetLogger(logr.FromSlogHandler(drops))
	_, log, ctx := startSlog(b, rcv, map[string]string{}, nil)
	b.ReportAllocs()
	for b.Loop() {
		logOnce(log, ctx)
	}
	b.StopTimer()
	// The SDK reports the drops when its worker is back from the hung
	// export.
	for deadline := time.Now().Add(time.Second); drops.n.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	b.ReportMetric(float64(drops.n.Load())/float64(b.N), "dropped/op")
}

// BenchmarkSlogJSONDiscard is the baseline of BenchmarkSlogInfoContext.
func BenchmarkSlogJSONDiscard(b *testing.B) {
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		log.InfoContext(ctx, "Received request", "method", "POST", "path", "/v1/chat/completions", "user_id", "default-dev")
	}
}
