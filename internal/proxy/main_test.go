package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelcfg/otelcfg/otelconfig"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// quietOpts keep Main's telemetry in-process and silent.
func quietOpts() []otelconfig.Option {
	return []otelconfig.Option{otelconfig.WithBytes("otel.yaml", []byte(quietOtel)), otelconfig.WithoutGlobals()}
}

func TestMainExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, content)
		return p
	}
	badRegex := write("bad-regex.yaml", "models:\n  - name: m\n    api_base: builtin:echo\nuser_id_mappings:\n  header_patterns:\n    - header: user-agent\n      pattern: \"[claude\"\n      user_id: x\n")
	good := write("good.yaml", "models:\n  - name: m\n    api_base: builtin:echo\n")
	badOtel := write("otel.yaml", "file_format: \"1.0\"\ntracer_provider:\n  processors:\n    - batch:\n        exporter:\n          otlp_grpc:\n            endpoint: http://localhost:4317\n            compresion: gzip\n")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })

	tests := []struct {
		name       string
		args       []string
		env        []string
		otel       []otelconfig.Option // nil: quiet in-memory config
		want       int
		wantStdout string
		wantStderr []string
	}{
		{name: "help", args: []string{"help"}, want: ExitOK, wantStdout: "Usage: proxy"},
		{name: "-h", args: []string{"-h"}, want: ExitOK, wantStdout: "-otel-config"},
		{name: "unknown flag", args: []string{"--nope"}, want: ExitUsage, wantStderr: []string{"flag provided but not defined: -nope"}},
		{name: "flag without value", args: []string{"--listen"}, want: ExitUsage, wantStderr: []string{"flag needs an argument"}},
		{name: "positional argument", args: []string{"serve"}, want: ExitUsage, wantStderr: []string{`unexpected argument "serve"`}},
		{name: "missing settings file", args: []string{"--config", filepath.Join(dir, "nope.yaml")}, want: ExitConfig,
			wantStderr: []string{"cannot read settings file", "[io]"}},
		{name: "invalid regex", args: []string{"--config", badRegex}, want: ExitConfig,
			wantStderr: []string{badRegex + ":7:16: error: pattern \"[claude\": invalid regular expression: missing closing ]", `    7 |       pattern: "[claude"`, "^"}},
		{name: "settings file from PROXY_CONFIG", env: []string{"PROXY_CONFIG=" + badRegex}, want: ExitConfig,
			wantStderr: []string{badRegex + ":7:16: error"}},
		{name: "invalid variable", args: []string{"--config", good}, env: []string{"PROXY_MAX_BODY_BYTES=lots"}, want: ExitConfig,
			wantStderr: []string{"$PROXY_MAX_BODY_BYTES: error: PROXY_MAX_BODY_BYTES: \"lots\" is not an integer [env-value]"}},
		{name: "invalid flag value", args: []string{"--config", good, "--upstream-timeout", "soon"}, want: ExitConfig,
			wantStderr: []string{"<command line>: error: invalid value for --upstream-timeout"}},
		{name: "invalid otel.yaml", args: []string{"--config", good, "--otel-config", badOtel, "--listen", "127.0.0.1:0"},
			otel: []otelconfig.Option{otelconfig.WithoutGlobals()}, want: ExitConfig,
			wantStderr: []string{badOtel + ":8:13: error: unknown key \"compresion\"", `did you mean "compression"?`}},
		{name: "missing otel.yaml", args: []string{"--config", good, "--otel-config", filepath.Join(dir, "none.yaml"), "--listen", "127.0.0.1:0"},
			otel: []otelconfig.Option{otelconfig.WithoutGlobals()}, want: ExitConfig, wantStderr: []string{"none.yaml"}},
		{name: "busy listen address", args: []string{"--config", good, "--listen", busy.Addr().String()}, want: ExitConfig,
			wantStderr: []string{"cannot listen on " + busy.Addr().String()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr syncBuffer
			otel := tt.otel
			if otel == nil {
				otel = quietOpts()
			}
			var listened atomic.Bool
			env := mainEnv{environ: append([]string{}, tt.env...), otelOpts: otel, ready: func(string) { listened.Store(true) }}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got := runMain(ctx, tt.args, &stdout, &stderr, env)
			if got != tt.want {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", got, tt.want, stdout.String(), stderr.String())
			}
			if listened.Load() {
				t.Error("listened although it should not have started")
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantStdout, stdout.String())
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestGracefulShutdown: with a request in flight, cancelling Main's
// context stops new connections, lets the request complete, then flushes
// telemetry (batch processors with hour-long delays: only Shutdown can
// have exported the spans and log records), and Main exits 0.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	arrived, release := make(chan struct{}), make(chan struct{})
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, req seen) {
		close(arrived)
		<-release
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"drained"},"finish_reason":"stop"}]}`)
	})
	settings := writeTemp(t, "proxy.yaml", fmt.Sprintf("models:\n  - name: slow\n    api_base: %s/v1\n", up.URL))
	spans := tracetest.NewInMemoryExporter()
	logs := &logExporter{}
	opts := append(quietOpts(),
		otelconfig.WithTracerProviderOptions(sdktrace.WithBatcher(keepSpans{spans}, sdktrace.WithBatchTimeout(time.Hour))),
		otelconfig.WithLoggerProviderOptions(sdklog.WithProcessor(sdklog.NewBatchProcessor(logs, sdklog.WithExportInterval(time.Hour)))),
	)
	addrc := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- runMain(ctx, []string{"--config", settings, "--listen", "127.0.0.1:0", "--shutdown-timeout", "10s"}, io.Discard, &stderr,
			mainEnv{environ: []string{}, otelOpts: opts, ready: func(a string) { addrc <- a }})
	}()
	var addr string
	select {
	case addr = <-addrc:
	case c := <-code:
		t.Fatalf("Main exited %d before listening:\n%s", c, stderr.String())
	}

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := client.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(chatBody("slow", false, "wait")))
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{resp.StatusCode, string(b), err}
	}()
	<-arrived
	cancel()
	// New connections are refused once shutdown has begun.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections after shutdown began")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(spans.GetSpans()); n != 0 {
		t.Errorf("%d spans exported before the flush", n)
	}
	close(release)
	r := <-res
	if r.err != nil || r.status != http.StatusOK || !strings.Contains(r.body, "drained") {
		t.Errorf("in-flight request: %d %q %v", r.status, r.body, r.err)
	}
	if c := <-code; c != ExitOK {
		t.Errorf("exit %d\n%s", c, stderr.String())
	}
	names := map[string]bool{}
	for _, s := range spans.GetSpans() {
		names[s.Name] = true
	}
	if !names["POST /v1/chat/completions"] || !names["chat slow"] {
		t.Errorf("spans after shutdown: %v", names)
	}
	if len(logs.ByBody("Upstream responded")) != 1 || len(logs.ByBody("Proxy stopped")) != 1 {
		t.Errorf("log records after shutdown: %d responded, %d stopped", len(logs.ByBody("Upstream responded")), len(logs.ByBody("Proxy stopped")))
	}
	for _, want := range []string{"Proxy listening", "Shutting down: draining in-flight requests", "Proxy stopped"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("console lacks %q:\n%s", want, stderr.String())
		}
	}
}

// TestMainServes: the command line, settings layering and telemetry boot
// end to end, in-process.
func TestMainServes(t *testing.T) {
	t.Parallel()
	settings := writeTemp(t, "proxy.yaml", "listen: 127.0.0.1:1\nmodels:\n  - name: m\n    api_base: builtin:echo\n")
	addrc := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- runMain(ctx, []string{"--config", settings, "--log-bodies"}, io.Discard, &stderr,
			mainEnv{environ: []string{"PROXY_LISTEN=127.0.0.1:0", "PROXY_LISTN=typo"}, otelOpts: quietOpts(), ready: func(a string) { addrc <- a }})
	}()
	var addr string
	select {
	case addr = <-addrc:
	case c := <-code:
		t.Fatalf("exit %d:\n%s", c, stderr.String())
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(chatBody("m", false, "logged prompt")))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "logged prompt") {
		t.Errorf("%d %s", resp.StatusCode, b)
	}
	cancel()
	if c := <-code; c != ExitOK {
		t.Errorf("exit %d", c)
	}
	out := stderr.String()
	for _, want := range []string{"$PROXY_LISTN: warning: unknown variable PROXY_LISTN is ignored", "did you mean PROXY_LISTEN?", "logged prompt", "trace_id="} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}
}

// keepSpans keeps the spans when the provider shuts down (the in-memory
// exporter would forget them), so the test can look after Shutdown.
type keepSpans struct{ *tracetest.InMemoryExporter }

func (keepSpans) Shutdown(context.Context) error { return nil }
