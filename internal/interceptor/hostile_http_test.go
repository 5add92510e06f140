package interceptor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/otelcfg/otelcfg/internal/proxy"
	"github.com/otelcfg/otelcfg/otelconfig"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
)

// Hostile HTTP input: every test here runs the interceptor through Serve,
// with the service's own http.Server settings (timeouts, header limit), on
// a loopback listener, because what they check depends on the server and
// not only on the handler.

// console is a log console safe for a logger and the test at once.
type console struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.Write(p)
}

func (c *console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String()
}

// served is an interceptor served by Serve in front of a test proxy.
type served struct {
	addr    string
	srv     *Server
	tel     *telemetry
	console *console
	read    *atomic.Int64 // bytes the interceptor has read from all its clients
	client  *http.Client
}

// serveInterceptor starts an interceptor with Serve, forwarding to
// upstream (or to settings' target when upstream is nil). mod adjusts the
// settings.
func serveInterceptor(t testing.TB, upstream http.Handler, mod func(*Settings)) *served {
	t.Helper()
	sv := &served{console: &console{}, read: new(atomic.Int64)}
	sv.tel = startTelemetry(t, ServiceName, sv.console)
	s := DefaultSettings()
	s.UserID = "configured-user"
	s.Timeouts.Shutdown = time.Second
	if upstream != nil {
		up := httptest.NewServer(upstream)
		t.Cleanup(up.Close)
		s.Target = up.URL
	}
	if mod != nil {
		mod(&s)
	}
	srv, err := New(s, sv.tel.Telemetry)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	sv.srv = srv
	sv.addr = serveOn(t, func(ctx context.Context, ln net.Listener) error {
		return srv.Serve(ctx, &countingListener{Listener: ln, n: sv.read})
	})
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	sv.client = &http.Client{Transport: tr, Timeout: 20 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return sv
}

// serveOn runs serve on a loopback listener until the test ends.
func serveOn(t testing.TB, serve func(context.Context, net.Listener) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-errc
	})
	return ln.Addr().String()
}

