package interceptor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// seen is what the upstream received.
type seen struct {
	Method     string
	RequestURI string
	Header     http.Header
	Body       []byte
	Host       string
}

// recordingUpstream answers every request with 200 and the echo header,
// and records what it received.
type recordingUpstream struct {
	mu   sync.Mutex
	reqs []seen
}

func (u *recordingUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.reqs = append(u.reqs, seen{Method: r.Method, RequestURI: r.RequestURI, Header: r.Header.Clone(), Body: body, Host: r.Host})
	u.mu.Unlock()
	w.Header().Set("X-Upstream", "yes")
	w.Header().Set("Content-Type", "application/json")
	status := http.StatusOK
	if strings.HasSuffix(r.URL.Path, "/teapot") {
		status = http.StatusTeapot
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"echo":` + jsonString(string(body)) + `}`))
}

func (u *recordingUpstream) last(t *testing.T) seen {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatal("the upstream received nothing")
	}
	return u.reqs[len(u.reqs)-1]
}

func (u *recordingUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// fixture is an interceptor in front of an upstream, both on loopback.
type fixture struct {
	srv      *Server
	front    *httptest.Server
	upstream *httptest.Server
	client   *http.Client
	tel      *telemetry
}

// newFixture starts upstream (nil: none; the target is then settings'),
// and an interceptor for it. mod adjusts the settings.
func newFixture(t *testing.T, upstream http.Handler, mod func(*Settings)) *fixture {
	t.Helper()
	f := &fixture{tel: newTelemetry(t, ServiceName)}
	s := DefaultSettings()
	s.UserID = "configured-user"
	if upstream != nil {
		f.upstream = httptest.NewServer(upstream)
		t.Cleanup(f.upstream.Close)
		s.Target = f.upstream.URL
	}
	if mod != nil {
		mod(&s)
	}
	srv, err := New(s, f.tel.Telemetry)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.srv = srv
	f.front = httptest.NewServer(srv.Handler())
	f.client = f.front.Client()
	t.Cleanup(func() {
		f.front.Close()
		srv.Close()
	})
	return f
}

func (f *fixture) do(t *testing.T, method, path string, body io.Reader, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, f.front.URL+path, body)
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

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestForwarding(t *testing.T) {
	t.Parallel()
	up := &recordingUpstream{}
	f := newFixture(t, up, nil)
	base := &recordingUpstream{}
	fb := newFixture(t, base, nil)
	// A target with a base path: the request path is appended to it.
	withPath := newFixture(t, nil, func(s *Settings) { s.Target = fb.upstream.URL + "/litellm" })

	tests := []struct {
		name       string
		fx         *fixture
		rec        *recordingUpstream
		method     string
		path       string
		body       string
		wantURI    string
		wantStatus int
	}{
		{"GET", f, up, http.MethodGet, "/v1/models", "", "/v1/models", 200},
		{"POST with body", f, up, http.MethodPost, "/v1/chat/completions", `{"model":"m","messages":[]}`, "/v1/chat/completions", 200},
		{"PUT", f, up, http.MethodPut, "/v1/files/1", "put body", "/v1/files/1", 200},
		{"PATCH", f, up, http.MethodPatch, "/v1/files/1", "patch body", "/v1/files/1", 200},
		{"DELETE", f, up, http.MethodDelete, "/v1/files/1", "", "/v1/files/1", 200},
		{"OPTIONS", f, up, http.MethodOptions, "/v1/chat/completions", "", "/v1/chat/completions", 200},
		{"HEAD", f, up, http.MethodHead, "/v1/models", "", "/v1/models", 200},
		{"custom method", f, up, "PROPFIND", "/dav", "", "/dav", 200},
		{"query string kept as sent", f, up, http.MethodGet, "/v1/models?a=1&b=two%20words&a=3&empty=&flag", "", "/v1/models?a=1&b=two%20words&a=3&empty=&flag", 200},
		{"encoded path kept", f, up, http.MethodGet, "/v1/files/a%2Fb/c%20d", "", "/v1/files/a%2Fb/c%20d", 200},
		{"POST /health is not the local health check", f, up, http.MethodPost, "/health", "x", "/health", 200},
		{"status relayed", f, up, http.MethodGet, "/teapot", "", "/teapot", http.StatusTeapot},
		{"target base path", withPath, base, http.MethodGet, "/v1/models?x=1", "", "/litellm/v1/models?x=1", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: each case reads the upstream's last request.
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			resp := tt.fx.do(t, tt.method, tt.path, body, nil)
			got := readAll(t, resp)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if resp.Header.Get("X-Upstream") != "yes" {
				t.Errorf("the upstream's response header was not relayed: %v", resp.Header)
			}
			s := tt.rec.last(t)
			if s.Method != tt.method || s.RequestURI != tt.wantURI {
				t.Errorf("upstream got %s %s, want %s %s", s.Method, s.RequestURI, tt.method, tt.wantURI)
			}
			if string(s.Body) != tt.body {
				t.Errorf("upstream body %q, want %q", s.Body, tt.body)
			}
			if tt.method != http.MethodHead && string(got) != `{"echo":`+jsonString(tt.body)+`}` {
				t.Errorf("client got %q", got)
			}
			if tt.method == http.MethodHead && len(got) != 0 {
				t.Errorf("HEAD answered with a body: %q", got)
			}
			if s.Header.Get(HeaderSource) != SourceValue {
				t.Errorf("x-source = %q", s.Header.Get(HeaderSource))
			}
			if s.Header.Get(HeaderUserID) != "configured-user" {
				t.Errorf("x-memory-user-id = %q", s.Header.Get(HeaderUserID))
			}
			if host := tt.fx.srv.target.Host; s.Host != host {
				t.Errorf("Host = %q, want the proxy's %q", s.Host, host)
			}
		})
	}
}

func TestHopByHopHeadersAreStripped(t *testing.T) {
	t.Parallel()
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range []string{"X-Hop", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection"} {
			if v := r.Header.Get(h); v != "" {
				w.Header().Set("X-Leaked-"+h, v)
			}
		}
		if r.Header.Get("Te") != "" {
			w.Header().Set("X-Leaked-Te", r.Header.Get("Te"))
		}
		w.Header().Set("X-Got-End", r.Header.Get("X-End"))
		w.Header().Set("Connection", "X-Resp-Hop")
		w.Header().Set("X-Resp-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=1")
		w.Header().Set("Proxy-Authenticate", "Basic")
		w.Header().Set("X-Resp-End", "1")
		_, _ = io.WriteString(w, "ok")
	})
	f := newFixture(t, up, nil)
	resp := f.do(t, http.MethodPost, "/v1/chat/completions", strings.NewReader("{}"), map[string]string{
		"Connection":          "X-Hop",
		"X-Hop":               "secret-hop",
		"Keep-Alive":          "timeout=5",
		"Proxy-Authorization": "Basic Zm9vOmJhcg==",
		"Proxy-Connection":    "keep-alive",
		"Te":                  "gzip",
		"X-End":               "end-to-end",
	})
	readAll(t, resp)
	for k, v := range resp.Header {
		if strings.HasPrefix(k, "X-Leaked-") {
			t.Errorf("hop-by-hop request header reached the proxy: %s=%v", strings.TrimPrefix(k, "X-Leaked-"), v)
		}
	}
	if got := resp.Header.Get("X-Got-End"); got != "end-to-end" {
		t.Errorf("end-to-end request header lost: %q", got)
	}
	for _, h := range []string{"X-Resp-Hop", "Keep-Alive", "Proxy-Authenticate"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("hop-by-hop response header reached the client: %s=%s", h, v)
		}
	}
	if resp.Header.Get("X-Resp-End") != "1" {
		t.Error("end-to-end response header lost")
	}
}

// TestLargeBodiesAreStreamed sends 8 MiB through the interceptor in both
// directions. The client holds back everything after the first MiB until
// the proxy has received that MiB, so an interceptor that buffered whole
// bodies would deadlock here instead of passing.
func TestLargeBodiesAreStreamed(t *testing.T) {
	t.Parallel()
	const size = 8 << 20
	const first = 1 << 20
	gotFirst := make(chan struct{})
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		var n int64
		buf := make([]byte, 64<<10)
		signalled := false
		for {
			m, err := r.Body.Read(buf)
			h.Write(buf[:m])
			n += int64(m)
			if !signalled && n >= first {
				close(gotFirst)
				signalled = true
			}
			if err != nil {
				break
			}
		}
		w.Header().Set("X-Received-Bytes", itoa(n))
		w.Header().Set("X-Received-Sha256", hexs(h.Sum(nil)))
		// Answer with 8 MiB of our own, in pieces.
		chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
		for sent := 0; sent < size; sent += len(chunk) {
			_, _ = w.Write(chunk)
		}
	})
	f := newFixture(t, up, nil)

	pr, pw := io.Pipe()
	payload := bytes.Repeat([]byte("streamed-request-body-"), size/22+1)[:size]
	go func() {
		if _, err := pw.Write(payload[:first]); err != nil {
			return
		}
		select {
		case <-gotFirst:
		case <-time.After(5 * time.Second):
			pw.CloseWithError(errors.New("the proxy never saw the first MiB: the interceptor buffers request bodies"))
			return
		}
		_, _ = pw.Write(payload[first:])
		pw.Close()
	}()
	resp := f.do(t, http.MethodPost, "/v1/files", pr, map[string]string{"Content-Type": "application/octet-stream"})
	want := sha256.Sum256(payload)
	if resp.Header.Get("X-Received-Bytes") != itoa(size) || resp.Header.Get("X-Received-Sha256") != hexs(want[:]) {
		t.Errorf("proxy received %s bytes (sha %s), want %d (sha %s)", resp.Header.Get("X-Received-Bytes"), resp.Header.Get("X-Received-Sha256"), size, hexs(want[:]))
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Errorf("client received %d response bytes (%v), want %d", n, err, size)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func hexs(b []byte) string { return hex.EncodeToString(b) }

// TestSSEChunksArriveAsSent checks that the client reads the first event
// while the proxy is still holding back the second: nothing between them
// waits for more data or for the end of the response.
func TestSSEChunksArriveAsSent(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseAll)
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = io.WriteString(w, "data: {\"chunk\":1}\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		case <-time.After(10 * time.Second):
		}
		_, _ = io.WriteString(w, "data: {\"chunk\":2}\n\n")
		http.NewResponseController(w).Flush()
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	})
	f := newFixture(t, up, nil)
	// The request runs in the background: with a buffering interceptor
	// even the response headers would wait for the proxy's second chunk.
	lines := make(chan string)
	contentType := make(chan string, 1)
	go func() {
		defer close(lines)
		req, _ := http.NewRequest(http.MethodPost, f.front.URL+"/v1/chat/completions", strings.NewReader(`{"stream":true}`))
		resp, err := f.client.Do(req)
		if err != nil {
			contentType <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		contentType <- resp.Header.Get("Content-Type")
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if sc.Text() != "" {
				lines <- sc.Text()
			}
		}
	}()
	select {
	case l := <-lines:
		if l != `data: {"chunk":1}` {
			releaseAll()
			for range lines {
			}
			t.Fatalf("first event %q", l)
		}
	case <-time.After(5 * time.Second):
		releaseAll()
		for range lines {
		}
		t.Fatal("chunk 1 did not reach the client before the proxy sent chunk 2: the response is buffered")
	}
	if ct := <-contentType; ct != "text/event-stream" {
		t.Errorf("Content-Type = %q", ct)
	}
	releaseAll()
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	if strings.Join(rest, "|") != `data: {"chunk":2}|data: [DONE]` {
		t.Errorf("rest of the stream: %q", rest)
	}
}

func TestIdentity(t *testing.T) {
	t.Parallel()
	projects := t.TempDir()
	myProject := filepath.Join(projects, "my-project")
	if err := os.Mkdir(myProject, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		settings func(*Settings)
		env      []string // through LoadSettings, for SUPERMEMORY_USERNAME
		header   string   // x-memory-user-id sent by the client
		want     string
	}{
		{name: "explicit header wins over settings", settings: func(s *Settings) { s.UserID = "configured" }, header: "explicit", want: "explicit"},
		{name: "explicit header wins over derived", settings: func(s *Settings) { s.UserID = ""; s.ProjectDir = myProject }, header: "explicit", want: "explicit"},
		{name: "settings", settings: func(s *Settings) { s.UserID = "configured" }, want: "configured"},
		{name: "SUPERMEMORY_USERNAME", env: []string{"SUPERMEMORY_USERNAME=alice"}, want: "alice"},
		{name: "settings win over SUPERMEMORY_USERNAME", env: []string{"SUPERMEMORY_USERNAME=alice", "INTERCEPTOR_USER_ID=bob"}, want: "bob"},
		{name: "derived from the project directory", settings: func(s *Settings) { s.UserID = ""; s.ProjectDir = myProject }, want: "pycharm-my-project"},
		{name: "derived with a custom prefix", settings: func(s *Settings) { s.UserID = ""; s.ProjectDir = myProject; s.UserIDPrefix = "vscode" }, want: "vscode-my-project"},
		{name: "derived without prefix", settings: func(s *Settings) { s.UserID = ""; s.ProjectDir = myProject; s.UserIDPrefix = "" }, want: "my-project"},
		{name: "derived from a trailing-slash path", settings: func(s *Settings) { s.UserID = ""; s.ProjectDir = myProject + "/" }, want: "pycharm-my-project"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := &recordingUpstream{}
			mod := tt.settings
			if tt.env != nil {
				loaded, err := LoadSettings(LoadOptions{Environ: append(tt.env, "INTERCEPTOR_PROJECT_DIR="+myProject)})
				if err != nil {
					t.Fatal(err)
				}
				mod = func(s *Settings) {
					target := s.Target
					*s = loaded.Settings
					s.Target = target
				}
			}
			f := newFixture(t, up, mod)
			hdr := map[string]string{}
			if tt.header != "" {
				hdr[HeaderUserID] = tt.header
			}
			readAll(t, f.do(t, http.MethodPost, "/v1/chat/completions", strings.NewReader("{}"), hdr))
			if got := up.last(t).Header.Values(HeaderUserID); len(got) != 1 || got[0] != tt.want {
				t.Errorf("proxy got x-memory-user-id %q, want %q", got, tt.want)
			}
			recs := f.tel.logs.ByBody("Received request")
			if len(recs) != 1 || attrs(recs[0])["user_id"] != tt.want {
				t.Errorf("Received request log: %v", recs)
			}
			if tt.header == "" {
				var health map[string]string
				if err := json.Unmarshal(readAll(t, f.do(t, http.MethodGet, "/health", nil, nil)), &health); err != nil {
					t.Fatal(err)
				}
				if health["user_id"] != tt.want {
					t.Errorf("/health user_id = %q, want %q", health["user_id"], tt.want)
				}
			}
		})
	}
}

func TestDeriveUserIDOfRoot(t *testing.T) {
	t.Parallel()
	got, err := DeriveUserID("pycharm", string(filepath.Separator))
	if err != nil || got != "pycharm-root" {
		t.Errorf("DeriveUserID(/) = %q, %v", got, err)
	}
}

func TestAuthenticationGap(t *testing.T) {
	t.Parallel()
	const key = "sk-test-gap-1234"
	tests := []struct {
		name    string
		apiKey  Secret
		headers map[string]string
		want    map[string]string // header -> value the proxy must see ("" = absent)
	}{
		{"added when the client sends none", key, nil, map[string]string{"Authorization": "Bearer " + key}},
		{"client Authorization kept", key, map[string]string{"Authorization": "Bearer sk-client"}, map[string]string{"Authorization": "Bearer sk-client"}},
		{"client x-api-key: nothing added", key, map[string]string{"X-Api-Key": "sk-ant"}, map[string]string{"Authorization": "", "X-Api-Key": "sk-ant"}},
		{"client api-key: nothing added", key, map[string]string{"Api-Key": "azure"}, map[string]string{"Authorization": "", "Api-Key": "azure"}},
		{"no key configured", "", nil, map[string]string{"Authorization": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := &recordingUpstream{}
			f := newFixture(t, up, func(s *Settings) { s.APIKey = tt.apiKey })
			readAll(t, f.do(t, http.MethodPost, "/v1/chat/completions?api_key=q-secret", strings.NewReader("{}"), tt.headers))
			h := up.last(t).Header
			for k, v := range tt.want {
				if got := h.Get(k); got != v {
					t.Errorf("proxy got %s = %q, want %q", k, got, v)
				}
			}
			assertNoSecrets(t, f.tel, key, "sk-client", "sk-ant", "q-secret")
		})
	}
}

// assertNoSecrets checks every exported span attribute, event and log
// record for the given strings.
func assertNoSecrets(t *testing.T, tel *telemetry, secrets ...string) {
	t.Helper()
	var texts []string
	for _, s := range tel.spans.GetSpans() {
		texts = append(texts, s.Name, s.Status.Description)
		for _, a := range s.Attributes {
			texts = append(texts, string(a.Key)+"="+a.Value.Emit())
		}
		for _, e := range s.Events {
			for _, a := range e.Attributes {
				texts = append(texts, a.Value.Emit())
			}
		}
	}
	for _, r := range tel.logs.All() {
		texts = append(texts, r.Body().Emit())
		for k, v := range attrs(r) {
			texts = append(texts, k+"="+v)
		}
	}
	if len(texts) == 0 {
		t.Fatal("no telemetry at all to check")
	}
	for _, txt := range texts {
		for _, s := range secrets {
			if strings.Contains(txt, s) {
				t.Errorf("telemetry contains the secret %q: %s", s, txt)
			}
		}
	}
}

func TestUnreachableProxy(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	f := newFixture(t, nil, func(s *Settings) { s.Target = dead })
	resp := f.do(t, http.MethodPost, "/v1/chat/completions?key=sk-q", strings.NewReader(`{"model":"m"}`), nil)
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var e struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("not JSON: %s", body)
	}
	msg, _ := e.Error["message"].(string)
	if !strings.Contains(msg, dead) || e.Error["type"] != "api_connection_error" || e.Error["code"] != "proxy_unreachable" {
		t.Errorf("error body %s", body)
	}
	if strings.Contains(string(body), "sk-q") {
		t.Errorf("the error repeats the query string: %s", body)
	}
	server := serverSpan(t, f.tel.spans)
	if server.Status.Code != codes.Error {
		t.Errorf("server span status %v", server.Status)
	}
	recs := f.tel.logs.ByBody("Proxy request failed")
	if len(recs) != 1 || recs[0].TraceID() != server.SpanContext.TraceID() {
		t.Errorf("failure log %v not in the request's trace", recs)
	}
	assertNoSecrets(t, f.tel, "sk-q")
}

func TestProxyTimeout(t *testing.T) {
	t.Parallel()
	done := make(chan struct{})
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	})
	f := newFixture(t, up, func(s *Settings) { s.Timeouts.ResponseHeader = 100 * time.Millisecond })
	defer close(done)
	start := time.Now()
	resp := f.do(t, http.MethodPost, "/v1/chat/completions", strings.NewReader("{}"), nil)
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(body), `"proxy_timeout"`) {
		t.Fatalf("status %d body %s, want 504 proxy_timeout", resp.StatusCode, body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
}

func TestHealthIsLocal(t *testing.T) {
	t.Parallel()
	up := &recordingUpstream{}
	f := newFixture(t, up, func(s *Settings) { s.UserID = "u1" })
	resp := f.do(t, http.MethodGet, "/health", nil, nil)
	var h map[string]string
	if err := json.Unmarshal(readAll(t, resp), &h); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || h["status"] != "ok" || h["user_id"] != "u1" || h["target"] != f.upstream.URL || h["service"] != ServiceName {
		t.Errorf("health = %d %v", resp.StatusCode, h)
	}
	resp = f.do(t, http.MethodHead, "/health", nil, nil)
	readAll(t, resp)
	if resp.StatusCode != 200 {
		t.Errorf("HEAD /health = %d", resp.StatusCode)
	}
	if up.count() != 0 {
		t.Errorf("/health reached the proxy %d times", up.count())
	}
	// The target's password never shows.
	g := newFixture(t, nil, func(s *Settings) { s.Target = "http://user:hunter2@127.0.0.1:1" })
	if b := readAll(t, g.do(t, http.MethodGet, "/health", nil, nil)); strings.Contains(string(b), "hunter2") {
		t.Errorf("/health shows the password: %s", b)
	}
}

// serverSpan waits for the server span: it ends when the handler returns,
// which can be just after the client has read the whole response.
func serverSpan(t *testing.T, exp *tracetest.InMemoryExporter) tracetest.SpanStub {
	t.Helper()
	return spanOfKind(t, exp, trace.SpanKindServer)
}

func clientSpan(t *testing.T, exp *tracetest.InMemoryExporter) tracetest.SpanStub {
	t.Helper()
	return spanOfKind(t, exp, trace.SpanKindClient)
}

func spanOfKind(t *testing.T, exp *tracetest.InMemoryExporter, kind trace.SpanKind) tracetest.SpanStub {
	t.Helper()
	var found tracetest.SpanStub
	waitFor(t, kind.String()+" span", func() bool {
		for _, s := range exp.GetSpans() {
			if s.SpanKind == kind {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTraceAndLogs(t *testing.T) {
	t.Parallel()
	up := &recordingUpstream{}
	f := newFixture(t, up, nil)

	// A client that is itself traced: its traceparent continues into the
	// interceptor, and the proxy sees the interceptor's client span.
	clientTP := sdktrace.NewTracerProvider()
	defer clientTP.Shutdown(context.Background())
	ctx, parent := clientTP.Tracer("editor").Start(context.Background(), "editor request")
	parent.End()
	tp := "00-" + parent.SpanContext().TraceID().String() + "-" + parent.SpanContext().SpanID().String() + "-01"
	readAll(t, f.do(t, http.MethodPost, "/v1/chat/completions?key=sk-in-query&x=1", strings.NewReader("{}"), map[string]string{"Traceparent": tp}))
	_ = ctx

	server, client := serverSpan(t, f.tel.spans), clientSpan(t, f.tel.spans)
	waitFor(t, "the outcome log", func() bool { return len(f.tel.logs.ByBody("Proxy responded")) > 0 })
	traceID := parent.SpanContext().TraceID()
	if server.SpanContext.TraceID() != traceID || server.Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("server span does not continue the client's trace: %v parent %v", server.SpanContext, server.Parent)
	}
	if client.SpanContext.TraceID() != traceID || client.Parent.SpanID() != server.SpanContext.SpanID() {
		t.Errorf("client span is not the server span's child")
	}
	got := up.last(t).Header.Values("Traceparent")
	want := "00-" + traceID.String() + "-" + client.SpanContext.SpanID().String() + "-01"
	if len(got) != 1 || got[0] != want {
		t.Errorf("proxy got traceparent %q, want %q (the interceptor's client span)", got, want)
	}
	for _, a := range client.Attributes {
		if a.Key == "url.full" && !strings.Contains(a.Value.AsString(), "key=REDACTED&x=1") {
			t.Errorf("url.full = %s", a.Value.AsString())
		}
	}
	if up.last(t).RequestURI != "/v1/chat/completions?key=sk-in-query&x=1" {
		t.Errorf("the query string itself must be forwarded untouched: %s", up.last(t).RequestURI)
	}

	for _, tc := range []struct {
		msg   string
		attrs map[string]string
	}{
		{"Received request", map[string]string{"method": "POST", "path": "/v1/chat/completions", "user_id": "configured-user"}},
		{"Forwarding to proxy", map[string]string{"target": f.upstream.URL}},
		{"Proxy responded", map[string]string{"status": "200"}},
	} {
		recs := f.tel.logs.ByBody(tc.msg)
		if len(recs) != 1 {
			t.Errorf("%d %q records", len(recs), tc.msg)
			continue
		}
		r := recs[0]
		if r.TraceID() != traceID || r.SpanID() != server.SpanContext.SpanID() {
			t.Errorf("%q is not correlated with the server span: trace %s span %s", tc.msg, r.TraceID(), r.SpanID())
		}
		a := attrs(r)
		for k, v := range tc.attrs {
			if a[k] != v {
				t.Errorf("%q: %s = %q, want %q", tc.msg, k, a[k], v)
			}
		}
		if tc.msg == "Proxy responded" && a["duration_ms"] == "" {
			t.Errorf("outcome without duration: %v", a)
		}
	}
	assertNoSecrets(t, f.tel, "sk-in-query")
}

func TestServeDrainsThenStops(t *testing.T) {
	t.Parallel()
	inFlight := make(chan struct{})
	finish := make(chan struct{})
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inFlight)
		select {
		case <-finish:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "finished")
	})
	upstream := httptest.NewServer(up)
	defer upstream.Close()
	s := DefaultSettings()
	s.Target, s.UserID = upstream.URL, "u"
	srv, err := New(s, newTelemetry(t, ServiceName).Telemetry)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := client.Post("http://"+ln.Addr().String()+"/v1/slow", "application/json", strings.NewReader("{}"))
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{string(b), err}
	}()
	<-inFlight
	cancel()
	// Stopped accepting while the request is still in flight.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) before the in-flight request finished", err)
	default:
	}
	close(finish)
	if r := <-res; r.err != nil || r.body != "finished" {
		t.Errorf("in-flight request: %q, %v; want it drained to completion", r.body, r.err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v after a clean drain", err)
	}
}

func TestServeDrainIsBounded(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: 1\n\n")
		http.NewResponseController(w).Flush()
		close(started)
		<-r.Context().Done() // a stream that never ends by itself
	})
	upstream := httptest.NewServer(up)
	defer upstream.Close()
	s := DefaultSettings()
	s.Target, s.UserID = upstream.URL, "u"
	s.Timeouts.Shutdown = 200 * time.Millisecond
	srv, err := New(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + ln.Addr().String() + "/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	<-started
	start := time.Now()
	cancel()
	select {
	case err := <-served:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Serve = %v, want the drain deadline", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return: the drain is not bounded")
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("returned after %s, before the drain timeout", d)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Log("stream ended cleanly after the cut (acceptable: the proxy side closed first)")
	}
}

func TestNewRejectsInvalidSettings(t *testing.T) {
	t.Parallel()
	s := DefaultSettings()
	s.Target = "not a url"
	if _, err := New(s, nil); err == nil || !strings.Contains(err.Error(), "target") {
		t.Errorf("New = %v", err)
	}
}

func TestRedactQuery(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"a=1&b=2":   "a=1&b=2",
		"key=x&a=1": "key=REDACTED&a=1",
		"api_key=x": "api_key=REDACTED",
		"access_token=x&X-Goog-Signature=y&sig=z": "access_token=REDACTED&X-Goog-Signature=REDACTED&sig=REDACTED",
		"flag&Password=p":                         "flag&Password=REDACTED",
		"api%5Fkey=x":                             "api%5Fkey=REDACTED",
	}
	for in, want := range tests {
		if got := redactQuery(in); got != want {
			t.Errorf("redactQuery(%q) = %q, want %q", in, got, want)
		}
	}
}
