package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"
)

// Hostile HTTP input: every test here runs the proxy through Serve, with
// the service's own http.Server settings (timeouts, header limit), on a
// loopback listener, because what they check depends on the server and
// not only on the handler.

// served is a proxy served by Serve in front of a fake upstream.
type served struct {
	addr   string
	srv    *Server
	tel    *telemetry
	up     *fakeUpstream
	read   *atomic.Int64 // bytes the server has read from all its clients
	client *http.Client
}

// serveProxy starts a proxy with Serve. Its settings are testSettings (a short
// shutdown timeout) adjusted by mod.
func serveProxy(t testing.TB, handle func(http.ResponseWriter, *http.Request, seen), mod func(*Settings)) *served {
	t.Helper()
	sv := &served{tel: newTelemetry(t), up: newFakeUpstream(t, handle), read: new(atomic.Int64)}
	s := testSettings(sv.up.URL)
	s.Server.ShutdownTimeout = time.Second
	if mod != nil {
		mod(&s)
	}
	srv, err := New(s, sv.tel.Telemetry)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	sv.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sv.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, &countingListener{Listener: ln, n: sv.read}) }()
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	sv.client = &http.Client{Transport: tr, Timeout: 20 * time.Second}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		cancel()
		<-errc
	})
	return sv
}

func (sv *served) url(path string) string { return "http://" + sv.addr + path }

