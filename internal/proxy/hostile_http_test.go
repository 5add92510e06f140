package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
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
	const timeout = 300 * time.Millisecond
	sv := serveProxy(t, nil, func(s *Settings) { s.Server.ReadHeaderTimeout = timeout })
	req := "POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\nUser-Agent: slowloris\r\nContent-Length: 2\r\n\r\n{}"
	const gap = 30 * time.Millisecond // the whole request would take ~3.5 s
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
	for _, r := range tel.logs.all() {
		check("log body", r.Body().AsString())
		r.WalkAttributes(func(kv attribute.KeyValue) bool {
			check(fmt.Sprintf("log %q attribute %s", r.Body().AsString(), kv.Key), kv.Value.Emit())
			return true
		})
	}
	check("console output", tel.console.String())
}
