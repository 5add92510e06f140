package proxy

import (
	"context"
	"net"
	"testing"

	"github.com/otelcfg/otelcfg/internal/telemetrytest"
)

// BenchmarkHop is one chat completion through the proxy as bin/proxy runs
// it: a real listener on loopback, the example otel.yaml with its
// exporters switched to OTLP/gRPC by OTEL_EXPORTER_OTLP_ENDPOINT (batch
// processors, a real receiver), the console to io.Discard, and an HTTP
// upstream on loopback. The client, the upstream and the receiver run in
// this process too; profile it with -cpuprofile and focus on the proxy:
//
//	go test ./internal/proxy -run XXX -bench Hop -benchtime 20000x -cpuprofile cpu.out
//	go tool pprof -top -cum -focus 'otelhttp.*middleware' proxy.test cpu.out
func BenchmarkHop(b *testing.B) {
	tel := telemetrytest.StartOTLP(b, ServiceName)
	srv, err := New(testSettings(telemetrytest.ServeCompletion(b)), tel)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx, ln)
	telemetrytest.PostLoop(b, "http://"+ln.Addr().String()+"/v1/chat/completions", []byte(chatBody("gpt-test", false, "benchmark the proxy path")))
}
