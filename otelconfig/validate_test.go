package otelconfig

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otelcfg/otelcfg/examples"
	yaml "go.yaml.in/yaml/v3"
)

func diagsWith(ds Diagnostics, code string) Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Code == code {
			out = append(out, d)
		}
	}
	return out
}

// TestSchemaAndLoaderAgree: every sample the schema accepts loads (and
// otelconf decodes it), every sample it rejects yields an error.
func TestSchemaAndLoaderAgree(t *testing.T) {
	files, _ := filepath.Glob("../schemas/testdata/otel.*.yaml")
	if len(files) < 10 {
		t.Fatalf("found only %d schema samples", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			cfg, _ := Load(WithFile(f), WithoutEnv())
			good := strings.HasSuffix(f, ".good.yaml")
			if good && (cfg.Diagnostics.HasErrors() || cfg.Model == nil) {
				t.Errorf("schema accepts it, loader refuses: %v", cfg.Diagnostics.Errors())
			}
			if !good && !cfg.Diagnostics.HasErrors() {
				t.Errorf("schema rejects it, loader accepts it (diagnostics %v)", cfg.Diagnostics)
			}
			if good {
				// Without the schema pass, otelconf alone must agree too.
				raw, _ := Load(WithFile(f), WithoutEnv(), WithoutChecks())
				if raw.Diagnostics.HasErrors() {
					t.Errorf("otelconf refuses a schema-valid file: %v", raw.Diagnostics.Errors())
				}
			}
		})
	}
}

func TestExampleConfigIsCleanForBothServices(t *testing.T) {
	for profile := range Profiles {
		cfg, err := Load(WithBytes("examples/otel.yaml", examples.OtelYAML), WithEnv(mapLookup(nil)), WithProfile(profile), WithServiceName(Profiles[profile]))
		if err != nil || len(cfg.Diagnostics) != 0 {
			t.Errorf("%s: err=%v diagnostics=%v", profile, err, cfg.Diagnostics)
		}
		if ds := DryRun(context.Background(), cfg); len(ds) != 0 {
			t.Errorf("%s: dry run: %v", profile, ds)
		}
	}
}

// TestAllMistakesAtOnce: three unrelated mistakes, three diagnostics,
// each at its own line with its own path.
func TestAllMistakesAtOnce(t *testing.T) {
	src := `file_format: "1.0"
tracer_provder:
  processors: []
logger_provider:
  processors:
    - batch:
        exporter:
          otlp_http:
            endpoint: http://localhost:4318/v1/logs
            compresion: gzip
tracer_provider:
  sampler:
    trace_id_ratio_based:
      ratio: 1.5
  processors:
    - simple:
        exporter:
          console:
`
	cfg, err := Load(WithBytes("three.yaml", []byte(src)), WithEnv(mapLookup(nil)))
	if err == nil {
		t.Fatal("want errors")
	}
	want := []struct {
		code, path, hint string
		line             int
	}{
		{CodeUnknownKey, "/tracer_provder", `did you mean "tracer_provider"?`, 2},
		{CodeUnknownKey, "/logger_provider/processors/0/batch/exporter/otlp_http/compresion", `did you mean "compression"?`, 10},
		{CodeBounds, "/tracer_provider/sampler/trace_id_ratio_based/ratio", "", 14},
	}
	errs := cfg.Diagnostics.Errors()
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d: %v", len(errs), len(want), errs)
	}
	for i, w := range want {
		d := errs[i]
		if d.Code != w.code || d.Path != w.path || d.Line != w.line || d.Hint != w.hint {
			t.Errorf("error %d = %+v, want %+v", i, d, w)
		}
	}
}

