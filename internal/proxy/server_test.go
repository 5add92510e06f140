package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace"
)

func TestChatJSON(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		model, wantContent, wantRespModel string
		wantIn, wantOut                   int64
	}{
		{"gpt-test", upstreamContent, upstreamModelID, upstreamInTokens, upstreamOutToken},
		{"echo", "say it back", "echo-1", 5, 3}, // "be brief" + "say it back"
	} {
		t.Run(tt.model, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil, nil)
			status, hdr, body := f.chat(t, chatBody(tt.model, false, "say it back"), nil)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			var resp struct {
				Model   string `json:"model"`
				Choices []struct {
					Message struct{ Content string } `json:"message"`
				} `json:"choices"`
				Usage struct {
					PromptTokens     int64 `json:"prompt_tokens"`
					CompletionTokens int64 `json:"completion_tokens"`
				} `json:"usage"`
			}
			if err := json.Unmarshal(body, &resp); err != nil || len(resp.Choices) != 1 {
				t.Fatalf("bad completion %s: %v", body, err)
			}
			if resp.Choices[0].Message.Content != tt.wantContent || resp.Model != tt.wantRespModel {
				t.Errorf("content %q model %q, want %q %q", resp.Choices[0].Message.Content, resp.Model, tt.wantContent, tt.wantRespModel)
			}
			if resp.Usage.PromptTokens != tt.wantIn || resp.Usage.CompletionTokens != tt.wantOut {
				t.Errorf("usage %+v", resp.Usage)
			}
			// The upstream span: GenAI conventions, usage included.
			spans := f.tel.spansNamed("chat " + tt.model)
			if len(spans) != 1 {
				t.Fatalf("want one upstream span \"chat %s\", got %v", tt.model, spanNames(f))
			}
			s := spans[0]
			if s.SpanKind != trace.SpanKindClient {
				t.Errorf("upstream span kind %v", s.SpanKind)
			}
			a := spanAttrs(s)
			want := map[string]string{
				"gen_ai.operation.name": "chat", "gen_ai.request.model": tt.model, "gen_ai.response.model": tt.wantRespModel,
				"gen_ai.usage.input_tokens": strconv.FormatInt(tt.wantIn, 10), "gen_ai.usage.output_tokens": strconv.FormatInt(tt.wantOut, 10),
				"user.id": DefaultUserID, "proxy.user_id.source": SourceDefault, "http.response.status_code": "200",
			}
			for k, v := range want {
				if a[k] != v {
					t.Errorf("upstream span %s = %q, want %q", k, a[k], v)
				}
			}
			if a["gen_ai.provider.name"] == "" || a["gen_ai.response.finish_reasons"] != `["stop"]` {
				t.Errorf("upstream span attributes %v", a)
			}
		})
	}
}

func spanNames(f *fixture) []string {
	var out []string
	for _, s := range f.tel.spans.GetSpans() {
		out = append(out, s.Name)
	}
	return out
}

// TestChatStreaming: the client gets the first chunk while the upstream is
// still holding back the rest; the stream ends with [DONE]; usage from the
// last chunk reaches the span.
func TestChatStreaming(t *testing.T) {
	t.Parallel()
	clientSawFirst := make(chan struct{})
	heldBack := make(chan bool, 1)
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request, req seen) {
		writeUpstreamStream(w, strings.Fields(upstreamContent), func() {
			select {
			case <-clientSawFirst:
				heldBack <- true
			case <-time.After(5 * time.Second):
				heldBack <- false // the proxy buffered: the client saw nothing yet
			}
		})
	}, nil)

	resp := f.do(t, http.MethodPost, "/v1/chat/completions", chatBody("gpt-test", true, "stream please"), nil)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	var first strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the first event: %v", err)
		}
		first.WriteString(line)
		if line == "\n" {
			break
		}
	}
	close(clientSawFirst)
	if !<-heldBack {
		t.Fatal("the first chunk did not reach the client before the upstream sent its last")
	}
	if got := streamedContent(t, sseEvents([]byte(first.String()))); got != "hello" {
		t.Errorf("first event content %q", got)
	}
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	events := sseEvents([]byte(first.String() + string(rest)))
	if events[len(events)-1] != "[DONE]" {
		t.Errorf("stream does not end with [DONE]: %q", events)
	}
	if got := streamedContent(t, events); got != upstreamContent {
		t.Errorf("streamed %q, want %q", got, upstreamContent)
	}
	if f.up.last(t).Header.Get("Accept") != "text/event-stream" {
		t.Errorf("upstream Accept %q", f.up.last(t).Header.Get("Accept"))
	}
	spans := f.tel.spansNamed("chat gpt-test")
	if len(spans) != 1 {
		t.Fatalf("upstream spans: %v", spanNames(f))
	}
	a := spanAttrs(spans[0])
	if a["gen_ai.usage.input_tokens"] != strconv.Itoa(upstreamInTokens) || a["gen_ai.usage.output_tokens"] != strconv.Itoa(upstreamOutToken) || a["gen_ai.response.model"] != upstreamModelID {
		t.Errorf("stream usage missing from the upstream span: %v", a)
	}
}

