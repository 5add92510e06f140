package telemetrytest

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
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

// Completion is a non-streamed chat completion answer, as an upstream (or
// the proxy) sends it.
const Completion = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"upstream-gpt","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`

// ServeCompletion starts an HTTP server on loopback that reads every
// request and answers it with Completion; it returns the server's base URL
// and stops when tb ends.
func ServeCompletion(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, Completion)
	})}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// PostLoop posts body to url from 16 clients on 2 cores (as make bench
// does) b.N times in all, failing on any answer but 200.
func PostLoop(b *testing.B, url string, body []byte) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
