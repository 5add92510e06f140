package proxy_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/otelcfg/otelcfg/internal/proxy"
)

// A proxy with one offline model, answering a chat completion. A service
// passes the *otelconfig.Telemetry from otelconfig.Start instead of nil,
// and serves Handler() (or calls Serve).
func ExampleNew() {
	s := proxy.DefaultSettings()
	s.Models = []proxy.ModelSettings{{Name: "gpt-4o-mini", APIBase: proxy.EchoBase}}
	srv, err := proxy.New(s, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello, proxy"}]}`))
	req.Header.Set("User-Agent", "Claude Code/1.0")
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)

	var resp struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
		Usage struct {
			TotalTokens int `json:"total_tokens"`
		} `json:"usage"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &resp)
	fmt.Println(rec.Code, resp.Choices[0].Message.Content, resp.Usage.TotalTokens)
	// Output: 200 Hello, proxy 4
}