func TestEchoStreaming(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, nil)
	status, _, body := f.chat(t, chatBody("echo", true, "one two three"), nil)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	events := sseEvents(body)
	if got := streamedContent(t, events); got != "one two three" {
		t.Errorf("echo streamed %q", got)
	}
	if len(events) < 6 || events[len(events)-1] != "[DONE]" || !strings.Contains(events[len(events)-2], `"usage"`) {
		t.Errorf("want chunks, a usage chunk and [DONE]; got %q", events)
	}
	a := spanAttrs(f.tel.spansNamed("chat echo")[0])
	if a["gen_ai.usage.input_tokens"] != "5" || a["gen_ai.usage.output_tokens"] != "3" || a["gen_ai.provider.name"] != providerEcho {
		t.Errorf("echo stream span %v", a)
	}
}

// TestStreamNotCutByTimeout: the upstream timeout bounds the start of a
// stream, not a stream that has started.
func TestStreamNotCutByTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request, req seen) {
		writeUpstreamStream(w, []string{"slow", "but", "sure"}, func() { time.Sleep(150 * time.Millisecond) })
	}, func(s *Settings) { s.Models[0].Timeout = 50 * time.Millisecond })
	status, _, body := f.chat(t, chatBody("gpt-test", true, "x"), nil)
	if got := streamedContent(t, sseEvents(body)); status != http.StatusOK || got != "slow but sure" {
		t.Errorf("status %d, streamed %q", status, got)
	}
}

// TestClientDisconnectCancelsUpstream: a client that goes away mid-stream
// cancels the upstream request.
func TestClientDisconnectCancelsUpstream(t *testing.T) {
	t.Parallel()
	cancelled := make(chan bool, 1)
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request, req seen) {
		writeUpstreamStream(w, []string{"first", "never"}, func() {
			select {
			case <-r.Context().Done():
				cancelled <- true
			case <-time.After(5 * time.Second):
				cancelled <- false
			}
		})
	}, nil)
	resp := f.do(t, http.MethodPost, "/v1/chat/completions", chatBody("gpt-test", true, "x"), nil)
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // before the end: the connection goes
	if !<-cancelled {
		t.Fatal("the upstream request was not cancelled after the client left")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(f.tel.spansNamed("chat gpt-test")) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s := f.tel.spansNamed("chat gpt-test"); len(s) != 1 || spanAttrs(s[0])["error.type"] != errTypeCanceled {
		t.Errorf("upstream span of a cancelled stream: %v", s)
	}
}

