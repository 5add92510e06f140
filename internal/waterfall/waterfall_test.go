package waterfall

import (
	"bytes"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/otelcfg/otelcfg/internal/otlptest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestRender(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ic := map[string]string{"service.name": "litellm-interceptor"}
	px := map[string]string{"service.name": "litellm-proxy"}
	spans := []otlptest.Span{
		{Resource: px, TraceID: "t1", SpanID: "c", ParentSpanID: "b", Name: "POST /v1/chat/completions", StartTime: at(4), EndTime: at(36)},
		{Resource: ic, TraceID: "t1", SpanID: "a", Name: "POST /v1/chat/completions", StartTime: at(0), EndTime: at(40)},
		{Resource: ic, TraceID: "t1", SpanID: "b", ParentSpanID: "a", Name: "HTTP POST", StartTime: at(2), EndTime: at(38)},
		{Resource: px, TraceID: "t1", SpanID: "d", ParentSpanID: "c", Name: "chat echo-1", StartTime: at(10), EndTime: at(30)},
		{Resource: px, TraceID: "t2", SpanID: "x", Name: "other trace", StartTime: at(50), EndTime: at(51)},
	}
	logs := []otlptest.LogRecord{
		{TraceID: "t1", SpanID: "a", SeverityText: "INFO", Body: "Received request", Attributes: map[string]string{"method": "POST", "user_id": "u"}, Time: at(1)},
		{TraceID: "t1", SpanID: "d", SeverityText: "INFO", Body: "Upstream responded", Attributes: map[string]string{"status": "200"}, Time: at(30)},
		{TraceID: "t1", SpanID: "c", SeverityText: "INFO", Body: "Forwarding to upstream", Time: at(9)},
		{TraceID: "t2", SpanID: "x", Body: "not this trace"},
	}
	if ids := TraceIDs(spans); len(ids) != 2 || ids[0] != "t1" {
		t.Fatalf("TraceIDs = %v", ids)
	}
	var b bytes.Buffer
	if err := Render(&b, "t1", spans, logs, Options{Width: 20}); err != nil {
		t.Fatal(err)
	}
	golden := "testdata/render.golden"
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}