// startTelemetry is newTelemetry with the console kept.
func startTelemetry(t testing.TB, service string, out io.Writer) *telemetry {
	t.Helper()
	spans := tracetest.NewInMemoryExporter()
	logs := &logExporter{}
	tel, err := otelconfig.Start(context.Background(),
		otelconfig.WithBytes("otel.yaml", []byte(quietOtel)),
		otelconfig.WithEnviron(nil),
		otelconfig.WithServiceName(service),
		otelconfig.WithoutGlobals(),
		otelconfig.WithConsole(out),
		otelconfig.WithTracerProviderOptions(sdktrace.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(spans))),
		otelconfig.WithLoggerProviderOptions(sdklog.WithProcessor(sdklog.NewSimpleProcessor(logs))),
	)
	if err != nil {
		t.Fatalf("start telemetry: %v", err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return &telemetry{Telemetry: tel, spans: spans, logs: logs}
}

func (sv *served) url(path string) string { return "http://" + sv.addr + path }

// post sends a request and reads the whole answer; err is the error of
// reading its body (an answer cut off).
func (sv *served) post(t testing.TB, path, body string, hdr map[string]string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, sv.url(path), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := sv.client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// countingListener counts the bytes its connections read: what the server
// really consumed, as opposed to what the kernel buffered for it.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: l.n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// CloseWrite keeps net/http's lingering close working through the wrapper.
func (c *countingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// openAIError decodes an error body in OpenAI's shape.
func openAIError(t testing.TB, b []byte) (code string) {
	t.Helper()
	var e struct {
		Error struct {
			Message, Type, Code string
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" || e.Error.Code == "" {
		t.Fatalf("not an OpenAI error: %s", b)
	}
	return e.Error.Code
}

// dripped is how a client that sends its request byte by byte fared.
type dripped struct {
	sent   int
	closed time.Duration
	reply  string
}

// drip writes req one byte every gap and reports when the server closed
// the connection. It gives up after 10 s.
func drip(addr, req string, gap time.Duration) (dripped, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return dripped{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	var closedAt atomic.Int64
	replyc := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(conn)
		closedAt.Store(int64(time.Since(start)))
		replyc <- string(b)
	}()
	sent := 0
	for sent < len(req) && closedAt.Load() == 0 {
		if _, err := conn.Write([]byte{req[sent]}); err != nil {
			break
		}
		sent++
		time.Sleep(gap)
	}
	reply := <-replyc
	return dripped{sent: sent, closed: time.Duration(closedAt.Load()), reply: reply}, nil
}

// TestSlowClientHeadersAreCut: clients that send their headers byte by
// byte, slower than timeouts.read_header, are disconnected at that
// timeout, while the interceptor keeps forwarding for everybody else.
func TestSlowClientHeadersAreCut(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	up := &recordingUpstream{}
	sv := serveInterceptor(t, up, func(s *Settings) { s.Timeouts.ReadHeader = timeout })
	req := "POST /v1/chat/completions HTTP/1.1\r\nHost: interceptor\r\nContent-Type: application/json\r\nUser-Agent: slowloris\r\nContent-Length: 2\r\n\r\n{}"
	const gap = 50 * time.Millisecond // the whole request would take ~6 s
	const slow = 10
	results := make(chan dripped, slow)
	for range slow {
		go func() {
			d, err := drip(sv.addr, req, gap)
			if err != nil {
				t.Error(err)
			}
			results <- d
		}()
	}
	time.Sleep(2 * gap)
	for i := range 3 {
		start := time.Now()
		resp, b, err := sv.post(t, "/v1/chat/completions", `{"i":1}`, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("request %d among slow clients: %d %s %v", i, resp.StatusCode, b, err)
		}
		if d := time.Since(start); d > timeout {
			t.Errorf("request %d among slow clients took %s", i, d)
		}
	}
	for range slow {
		d := <-results
		if d.sent >= len(req) {
			t.Errorf("a slow client sent its whole request (%d bytes in %s) without being cut", d.sent, d.closed)
		}
		if d.closed < timeout-50*time.Millisecond || d.closed > timeout+2*time.Second {
			t.Errorf("slow client cut after %s, want about %s", d.closed, timeout)
		}
		if strings.HasPrefix(d.reply, "HTTP/1.1 2") {
			t.Errorf("slow client was answered: %q", d.reply)
		}
	}
	if up.count() != 3 {
		t.Errorf("the proxy got %d requests, want the 3 complete ones", up.count())
	}
}

// TestSlowClientBodyIsCut: a client that sends its headers and part of its
// body, then stalls, gets 408 in OpenAI's shape at timeouts.read_body and
// its connection is closed; the request to the proxy is abandoned.
func TestSlowClientBodyIsCut(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	for _, tt := range []struct {
		name string
		head string
		part string
	}{
		{"content-length", "Content-Length: 1000\r\n", strings.Repeat("x", 100)},
		{"chunked", "Transfer-Encoding: chunked\r\n", "64\r\n" + strings.Repeat("x", 100) + "\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			complete := make(chan bool, 1)
			sv := serveInterceptor(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, err := io.ReadAll(r.Body)
				complete <- err == nil
			}), func(s *Settings) { s.Timeouts.ReadBody = timeout })
			conn, err := net.Dial("tcp", sv.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			start := time.Now()
			fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: interceptor\r\nContent-Type: application/json\r\n%s\r\n%s", tt.head, tt.part)

			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer to the stalled body after %s: %v", time.Since(start), err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			took := time.Since(start)
			if resp.StatusCode != http.StatusRequestTimeout || openAIError(t, b) != "request_timeout" {
				t.Errorf("status %d: %s; want 408 request_timeout", resp.StatusCode, b)
			}
			if took < timeout-50*time.Millisecond || took > timeout+2*time.Second {
				t.Errorf("answered after %s, want about %s", took, timeout)
			}
			if _, err := br.ReadByte(); err == nil || isTimeout(err) {
				t.Errorf("the connection stayed open after the 408: %v", err)
			}
			select {
			case ok := <-complete:
				if ok {
					t.Error("the proxy got a complete body")
				}
			case <-time.After(5 * time.Second):
				t.Error("the request to the proxy was not abandoned")
			}
		})
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestHugeHeaders: headers over MaxHeaderBytes get 431 and never reach the
// proxy; headers of a sane size pass.
func TestHugeHeaders(t *testing.T) {
	t.Parallel()
	up := &recordingUpstream{}
	sv := serveInterceptor(t, up, nil)
	for _, tt := range []struct {
		name string
		size int
		want int
	}{
		{"16 KiB", 16 << 10, http.StatusOK},
		{"48 KiB", 48 << 10, http.StatusOK},
		{"100 KiB", 100 << 10, http.StatusRequestHeaderFieldsTooLarge},
		{"2 MiB", 2 << 20, http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := up.count()
			resp, _, _ := sv.post(t, "/v1/chat/completions", "{}", map[string]string{"X-Padding": strings.Repeat("p", tt.size)})
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want != http.StatusOK && up.count() != before {
				t.Error("a request with huge headers reached the proxy")
			}
		})
	}
}

// TestBodyOverLimitIsNotRead: a body over max_body_bytes gets 413 in
// OpenAI's shape, and the interceptor stops reading near the limit: it
// never consumes (or forwards) what the client keeps sending. The byte
// count is the server's own reads, not what the kernel buffered.
func TestBodyOverLimitIsNotRead(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	const slack = 16 << 10 // headers and the server's read buffer
	for _, tt := range []struct {
		name string
		cl   int64 // -1: chunked, endless
	}{
		{"declared 1 GiB", 1 << 30},
		{"declared twice the limit", 2 * limit},
		{"chunked, endless", -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var forwarded atomic.Int64
			sv := serveInterceptor(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n, _ := io.Copy(io.Discard, r.Body)
				forwarded.Add(n)
			}), func(s *Settings) { s.MaxBodyBytes = limit })
			conn, err := net.Dial("tcp", sv.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			framing := fmt.Sprintf("Content-Length: %d\r\n", tt.cl)
			if tt.cl < 0 {
				framing = "Transfer-Encoding: chunked\r\n"
			}
			fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: interceptor\r\nContent-Type: application/json\r\n%s\r\n", framing)
			var sent atomic.Int64
			wrote := make(chan struct{})
			go func() {
				defer close(wrote)
				piece := strings.Repeat("a", 8<<10)
				if tt.cl < 0 {
					piece = fmt.Sprintf("%x\r\n%s\r\n", len(piece), piece)
				}
				for tt.cl < 0 || sent.Load() < tt.cl {
					n, err := io.WriteString(conn, piece)
					sent.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge || openAIError(t, b) != "request_too_large" {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			select {
			case <-wrote:
			case <-time.After(5 * time.Second):
				t.Fatal("the interceptor kept accepting the body after its 413")
			}
			t.Logf("the interceptor read %d bytes and forwarded %d; the client sent %d", sv.read.Load(), forwarded.Load(), sent.Load())
			if got := sv.read.Load(); got > limit+slack {
				t.Errorf("the interceptor read %d bytes of a body over a %d-byte limit", got, limit)
			}
			if got := forwarded.Load(); got > limit {
				t.Errorf("the proxy got %d bytes of a body over a %d-byte limit", got, limit)
			}
		})
	}
}

// TestNonUTF8PassesThrough: the interceptor forwards bytes, not text —
// a body, header values and a path that are not UTF-8 reach the proxy
// exactly as sent — and nothing of them that reaches spans, log records or
// the console is invalid UTF-8.
func TestNonUTF8PassesThrough(t *testing.T) {
	t.Parallel()
	up := &recordingUpstream{}
	sv := serveInterceptor(t, up, nil)
	body := "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"caf\xe9 \xff\xfe\"}]}"
	hdr := map[string]string{
		HeaderUserID:      "al\xffice",
		"User-Agent":      "Claude Code \xc3(",
		"X-Forwarded-For": "\xfe\xff, 10.0.0.1",
		"X-Title":         "caf\xe9",
	}
	req, _ := http.NewRequest(http.MethodPost, sv.url("/"), strings.NewReader(body))
	req.URL.Opaque = "//" + sv.addr + "/v1/chat/completions%ff%fe"
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := sv.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := up.last(t)
	if string(got.Body) != body || got.RequestURI != "/v1/chat/completions%ff%fe" {
		t.Errorf("forwarded %q %q, want the request as sent", got.RequestURI, got.Body)
	}
	for k, v := range hdr {
		if k == "X-Forwarded-For" {
			continue // the interceptor appends the client's address
		}
		if got.Header.Get(k) != v {
			t.Errorf("header %s forwarded as %q, want %q", k, got.Header.Get(k), v)
		}
	}
	waitFor(t, "the outcome log", func() bool { return len(sv.tel.logs.ByBody("Proxy responded")) == 1 })
	assertValidUTF8(t, sv.tel, sv.console)
}

// assertValidUTF8 checks every string the telemetry holds.
func assertValidUTF8(t *testing.T, tel *telemetry, out *console) {
	t.Helper()
	check := func(what, s string) {
		if !utf8.ValidString(s) {
			t.Errorf("%s is not UTF-8: %q", what, s)
		}
	}
	for _, s := range tel.spans.GetSpans() {
		check("span name", s.Name)
		check("span status of "+s.Name, s.Status.Description)
		for _, kv := range s.Attributes {
			check(fmt.Sprintf("span %q attribute %s", s.Name, kv.Key), kv.Value.Emit())
		}
		for _, e := range s.Events {
			for _, kv := range e.Attributes {
				check(fmt.Sprintf("span %q event %s attribute %s", s.Name, e.Name, kv.Key), kv.Value.Emit())
			}
		}
	}
	for _, r := range tel.logs.All() {
		check("log body", r.Body().AsString())
		r.WalkAttributes(func(kv attribute.KeyValue) bool {
			check(fmt.Sprintf("log %q attribute %s", r.Body().AsString(), kv.Key), kv.Value.Emit())
			return true
		})
	}
	check("console output", out.String())
}

// sseChunk is one valid chunk of an OpenAI stream.
func sseChunk(content string) string {
	return fmt.Sprintf("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}]}\n\n", content)
}

// events returns the data of the events of an SSE body.
func events(b []byte) []string {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

// assertAnswerFailed checks that the server span of the only request, and
// its client span, record the error, and that an error log record was
// written in its trace.
func assertAnswerFailed(t testing.TB, tel *telemetry, wantType string) {
	t.Helper()
	server := serverSpan(t.(*testing.T), tel.spans)
	if server.Status.Code != codes.Error {
		t.Errorf("server span status %v, want Error", server.Status)
	}
	a := map[string]string{}
	for _, kv := range server.Attributes {
		a[string(kv.Key)] = kv.Value.Emit()
	}
	if a["error.type"] != wantType {
		t.Errorf("server span error.type %q, want %q", a["error.type"], wantType)
	}
	var inTrace []string
	waitFor(t.(*testing.T), "an error log record", func() bool {
		inTrace = inTrace[:0]
		for _, r := range tel.logs.All() {
			if r.Severity() >= log.SeverityError && r.TraceID() == server.SpanContext.TraceID() {
				inTrace = append(inTrace, r.Body().AsString())
			}
		}
		return len(inTrace) > 0
	})
}

// TestProxyAnswerBounded: an answer under way is bounded by
// timeouts.response in all and by timeouts.response_idle between reads: a
// stream ends with an error event in OpenAI's shape, any other answer is
// cut off; the request to the proxy is cancelled, the spans and the log
// record the timeout. A stream that keeps coming within both limits is
// not cut.
func TestProxyAnswerBounded(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		sse      bool
		every    time.Duration // between events; 0: one event, then silence
		events   int           // 0: for ever
		idle     time.Duration
		total    time.Duration
		wantCode string // "": completes
		wantCut  time.Duration
	}{
		{name: "endless stream", sse: true, every: 10 * time.Millisecond, idle: 500 * time.Millisecond, total: time.Second,
			wantCode: "proxy_response_timeout", wantCut: time.Second},
		{name: "stream silent after its first event", sse: true, idle: 400 * time.Millisecond, total: 10 * time.Second,
			wantCode: "proxy_response_idle", wantCut: 400 * time.Millisecond},
		{name: "endless JSON", every: 10 * time.Millisecond, idle: 500 * time.Millisecond, total: time.Second,
			wantCode: "proxy_response_timeout", wantCut: time.Second},
		{name: "slow but steady stream", sse: true, every: 50 * time.Millisecond, events: 16, idle: 600 * time.Millisecond, total: 10 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cancelled := make(chan bool, 1)
			sv := serveInterceptor(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.sse {
					w.Header().Set("Content-Type", "text/event-stream")
				} else {
					w.Header().Set("Content-Type", "application/json")
				}
				rc := http.NewResponseController(w)
				for i := 0; tt.events == 0 || i < tt.events; i++ {
					if tt.sse {
						io.WriteString(w, sseChunk(fmt.Sprintf("w%d ", i)))
					} else {
						io.WriteString(w, `{"padding":"`+strings.Repeat("x", 100)+`"}`)
					}
					rc.Flush()
					wait := tt.every
					if wait == 0 {
						wait = time.Hour
					}
					select {
					case <-r.Context().Done():
						cancelled <- true
						return
					case <-time.After(wait):
					}
				}
				io.WriteString(w, "data: [DONE]\n\n")
				cancelled <- false
			}), func(s *Settings) { s.Timeouts.ResponseIdle, s.Timeouts.Response = tt.idle, tt.total })
			start := time.Now()
			resp, body, err := sv.post(t, "/v1/chat/completions", `{"stream":true}`, nil)
			took := time.Since(start)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			evs := events(body)
			if tt.wantCode == "" {
				if err != nil || len(evs) != tt.events+1 || evs[len(evs)-1] != "[DONE]" {
					t.Errorf("a steady stream was cut (%v): %d events", err, len(evs))
				}
				if s := serverSpan(t, sv.tel.spans); s.Status.Code == codes.Error {
					t.Errorf("server span of a complete stream: %v", s.Status)
				}
				return
			}
			if tt.sse {
				if err != nil {
					t.Errorf("the stream was not ended cleanly: %v", err)
				}
				if len(evs) < 2 || openAIError(t, []byte(evs[len(evs)-1])) != tt.wantCode {
					t.Errorf("want events and a last error event %s; got %q", tt.wantCode, evs)
				}
			} else if err == nil {
				t.Errorf("an answer that was cut off looks complete to the client (%d bytes)", len(body))
			}
			if took < tt.wantCut-50*time.Millisecond || took > tt.wantCut+2*time.Second {
				t.Errorf("answer ended after %s, want about %s", took, tt.wantCut)
			}
			select {
			case c := <-cancelled:
				if !c {
					t.Error("the proxy finished instead of being cancelled")
				}
			case <-time.After(5 * time.Second):
				t.Error("the request to the proxy was not cancelled")
			}
			assertAnswerFailed(t, sv.tel, tt.wantCode)
			if c := clientSpan(t, sv.tel.spans); c.Status.Code != codes.Error {
				t.Errorf("client span status %v", c.Status)
			}
		})
	}
}

// hijacked answers with raw bytes on the connection, then closes it. It
// reads the request first: closing with unread data would reset the
// connection, and the reset could overtake the bytes sent.
func hijacked(raw ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		for _, s := range raw {
			buf.WriteString(s)
			buf.Flush()
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func httpChunk(s string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(s), s) }

// TestProxyGarbage: a proxy that answers with something that is not HTTP,
// or breaks off its answer, gets the client a clean 502 in OpenAI's shape
// when nothing was sent yet; a stream already under way ends with an error
// event between two events, any other answer is cut off so that the client
// sees it is incomplete. The spans and an error log record say so.
func TestProxyGarbage(t *testing.T) {
	t.Parallel()
	const sseHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
	for _, tt := range []struct {
		name      string
		proxy     http.Handler
		want      int    // the client's status
		wantCode  string // of the error body or of the last event; "": the answer is cut
		wantType  string // error.type of the server span
		wantClean bool   // the client reads the answer to its end
	}{
		{"not HTTP", hijacked("SSH-2.0-OpenSSH_9.6\r\n\r\n"), 502, "proxy_bad_response", "proxy_bad_response", true},
		{"closed without answering", hijacked(), 502, "proxy_bad_response", "proxy_bad_response", true},
		{"headers cut off", hijacked("HTTP/1.1 200 OK\r\nContent-Ty"), 502, "proxy_bad_response", "proxy_bad_response", true},
		// A short answer of known length is held until whole: nothing was
		// sent when it broke off.
		{"Content-Length longer than the body", hijacked("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"id\":\"c\",\"choi"), 502, "proxy_response_broken", "proxy_response_broken", true},
		{"Content-Length longer than a long body", hijacked("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"id\":\"" + strings.Repeat("x", 70000)), 200, "", "proxy_response_broken", false},
		{"chunked JSON cut off", hijacked("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + httpChunk(`{"id":"c","choi`)), 200, "", "proxy_response_broken", false},
		{"stream closed after an event", hijacked(sseHead, httpChunk(sseChunk("one"))), 200, "proxy_response_broken", "proxy_response_broken", true},
		{"stream closed mid-event", hijacked(sseHead, httpChunk(sseChunk("one")+"data: {\"id\":")), 200, "", "proxy_response_broken", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sv := serveInterceptor(t, tt.proxy, nil)
			resp, body, err := sv.post(t, "/v1/chat/completions", `{"stream":true}`, nil)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			if clean := err == nil; clean != tt.wantClean {
				t.Errorf("the client read the answer to a clean end: %v (%v), want %v", clean, err, tt.wantClean)
			}
			switch {
			case tt.want != http.StatusOK:
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				if code := openAIError(t, body); code != tt.wantCode {
					t.Errorf("code %q, want %q: %s", code, tt.wantCode, body)
				}
			case tt.wantCode != "":
				evs := events(body)
				if len(evs) != 2 || !strings.Contains(evs[0], `"one"`) || openAIError(t, []byte(evs[1])) != tt.wantCode {
					t.Errorf("want the event, then an error event %s: %q", tt.wantCode, body)
				}
			}
			assertAnswerFailed(t, sv.tel, tt.wantType)
			assertValidUTF8(t, sv.tel, sv.console)
		})
	}
}

// TestClientDisconnectMidStream: a client that goes away in the middle of
// a stream cancels the request to the proxy, the interceptor logs it as
// the client's doing (not an error), and nothing the request started
// outlives it. Not parallel: goleak checks every goroutine the test leaves
// behind.
func TestClientDisconnectMidStream(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) }) // registered first: runs after every other cleanup
	cancelled := make(chan bool, 1)
	sv := serveInterceptor(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, sseChunk("first"))
		http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
			cancelled <- true
		case <-time.After(5 * time.Second):
			cancelled <- false
		}
	}), nil)
	req, _ := http.NewRequest(http.MethodPost, sv.url("/v1/chat/completions"), strings.NewReader(`{"stream":true}`))
	resp, err := sv.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: {") {
		t.Fatalf("first line %q: %v", line, err)
	}
	resp.Body.Close() // mid-stream: the connection goes
	select {
	case c := <-cancelled:
		if !c {
			t.Fatal("the request to the proxy was not cancelled")
		}
	case <-time.After(6 * time.Second):
		t.Fatal("the proxy's handler never returned")
	}
	server := serverSpan(t, sv.tel.spans)
	if server.Status.Code == codes.Error {
		t.Errorf("a client that left is recorded as an error: %v", server.Status)
	}
	waitFor(t, "the outcome log", func() bool { return len(sv.tel.logs.ByBody("Client closed the request")) == 1 })
	for _, r := range sv.tel.logs.All() {
		if r.Severity() >= log.SeverityError {
			t.Errorf("error log record %q for a client that left", r.Body().AsString())
		}
	}
}

// TestClientStopsReading: a client that stops reading an answer (the
// interceptor's writes block once the socket buffers are full) is cut at
// timeouts.response_idle; the request to the proxy ends, and it is logged
// as the client's doing.
func TestClientStopsReading(t *testing.T) {
	t.Parallel()
	ended := make(chan struct{})
	big := sseChunk(strings.Repeat("x", 32<<10))
	sv := serveInterceptor(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(ended)
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for r.Context().Err() == nil {
			if _, err := io.WriteString(w, big); err != nil {
				return
			}
			rc.Flush()
		}
	}), func(s *Settings) { s.Timeouts.ResponseIdle = 400 * time.Millisecond })
	conn, err := net.Dial("tcp", sv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: interceptor\r\nContent-Length: 2\r\n\r\n{}")
	// ... and never reads.
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy kept streaming to a client that reads nothing")
	}
	waitFor(t, "the outcome log", func() bool { return len(sv.tel.logs.ByBody("Client closed the request")) == 1 })
	if s := serverSpan(t, sv.tel.spans); s.Status.Code == codes.Error {
		t.Errorf("server span %v: a client that stopped reading is not the proxy's error", s.Status)
	}
}

// TestThousandConcurrentRequests: 1 000 requests at once through a real
// interceptor into a real proxy (its built-in echo), both served by Serve,
// JSON and streamed: all answered 200 with their own content, none lost,
// nothing records an error. Not parallel: run alone, it measures the two
// services, and the timing of the other tests is not disturbed by it.
func TestThousandConcurrentRequests(t *testing.T) {
	const n = 1000
	pcons := &console{}
	ptel := startTelemetry(t, proxy.ServiceName, pcons)
	ps := proxy.DefaultSettings()
	ps.Models = []proxy.ModelSettings{{Name: "echo-model", APIBase: proxy.EchoBase}}
	ps.Server.ShutdownTimeout = time.Second
	psrv, err := proxy.New(ps, ptel.Telemetry)
	if err != nil {
		t.Fatal(err)
	}
	paddr := serveOn(t, psrv.Serve)
	sv := serveInterceptor(t, nil, func(s *Settings) { s.Target = "http://" + paddr })

	tr := &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	start := make(chan struct{})
	var wg sync.WaitGroup
	var ok atomic.Int64
	for i := range n {
		wg.Go(func() {
			<-start
			stream := i%2 == 1
			prompt := fmt.Sprintf("request number %d", i)
			body := fmt.Sprintf(`{"model":"echo-model","messages":[{"role":"user","content":%q}],"stream":%v}`, prompt, stream)
			resp, err := client.Post(sv.url("/v1/chat/completions"), "application/json", strings.NewReader(body))
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("request %d: %d %v %s", i, resp.StatusCode, err, b)
				return
			}
			var got strings.Builder
			if stream {
				for _, e := range events(b) {
					var c struct {
						Choices []struct {
							Delta struct{ Content string } `json:"delta"`
						} `json:"choices"`
					}
					if json.Unmarshal([]byte(e), &c) == nil {
						for _, ch := range c.Choices {
							got.WriteString(ch.Delta.Content)
						}
					}
				}
			} else {
				var c struct {
					Choices []struct {
						Message struct{ Content string } `json:"message"`
					} `json:"choices"`
				}
				if json.Unmarshal(b, &c) == nil && len(c.Choices) == 1 {
					got.WriteString(c.Choices[0].Message.Content)
				}
			}
			if got.String() != prompt {
				t.Errorf("request %d got %q, want %q", i, got.String(), prompt)
				return
			}
			ok.Add(1)
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d requests in %s", n, time.Since(began))
	if ok.Load() != n {
		t.Fatalf("%d of %d answered", ok.Load(), n)
	}
	for name, tel := range map[string]*telemetry{"interceptor": sv.tel, "proxy": ptel} {
		waitFor(t, name+" server spans", func() bool {
			count := 0
			for _, s := range tel.spans.GetSpans() {
				if s.SpanKind == trace.SpanKindServer {
					count++
				}
			}
			return count == n
		})
		for _, s := range tel.spans.GetSpans() {
			if s.Status.Code == codes.Error {
				t.Errorf("%s span %q: %v", name, s.Name, s.Status)
			}
		}
		for _, r := range tel.logs.All() {
			if r.Severity() >= log.SeverityWarn {
				t.Errorf("%s log record %q at %v", name, r.Body().AsString(), r.Severity())
				break
			}
		}
	}
}