func TestUserIDSelection(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, nil)
	tests := []struct {
		name    string
		hdr     map[string]string
		want    string
		source  string
		pattern string
	}{
		{"custom header", map[string]string{"X-Memory-User-Id": "alice", "User-Agent": "Claude Code/1.0"}, "alice", SourceCustomHeader, ""},
		{"blank custom header falls through", map[string]string{"X-Memory-User-Id": "  ", "User-Agent": "Claude Code/1.0"}, "claude-code-cli", SourceHeaderPattern, "^Claude Code"},
		{"claude code", map[string]string{"User-Agent": "Claude Code/1.0.51 (external, cli)"}, "claude-code-cli", SourceHeaderPattern, "^Claude Code"},
		{"case-insensitive", map[string]string{"User-Agent": "claude code/2"}, "claude-code-cli", SourceHeaderPattern, "^Claude Code"},
		{"pycharm", map[string]string{"User-Agent": "OpenAIClientImpl/Java unknown"}, "pycharm-ai", SourceHeaderPattern, "^OpenAIClientImpl/Java"},
		{"anthropic sdk", map[string]string{"User-Agent": "anthropic-sdk-python/0.40.0"}, "anthropic-python", SourceHeaderPattern, "^anthropic-sdk-python"},
		{"anchored", map[string]string{"User-Agent": "my Claude Code wrapper"}, DefaultUserID, SourceDefault, ""},
		{"default", map[string]string{"User-Agent": "curl/8"}, DefaultUserID, SourceDefault, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := f.chat(t, chatBody("gpt-test", false, "hi"), tt.hdr)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			if got := f.up.last(t).Header.Get("X-Sm-User-Id"); got != tt.want {
				t.Errorf("x-sm-user-id %q, want %q", got, tt.want)
			}
			// /memory-routing/info explains the same choice.
			resp := f.do(t, http.MethodGet, "/memory-routing/info", "", tt.hdr)
			defer resp.Body.Close()
			var info struct {
				UserID  string `json:"user_id"`
				Source  string `json:"source"`
				Matched Route  `json:"matched"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
				t.Fatal(err)
			}
			if info.UserID != tt.want || info.Source != tt.source || info.Matched.Pattern != tt.pattern {
				t.Errorf("routing info %+v, want %s via %s %q", info, tt.want, tt.source, tt.pattern)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, func(s *Settings) { s.MasterKey = plantedMasterKey })
	tests := []struct {
		name   string
		method string
		path   string
		auth   string
		want   int
	}{
		{"missing", http.MethodPost, "/v1/chat/completions", "", http.StatusUnauthorized},
		{"wrong", http.MethodPost, "/v1/chat/completions", "Bearer wk-not-the-key", http.StatusUnauthorized},
		{"prefix of the key", http.MethodPost, "/v1/chat/completions", "Bearer " + plantedMasterKey[:5], http.StatusUnauthorized},
		{"not bearer", http.MethodPost, "/v1/chat/completions", "Basic " + plantedMasterKey, http.StatusUnauthorized},
		{"right", http.MethodPost, "/v1/chat/completions", "Bearer " + plantedMasterKey, http.StatusOK},
		{"scheme case-insensitive", http.MethodPost, "/v1/chat/completions", "bearer " + plantedMasterKey, http.StatusOK},
		{"models without key", http.MethodGet, "/v1/models", "", http.StatusUnauthorized},
		{"unversioned alias without key", http.MethodPost, "/chat/completions", "", http.StatusUnauthorized},
		{"models with key", http.MethodGet, "/v1/models", "Bearer " + plantedMasterKey, http.StatusOK},
		{"health is open", http.MethodGet, "/health", "", http.StatusOK},
		{"routing info is open", http.MethodGet, "/memory-routing/info", "", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.up.count()
			body := ""
			if tt.method == http.MethodPost {
				body = chatBody("gpt-test", false, "hi")
			}
			resp := f.do(t, tt.method, tt.path, body, map[string]string{"Authorization": tt.auth})
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, b)
			}
			if tt.want == http.StatusUnauthorized {
				if e := apiErr(t, b); e.Code != "invalid_api_key" {
					t.Errorf("code %q", e.Code)
				}
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				if f.up.count() != before {
					t.Error("an unauthorized request reached the upstream")
				}
			}
			if tt.want == http.StatusOK && tt.method == http.MethodPost {
				if got := f.up.last(t).Header.Get("Authorization"); got != "Bearer "+plantedUpstreamKey {
					t.Errorf("upstream Authorization %q: the client's master key must not be forwarded", got)
				}
			}
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := closed.Addr().String()
	closed.Close()

	upstreamError := func(status int, retryAfter string) func(http.ResponseWriter, *http.Request, seen) {
		return func(w http.ResponseWriter, r *http.Request, _ seen) {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
				w.Header().Set("X-Ratelimit-Remaining-Requests", "0")
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"message":"upstream says %d","type":"upstream_error","code":"e%d"}}`, status, status)
		}
	}
	hang := func(w http.ResponseWriter, r *http.Request, _ seen) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	tests := []struct {
		name       string
		handle     func(http.ResponseWriter, *http.Request, seen)
		mod        func(*Settings)
		body       string
		want       int
		wantCode   string
		wantRelay  bool // the upstream's own body is relayed
		retryAfter string
		contains   string
	}{
		{name: "unreachable", mod: func(s *Settings) { s.Models[0].APIBase = "http://" + deadAddr + "/v1" },
			body: chatBody("gpt-test", false, "x"), want: http.StatusBadGateway, wantCode: "upstream_unreachable", contains: deadAddr},
		{name: "timeout", handle: hang, mod: func(s *Settings) { s.Models[0].Timeout = 50 * time.Millisecond },
			body: chatBody("gpt-test", false, "x"), want: http.StatusGatewayTimeout, wantCode: "upstream_timeout"},
		{name: "timeout before a stream starts", handle: hang, mod: func(s *Settings) { s.Upstream.Timeout = 50 * time.Millisecond },
			body: chatBody("gpt-test", true, "x"), want: http.StatusGatewayTimeout, wantCode: "upstream_timeout"},
		{name: "429 keeps Retry-After", handle: upstreamError(429, "7"), body: chatBody("gpt-test", false, "x"),
			want: 429, wantRelay: true, retryAfter: "7"},
		{name: "503 keeps Retry-After", handle: upstreamError(503, "30"), body: chatBody("gpt-test", true, "x"),
			want: 503, wantRelay: true, retryAfter: "30"},
		{name: "400 relayed", handle: upstreamError(400, ""), body: chatBody("gpt-test", false, "x"), want: 400, wantRelay: true},
		{name: "401 relayed", handle: upstreamError(401, ""), body: chatBody("gpt-test", false, "x"), want: 401, wantRelay: true},
		{name: "500 relayed", handle: upstreamError(500, ""), body: chatBody("gpt-test", false, "x"), want: 500, wantRelay: true},
		{name: "malformed JSON", body: `{"model":"gpt-test",`, want: 400, wantCode: "invalid_json"},
		{name: "not an object", body: `["gpt-test"]`, want: 400, wantCode: "invalid_json"},
		{name: "missing model", body: `{"messages":[{"role":"user","content":"x"}]}`, want: 400, wantCode: "missing_model"},
		{name: "model not a string", body: `{"model":5,"messages":[{"role":"user","content":"x"}]}`, want: 400, wantCode: "missing_model"},
		{name: "missing messages", body: `{"model":"gpt-test"}`, want: 400, wantCode: "missing_messages"},
		{name: "empty messages", body: `{"model":"gpt-test","messages":[]}`, want: 400, wantCode: "missing_messages"},
		{name: "stream not a boolean", body: `{"model":"gpt-test","messages":[{"role":"user","content":"x"}],"stream":"yes"}`, want: 400, wantCode: "invalid_stream"},
		{name: "unknown model lists names", body: chatBody("gpt-5-ultra", false, "x"), want: 404, wantCode: "model_not_found", contains: "gpt-test, echo"},
		{name: "body over the limit", mod: func(s *Settings) { s.MaxBodyBytes = 64 }, body: chatBody("gpt-test", false, strings.Repeat("x", 100)),
			want: http.StatusRequestEntityTooLarge, wantCode: "request_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tt.handle, tt.mod)
			start := time.Now()
			status, hdr, body := f.chat(t, tt.body, nil)
			if status != tt.want {
				t.Fatalf("status %d, want %d: %s", status, tt.want, body)
			}
			if time.Since(start) > 3*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
			if tt.wantRelay {
				want := fmt.Sprintf(`{"error":{"message":"upstream says %d","type":"upstream_error","code":"e%d"}}`, tt.want, tt.want)
				if string(body) != want {
					t.Errorf("body %s, want the upstream's %s", body, want)
				}
			} else {
				e := apiErr(t, body)
				if e.Code != tt.wantCode {
					t.Errorf("code %q, want %q (%s)", e.Code, tt.wantCode, body)
				}
				if !strings.Contains(e.Message, tt.contains) {
					t.Errorf("message %q lacks %q", e.Message, tt.contains)
				}
			}
			if got := hdr.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if tt.retryAfter != "" && hdr.Get("X-Ratelimit-Remaining-Requests") != "0" {
				t.Error("rate-limit headers not relayed")
			}
			if tt.want >= 500 || tt.wantRelay {
				// The call failed: the upstream span says how.
				s := f.tel.spansNamed("chat gpt-test")
				if len(s) != 1 || s[0].Status.Code != codes.Error || spanAttrs(s[0])["error.type"] == "" {
					t.Errorf("upstream span of a failed call: %+v", s)
				}
			}
		})
	}
}