// chat posts a chat completion with the given headers.
func (sv *served) chat(t testing.TB, body string, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, sv.url("/v1/chat/completions"), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := sv.client.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	return resp.StatusCode, resp.Header, b
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

// CloseWrite keeps net/http's lingering close (FIN, then a pause before
// the reset) working through the wrapper.
func (c *countingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// dripped is how a client that sends its request byte by byte fared.
type dripped struct {
	sent   int           // bytes written before the server closed
	closed time.Duration // when the server closed, from the first byte
	reply  string        // what the server answered, if anything
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
		b, _ := io.ReadAll(conn) // returns when the server closes (or the deadline)
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
// byte, slower than read_header_timeout, are disconnected at that timeout
// while the proxy keeps serving everybody else at once.
func TestSlowClientHeadersAreCut(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	sv := serveProxy(t, nil, func(s *Settings) { s.Server.ReadHeaderTimeout = timeout })
	req := "POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\nUser-Agent: slowloris\r\nContent-Length: 2\r\n\r\n{}"
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
		status, _, body := sv.chat(t, chatBody("echo", false, "still serving"), nil)
		if status != http.StatusOK {
			t.Errorf("request %d among slow clients: %d %s", i, status, body)
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
}

// TestSlowClientBodyIsCut: a client that sends its headers and part of its
// body, then stalls, gets 408 in OpenAI's shape at read_timeout and its
// connection is closed: the proxy neither waits for the rest nor keeps
// the connection. Content-Length and chunked bodies alike.
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
			sv := serveProxy(t, nil, func(s *Settings) { s.Server.ReadTimeout = timeout })
			conn, err := net.Dial("tcp", sv.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			start := time.Now()
			fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n%s\r\n%s", tt.head, tt.part)

			// Others are served while this client stalls.
			if status, _, body := sv.chat(t, chatBody("echo", false, "x"), nil); status != http.StatusOK {
				t.Errorf("a request beside the stalled one: %d %s", status, body)
			}

			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer to the stalled body after %s: %v", time.Since(start), err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			took := time.Since(start)
			if resp.StatusCode != http.StatusRequestTimeout || apiErr(t, b).Code != "request_timeout" {
				t.Errorf("status %d: %s; want 408 request_timeout", resp.StatusCode, b)
			}
			if took < timeout-50*time.Millisecond || took > timeout+2*time.Second {
				t.Errorf("answered after %s, want about %s", took, timeout)
			}
			if _, err := br.ReadByte(); err == nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
				t.Errorf("the connection stayed open after the 408: %v", err)
			}
			if sv.up.count() != 0 {
				t.Error("a request with a stalled body reached the upstream")
			}
		})
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestHugeHeaders: headers over MaxHeaderBytes get 431 from the server
// before any handler runs; headers of a sane size pass.
func TestHugeHeaders(t *testing.T) {
	t.Parallel()
	sv := serveProxy(t, nil, nil)
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
			req, _ := http.NewRequest(http.MethodGet, sv.url("/health"), nil)
			req.Header.Set("X-Padding", strings.Repeat("p", tt.size))
			resp, err := sv.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

// TestBodyOverLimitIsNotRead: a body over max_body_bytes gets 413 in
// OpenAI's shape, and the proxy stops reading near the limit: it never
// consumes what the client keeps sending. The byte count is the server's
// own reads, not what the kernel buffered.
func TestBodyOverLimitIsNotRead(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	const slack = 16 << 10 // headers and the server's read buffer
	for _, tt := range []struct {
		name string
		cl   int64 // -1: chunked, endless
	}{
		{"declared 1 GiB", 1 << 30},
		{"declared twice the limit", 2 * limit}, // less than net/http would drain to reuse the connection
		{"chunked, endless", -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sv := serveProxy(t, nil, func(s *Settings) { s.MaxBodyBytes = limit })
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
			fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n%s\r\n", framing)
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
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge || apiErr(t, b).Code != "request_too_large" {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			// The server closes: the writer stops (or has finished).
			select {
			case <-wrote:
			case <-time.After(5 * time.Second):
				t.Fatal("the server kept accepting the body after its 413")
			}
			t.Logf("the server read %d bytes; the client sent %d", sv.read.Load(), sent.Load())
			if got := sv.read.Load(); got > limit+slack {
				t.Errorf("the server read %d bytes of a body over a %d-byte limit (the client sent %d)", got, limit, sent.Load())
			}
			if sv.up.count() != 0 {
				t.Error("a body over the limit reached the upstream")
			}
		})
	}
}

// TestNonUTF8Input: invalid JSON and bytes that are not UTF-8 — in the
// body, in header values, in the path — get a clean 4xx (or pass where
// harmless), and nothing that reaches spans, log records or the console is
// invalid UTF-8 (OTLP would refuse to encode it, a terminal would garble
// it).
func TestNonUTF8Input(t *testing.T) {
	t.Parallel()
	sv := serveProxy(t, nil, func(s *Settings) {
		s.LogBodies = true
		s.MasterKey = plantedMasterKey
	})
	auth := "Bearer " + plantedMasterKey
	// A body whose log excerpt (LogBodyLimit bytes) ends inside a
	// three-byte character, whatever the length of the JSON around it.
	longPrompt := strings.Repeat("€", LogBodyLimit)
	for _, tt := range []struct {
		name     string
		path     string
		body     string
		hdr      map[string]string
		want     int
		wantCode string
	}{
		{name: "truncated JSON", body: `{"model":"echo","messages":[`, want: 400, wantCode: "invalid_json"},
		{name: "not JSON", body: "\xff\xfe{not json}", want: 400, wantCode: "invalid_json"},
		{name: "Latin-1 in a string", body: "{\"model\":\"echo\",\"messages\":[{\"role\":\"user\",\"content\":\"caf\xe9\"}]}", want: 400, wantCode: "invalid_encoding"},
		{name: "invalid UTF-8 in the model", body: "{\"model\":\"ech\xc3o\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", want: 400, wantCode: "invalid_encoding"},
		{name: "NUL in a string", body: "{\"model\":\"echo\",\"messages\":[{\"role\":\"user\",\"content\":\"a\x00b\"}]}", want: 400, wantCode: "invalid_json"},
		{name: "escaped lone surrogate passes", body: `{"model":"echo","messages":[{"role":"user","content":"\ud800 x"}]}`, want: 200},
		{name: "user id not UTF-8", body: chatBody("echo", false, "x"), hdr: map[string]string{"X-Memory-User-Id": "al\xffice"}, want: 400, wantCode: "invalid_user_id"},
		{name: "user agent not UTF-8", body: chatBody("echo", false, "x"), hdr: map[string]string{"User-Agent": "Claude Code \xff\xfe"}, want: 200},
		{name: "path not UTF-8", path: "/v1/chat/completions%ff%fe", body: chatBody("echo", false, "x"), want: 404, wantCode: "not_found"},
		{name: "key not UTF-8", body: chatBody("echo", false, "x"), hdr: map[string]string{"Authorization": "Bearer \xff\xfe"}, want: 401, wantCode: "invalid_api_key"},
		{name: "long multi-byte prompt, logged", body: chatBody("echo", false, longPrompt), want: 200},
		{name: "long multi-byte prompt, streamed", body: chatBody("echo", true, longPrompt), want: 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = "/v1/chat/completions"
			}
			req, _ := http.NewRequest(http.MethodPost, "http://"+sv.addr+path, strings.NewReader(tt.body))
			if tt.path != "" {
				req.URL.RawPath = "" // keep %ff as sent
				req.URL.Opaque = "//" + sv.addr + path
			}
			req.Header.Set("Authorization", auth)
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			resp, err := sv.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, b)
			}
			if !utf8.Valid(b) {
				t.Errorf("the answer is not UTF-8: %q", b)
			}
			if tt.wantCode != "" {
				if e := apiErr(t, b); e.Code != tt.wantCode {
					t.Errorf("code %q, want %q: %s", e.Code, tt.wantCode, b)
				}
			}
		})
	}
	assertValidUTF8(t, sv.tel)
}

