package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelcfg/otelcfg/internal/telemetrytest"
	"github.com/otelcfg/otelcfg/otelconfig"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const quietOtel = telemetrytest.QuietOtel

// syncBuffer is a bytes.Buffer safe for a logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// telemetry is a started Telemetry whose spans, log records, metrics and
// console lines all stay in the test.
type telemetry struct {
	*otelconfig.Telemetry
	spans   *tracetest.InMemoryExporter
	logs    *logExporter
	metrics *sdkmetric.ManualReader
	console *syncBuffer
}

func newTelemetry(t testing.TB) *telemetry {
	t.Helper()
	tt := &telemetry{spans: tracetest.NewInMemoryExporter(), logs: &logExporter{}, metrics: sdkmetric.NewManualReader(), console: &syncBuffer{}}
	tel, err := otelconfig.Start(context.Background(),
		otelconfig.WithBytes("otel.yaml", []byte(quietOtel)),
		otelconfig.WithEnviron(nil),
		otelconfig.WithServiceName(ServiceName),
		otelconfig.WithoutGlobals(),
		otelconfig.WithConsole(tt.console),
		otelconfig.WithTracerProviderOptions(sdktrace.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(tt.spans))),
		otelconfig.WithLoggerProviderOptions(sdklog.WithProcessor(sdklog.NewSimpleProcessor(tt.logs))),
		otelconfig.WithMeterProviderOptions(sdkmetric.WithReader(tt.metrics)),
	)
	if err != nil {
		t.Fatalf("start telemetry: %v", err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	tt.Telemetry = tel
	return tt
}

// collect returns the metrics recorded so far.
func (tt *telemetry) collect(t *testing.T) []metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := tt.metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var out []metricdata.Metrics
	for _, sm := range rm.ScopeMetrics {
		out = append(out, sm.Metrics...)
	}
	return out
}

// spansNamed returns the ended spans with that name.
func (tt *telemetry) spansNamed(name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range tt.spans.GetSpans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// logExporter keeps every exported log record (All, ByBody).
type logExporter = telemetrytest.LogExporter

var logAttrs = telemetrytest.LogAttrs

func spanAttrs(s tracetest.SpanStub) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

// seen is one request as the test upstream received it.
type seen struct {
	Path, RawQuery string
	Header         http.Header
	Body           map[string]any
	Raw            []byte
}

// fakeUpstream is an OpenAI-compatible test upstream. It records every
// request; handle, when set, answers instead of the default completion.
type fakeUpstream struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []seen
	handle func(w http.ResponseWriter, r *http.Request, req seen)
}

const (
	upstreamContent  = "hello from upstream"
	upstreamModelID  = "upstream-gpt-2025"
	upstreamInTokens = 11
	upstreamOutToken = 7
)

func newFakeUpstream(t testing.TB, handle func(w http.ResponseWriter, r *http.Request, req seen)) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{handle: handle}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		s := seen{Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Raw: raw}
		_ = json.Unmarshal(raw, &s.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, s)
		u.mu.Unlock()
		if u.handle != nil {
			u.handle(w, r, s)
			return
		}
		if s.Body["stream"] == true {
			writeUpstreamStream(w, strings.Fields(upstreamContent), nil)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"chatcmpl-up-1","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
			upstreamModelID, upstreamContent, upstreamInTokens, upstreamOutToken, upstreamInTokens+upstreamOutToken)
	}))
	t.Cleanup(u.Close)
	return u
}

// writeUpstreamStream sends one SSE chunk per word, a usage chunk and
// [DONE], flushing each; after the first chunk it calls between (when
// set), which lets a test hold the rest back.
func writeUpstreamStream(w http.ResponseWriter, words []string, between func()) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	f := w.(http.Flusher)
	for i, word := range words {
		if i > 0 {
			word = " " + word
		}
		fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-up-s\",\"object\":\"chat.completion.chunk\",\"model\":%q,\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}]}\n\n", upstreamModelID, word)
		f.Flush()
		if i == 0 && between != nil {
			between()
		}
	}
	fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-up-s\",\"object\":\"chat.completion.chunk\",\"model\":%q,\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n", upstreamModelID)
	fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-up-s\",\"object\":\"chat.completion.chunk\",\"model\":%q,\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n", upstreamModelID, upstreamInTokens, upstreamOutToken, upstreamInTokens+upstreamOutToken)
	fmt.Fprint(w, "data: [DONE]\n\n")
	f.Flush()
}

func (u *fakeUpstream) last(t *testing.T) seen {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatal("the upstream received nothing")
	}
	return u.reqs[len(u.reqs)-1]
}

