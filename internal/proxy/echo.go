package proxy

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"strings"
	"time"
)

// EchoHandler returns the built-in offline upstream (api_base:
// builtin:echo): an OpenAI-compatible /chat/completions whose answer is
// the text of the last user message, with usage counted in words. With
// "stream": true it sends one chunk per word, a finish chunk, a usage
// chunk (choices empty, as OpenAI sends with include_usage) and [DONE].
// It needs no network and no key: demos and tests run offline.
func EchoHandler() http.Handler { return http.HandlerFunc(serveEcho) }

type echoMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type echoUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func serveEcho(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/chat/completions") {
		writeError(w, http.StatusNotFound, "invalid_request_error", "not_found", "", "the echo upstream only serves POST /chat/completions")
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the proxy went away
	}
	var req struct {
		Model    string        `json:"model"`
		Messages []echoMessage `json:"messages"`
		Stream   bool          `json:"stream"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_json", "", "the echo upstream could not parse the request: "+err.Error())
		return
	}
	reply := ""
	prompt := 0
	for _, m := range req.Messages {
		text := contentText(m.Content)
		prompt += len(strings.Fields(text))
		if m.Role == "user" {
			reply = text
		}
	}
	usage := echoUsage{PromptTokens: prompt, CompletionTokens: len(strings.Fields(reply))}
	usage.TotalTokens = usage.PromptTokens + usage.CompletionTokens
	h := fnv.New64a()
	h.Write(body)
	id := fmt.Sprintf("chatcmpl-echo-%016x", h.Sum64())
	created := time.Now().Unix()

	if !req.Stream {
		writeJSON(w, http.StatusOK, map[string]any{
			"id": id, "object": "chat.completion", "created": created, "model": req.Model,
			"choices": []any{map[string]any{
				"index":         0,
				"message":       map[string]any{"role": "assistant", "content": reply},
				"finish_reason": "stop",
			}},
			"usage": usage,
		})
		return
	}

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(v any) bool {
		if r.Context().Err() != nil {
			return false
		}
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		_ = rc.Flush()
		return true
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}},
		}
	}
	if !send(chunk(map[string]any{"role": "assistant", "content": ""}, nil)) {
		return
	}
	for _, piece := range words(reply) {
		if !send(chunk(map[string]any{"content": piece}, nil)) {
			return
		}
	}
	if !send(chunk(map[string]any{}, "stop")) {
		return
	}
	if !send(map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": req.Model, "choices": []any{}, "usage": usage}) {
		return
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
	_ = rc.Flush()
}

// contentText is the text of a message's content: a string, or the text
// parts of a list of parts.
func contentText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return ""
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// words splits s into pieces that each end with the whitespace after a
// word, so that the pieces concatenate back to s.
func words(s string) []string {
	var out []string
	start := 0
	inSpace := false
	for i, r := range s {
		space := r == ' ' || r == '\n' || r == '\t' || r == '\r'
		if !space && inSpace && i > start {
			out = append(out, s[start:i])
			start = i
		}
		inSpace = space
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}
