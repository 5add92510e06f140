//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otelcfg/otelcfg/internal/demo"
	"github.com/otelcfg/otelcfg/internal/otlptest"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

const (
	kindServer = tracepb.Span_SPAN_KIND_SERVER
	kindClient = tracepb.Span_SPAN_KIND_CLIENT
)

type (
	span      = otlptest.Span
	logRecord = otlptest.LogRecord
)

func svc(res map[string]string) string { return res["service.name"] }

// fakeUpstream is a local OpenAI-compatible server standing in for a paid
// LLM API. It records the headers of each call.
type fakeUpstream struct {
	*httptest.Server
	mu      sync.Mutex
	headers []http.Header
}

func newFakeUpstream(t testing.TB) *fakeUpstream {
	u := &fakeUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.headers = append(u.headers, r.Header.Clone())
		u.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "text/event-stream")
			for i, word := range []string{"hello", " from", " upstream"} {
				fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"upstream-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", word)
				_ = i
				w.(http.Flusher).Flush()
			}
			fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"upstream-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":3,\"total_tokens\":6}}\n\n")
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c1","object":"chat.completion","model":"upstream-1","choices":[{"index":0,"message":{"role":"assistant","content":"hello from upstream"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":3,"total_tokens":6}}`)
	}))
	t.Cleanup(u.Close)
	return u
}

// trace is every span and log record of one trace id.
type trace struct {
	id    string
	spans []span
	logs  []logRecord
}

func groupTraces(spans []span, logs []logRecord) map[string]*trace {
	out := map[string]*trace{}
	get := func(id string) *trace {
		if out[id] == nil {
			out[id] = &trace{id: id}
		}
		return out[id]
	}
	for _, s := range spans {
		get(s.TraceID).spans = append(get(s.TraceID).spans, s)
	}
	for _, l := range logs {
		if l.TraceID != "" {
			get(l.TraceID).logs = append(get(l.TraceID).logs, l)
		}
	}
	return out
}

func (tr *trace) find(service string, kind tracepb.Span_SpanKind) []span {
	var out []span
	for _, s := range tr.spans {
		if svc(s.Resource) == service && s.Kind == kind {
			out = append(out, s)
		}
	}
	return out
}

func (tr *trace) byID() map[string]span {
	m := map[string]span{}
	for _, s := range tr.spans {
		m[s.SpanID] = s
	}
	return m
}

// descends reports whether span d has ancestor a within the trace.
func (tr *trace) descends(d, a span) bool {
	ids := tr.byID()
	for cur, ok := d, true; ok; cur, ok = ids[cur.ParentSpanID] {
		if cur.ParentSpanID == a.SpanID {
			return true
		}
	}
	return false
}

// checkRequestTrace asserts the shape of one request's trace: interceptor
// server → interceptor client → proxy server → proxy upstream client, each
// service's resource name, and every log record on a span of the trace.
func checkRequestTrace(t *testing.T, tr *trace, model string) {
	t.Helper()
	is, ic := tr.find("litellm-interceptor", kindServer), tr.find("litellm-interceptor", kindClient)
	ps, pc := tr.find("litellm-proxy", kindServer), tr.find("litellm-proxy", kindClient)
	if len(is) != 1 || len(ic) != 1 || len(ps) != 1 || len(pc) != 1 {
		t.Fatalf("trace %s: want one interceptor server/client and one proxy server/upstream span, got %d/%d/%d/%d:\n%v", tr.id, len(is), len(ic), len(ps), len(pc), tr.spans)
	}
	if !tr.descends(ic[0], is[0]) {
		t.Errorf("interceptor client span is not under its server span")
	}
	if ps[0].ParentSpanID != ic[0].SpanID {
		t.Errorf("proxy server span's parent %s is not the interceptor client span %s", ps[0].ParentSpanID, ic[0].SpanID)
	}
	if !tr.descends(pc[0], ps[0]) {
		t.Errorf("proxy upstream span is not under the proxy server span")
	}
	if got := pc[0].Attributes["gen_ai.request.model"]; got != model {
		t.Errorf("upstream span gen_ai.request.model = %q, want %q (attrs %v)", got, model, pc[0].Attributes)
	}
	ids := tr.byID()
	bodies := map[string]bool{}
	for _, l := range tr.logs {
		if _, ok := ids[l.SpanID]; !ok {
			t.Errorf("log %q (%s) has span_id %s, which is not a span of trace %s", l.Body, svc(l.Resource), l.SpanID, tr.id)
		}
		bodies[svc(l.Resource)+": "+l.Body] = true
	}
	for _, want := range []string{
		"litellm-interceptor: Received request", "litellm-interceptor: Forwarding to proxy",
		"litellm-proxy: Received request", "litellm-proxy: Forwarding to upstream",
	} {
		if !bodies[want] {
			t.Errorf("trace %s lacks log record %q; it has %v", tr.id, want, keys(bodies))
		}
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// requestTraces returns the traces that contain an interceptor server span,
// in start order.
func requestTraces(spans []span, logs []logRecord) []*trace {
	var out []*trace
	for _, tr := range groupTraces(spans, logs) {
		if len(tr.find("litellm-interceptor", kindServer)) > 0 {
			out = append(out, tr)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].find("litellm-interceptor", kindServer)[0].StartTime.Before(out[j].find("litellm-interceptor", kindServer)[0].StartTime)
	})
	return out
}

// TestCorrelation (scenarios 1 and 2): a chat and a streaming chat through
// interceptor and proxy, over OTLP/gRPC and OTLP/HTTP, configured only by
// OTEL_EXPORTER_OTLP_ENDPOINT (and the protocol) on the unchanged example.
func TestCorrelation(t *testing.T) {
	for _, proto := range []string{"grpc", "http/protobuf"} {
		t.Run(strings.ReplaceAll(proto, "/", "-"), func(t *testing.T) {
			col := newCollector(t)
			col.start()
			up := newFakeUpstream(t)
			env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + col.grpcEndpoint()}
			if proto != "grpc" {
				env = []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + col.httpEndpoint(), "OTEL_EXPORTER_OTLP_PROTOCOL=" + proto}
			}
			st := startStack(t, up.URL, env...)
			requests := []struct {
				model  string
				stream bool
			}{{"echo-model", false}, {"echo-model", true}, {"upstream-model", false}, {"upstream-model", true}}
			for _, r := range requests {
				if code, body := chat(t, st.url, r.model, r.stream); code != 200 {
					t.Fatalf("%s stream=%v: %d %s", r.model, r.stream, code, body)
				}
			}
			// A clean shutdown flushes everything.
			if c := st.interceptor.terminate(20 * time.Second); c != 0 {
				t.Errorf("interceptor exit %d\n%s", c, st.interceptor.out.String())
			}
			if c := st.proxy.terminate(20 * time.Second); c != 0 {
				t.Errorf("proxy exit %d\n%s", c, st.proxy.out.String())
			}
			col.stop()
			traces := requestTraces(col.spans(), col.logs())
			if len(traces) != len(requests) {
				t.Fatalf("got %d request traces, want %d", len(traces), len(requests))
			}
			upstreamModel := map[string]string{"echo-model": "echo-model", "upstream-model": "upstream-model"}
			for i, tr := range traces {
				checkRequestTrace(t, tr, upstreamModel[requests[i].model])
			}
			for _, h := range up.headers {
				if h.Get("Traceparent") == "" {
					t.Error("the upstream received no traceparent")
				}
			}
			ms := col.metrics()
			for _, model := range []string{"echo-model", "upstream-model"} {
				found := false
				for _, m := range ms {
					if svc(m.Resource) == "litellm-proxy" && m.Name == "gen_ai.client.operation.duration" && m.HasAttribute("gen_ai.request.model", model) {
						found = true
					}
				}
				if !found {
					t.Errorf("no gen_ai.client.operation.duration point for %s", model)
				}
			}
		})
	}
}

// TestCollectorDownAtStart (scenario 3).
func TestCollectorDownAtStart(t *testing.T) {
	col := newCollector(t) // ports chosen, not started
	st := startStack(t, "", "OTEL_EXPORTER_OTLP_ENDPOINT="+col.grpcEndpoint())
	for i := 0; i < 5; i++ {
		if code, body := chat(t, st.url, "echo-model", false); code != 200 {
			t.Fatalf("request %d while the collector is down: %d %s", i, code, body)
		}
	}
	col.start()
	for i := 0; i < 5; i++ {
		if code, _ := chat(t, st.url, "echo-model", false); code != 200 {
			t.Fatalf("request %d after the collector started: %d", i, code)
		}
	}
	eventually(t, 45*time.Second, "telemetry after the collector started", func() bool {
		return len(requestTraces(col.spans(), col.logs())) > 0 && len(col.logs()) > 0
	})
}

// TestCollectorRestart (scenario 4): killed mid-run, restarted on the same
// ports; no client request fails, latency stays close to normal, and
// telemetry resumes.
func TestCollectorRestart(t *testing.T) {
	col := newCollector(t)
	col.start()
	st := startStack(t, "", "OTEL_EXPORTER_OTLP_ENDPOINT="+col.grpcEndpoint())
	measure := func(n int) []time.Duration {
		var ds []time.Duration
		for i := 0; i < n; i++ {
			start := time.Now()
			if code, body := chat(t, st.url, "echo-model", false); code != 200 {
				t.Fatalf("request failed: %d %s", code, body)
			}
			ds = append(ds, time.Since(start))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds
	}
	normal := measure(20)
	col.kill()
	down := measure(20)
	// The batch processors export off the request path: a dead collector
	// must not slow requests down beyond noise.
	if limit := 5*normal[len(normal)/2] + 25*time.Millisecond; down[len(down)/2] > limit {
		t.Errorf("median latency with the collector down %v, normal %v (limit %v)", down[len(down)/2], normal[len(normal)/2], limit)
	}
	t.Logf("median latency: normal %v, collector down %v", normal[len(normal)/2], down[len(down)/2])
	before := len(col.logs())
	col.start()
	measure(5)
	eventually(t, 60*time.Second, "telemetry after the restart", func() bool { return len(col.logs()) > before })
}

// TestShutdownFlush (scenario 5): N requests, SIGTERM at once, nothing lost.
func TestShutdownFlush(t *testing.T) {
	const n = 20
	col := newCollector(t)
	col.start()
	st := startStack(t, "", "OTEL_EXPORTER_OTLP_ENDPOINT="+col.grpcEndpoint())
	for i := 0; i < n; i++ {
		if code, _ := chat(t, st.url, "echo-model", false); code != 200 {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i, s := range []*service{st.interceptor, st.proxy} {
		wg.Add(1)
		go func(i int, s *service) { defer wg.Done(); codes[i] = s.terminate(15 * time.Second) }(i, s)
	}
	wg.Wait()
	if codes[0] != 0 || codes[1] != 0 {
		t.Fatalf("exit codes interceptor=%d proxy=%d (want 0 within the deadline)", codes[0], codes[1])
	}
	col.stop()
	traces := requestTraces(col.spans(), col.logs())
	if len(traces) != n {
		t.Fatalf("%d request traces in the collector, want %d", len(traces), n)
	}
	for _, tr := range traces {
		checkRequestTrace(t, tr, "echo-model")
	}
}

// TestDisabled (scenario 6).
func TestDisabled(t *testing.T) {
	col := newCollector(t)
	col.start()
	st := startStack(t, "", "OTEL_EXPORTER_OTLP_ENDPOINT="+col.grpcEndpoint(), "OTEL_SDK_DISABLED=true")
	for i := 0; i < 3; i++ {
		if code, _ := chat(t, st.url, "echo-model", false); code != 200 {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	st.interceptor.terminate(10 * time.Second)
	st.proxy.terminate(10 * time.Second)
	col.stop()
	if s, l, m := len(col.spans()), len(col.logs()), len(col.metrics()); s+l+m != 0 {
		t.Errorf("the collector received %d spans, %d logs, %d metric points while disabled", s, l, m)
	}
	for _, s := range []*service{st.interceptor, st.proxy} {
		if !strings.Contains(s.out.String(), "Received request") {
			t.Errorf("%s wrote no console log:\n%s", s.name, s.out.String())
		}
	}
}

// TestValidateBeforeRun (scenario 7).
func TestValidateBeforeRun(t *testing.T) {
	for _, svc := range []string{"proxy", "interceptor"} {
		cmd := exec.Command(bins.otelcfg, "validate", "--service", svc, "examples/otel.yaml", "examples/"+svc+".yaml")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("otelcfg validate --service %s: %v\n%s", svc, err, out)
		}
	}
	dir := t.TempDir()
	broken := writeFile(t, dir, "otel.yaml", "file_format: \"1.0\"\ntracer_provider:\n  processors:\n    - batch:\n        exporter:\n          otlp_grpc:\n            endpoint: http://localhost:4317\n            compresion: gzip\n")
	val := exec.Command(bins.otelcfg, "validate", "--service", "proxy", broken)
	valOut, err := val.CombinedOutput()
	if err == nil {
		t.Fatalf("validate accepted a broken file:\n%s", valOut)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	run := exec.Command(bins.proxy, "--otel-config", broken, "--listen", addr, "--config", filepath.Join(repoRoot, "examples", "proxy.yaml"))
	run.Dir = repoRoot
	run.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	runOut, err := run.CombinedOutput()
	if err == nil {
		t.Fatalf("the proxy started with a broken otel.yaml:\n%s", runOut)
	}
	if waitListening(addr, 100*time.Millisecond) == nil {
		t.Error("the proxy listens despite the broken config")
	}
	want := broken + ":8:13: error: unknown key \"compresion\""
	if !strings.Contains(string(valOut), want) || !strings.Contains(string(runOut), want) {
		t.Errorf("validate and the proxy disagree; want both to say %q\nvalidate:\n%s\nproxy:\n%s", want, valOut, runOut)
	}
}

// TestDemo runs the README's demo through the real Collector and checks
// that it shows both services' logs and a waterfall spanning both.
func TestDemo(t *testing.T) {
	var out, errb syncBuffer
	code := demo.Main(context.Background(), []string{"--bin", bins.dir, "--collector", bins.collector, "--examples", filepath.Join(repoRoot, "examples")}, &out, &errb)
	if code != 0 {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	s := out.String()
	for _, want := range []string{"[interceptor", "[proxy", "trace_id=", "litellm-interceptor", "litellm-proxy", "█", "Forwarding to upstream"} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q:\n%s", want, s)
		}
	}
}