// TestContentLengthMismatch: a body that disagrees with its Content-Length
// is refused, shorter or longer, through a real connection and in-process.
func TestContentLengthMismatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, nil)
	body := chatBody("gpt-test", false, "hi")
	for _, tt := range []struct {
		name string
		cl   int64
	}{{"shorter than declared", int64(len(body) + 10)}, {"longer than declared", int64(len(body) - 10)}} {
		t.Run("handler/"+tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
			req.ContentLength = tt.cl
			rec := httptest.NewRecorder()
			f.srv.Handler().ServeHTTP(rec, req)
			if rec.Code != http.StatusBadRequest || !strings.Contains(apiErr(t, rec.Body.Bytes()).Message, "Content-Length") {
				t.Errorf("status %d: %s", rec.Code, rec.Body)
			}
		})
	}
	t.Run("network/body ends early", func(t *testing.T) {
		conn, err := net.Dial("tcp", f.front.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body)+50, body)
		_ = conn.(*net.TCPConn).CloseWrite()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "Content-Length") {
			t.Errorf("status %d: %s", resp.StatusCode, b)
		}
	})
	if f.up.count() != 0 {
		t.Error("a request with a bad Content-Length reached the upstream")
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, func(s *Settings) { s.MaxBodyBytes = 256 })
	small := chatBody("gpt-test", false, "fits")
	big := chatBody("gpt-test", false, strings.Repeat("a", 300))
	for _, tt := range []struct {
		name    string
		body    string
		chunked bool
		want    int
	}{
		{"under the limit", small, false, http.StatusOK},
		{"declared over the limit", big, false, http.StatusRequestEntityTooLarge},
		{"chunked over the limit", big, true, http.StatusRequestEntityTooLarge},
		{"chunked under the limit", small, true, http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var rd io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				rd = io.MultiReader(rd) // unknown length: sent chunked
			}
			req, _ := http.NewRequest(http.MethodPost, f.front.URL+"/v1/chat/completions", rd)
			resp, err := f.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, b)
			}
			if tt.want == http.StatusRequestEntityTooLarge && apiErr(t, b).Code != "request_too_large" {
				t.Errorf("body %s", b)
			}
		})
	}
}

