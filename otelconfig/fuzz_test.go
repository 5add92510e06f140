package otelconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad drives parse, substitute, overlay and decode with arbitrary
// files and one arbitrary environment value per overlay family. Nothing
// may panic, and every diagnostic must point inside the file.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "http://localhost:4317", "0.5")
	}
	f.Add([]byte("file_format: \"1.0\"\nx: ${A:-b}\n"), "soon", "NaN")
	f.Add([]byte("a: &a [*a]\n"), "", "")
	f.Add([]byte("file_format: \"1.0\"\n---\n"), "a=b,c", "-1")
	f.Fuzz(func(t *testing.T, src []byte, v1, v2 string) {
		env := map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": v1,
			"OTEL_EXPORTER_OTLP_HEADERS":  v1,
			"OTEL_RESOURCE_ATTRIBUTES":    v1,
			"OTEL_TRACES_SAMPLER":         "traceidratio",
			"OTEL_TRACES_SAMPLER_ARG":     v2,
			"OTEL_BSP_SCHEDULE_DELAY":     v2,
			"OTEL_PROPAGATORS":            v1,
			"OTEL_LOGS_EXPORTER":          v1,
			"A":                           v1,
		}
		cfg, _ := Load(WithBytes("fuzz.yaml", src), WithEnv(mapLookup(env)), WithServiceName("svc"))
		lines := countLines(src)
		for _, d := range cfg.Diagnostics {
			if d.Line < 0 || d.Line > lines || d.Column < 0 {
				t.Fatalf("diagnostic outside the file (%d lines): %v", lines, d)
			}
			if d.Severity != SeverityError && d.Severity != SeverityWarning {
				t.Fatalf("bad severity: %v", d)
			}
		}
		if cfg.Diagnostics.HasErrors() && cfg.Model != nil {
			t.Fatal("model despite errors")
		}
	})
}

// FuzzSubstitute: substitution never panics, and text without a $ is
// returned unchanged.
func FuzzSubstitute(f *testing.F) {
	for _, s := range []string{"${A}", "$${A}", "${A:-b}", "${env:A}", "x$", "${", "${A:-}", "$$$"} {
		f.Add(s, "val")
	}
	f.Fuzz(func(t *testing.T, s, v string) {
		out, _, err := Substitute(s, func(string) (string, bool) { return v, true })
		if !strings.Contains(s, "$") && (out != s || err != nil) {
			t.Fatalf("Substitute(%q) = %q, %v", s, out, err)
		}
	})
}