// assertValidUTF8 checks every string the telemetry holds.
func assertValidUTF8(t *testing.T, tel *telemetry) {
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
	check("console output", tel.console.String())
}

// errorRecords returns the log records of severity error or above.
func (tt *telemetry) errorRecords() []sdklog.Record {
	var out []sdklog.Record
	for _, r := range tt.logs.All() {
		if r.Severity() >= log.SeverityError {
			out = append(out, r)
		}
	}
	return out
}

// waitSpan waits for the span with that name to have ended.
func waitSpan(t testing.TB, tel *telemetry, name string) tracetest.SpanStub {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if s := tel.spansNamed(name); len(s) > 0 {
			return s[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no span %q; spans: %v", name, tel.spans.GetSpans())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// assertCallFailed checks that the upstream span of the only call records
// an error, and that an error log record was written in its trace.
func assertCallFailed(t testing.TB, tel *telemetry, model, wantType string) {
	t.Helper()
	s := waitSpan(t, tel, "chat "+model)
	if s.Status.Code != codes.Error {
		t.Errorf("upstream span status %v, want Error", s.Status)
	}
	if got := spanAttrs(s)["error.type"]; got != wantType {
		t.Errorf("upstream span error.type %q, want %q", got, wantType)
	}
	var inTrace []string
	for _, r := range tel.errorRecords() {
		if r.TraceID() == s.SpanContext.TraceID() {
			inTrace = append(inTrace, r.Body().AsString())
		}
	}
	if len(inTrace) == 0 {
		t.Errorf("no error log record in the request's trace; records: %d", len(tel.logs.All()))
	}
}

// sseChunk is one valid chunk of an OpenAI stream.
func sseChunk(content string) string {
	return fmt.Sprintf("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}]}\n\n", content)
}

const sseFinish = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"

// lastEventError decodes the error of the last event of a stream.
func lastEventError(t testing.TB, body []byte) apiError {
	t.Helper()
	events := sseEvents(body)
	if len(events) == 0 {
		t.Fatalf("no events in %q", body)
	}
	for _, e := range events {
		if e == "[DONE]" {
			t.Errorf("a stream that failed ends with [DONE]: %q", body)
		}
	}
	return apiErr(t, []byte(events[len(events)-1]))
}

// TestUpstreamStreamsForever: a started stream is bounded by
// stream_timeout in all and by stream_idle_timeout between reads; the
// client gets an error event, the upstream request is cancelled, the span
// and the log record the timeout. A stream that keeps producing within
// both limits is not cut, and upstream.timeout only bounds its start.
func TestUpstreamStreamsForever(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		every    time.Duration // between events; 0: one event, then silence
		events   int           // 0: for ever
		idle     time.Duration
		total    time.Duration
		wantCode string // "": completes
		wantCut  time.Duration
	}{
		{name: "endless data", every: 10 * time.Millisecond, idle: 500 * time.Millisecond, total: time.Second,
			wantCode: "upstream_stream_timeout", wantCut: time.Second},
		{name: "silent after the first event", idle: 400 * time.Millisecond, total: 10 * time.Second,
			wantCode: "upstream_stream_idle", wantCut: 400 * time.Millisecond},
		{name: "slow but steady", every: 50 * time.Millisecond, events: 16, idle: 600 * time.Millisecond, total: 10 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cancelled := make(chan bool, 1)
			sv := serveProxy(t, func(w http.ResponseWriter, r *http.Request, _ seen) {
				w.Header().Set("Content-Type", "text/event-stream")
				rc := http.NewResponseController(w)
				for i := 0; tt.events == 0 || i < tt.events; i++ {
					io.WriteString(w, sseChunk(fmt.Sprintf("w%d ", i)))
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
				io.WriteString(w, sseFinish)
				cancelled <- false
			}, func(s *Settings) {
				s.Upstream.StreamIdleTimeout, s.Upstream.StreamTimeout = tt.idle, tt.total
				s.Models[0].Timeout = 100 * time.Millisecond // bounds the first event only
			})
			start := time.Now()
			status, _, body := sv.chat(t, chatBody("gpt-test", true, "x"), nil)
			took := time.Since(start)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			if tt.wantCode == "" {
				events := sseEvents(body)
				if events[len(events)-1] != "[DONE]" || len(events) != tt.events+2 {
					t.Errorf("a steady stream was cut: %d events, last %q", len(events), events[len(events)-1])
				}
				if s := waitSpan(t, sv.tel, "chat gpt-test"); s.Status.Code == codes.Error {
					t.Errorf("span of a complete stream: %v", s.Status)
				}
				return
			}
			if e := lastEventError(t, body); e.Code != tt.wantCode {
				t.Errorf("last event %+v, want code %s", e, tt.wantCode)
			}
			if len(sseEvents(body)) < 2 {
				t.Errorf("the events before the cut were not relayed: %q", body)
			}
			if took < tt.wantCut-50*time.Millisecond || took > tt.wantCut+2*time.Second {
				t.Errorf("stream ended after %s, want about %s", took, tt.wantCut)
			}
			select {
			case c := <-cancelled:
				if !c {
					t.Error("the upstream finished instead of being cancelled")
				}
			case <-time.After(5 * time.Second):
				t.Error("the upstream request was not cancelled")
			}
			assertCallFailed(t, sv.tel, "gpt-test", errTypeTimeout)
		})
	}
}

// hijacked answers with raw bytes on the upstream connection, then closes
// it: responses no well-behaved server would send.
func hijacked(raw ...string) func(http.ResponseWriter, *http.Request, seen) {
	return func(w http.ResponseWriter, r *http.Request, _ seen) {
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
	}
}

func answer(status int, contentType, body string) func(http.ResponseWriter, *http.Request, seen) {
	return func(w http.ResponseWriter, r *http.Request, _ seen) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func httpChunk(s string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(s), s) }

// TestUpstreamGarbage: an upstream that answers with something that is
// not an answer — not JSON, not HTTP, not Server-Sent Events, a wrong
// Content-Length, a connection closed half-way — gets the client a clean
// 502 in OpenAI's shape when nothing was sent yet, or an error event that
// ends a stream already under way; the upstream span records the error
// and an error log record is written in the request's trace.
func TestUpstreamGarbage(t *testing.T) {
	t.Parallel()
	const sseHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
	completion := `{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`
	for _, tt := range []struct {
		name     string
		handle   func(http.ResponseWriter, *http.Request, seen)
		stream   bool
		want     int    // the client's status
		wantCode string // of the error body, or of the stream's last event
		wantType string // error.type of the upstream span
	}{
		{"HTML on a JSON response", answer(200, "text/html", "<html><body>Welcome to nginx!</body></html>"), false, 502, "upstream_invalid_response", errTypeInvalid},
		{"JSON cut short", answer(200, "application/json", `{"id":"c","choices":[{"message":`), false, 502, "upstream_invalid_response", errTypeInvalid},
		{"empty 200", answer(200, "application/json", ""), false, 502, "upstream_invalid_response", errTypeInvalid},
		{"JSON that is not an object", answer(200, "application/json", `["a","b"]`), false, 502, "upstream_invalid_response", errTypeInvalid},
		{"Content-Length longer than the body", hijacked("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n" + completion[:40]), false, 502, "upstream_response_broken", errTypeRead},
		{"Content-Length shorter than the body", hijacked("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n" + completion), false, 502, "upstream_invalid_response", errTypeInvalid},
		{"not HTTP", hijacked("SSH-2.0-OpenSSH_9.6\r\n\r\n"), false, 502, "upstream_bad_response", errTypeConnection},
		{"closed without answering", hijacked(), false, 502, "upstream_bad_response", errTypeConnection},
		{"headers cut off", hijacked("HTTP/1.1 200 OK\r\nContent-Ty"), false, 502, "upstream_bad_response", errTypeConnection},
		{"chunked body cut off", hijacked("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + httpChunk(completion[:30])), false, 502, "upstream_response_broken", errTypeRead},

		{"stream that is an HTML page", answer(200, "text/event-stream", "<html><body>Bad Gateway</body></html>\n\n"), true, 502, "upstream_invalid_response", errTypeInvalid},
		{"stream whose first event is not JSON", answer(200, "text/event-stream", "data: {\"id\":\"c\",\"choi\n\n"), true, 502, "upstream_invalid_response", errTypeInvalid},
		{"stream without events", answer(200, "text/event-stream", ""), true, 502, "upstream_invalid_response", errTypeInvalid},
		{"stream closed before its first event", hijacked(sseHead), true, 502, "upstream_response_broken", errTypeRead},
		{"stream closed mid-event, first event", hijacked(sseHead, httpChunk("data: {\"id\":")), true, 502, "upstream_response_broken", errTypeRead},

		{"stream closed after an event", hijacked(sseHead, httpChunk(sseChunk("one"))), true, 200, "upstream_stream_error", errTypeRead},
		{"stream turns to garbage", answer(200, "text/event-stream", sseChunk("one")+"data: {broken\n\n"+sseFinish), true, 200, "upstream_invalid_response", errTypeInvalid},
		{"stream turns to HTML", answer(200, "text/event-stream", sseChunk("one")+"<html>\n\n"), true, 200, "upstream_invalid_response", errTypeInvalid},
		{"stream ends without [DONE]", answer(200, "text/event-stream", sseChunk("one")+sseChunk("two")), true, 200, "upstream_invalid_response", errTypeInvalid},
		{"stream ends mid-event", answer(200, "text/event-stream", sseChunk("one")+"data: {\"id\":\"c\""), true, 200, "upstream_invalid_response", errTypeInvalid},
		{"stream with a Content-Length too long", hijacked("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 5000\r\n\r\n" + sseChunk("one")), true, 200, "upstream_stream_error", errTypeRead},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sv := serveProxy(t, tt.handle, nil)
			status, hdr, body := sv.chat(t, chatBody("gpt-test", tt.stream, "x"), nil)
			if status != tt.want {
				t.Fatalf("status %d, want %d: %s", status, tt.want, body)
			}
			if status == http.StatusOK {
				if got := streamedContent(t, sseEvents(body)[:1]); got != "one" {
					t.Errorf("the event before the failure was not relayed: %q", body)
				}
				if e := lastEventError(t, body); e.Code != tt.wantCode {
					t.Errorf("last event %+v, want code %s", e, tt.wantCode)
				}
			} else {
				if ct := hdr.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				if e := apiErr(t, body); e.Code != tt.wantCode {
					t.Errorf("code %q, want %q: %s", e.Code, tt.wantCode, body)
				}
			}
			assertCallFailed(t, sv.tel, "gpt-test", tt.wantType)
			assertValidUTF8(t, sv.tel)
		})
	}
}

// TestUpstreamErrorPage: an upstream error status whose body is not JSON
// (a load balancer's page) keeps its status and Retry-After; the body is
// replaced by one in OpenAI's shape.
func TestUpstreamErrorPage(t *testing.T) {
	t.Parallel()
	sv := serveProxy(t, answer(http.StatusServiceUnavailable, "text/html", "<html><h1>503 Service Temporarily Unavailable</h1></html>"), nil)
	status, hdr, body := sv.chat(t, chatBody("gpt-test", false, "x"), nil)
	if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") != "3" || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, headers %v: %s", status, hdr, body)
	}
	if e := apiErr(t, body); e.Code != "upstream_error" || !strings.Contains(e.Message, "503") {
		t.Errorf("error %+v", e)
	}
	if s := waitSpan(t, sv.tel, "chat gpt-test"); s.Status.Code != codes.Error {
		t.Errorf("span status %v", s.Status)
	}
}