// TestUpstreamRequest: what the upstream sees — the model rewritten, every
// other field as sent, the key, the extra headers, the user id and the
// trace context; nothing of the client's own credentials.
func TestUpstreamRequest(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, func(s *Settings) { s.MasterKey = plantedMasterKey })
	body := `{"model":"gpt-test","messages":[{"role":"user","content":"hi"}],"temperature":0.25,"max_tokens":42,` +
		`"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"x_custom":{"nested":[1,2.5,"three"]},"user":"u-1"}`
	status, _, resp := f.chat(t, body, map[string]string{
		"Authorization":    "Bearer " + plantedMasterKey,
		"X-Memory-User-Id": "bob",
		"Cookie":           "session=secret",
	})
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, resp)
	}
	got := f.up.last(t)
	if got.Path != "/v1/chat/completions" {
		t.Errorf("upstream path %q", got.Path)
	}
	var sent, recv map[string]any
	_ = json.Unmarshal([]byte(body), &sent)
	recv = got.Body
	if recv["model"] != "upstream-gpt" {
		t.Errorf("upstream model %v, want the rewritten upstream-gpt", recv["model"])
	}
	delete(sent, "model")
	delete(recv, "model")
	sb, _ := json.Marshal(sent)
	rb, _ := json.Marshal(recv)
	if string(sb) != string(rb) {
		t.Errorf("fields not passed through:\nsent %s\ngot  %s", sb, rb)
	}
	h := got.Header
	for k, want := range map[string]string{
		"Authorization": "Bearer " + plantedUpstreamKey, "X-Title": "otelcfg-test", "Openai-Organization": "org-test",
		"X-Sm-User-Id": "bob", "Content-Type": "application/json",
	} {
		if h.Get(k) != want {
			t.Errorf("upstream header %s = %q, want %q", k, h.Get(k), want)
		}
	}
	for _, k := range []string{"Cookie", "X-Memory-User-Id"} {
		if h.Get(k) != "" {
			t.Errorf("client header %s reached the upstream", k)
		}
	}
	server := f.tel.spansNamed("POST /v1/chat/completions")
	client := f.tel.spansNamed("chat gpt-test")
	if len(server) != 1 || len(client) != 1 {
		t.Fatalf("spans %v", spanNames(f))
	}
	tp := h.Get("Traceparent")
	want := fmt.Sprintf("00-%s-%s-01", client[0].SpanContext.TraceID(), client[0].SpanContext.SpanID())
	if tp != want {
		t.Errorf("upstream traceparent %q, want the client span's %q", tp, want)
	}
	if client[0].Parent.SpanID() != server[0].SpanContext.SpanID() {
		t.Error("the upstream span is not a child of the server span")
	}
	a := spanAttrs(client[0])
	if a["gen_ai.request.max_tokens"] != "42" || a["gen_ai.request.temperature"] != "0.25" || a["proxy.upstream.model"] != "upstream-gpt" || a["user.id"] != "bob" {
		t.Errorf("upstream span request attributes %v", a)
	}
}

