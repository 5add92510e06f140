package otelconfig

import (
	"context"
	"testing"
	"time"

	"github.com/otelcfg/otelcfg/examples"
	"github.com/otelcfg/otelcfg/internal/otlptest"
)

// TestOTLPRoundTrip: the example configuration, pointed at a real OTLP
// receiver on loopback by OTEL_EXPORTER_OTLP_ENDPOINT alone, delivers
// spans, metrics and log records with the configured service.name.
func TestOTLPRoundTrip(t *testing.T) {
	for _, proto := range []string{"grpc", "http/protobuf"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			var rcv *otlptest.Receiver
			if proto == "grpc" {
				rcv = otlptest.NewGRPC(t)
			} else {
				rcv = otlptest.NewHTTP(t)
			}
			env := map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.Endpoint(),
				"OTEL_EXPORTER_OTLP_PROTOCOL": proto,
				"OTEL_SERVICE_NAME":           "roundtrip-" + proto,
			}
			tel, err := Start(context.Background(), WithBytes("otel.yaml", examples.OtelYAML), WithEnv(mapLookup(env)),
				WithServiceName("litellm-proxy"), WithoutGlobals(), WithConsole(nil))
			if err != nil {
				t.Fatal(err)
			}
			ctx, span := tel.TracerProvider().Tracer("rt").Start(context.Background(), "chat gpt-4o-mini")
			tel.Logger().InfoContext(ctx, "Forwarding to upstream", "model", "gpt-4o-mini")
			counter, _ := tel.MeterProvider().Meter("rt").Int64Counter("requests")
			counter.Add(ctx, 1)
			span.End()
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := tel.Shutdown(sctx); err != nil {
				t.Fatal(err)
			}
			spans, logs, metrics := rcv.Spans(), rcv.Logs(), rcv.Metrics()
			if len(spans) != 1 || len(logs) != 1 || len(metrics) == 0 {
				t.Fatalf("received %d spans, %d logs, %d metrics", len(spans), len(logs), len(metrics))
			}
			want := "roundtrip-" + proto
			if spans[0].Resource["service.name"] != want || logs[0].Resource["service.name"] != want || metrics[0].Resource["service.name"] != want {
				t.Errorf("service.name: span %q log %q metric %q, want %q", spans[0].Resource["service.name"], logs[0].Resource["service.name"], metrics[0].Resource["service.name"], want)
			}
			if spans[0].Resource["service.namespace"] != "litellm-memory" {
				t.Errorf("file attribute lost: %v", spans[0].Resource)
			}
			if logs[0].TraceID != spans[0].TraceID || logs[0].SpanID != spans[0].SpanID {
				t.Errorf("log %s/%s not correlated with span %s/%s", logs[0].TraceID, logs[0].SpanID, spans[0].TraceID, spans[0].SpanID)
			}
		})
	}
}