func TestLints(t *testing.T) {
	exporter := func(kind, body string) string {
		return "file_format: \"1.0\"\ntracer_provider:\n  processors:\n    - batch:\n        exporter:\n          " + kind + ":\n" + body
	}
	tests := []struct {
		name     string
		src      string
		env      map[string]string
		code     string
		severity Severity
		inMsg    string
	}{
		{"http encoding json", exporter("otlp_http", "            endpoint: http://localhost:4318/v1/traces\n            encoding: json\n"), nil, CodeUnsupported, SeverityWarning, "encoding"},
		{"otlp_file", exporter("otlp_file/development", "            output_stream: stdout\n"), nil, CodeUnsupported, SeverityWarning, "otlp_file/development"},
		{"composite sampler", "file_format: \"1.0\"\ntracer_provider:\n  processors: [{simple: {exporter: {console: }}}]\n  sampler:\n    composite/development:\n      always_on:\n", nil, CodeUnsupported, SeverityWarning, "composite/development"},
		{"detectors ignored", "file_format: \"1.0\"\nresource:\n  detection/development:\n    detectors: [{host: }]\n", nil, CodeUnsupported, SeverityWarning, "ignored"},
		{"http endpoint without scheme", exporter("otlp_http", "            endpoint: localhost:4318\n"), nil, CodeEndpoint, SeverityError, "not an absolute"},
		{"http endpoint on the gRPC port", exporter("otlp_http", "            endpoint: http://localhost:4317\n"), nil, CodeEndpoint, SeverityWarning, "4317"},
		{"grpc endpoint odd scheme", exporter("otlp_grpc", "            endpoint: ftp://collector:4317\n"), nil, CodeEndpoint, SeverityError, "scheme"},
		{"plaintext off host", exporter("otlp_grpc", "            endpoint: http://collector.example.com:4317\n"), nil, CodeSecurity, SeverityWarning, "plaintext"},
		{"insecure off host", exporter("otlp_grpc", "            endpoint: collector.example.com:4317\n            tls:\n              insecure: true\n"), nil, CodeSecurity, SeverityWarning, "plaintext"},
		{"plaintext from env is located", "file_format: \"1.0\"\nlogger_provider:\n  processors:\n    - batch:\n        exporter:\n          console:\n", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://10.1.2.3:4317"}, CodeSecurity, SeverityWarning, "10.1.2.3"},
		{"literal secret header", exporter("otlp_grpc", "            endpoint: https://collector.example.com:4317\n            headers:\n              - name: x-api-key\n                value: hunter2\n"), nil, CodeSecurity, SeverityWarning, "literal secret"},
		{"empty processors", "file_format: \"1.0\"\nlogger_provider:\n  processors: []\n", nil, CodeSchema, SeverityWarning, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, _ := Load(WithBytes("l.yaml", []byte(tt.src)), WithEnv(mapLookup(tt.env)))
			ds := diagsWith(cfg.Diagnostics, tt.code)
			if len(ds) == 0 || ds[0].Severity != tt.severity || !strings.Contains(ds[0].Message, tt.inMsg) || ds[0].Line == 0 {
				t.Fatalf("diagnostics = %v, want a positioned %s %s containing %q", cfg.Diagnostics, tt.severity, tt.code, tt.inMsg)
			}
		})
	}
}

func TestLiteralSecretInWorldReadableFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "otel.yaml")
	src := "file_format: \"1.0\"\ntracer_provider:\n  processors:\n    - batch:\n        exporter:\n          otlp_http:\n            endpoint: https://otlp.example.com/v1/traces\n            headers:\n              - name: authorization\n                value: Bearer hunter2\n"
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _ := Load(WithFile(f), WithEnv(mapLookup(nil)))
	found := false
	for _, d := range diagsWith(cfg.Diagnostics, CodeSecurity) {
		if strings.Contains(d.Message, "readable by every user") {
			found = true
		}
		if strings.Contains(d.Message, "hunter2") || strings.Contains(d.Hint, "hunter2") {
			t.Errorf("a diagnostic repeats the secret: %v", d)
		}
	}
	if !found {
		t.Errorf("no world-readable warning: %v", cfg.Diagnostics)
	}
	if err := os.Chmod(f, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ = Load(WithFile(f), WithEnv(mapLookup(nil)))
	for _, d := range cfg.Diagnostics {
		if strings.Contains(d.Message, "readable by every user") {
			t.Errorf("warned about a 0600 file: %v", d)
		}
	}
}