// TestIncomingTraceContinues: a traceparent from the interceptor makes the
// proxy's spans part of the caller's trace.
func TestIncomingTraceContinues(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, nil)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	status, _, body := f.chat(t, chatBody("echo", false, "x"), map[string]string{"Traceparent": "00-" + traceID + "-00f067aa0ba902b7-01"})
	if status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	for _, s := range f.tel.spans.GetSpans() {
		if s.SpanContext.TraceID().String() != traceID {
			t.Errorf("span %q in trace %s, want %s", s.Name, s.SpanContext.TraceID(), traceID)
		}
	}
}

// TestSecretsNeverExported plants distinctive keys, prompt and completion
// text, and scans every exported span, log record, metric attribute and
// console line for them.
func TestSecretsNeverExported(t *testing.T) {
	t.Parallel()
	const (
		queryKey   = "qk-PLANTED-query-55e1"
		headerKey  = "hk-PLANTED-header-2b7d"
		wrongKey   = "wk-PLANTED-wrong-3c3c"
		prompt     = "PROMPT-PLANTED-TEXT-e4"
		completion = "COMPLETION-PLANTED-TEXT-a9"
	)
	for _, logBodies := range []bool{false, true} {
		t.Run(fmt.Sprintf("log_bodies=%v", logBodies), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(w http.ResponseWriter, r *http.Request, req seen) {
				if req.Body["stream"] == true {
					writeUpstreamStream(w, []string{completion, "more"}, nil)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"id":"c","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}`, completion)
			}, func(s *Settings) {
				s.MasterKey = plantedMasterKey
				s.LogBodies = logBodies
				s.Models[0].APIBase += "?api-version=2024-10-21&api_key=" + queryKey
				s.Models[0].ExtraHeaders["Api-Key"] = headerKey
			})
			auth := map[string]string{"Authorization": "Bearer " + plantedMasterKey}
			for _, stream := range []bool{false, true} {
				if status, _, b := f.chat(t, chatBody("gpt-test", stream, prompt), auth); status != http.StatusOK {
					t.Fatalf("status %d: %s", status, b)
				}
			}
			if status, _, _ := f.chat(t, chatBody("gpt-test", false, prompt), map[string]string{"Authorization": "Bearer " + wrongKey}); status != http.StatusUnauthorized {
				t.Fatalf("wrong key: %d", status)
			}
			if q := f.up.last(t).RawQuery; !strings.Contains(q, queryKey) || f.up.last(t).Header.Get("Api-Key") != headerKey {
				t.Fatalf("the upstream did not get its credentials: %q", q)
			}

			var exported strings.Builder
			for _, s := range f.tel.spans.GetSpans() {
				fmt.Fprintf(&exported, "span %s %s\n", s.Name, s.Status.Description)
				for _, kv := range s.Attributes {
					fmt.Fprintf(&exported, "  %s=%s\n", kv.Key, kv.Value.Emit())
				}
				for _, e := range s.Events {
					fmt.Fprintf(&exported, "  event %s %v\n", e.Name, e.Attributes)
				}
			}
			for _, r := range f.tel.logs.All() {
				fmt.Fprintf(&exported, "log %s %v\n", r.Body().AsString(), logAttrs(r))
			}
			for _, m := range f.tel.collect(t) {
				fmt.Fprintf(&exported, "metric %s %+v\n", m.Name, m.Data)
			}
			exported.WriteString(f.tel.console.String())
			all := exported.String()
			for _, secret := range []string{plantedMasterKey, plantedUpstreamKey, queryKey, headerKey, wrongKey} {
				if strings.Contains(all, secret) {
					t.Errorf("secret %q found in telemetry:\n%s", secret, excerpt(all, secret))
				}
			}
			for _, text := range []string{prompt, completion} {
				if got := strings.Contains(all, text); got != logBodies {
					t.Errorf("%q in telemetry: %v, want %v (log_bodies %v)", text, got, logBodies, logBodies)
				}
			}
			if !strings.Contains(all, "api_key=REDACTED") {
				t.Error("url.full of the upstream span does not show the redacted query")
			}
		})
	}
}

func excerpt(s, sub string) string {
	i := strings.Index(s, sub)
	return s[max(0, i-200):min(len(s), i+len(sub)+100)]
}

