package otlptest

import "testing"

func TestFromJSONLines(t *testing.T) {
	traces := []byte(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},"scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"a","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2","status":{}}]}]}]}
{"resourceSpans":[{"resource":{},"scopeSpans":[{"scope":{},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175","parentSpanId":"eee19b7ec3c1b174","name":"b","kind":3,"startTimeUnixNano":"1","endTimeUnixNano":"2","status":{}}]}]}]}
`)
	logs := []byte(`{"resourceLogs":[{"resource":{},"scopeLogs":[{"scope":{},"logRecords":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","severityText":"INFO","body":{"stringValue":"hello"}}]}]}]}` + "\n")
	r, err := FromJSONLines(traces, nil, logs)
	if err != nil {
		t.Fatal(err)
	}
	spans := r.Spans()
	if len(spans) != 2 || spans[0].Resource["service.name"] != "svc" || spans[1].ParentSpanID != "eee19b7ec3c1b174" || spans[0].TraceID != "5b8efff798038103d269b633813fc60c" {
		t.Fatalf("spans = %+v", spans)
	}
	if l := r.Logs(); len(l) != 1 || l[0].Body != "hello" || l[0].SpanID != "eee19b7ec3c1b174" {
		t.Fatalf("logs = %+v", l)
	}
	if _, err := FromJSONLines([]byte("{not json\n"), nil, nil); err == nil {
		t.Fatal("want an error for a broken line")
	}
}
