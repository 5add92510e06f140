package interceptor

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/otelcfg/otelcfg/internal/proxy"
	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestOneTraceAcrossInterceptorAndProxy sends a request through a real
// interceptor into a real proxy (its built-in echo upstream), both
// in-process on loopback, each with its own Telemetry: the spans of both
// services form one trace with the right parents, and both services' log
// records carry its trace_id.
func TestOneTraceAcrossInterceptorAndProxy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		stream bool
	}{
		{"json", false},
		{"sse", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ptel := newTelemetry(t, proxy.ServiceName)
			ps := proxy.DefaultSettings()
			ps.Models = []proxy.ModelSettings{{Name: "echo-model", APIBase: proxy.EchoBase}}
			psrv, err := proxy.New(ps, ptel.Telemetry)
			if err != nil {
				t.Fatalf("proxy.New: %v", err)
			}
			pfront := httptest.NewServer(psrv.Handler())
			t.Cleanup(func() {
				pfront.Close()
				psrv.Close()
			})
			ic := newFixture(t, nil, func(s *Settings) {
				s.Target = pfront.URL
				s.UserID = "alice"
			})

			body := `{"model":"echo-model","messages":[{"role":"user","content":"hello from the editor"}],"stream":` + map[bool]string{true: "true", false: "false"}[tt.stream] + `}`
			resp := ic.do(t, http.MethodPost, "/v1/chat/completions", strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
			got := string(readAll(t, resp))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, got)
			}
			if tt.stream {
				var text strings.Builder
				sc := bufio.NewScanner(strings.NewReader(got))
				for sc.Scan() {
					var chunk struct {
						Choices []struct {
							Delta struct {
								Content string `json:"content"`
							} `json:"delta"`
						} `json:"choices"`
					}
					if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok && data != "[DONE]" && json.Unmarshal([]byte(data), &chunk) == nil {
						for _, c := range chunk.Choices {
							text.WriteString(c.Delta.Content)
						}
					}
				}
				if !strings.Contains(got, "data: [DONE]") || strings.Join(strings.Fields(text.String()), " ") != "hello from the editor" {
					t.Errorf("stream did not come through whole: %q", got)
				}
			} else if !strings.Contains(got, "hello from the editor") {
				t.Errorf("echo reply: %s", got)
			}

			icServer, icClient := serverSpan(t, ic.tel.spans), clientSpan(t, ic.tel.spans)
			pServer, pUpstream := serverSpan(t, ptel.spans), clientSpan(t, ptel.spans)
			traceID := icServer.SpanContext.TraceID()
			for name, s := range map[string]tracetest.SpanStub{
				"interceptor server": icServer, "interceptor client": icClient,
				"proxy server": pServer, "proxy upstream": pUpstream,
			} {
				if s.SpanContext.TraceID() != traceID {
					t.Errorf("%s span %q is in trace %s, want %s", name, s.Name, s.SpanContext.TraceID(), traceID)
				}
			}
			links := []struct {
				child, parent tracetest.SpanStub
				what          string
				remote        bool
			}{
				{icClient, icServer, "interceptor client → interceptor server", false},
				{pServer, icClient, "proxy server → interceptor client (across the wire)", true},
				{pUpstream, pServer, "proxy upstream → proxy server", false},
			}
			for _, l := range links {
				if l.child.Parent.SpanID() != l.parent.SpanContext.SpanID() {
					t.Errorf("%s: parent is %s, want %s", l.what, l.child.Parent.SpanID(), l.parent.SpanContext.SpanID())
				}
				if l.child.Parent.IsRemote() != l.remote {
					t.Errorf("%s: parent remote = %v, want %v", l.what, l.child.Parent.IsRemote(), l.remote)
				}
			}
			if icServer.Parent.IsValid() {
				t.Errorf("the interceptor server span should be the root, has parent %s", icServer.Parent.SpanID())
			}
			if !strings.HasPrefix(pUpstream.Name, "chat ") {
				t.Errorf("proxy upstream span %q", pUpstream.Name)
			}
			for _, c := range []struct {
				spans tracetest.SpanStub
				want  string
			}{{icServer, ServiceName}, {icClient, ServiceName}, {pServer, proxy.ServiceName}, {pUpstream, proxy.ServiceName}} {
				if got := serviceName(c.spans.Resource); got != c.want {
					t.Errorf("span %q has service.name %q, want %q", c.spans.Name, got, c.want)
				}
			}

			// Logs: each service's request records carry the trace id.
			waitFor(t, "the interceptor's outcome log", func() bool { return len(ic.tel.logs.ByBody("Proxy responded")) > 0 })
			for _, msg := range []string{"Received request", "Forwarding to proxy", "Proxy responded"} {
				recs := ic.tel.logs.ByBody(msg)
				if len(recs) != 1 || recs[0].TraceID() != traceID {
					t.Errorf("interceptor %q records %v: want one in trace %s", msg, traceIDs(recs), traceID)
				}
			}
			waitFor(t, "proxy log records", func() bool { return len(inTrace(ptel.logs.All(), traceID)) >= 2 })
			for _, r := range ptel.logs.All() {
				if r.TraceID().IsValid() && r.TraceID() != traceID {
					t.Errorf("proxy record %q is in trace %s, want %s", r.Body().Emit(), r.TraceID(), traceID)
				}
			}
			for _, r := range inTrace(ptel.logs.All(), traceID) {
				if r.SpanID() != pServer.SpanContext.SpanID() && r.SpanID() != pUpstream.SpanContext.SpanID() {
					t.Errorf("proxy record %q names span %s, not one of the proxy's spans", r.Body().Emit(), r.SpanID())
				}
			}
		})
	}
}

func serviceName(r *resource.Resource) string {
	v, _ := r.Set().Value(attribute.Key("service.name"))
	return v.AsString()
}

func inTrace(recs []sdklog.Record, id trace.TraceID) []sdklog.Record {
	var out []sdklog.Record
	for _, r := range recs {
		if r.TraceID() == id {
			out = append(out, r)
		}
	}
	return out
}

func traceIDs(recs []sdklog.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.TraceID().String())
	}
	return out
}
