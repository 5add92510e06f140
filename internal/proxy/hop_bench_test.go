package proxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
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
	upBody := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"upstream-gpt","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`)
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(upBody)
	})}
	upLn, _ := net.Listen("tcp", "127.0.0.1:0")
	go up.Serve(upLn)
	defer up.Close()
	srv, err := New(testSettings("http://"+upLn.Addr().String()), tel)
	if err != nil {
		b.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx, ln)
	url := "http://" + ln.Addr().String() + "/v1/chat/completions"
	body := []byte(chatBody("gpt-test", false, "benchmark the proxy path"))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	b.ReportAllocs()
	b.SetParallelism(8) // 16 clients on 2 cores, as in make bench
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
