package otelconfig

import (
	"bytes"
	"strings"
	"testing"
)

// TestFormatTextRedactsSecretLines: a diagnostic about a secret value (the
// security lint's "literal secret" warning is one) shows where the value
// is, never the value, in the source line under it.
func TestFormatTextRedactsSecretLines(t *testing.T) {
	const secret = "sk-literal-in-file-1234"
	src := []byte(`file_format: "1.0"
tracer_provider:
  processors:
    - batch:
        exporter:
          otlp_http:
            endpoint: https://collector.example.com/v1/traces
            headers:
              - name: api-key
                value: ` + secret + `
            headers_list: "authorization=` + secret + `"
`)
	cfg, _ := Load(WithBytes("otel.yaml", src), WithEnv(mapLookup(nil)))
	var out bytes.Buffer
	if err := FormatText(&out, cfg.Diagnostics, TextOptions{Sources: map[string][]byte{"otel.yaml": src}}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), secret) {
		t.Fatalf("a secret is printed:\n%s", out.String())
	}
	if n := strings.Count(out.String(), "|                 value: "+Redacted); n != 1 {
		t.Errorf("want the header value's line shown redacted once, got %d:\n%s", n, out.String())
	}
	if !strings.Contains(out.String(), "headers_list: "+Redacted) {
		t.Errorf("want the headers_list line shown redacted:\n%s", out.String())
	}
	// Other lines stay as they are.
	plain := Diagnostics{{Severity: SeverityError, Code: CodeSchema, File: "otel.yaml", Line: 7, Column: 23, Path: "/tracer_provider/processors/0/batch/exporter/otlp_http/endpoint", Message: "m"}}
	out.Reset()
	_ = FormatText(&out, plain, TextOptions{Sources: map[string][]byte{"otel.yaml": src}})
	if !strings.Contains(out.String(), "endpoint: https://collector.example.com/v1/traces") {
		t.Errorf("an ordinary line is redacted:\n%s", out.String())
	}
}
