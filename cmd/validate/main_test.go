package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// bin is the real otelcfg binary, built once for every test: exit
// statuses are what scripts see, so they are checked on a real process.
var bin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "otelcfg-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "otelcfg")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

const (
	valid = `file_format: "1.0"
tracer_provider:
  processors:
    - simple:
        exporter:
          console:
`
	invalid = `file_format: "1.0"
tracer_provider:
  processors:
    - batch:
        max_queue_size: -1
        exporter:
          console:
          console:
`
	// Valid, with one warning: a variable of the user's own that is unset.
	warning = `file_format: "1.0"
resource:
  attributes:
    - name: deployment.environment.name
      value: ${DEPLOY_ENV_FOR_EXIT_TEST}
`
)

func TestExitStatus(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{"valid.yaml": valid, "invalid.yaml": invalid, "warning.yaml": warning} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		env  []string
		want int
	}{
		{"valid", []string{"validate", "valid.yaml"}, nil, 0},
		{"invalid", []string{"validate", "invalid.yaml"}, nil, 1},
		{"valid and invalid", []string{"validate", "valid.yaml", "invalid.yaml"}, nil, 1},
		{"missing file", []string{"validate", "missing.yaml"}, nil, 2},
		{"directory", []string{"validate", "adir"}, nil, 2},
		{"unknown flag", []string{"validate", "--bogus", "valid.yaml"}, nil, 2},
		{"unknown flag after file", []string{"validate", "valid.yaml", "--bogus"}, nil, 2},
		{"no arguments", nil, nil, 2},
		{"warning", []string{"validate", "warning.yaml"}, nil, 0},
		{"warning --strict", []string{"validate", "--strict", "warning.yaml"}, nil, 1},
		{"warning --strict after file", []string{"validate", "warning.yaml", "--strict"}, nil, 1},
		{"bad env", []string{"validate", "valid.yaml"}, []string{"OTEL_TRACES_SAMPLER=sometimes"}, 1},
		{"bad env --no-env", []string{"validate", "--no-env", "valid.yaml"}, []string{"OTEL_TRACES_SAMPLER=sometimes"}, 0},
		{"OTEL_CONFIG_FILE", []string{"validate"}, []string{"OTEL_CONFIG_FILE=invalid.yaml"}, 1},
		{"help", []string{"--help"}, nil, 0},
		{"print", []string{"print", "valid.yaml"}, nil, 0},
		{"schema", []string{"schema"}, nil, 0},
		{"env", []string{"env"}, nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(bin, c.args...)
			cmd.Dir = dir
			cmd.Env = append([]string{"NO_COLOR=1"}, c.env...)
			out, err := cmd.CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != c.want {
				t.Errorf("otelcfg %s: exit %d, want %d\n%s", strings.Join(c.args, " "), code, c.want, out)
			}
		})
	}
}

// TestMachineOutputParses checks that a real run writes nothing but the
// document to stdout (the dry run must not print telemetry into it).
func TestMachineOutputParses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{"valid.yaml": valid, "invalid.yaml": invalid} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, format := range []string{"json", "sarif"} {
		cmd := exec.Command(bin, "validate", "--format", format, "valid.yaml", "invalid.yaml")
		cmd.Dir = dir
		cmd.Env = []string{}
		out, _ := cmd.Output()
		var v map[string]any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Errorf("--format %s: stdout is not one JSON document: %v\n%s", format, err, out)
		}
		if format == "sarif" && (v["version"] != "2.1.0" || v["$schema"] == nil) {
			t.Errorf("sarif: version %v, $schema %v", v["version"], v["$schema"])
		}
	}
}