func (u *fakeUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// Planted secrets: distinctive strings that must never show in telemetry.
const (
	plantedMasterKey   = "mk-PLANTED-master-7f3a"
	plantedUpstreamKey = "sk-PLANTED-upstream-91c2"
)

// fixture is a proxy (with in-memory telemetry) in front of a fake
// upstream, both on loopback. Models: "gpt-test" on the fake upstream,
// "echo" on builtin:echo.
type fixture struct {
	srv    *Server
	front  *httptest.Server
	up     *fakeUpstream
	tel    *telemetry
	client *http.Client

	// The proxy sends a whole answer before its handler has finished (the
	// outcome log and the end of the server span come after), so chat
	// waits for the handler of its request to return before tests look at
	// the telemetry.
	seq     atomic.Int64
	mu      sync.Mutex
	handled map[string]chan struct{}
}

// fixtureRequestHeader carries the fixture's id of a request.
const fixtureRequestHeader = "X-Fixture-Request"

func (f *fixture) handledChan(id string) chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch, ok := f.handled[id]
	if !ok {
		ch = make(chan struct{})
		f.handled[id] = ch
	}
	return ch
}

func testSettings(upstreamURL string) Settings {
	s := DefaultSettings()
	s.Models = []ModelSettings{
		{Name: "gpt-test", APIBase: upstreamURL + "/v1", Model: "upstream-gpt", APIKey: plantedUpstreamKey,
			ExtraHeaders: map[string]string{"X-Title": "otelcfg-test", "OpenAI-Organization": "org-test"}},
		{Name: "echo", APIBase: EchoBase, Model: "echo-1"},
	}
	return s
}

func newFixture(t testing.TB, handle func(w http.ResponseWriter, r *http.Request, req seen), mod func(*Settings)) *fixture {
	t.Helper()
	f := &fixture{tel: newTelemetry(t), up: newFakeUpstream(t, handle), handled: map[string]chan struct{}{}}
	s := testSettings(f.up.URL)
	if mod != nil {
		mod(&s)
	}
	srv, err := New(s, f.tel.Telemetry)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.srv = srv
	h := srv.Handler()
	f.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get(fixtureRequestHeader); id != "" {
			defer close(f.handledChan(id))
		}
		h.ServeHTTP(w, r)
	}))
	f.client = f.front.Client()
	t.Cleanup(func() {
		f.front.Close()
		srv.Close()
	})
	return f
}

func (f *fixture) do(t testing.TB, method, path, body string, hdr map[string]string) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.front.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// chat posts a chat completion and returns the status, headers and body
// once the proxy's handler has finished with it.
func (f *fixture) chat(t testing.TB, body string, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	id := strconv.FormatInt(f.seq.Add(1), 10)
	hdr = maps.Clone(hdr)
	if hdr == nil {
		hdr = map[string]string{}
	}
	hdr[fixtureRequestHeader] = id
	resp := f.do(t, http.MethodPost, "/v1/chat/completions", body, hdr)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.handledChan(id):
	case <-time.After(10 * time.Second):
		t.Fatalf("the proxy's handler did not return within 10s of the answer")
	}
	return resp.StatusCode, resp.Header, b
}

func chatBody(model string, stream bool, prompt string) string {
	return fmt.Sprintf(`{"model":%q,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":%q}],"stream":%v}`, model, prompt, stream)
}

// apiErr decodes an OpenAI-shaped error body.
func apiErr(t testing.TB, b []byte) apiError {
	t.Helper()
	var e struct {
		Error *apiError `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Error == nil {
		t.Fatalf("not an OpenAI error body: %s", b)
	}
	if e.Error.Message == "" || e.Error.Type == "" || e.Error.Code == "" {
		t.Errorf("error lacks message, type or code: %s", b)
	}
	return *e.Error
}

// sseEvents splits an SSE body into the data of its events.
func sseEvents(b []byte) []string {
	var out []string
	for _, ev := range strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n\n") {
		for _, line := range strings.Split(ev, "\n") {
			if d, ok := strings.CutPrefix(line, "data:"); ok {
				out = append(out, strings.TrimSpace(d))
			}
		}
	}
	return out
}

// streamedContent joins the delta contents of SSE chunk data.
func streamedContent(t testing.TB, events []string) string {
	t.Helper()
	var b strings.Builder
	for _, e := range events {
		if e == "[DONE]" {
			continue
		}
		var ch chunk
		if err := json.Unmarshal([]byte(e), &ch); err != nil {
			t.Fatalf("bad chunk %q: %v", e, err)
		}
		for _, c := range ch.Choices {
			if c.Delta.Content != nil {
				b.WriteString(*c.Delta.Content)
			}
		}
	}
	return b.String()
}