// TestClientDisconnectMidStream: a client that goes away in the middle of
// a stream cancels the upstream request — a remote upstream sees its
// request's context end, the built-in echo stops — and nothing the
// request started outlives it. Not parallel: goleak checks every
// goroutine the test leaves behind.
func TestClientDisconnectMidStream(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) }) // registered first: runs after every other cleanup
	cancelled := make(chan bool, 1)
	sv := serveProxy(t, func(w http.ResponseWriter, r *http.Request, _ seen) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, sseChunk("first"))
		http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
			cancelled <- true
		case <-time.After(5 * time.Second):
			cancelled <- false
		}
	}, nil)
	long := strings.Repeat("many words ", 50_000) // far more than the socket buffers hold
	for _, tt := range []struct{ model, prompt string }{{"gpt-test", "x"}, {"echo", long}} {
		t.Run(tt.model, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, sv.url("/v1/chat/completions"), strings.NewReader(chatBody(tt.model, true, tt.prompt)))
			resp, err := sv.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: {") {
				t.Fatalf("first line %q: %v", line, err)
			}
			resp.Body.Close() // mid-stream: the connection goes
			if tt.model == "gpt-test" {
				select {
				case c := <-cancelled:
					if !c {
						t.Fatal("the upstream request was not cancelled")
					}
				case <-time.After(6 * time.Second):
					t.Fatal("the upstream handler never returned")
				}
			}
			s := waitSpan(t, sv.tel, "chat "+tt.model)
			if got := spanAttrs(s)["error.type"]; got != errTypeCanceled {
				t.Errorf("upstream span error.type %q, want %q", got, errTypeCanceled)
			}
		})
	}
}