// TestSpanLogCorrelation: every log record of a request carries that
// request's trace_id; the upstream outcome record points at the upstream
// span.
func TestSpanLogCorrelation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request, req seen) {
		if req.Body["user"] == "fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if req.Body["stream"] == true {
			writeUpstreamStream(w, []string{"a", "b"}, nil)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c","model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}`)
	}, nil)
	bodies := []string{
		chatBody("gpt-test", false, "one"),
		chatBody("gpt-test", true, "two"),
		chatBody("echo", true, "three"),
		`{"model":"gpt-test","messages":[{"role":"user","content":"x"}],"user":"fail"}`,
		chatBody("missing-model", false, "four"),
		`{"model":`,
	}
	for _, b := range bodies {
		f.chat(t, b, nil)
	}
	servers := f.tel.spansNamed("POST /v1/chat/completions")
	if len(servers) != len(bodies) {
		t.Fatalf("%d server spans, want %d", len(servers), len(bodies))
	}
	spanIDs := map[trace.SpanID]trace.TraceID{}
	for _, s := range f.tel.spans.GetSpans() {
		spanIDs[s.SpanContext.SpanID()] = s.SpanContext.TraceID()
	}
	byTrace := map[trace.TraceID][]string{}
	for _, r := range f.tel.logs.All() {
		tid, ok := spanIDs[r.SpanID()]
		if !r.TraceID().IsValid() || !ok || tid != r.TraceID() {
			t.Errorf("log record %q has trace %s span %s, not a span of a request", r.Body().AsString(), r.TraceID(), r.SpanID())
			continue
		}
		byTrace[r.TraceID()] = append(byTrace[r.TraceID()], r.Body().AsString())
	}
	for i, s := range servers {
		got := strings.Join(byTrace[s.SpanContext.TraceID()], " | ")
		want := "Received request | Forwarding to upstream | Upstream responded"
		switch i {
		case 4:
			want = "Unknown model"
		case 5:
			want = "Rejected request"
		}
		if got != want {
			t.Errorf("request %d: log records %q, want %q", i, got, want)
		}
	}
	for _, r := range f.tel.logs.ByBody("Upstream responded") {
		var upstreamSpan bool
		for _, s := range f.tel.spans.GetSpans() {
			upstreamSpan = upstreamSpan || (s.SpanContext.SpanID() == r.SpanID() && s.SpanKind == trace.SpanKindClient)
		}
		if !upstreamSpan {
			t.Errorf("\"Upstream responded\" points at span %s, not an upstream span", r.SpanID())
		}
	}
	// The console lines carry the ids too.
	if c := f.tel.console.String(); !strings.Contains(c, "trace_id="+servers[0].SpanContext.TraceID().String()) {
		t.Errorf("console lines lack trace_id:\n%s", c)
	}
}

func TestGenAIMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request, req seen) {
		if req.Body["user"] == "limited" {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		if req.Body["stream"] == true {
			writeUpstreamStream(w, []string{"x"}, nil)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c","model":%q,"choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d}}`, upstreamModelID, upstreamInTokens, upstreamOutToken)
	}, nil)
	f.chat(t, chatBody("gpt-test", false, "a"), nil)
	f.chat(t, chatBody("gpt-test", true, "b"), nil)
	f.chat(t, `{"model":"gpt-test","messages":[{"role":"user","content":"x"}],"user":"limited"}`, nil)

	ms := f.tel.collect(t)
	find := func(name string) metricdata.Metrics {
		for _, m := range ms {
			if m.Name == name {
				return m
			}
		}
		t.Fatalf("no metric %s", name)
		return metricdata.Metrics{}
	}
	dur := find("gen_ai.client.operation.duration")
	if dur.Unit != "s" {
		t.Errorf("duration unit %q", dur.Unit)
	}
	var ok, failed uint64
	for _, dp := range dur.Data.(metricdata.Histogram[float64]).DataPoints {
		a := map[string]string{}
		for _, kv := range dp.Attributes.ToSlice() {
			a[string(kv.Key)] = kv.Value.Emit()
		}
		if a["gen_ai.operation.name"] != "chat" || a["gen_ai.request.model"] != "gpt-test" || a["gen_ai.provider.name"] != providerGeneric || a["server.address"] != "127.0.0.1" {
			t.Errorf("duration point attributes %v", a)
		}
		switch a["error.type"] {
		case "":
			ok += dp.Count
			if a["gen_ai.response.model"] != upstreamModelID {
				t.Errorf("gen_ai.response.model %q", a["gen_ai.response.model"])
			}
		case "429":
			failed += dp.Count
		default:
			t.Errorf("error.type %q", a["error.type"])
		}
	}
	if ok != 2 || failed != 1 {
		t.Errorf("duration counts: %d ok, %d failed; want 2 and 1", ok, failed)
	}
	tok := find("gen_ai.client.token.usage")
	if tok.Unit != "{token}" {
		t.Errorf("token unit %q", tok.Unit)
	}
	sums := map[string]int64{}
	for _, dp := range tok.Data.(metricdata.Histogram[int64]).DataPoints {
		v, _ := dp.Attributes.Value("gen_ai.token.type")
		sums[v.AsString()] += dp.Sum
	}
	if sums["input"] != 2*upstreamInTokens || sums["output"] != 2*upstreamOutToken {
		t.Errorf("token sums %v", sums)
	}
	find("http.server.request.duration")
	find("http.client.request.duration")
}

