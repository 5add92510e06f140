package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otelcfg/otelcfg/otelconfig"
	yaml "go.yaml.in/yaml/v3"
)

// The planted secrets, each reaching the tree by a different road.
const (
	secretInFile  = "literal-secret-in-file-7f3a"
	secretInEnv   = "secret-from-otel-headers-91bc"
	secretInSubst = "secret-from-my-api-key-c044"
)

const secretsYAML = `file_format: "1.0"
tracer_provider:
  processors:
    - batch:
        exporter:
          otlp_grpc:
            endpoint: https://collector.example.com:4317
            headers:
              - name: x-literal
                value: ` + secretInFile + `
              - name: api-key
                value: ${MY_API_KEY}
logger_provider:
  processors:
    - batch:
        exporter:
          console:
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrintNeverLeaksSecrets(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "otel.yaml", secretsYAML)
	env := []string{
		"OTEL_EXPORTER_OTLP_HEADERS=x-token=" + secretInEnv,
		"MY_API_KEY=" + secretInSubst,
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317",
	}
	for _, args := range [][]string{
		{"print", path},
		{"print", "--explain", path},
		{"print", "--format", "json", path},
		{"print", "--format", "json", "--explain", path},
	} {
		stdout, stderr, code := run(t, env, "", args...)
		if code != ExitOK {
			t.Errorf("%v: exit %d\n%s", args, code, stderr)
		}
		for _, s := range []string{secretInFile, secretInEnv, secretInSubst} {
			if strings.Contains(stdout, s) || strings.Contains(stderr, s) {
				t.Errorf("%v: secret %q printed:\n%s\n%s", args, s, stdout, stderr)
			}
		}
		if n := strings.Count(stdout, otelconfig.Redacted); n < 3 {
			t.Errorf("%v: %d redactions, want at least 3:\n%s", args, n, stdout)
		}
	}
}

func TestPrintExplainNamesTheOverlay(t *testing.T) {
	t.Parallel()
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://collector.internal:4317"}
	const file = "testdata/minimal.good.yaml"

	stdout, stderr, code := run(t, env, "", "print", "--explain", file)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	found := false
	for _, l := range strings.Split(stdout, "\n") {
		if strings.Contains(l, "endpoint: http://collector.internal:4317") {
			found = true
			if !strings.HasSuffix(l, "# from OTEL_EXPORTER_OTLP_ENDPOINT") {
				t.Errorf("endpoint line does not name the variable: %q", l)
			}
		}
	}
	if !found {
		t.Errorf("no overlaid endpoint in:\n%s", stdout)
	}
	if !strings.Contains(stdout, `file_format: "1.0" # `+file+`:1`) {
		t.Errorf("file values are not annotated with file:line:\n%s", stdout)
	}
	var v map[string]any
	if err := yaml.Unmarshal([]byte(stdout), &v); err != nil {
		t.Errorf("--explain output is not YAML: %v", err)
	}

	stdout, _, _ = run(t, env, "", "print", "--explain", "--format", "json", file)
	var doc struct {
		Config  map[string]any    `json:"config"`
		Origins map[string]string `json:"origins"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	const ep = "/tracer_provider/processors/0/simple/exporter/otlp_grpc/endpoint"
	if got := doc.Origins[ep]; got != "from OTEL_EXPORTER_OTLP_ENDPOINT" {
		t.Errorf("origin of %s = %q\n%s", ep, got, stdout)
	}
	if doc.Config["file_format"] != "1.0" {
		t.Errorf("config: %v", doc.Config)
	}
}

func TestPrintSubstitutionOrigin(t *testing.T) {
	t.Parallel()
	stdout, _, code := run(t, []string{"SERVICE_NAMESPACE=payments"}, "", "print", "--explain", "testdata/otlp.good.yaml")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	if want := "value: payments # ${SERVICE_NAMESPACE} at testdata/otlp.good.yaml:6"; !strings.Contains(stdout, want) {
		t.Errorf("no %q in:\n%s", want, stdout)
	}
}

func TestPrintJSONTypes(t *testing.T) {
	t.Parallel()
	stdout, _, code := run(t, nil, "", "print", "--format", "json", "testdata/otlp.good.yaml")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{`"ratio": 0.25`, `"interval": 60000`, `"tracecontext": null`, `"file_format": "1.0"`} {
		if !strings.Contains(stdout, want) {
			t.Errorf("no %s in:\n%s", want, stdout)
		}
	}
	// Key order follows the file, not the alphabet.
	if strings.Index(stdout, `"tracer_provider"`) > strings.Index(stdout, `"meter_provider"`) {
		t.Errorf("keys reordered:\n%s", stdout)
	}
}

func TestPrintNoEnv(t *testing.T) {
	t.Parallel()
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://collector.internal:4317"}
	stdout, _, _ := run(t, env, "", "print", "--no-env", "testdata/minimal.good.yaml")
	if strings.Contains(stdout, "collector.internal") || !strings.Contains(stdout, "console:") {
		t.Errorf("--no-env applied the overlay:\n%s", stdout)
	}
}

func TestSchema(t *testing.T) {
	t.Parallel()
	stdout, _, code := run(t, nil, "", "schema")
	var v map[string]any
	if code != ExitOK || json.Unmarshal([]byte(stdout), &v) != nil || v["$schema"] == nil {
		t.Errorf("schema: exit %d, %.200s", code, stdout)
	}
	same, _, _ := run(t, nil, "", "schema", "otel")
	if same != stdout {
		t.Error("`schema` and `schema otel` differ")
	}
	_, stderr, code := run(t, nil, "", "schema", "nope")
	if code != ExitUsage || !strings.Contains(stderr, "otel") {
		t.Errorf("unknown schema: exit %d, %q", code, stderr)
	}
}

func TestEnv(t *testing.T) {
	t.Parallel()
	env := []string{
		"OTEL_SERVICE_NAME=checkout",
		"OTEL_EXPORTER_OTLP_HEADERS=authorization=" + secretInEnv,
		"OTEL_EXPORTER_OTLP_TRACES_HEADERS=x=" + secretInEnv,
	}
	stdout, _, code := run(t, env, "", "env")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	if strings.Contains(stdout, secretInEnv) {
		t.Errorf("secret printed:\n%s", stdout)
	}
	rows := map[string]string{}
	for _, l := range strings.Split(stdout, "\n") {
		if f := strings.Fields(l); len(f) >= 3 {
			rows[f[0]] = l
		}
	}
	for _, v := range otelconfig.EnvVars() {
		if rows[v.Name] == "" {
			t.Errorf("%s is not listed", v.Name)
		}
	}
	for name, want := range map[string]string{
		"OTEL_SERVICE_NAME":                 " checkout ",
		"OTEL_EXPORTER_OTLP_HEADERS":        " " + otelconfig.Redacted + " ",
		"OTEL_EXPORTER_OTLP_TRACES_HEADERS": " " + otelconfig.Redacted + " ",
		"OTEL_SDK_DISABLED":                 " " + unset + " ",
	} {
		if !strings.Contains(rows[name], want) {
			t.Errorf("%s row %q does not contain %q", name, rows[name], want)
		}
	}

	stdout, _, _ = run(t, env, "", "env", "--format", "json")
	var doc struct {
		Variables []envRow `json:"variables"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || len(doc.Variables) != len(otelconfig.EnvVars()) {
		t.Fatalf("json: %v, %d rows", err, len(doc.Variables))
	}
	if strings.Contains(stdout, secretInEnv) {
		t.Errorf("secret printed in json")
	}
}
