package otelconfig

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/otelcfg/otelcfg/examples"
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

// FuzzOverlay sets up to three variables of the overlay table (chosen by
// index) to arbitrary values over the example configuration, which is
// valid on its own. Nothing may panic; every error must name the variable
// it came from; and the value of a secret row (the OTLP headers) must
// never appear in a message or hint.
func FuzzOverlay(f *testing.F) {
	rows := EnvVars()
	index := func(name string) uint8 {
		for i, r := range rows {
			if r.Name == name {
				return uint8(i)
			}
		}
		f.Fatalf("no overlay row %s", name)
		return 0
	}
	f.Add(index("OTEL_EXPORTER_OTLP_HEADERS"), "authorization=Bearer%20sk-fuzz-secret", index("OTEL_EXPORTER_OTLP_ENDPOINT"), "http://localhost:4317", index("OTEL_TRACES_SAMPLER_ARG"), "0.5")
	f.Add(index("OTEL_EXPORTER_OTLP_TRACES_HEADERS"), "api-key=%zz-sk-fuzz-secret", index("OTEL_EXPORTER_OTLP_PROTOCOL"), "http/json", index("OTEL_BSP_MAX_QUEUE_SIZE"), "0")
	f.Add(index("OTEL_EXPORTER_OTLP_LOGS_HEADERS"), "no-equals-sign-sk-fuzz-secret", index("OTEL_LOGS_EXPORTER"), "none", index("OTEL_SDK_DISABLED"), "maybe")
	f.Add(index("OTEL_RESOURCE_ATTRIBUTES"), "a=b,=c", index("OTEL_SERVICE_NAME"), "", index("OTEL_TRACES_SAMPLER"), "parentbased_traceidratio")
	f.Add(index("OTEL_PROPAGATORS"), "b3,nonsense", index("OTEL_LOG_LEVEL"), "loud", index("OTEL_METRIC_EXPORT_INTERVAL"), "-1")
	f.Add(index("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"), "://no scheme", index("OTEL_EXPORTER_OTLP_INSECURE"), "yes", index("OTEL_EXPORTER_OTLP_TIMEOUT"), "1e9")
	f.Fuzz(func(t *testing.T, i1 uint8, v1 string, i2 uint8, v2 string, i3 uint8, v3 string) {
		env := map[string]string{}
		var secrets, secretVars []string
		for _, p := range []struct {
			i uint8
			v string
		}{{i1, v1}, {i2, v2}, {i3, v3}} {
			r := rows[int(p.i)%len(rows)]
			env[r.Name] = p.v
			if r.Secret {
				secrets, secretVars = append(secrets, p.v), append(secretVars, r.Name)
			}
		}
		cfg, _ := Load(WithBytes("otel.yaml", examples.OtelYAML), WithEnv(mapLookup(env)), WithServiceName("svc"))
		for _, d := range cfg.Diagnostics.Errors() {
			named := d.Env != ""
			for name := range env {
				named = named || strings.Contains(d.Message, name)
			}
			if !named {
				t.Errorf("error names no variable (env %q): %v", env, d)
			}
		}
		for _, s := range secrets {
			if len(strings.TrimSpace(s)) < 6 {
				continue // too short to tell a leak from a word of a message
			}
			for _, d := range cfg.Diagnostics {
				if !strings.Contains(d.Message, s) && !strings.Contains(d.Hint, s) {
					continue
				}
				// The text may be one the messages say anyway: load again
				// with every secret row's letters and digits changed (within
				// their class, so the value parses alike); if the text is
				// still there, it is the message's own.
				env2 := map[string]string{}
				for k, v := range env {
					env2[k] = v
					if slices.Contains(secretVars, k) {
						env2[k] = shiftAlnum(v)
					}
				}
				cfg2, _ := Load(WithBytes("otel.yaml", examples.OtelYAML), WithEnv(mapLookup(env2)), WithServiceName("svc"))
				if !strings.Contains(diagText(cfg2.Diagnostics), s) {
					t.Fatalf("the value of a secret variable (%q) appears in a diagnostic: %v", s, d)
				}
			}
		}
	})
}

// shiftAlnum changes each ASCII letter and digit to another of the same
// class (hex letters stay hex letters, so %-escapes stay valid or not).
func shiftAlnum(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'f':
			b[i] = 'a' + (c-'a'+1)%6
		case c >= 'A' && c <= 'F':
			b[i] = 'A' + (c-'A'+1)%6
		case c >= 'g' && c <= 'z':
			b[i] = 'g' + (c-'g'+1)%20
		case c >= 'G' && c <= 'Z':
			b[i] = 'G' + (c-'G'+1)%20
		case c >= '0' && c <= '9':
			b[i] = '0' + (c-'0'+1)%10
		}
	}
	return string(b)
}

func diagText(ds Diagnostics) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString(d.Message + "\n" + d.Hint + "\n")
	}
	return b.String()
}