func TestProfiles(t *testing.T) {
	base := string(examples.OtelYAML)
	tests := []struct {
		name     string
		src      string
		env      map[string]string
		severity Severity
		inMsg    string
	}{
		{"no tracecontext", strings.Replace(base, "    - tracecontext:\n", "", 1), nil, SeverityError, "tracecontext"},
		{"propagators from env lack tracecontext", base, map[string]string{"OTEL_PROPAGATORS": "b3"}, SeverityError, "tracecontext"},
		{"no logger provider", base, map[string]string{"OTEL_LOGS_EXPORTER": "none"}, SeverityError, "logger provider"},
		{"sampler drops everything", base, map[string]string{"OTEL_TRACES_SAMPLER": "always_off"}, SeverityWarning, "drops every trace"},
		{"service name fixed in the file", strings.Replace(base, "    - name: service.namespace\n", "    - name: service.name\n      value: shared\n    - name: service.namespace\n", 1), nil, SeverityError, "same service"},
		{"service name from env", base, map[string]string{"OTEL_SERVICE_NAME": "shared"}, SeverityWarning, "same service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, _ := Load(WithBytes("otel.yaml", []byte(tt.src)), WithEnv(mapLookup(tt.env)), WithProfile("proxy"), WithServiceName("litellm-proxy"))
			ds := diagsWith(cfg.Diagnostics, CodeProfile)
			if len(ds) != 1 || ds[0].Severity != tt.severity || !strings.Contains(ds[0].Message, tt.inMsg) {
				t.Fatalf("profile diagnostics = %v, want one %s containing %q", ds, tt.severity, tt.inMsg)
			}
		})
	}
	t.Run("disabled needs nothing", func(t *testing.T) {
		cfg, _ := Load(WithBytes("otel.yaml", []byte("file_format: \"1.0\"\n")), WithEnv(mapLookup(map[string]string{"OTEL_SDK_DISABLED": "true"})), WithProfile("interceptor"))
		if ds := diagsWith(cfg.Diagnostics, CodeProfile); len(ds) != 0 {
			t.Fatalf("diagnostics = %v", ds)
		}
	})
}

func TestDryRunFindsBootRefusals(t *testing.T) {
	src := "file_format: \"1.0\"\ntracer_provider:\n  processors:\n    - batch:\n        exporter:\n          otlp_file/development:\n            output_stream: stdout\n"
	cfg, err := Load(WithBytes("f.yaml", []byte(src)), WithEnv(mapLookup(nil)))
	if err != nil {
		t.Fatal(err)
	}
	ds := DryRun(context.Background(), cfg)
	if len(ds) == 0 || ds[0].Code != CodeSDK || ds[0].Severity != SeverityError {
		t.Fatalf("dry run = %v", ds)
	}
}

func TestIsSecret(t *testing.T) {
	src := "file_format: \"1.0\"\nresource:\n  attributes:\n    - name: team\n      value: ${TEAM}\n    - name: deploy\n      value: ${DEPLOY_TOKEN}\ntracer_provider:\n  processors:\n    - batch:\n        exporter:\n          otlp_grpc:\n            endpoint: http://localhost:4317\n            headers_list: a=b\n            headers:\n              - name: x-team\n                value: obs\n"
	cfg, err := Load(WithBytes("s.yaml", []byte(src)), WithEnv(mapLookup(map[string]string{"TEAM": "obs", "DEPLOY_TOKEN": "t0k3n"})))
	if err != nil {
		t.Fatal(err)
	}
	secret := map[string]bool{}
	Walk(cfg.Root, func(p string, _, n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && cfg.IsSecret(p, n) {
			secret[p] = true
		}
	})
	envCfg, err := Load(WithBytes("e.yaml", examples.OtelYAML), WithEnv(mapLookup(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4317", "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=t0k3n"})))
	if err != nil {
		t.Fatal(err)
	}
	hp := "/tracer_provider/processors/0/batch/exporter/otlp_grpc/headers/0"
	if envCfg.IsSecret(hp+"/name", Lookup(envCfg.Root, hp+"/name")) || !envCfg.IsSecret(hp+"/value", Lookup(envCfg.Root, hp+"/value")) {
		t.Error("a header from OTEL_EXPORTER_OTLP_HEADERS: its name is not secret, its value is")
	}
	for p, want := range map[string]bool{
		"/resource/attributes/0/value":                                           false,
		"/resource/attributes/1/value":                                           true, // from a variable named like a secret
		"/tracer_provider/processors/0/batch/exporter/otlp_grpc/endpoint":        false,
		"/tracer_provider/processors/0/batch/exporter/otlp_grpc/headers_list":    true,
		"/tracer_provider/processors/0/batch/exporter/otlp_grpc/headers/0/value": true,
	} {
		if secret[p] != want {
			t.Errorf("IsSecret(%s) = %v, want %v", p, secret[p], want)
		}
	}
}