func TestEndpoints(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, nil)
	tests := []struct {
		method, path string
		want         int
		check        func(t *testing.T, h http.Header, b []byte)
	}{
		{http.MethodGet, "/v1/models", 200, func(t *testing.T, _ http.Header, b []byte) {
			var l struct {
				Object string `json:"object"`
				Data   []struct {
					ID     string `json:"id"`
					Object string `json:"object"`
				} `json:"data"`
			}
			if err := json.Unmarshal(b, &l); err != nil || l.Object != "list" || len(l.Data) != 2 || l.Data[0].ID != "gpt-test" || l.Data[1].ID != "echo" || l.Data[0].Object != "model" {
				t.Errorf("models list %s", b)
			}
		}},
		{http.MethodGet, "/health", 200, func(t *testing.T, _ http.Header, b []byte) {
			var h struct {
				Status    string `json:"status"`
				Models    int    `json:"models_configured"`
				Telemetry bool   `json:"telemetry_enabled"`
			}
			if err := json.Unmarshal(b, &h); err != nil || h.Status != "healthy" || h.Models != 2 || !h.Telemetry {
				t.Errorf("health %s", b)
			}
		}},
		{http.MethodGet, "/v1/chat/completions", 405, func(t *testing.T, h http.Header, b []byte) {
			if h.Get("Allow") != "POST" || apiErr(t, b).Code != "method_not_allowed" {
				t.Errorf("405: %v %s", h, b)
			}
		}},
		{http.MethodGet, "/v1/embeddings", 404, func(t *testing.T, _ http.Header, b []byte) {
			if apiErr(t, b).Code != "not_found" {
				t.Errorf("404: %s", b)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp := f.do(t, tt.method, tt.path, "", nil)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			tt.check(t, resp.Header, b)
		})
	}
	if len(f.tel.spansNamed("GET /health")) != 1 || len(f.tel.spansNamed("GET")) != 1 {
		t.Errorf("span names by route: %v", spanNames(f))
	}
}

func TestNewRefusesInvalidSettings(t *testing.T) {
	t.Parallel()
	s := testSettings("http://127.0.0.1:1")
	s.UserIDMappings.HeaderPatterns = []HeaderPattern{{Header: "user-agent", Pattern: "(", UserID: "x"}}
	s.Models = append(s.Models, ModelSettings{Name: "echo", APIBase: "ftp://x"})
	_, err := New(s, nil)
	if err == nil {
		t.Fatal("New accepted invalid settings")
	}
	for _, want := range []string{"header_patterns[0].pattern", `model "echo" is defined twice`, "models[2].api_base"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestNilTelemetry(t *testing.T) {
	t.Parallel()
	srv, err := New(testSettings("http://127.0.0.1:1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(chatBody("echo", false, "quiet"))))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"content":"quiet"`) {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
}

func TestHandlerTransportCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, echoEndpoint.String(), strings.NewReader("{}"))
	if _, err := (handlerTransport{EchoHandler()}).RoundTrip(req); err == nil {
		t.Error("a cancelled request got a response")
	}
}

func TestCustomUserIDTooLong(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, nil)
	status, _, body := f.chat(t, chatBody("gpt-test", false, "x"), map[string]string{"X-Memory-User-Id": strings.Repeat("u", maxClientUserIDBytes+1)})
	if status != http.StatusBadRequest || apiErr(t, body).Code != "invalid_user_id" || f.up.count() != 0 {
		t.Errorf("status %d: %s", status, body)
	}
}
