package telemetrytest

import (
	"context"
	"io"
	"testing"

	"github.com/otelcfg/otelcfg/examples"
	"github.com/otelcfg/otelcfg/internal/otlptest"
	"github.com/otelcfg/otelcfg/otelconfig"
)

// StartOTLP starts Telemetry as the service binaries do by default with
// OTEL_EXPORTER_OTLP_ENDPOINT set: examples/otel.yaml, every signal batched
// and exported over OTLP/gRPC, here to a real receiver that counts and
// drops, with the console to io.Discard and no globals. Both stop when tb
// ends.
func StartOTLP(tb testing.TB, serviceName string) *otelconfig.Telemetry {
	tb.Helper()
	rcv, err := otlptest.Start(otlptest.ProtocolGRPC)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(rcv.Close)
	rcv.SetMaxItems(0)
	tel, err := otelconfig.Start(context.Background(),
		otelconfig.WithBytes("otel.yaml", examples.OtelYAML),
		otelconfig.WithEnviron([]string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.Endpoint()}),
		otelconfig.WithServiceName(serviceName),
		otelconfig.WithoutGlobals(),
		otelconfig.WithConsole(io.Discard),
	)
	if err != nil {
		tb.Fatal(err)
	}
	// Registered after the receiver's: runs first, so the last exports
	// still find it.
	tb.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel
}