// TestThousandConcurrentRequests: 1 000 requests at once, JSON and
// streamed, to the built-in echo and to a remote upstream, are all
// answered 200 with their own content; none is lost and nothing records
// an error.
//
// Not parallel: run alone, it measures the proxy, and the timing of the
// other tests is not disturbed by it.
func TestThousandConcurrentRequests(t *testing.T) {
	const n = 1000
	sv := serveProxy(t, nil, nil)
	tr := &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	start := make(chan struct{})
	var wg sync.WaitGroup
	var ok atomic.Int64
	for i := range n {
		wg.Go(func() {
			<-start
			model, stream := []string{"echo", "gpt-test"}[i%2], i%4 >= 2
			prompt := fmt.Sprintf("request number %d", i)
			resp, err := client.Post(sv.url("/v1/chat/completions"), "application/json", strings.NewReader(chatBody(model, stream, prompt)))
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
			want := prompt
			if model == "gpt-test" {
				want = upstreamContent
			}
			var got string
			if stream {
				got = streamedContent(t, sseEvents(b))
			} else {
				var c struct {
					Choices []struct {
						Message struct{ Content string } `json:"message"`
					} `json:"choices"`
				}
				if json.Unmarshal(b, &c) == nil && len(c.Choices) == 1 {
					got = c.Choices[0].Message.Content
				}
			}
			if got != want {
				t.Errorf("request %d got %q, want %q", i, got, want)
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
	if got := sv.up.count(); got != n/2 {
		t.Errorf("the remote upstream got %d requests, want %d", got, n/2)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(sv.tel.spansNamed("POST /v1/chat/completions")) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := len(sv.tel.spansNamed("POST /v1/chat/completions")); got != n {
		t.Errorf("%d server spans, want %d", got, n)
	}
	for _, s := range sv.tel.spans.GetSpans() {
		if s.Status.Code == codes.Error {
			t.Errorf("span %q: %v", s.Name, s.Status)
		}
	}
	if recs := sv.tel.errorRecords(); len(recs) > 0 {
		t.Errorf("%d error log records, first %q", len(recs), recs[0].Body().AsString())
	}
}

// TestClientStopsReading: a client that stops reading a stream (the
// proxy's writes block once the socket buffers are full) is cut at
// stream_idle_timeout; the handler returns and the upstream request ends.
func TestClientStopsReading(t *testing.T) {
	t.Parallel()
	ended := make(chan struct{})
	big := sseChunk(strings.Repeat("x", 32<<10))
	sv := serveProxy(t, func(w http.ResponseWriter, r *http.Request, _ seen) {
		defer close(ended)
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for r.Context().Err() == nil {
			if _, err := io.WriteString(w, big); err != nil {
				return
			}
			rc.Flush()
		}
	}, func(s *Settings) { s.Upstream.StreamIdleTimeout = 400 * time.Millisecond })
	conn, err := net.Dial("tcp", sv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := chatBody("gpt-test", true, "x")
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	// ... and never reads.
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream kept streaming to a client that reads nothing")
	}
	s := waitSpan(t, sv.tel, "chat gpt-test")
	if got := spanAttrs(s)["error.type"]; got != errTypeCanceled {
		t.Errorf("upstream span error.type %q, want %q", got, errTypeCanceled)
	}
	if recs := sv.tel.logs.ByBody("Client stopped reading the stream"); len(recs) != 1 {
		t.Errorf("no log record says the client stopped reading")
	}
}
