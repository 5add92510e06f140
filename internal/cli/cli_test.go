package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/otelcfg/otelcfg/otelconfig"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// run calls Run the way main does, with a controlled environment and no
// colour, so that tests are deterministic and can run in parallel.
func run(t *testing.T, environ []string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, strings.NewReader(stdin), &out, &errb, WithEnviron(environ), WithColor(false))
	return out.String(), errb.String(), code
}

// fileCases is every file under testdata: the environment it is validated
// in, and the codes it must produce (each at least once; the goldens pin
// the rest). A file missing here fails TestEveryTestdataFileHasACase.
type fileCase struct {
	file  string
	env   []string
	valid bool
	codes []string
}

var fileCases = []fileCase{
	{file: "minimal.good.yaml", valid: true},
	{file: "otlp.good.yaml", valid: true},
	{file: "interceptor.good.yaml", valid: true},
	{file: "warnings.good.yaml", valid: true, codes: []string{otelconfig.CodeEnvUnset, otelconfig.CodeSecurity}},
	{file: "three-mistakes.bad.yaml", codes: []string{otelconfig.CodeUnknownKey, otelconfig.CodeEnum, otelconfig.CodeBounds}},
	{file: "duplicate-key.bad.yaml", codes: []string{otelconfig.CodeDuplicateKey}},
	{file: "unknown-key.bad.yaml", codes: []string{otelconfig.CodeUnknownKey}},
	{file: "syntax.bad.yaml", codes: []string{otelconfig.CodeSyntax}},
	{file: "interceptor.bad.yaml", codes: []string{otelconfig.CodeUnknownKey}},
	{file: "proxy.good.yaml", valid: true},
	{file: "proxy.bad.yaml", codes: []string{otelconfig.CodeSettings, otelconfig.CodeType}},
	{
		file:  "bad-env.bad.yaml",
		env:   []string{"OTEL_EXPORTER_OTLP_PROTOCOL=carrier-pigeon", "OTEL_BSP_SCHEDULE_DELAY=-5"},
		codes: []string{otelconfig.CodeEnvValue, otelconfig.CodeEnvValue},
	},
}

var formats = []string{"text", "json", "sarif", "github"}

func TestEveryTestdataFileHasACase(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, f := range files {
		base := filepath.Base(f)
		if !slices.ContainsFunc(fileCases, func(c fileCase) bool { return c.file == base }) {
			t.Errorf("%s has no entry in fileCases", f)
		}
		if !strings.HasSuffix(base, ".good.yaml") && !strings.HasSuffix(base, ".bad.yaml") {
			t.Errorf("%s: testdata files are named *.good.yaml or *.bad.yaml", f)
		}
	}
}

// TestValidateGolden runs every testdata file through every output format
// and compares stdout (and stderr, after a separator) with a golden file.
// Regenerate with: go test ./internal/cli -run TestValidateGolden -update
func TestValidateGolden(t *testing.T) {
	t.Parallel()
	for _, c := range fileCases {
		for _, format := range formats {
			t.Run(c.file+"/"+format, func(t *testing.T) {
				t.Parallel()
				path := filepath.Join("testdata", c.file)
				stdout, stderr, code := run(t, c.env, "", "validate", "--format", format, path)
				want := ExitOK
				if !c.valid {
					want = ExitInvalid
				}
				if code != want {
					t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, want, stdout, stderr)
				}
				if strings.HasSuffix(c.file, ".good.yaml") != c.valid {
					t.Errorf("%s: the name says good/bad, the table says valid=%v", c.file, c.valid)
				}
				got := stdout
				if stderr != "" {
					got += "-- stderr --\n" + stderr
				}
				checkGolden(t, filepath.Join("testdata", "golden", strings.TrimSuffix(c.file, ".yaml")+"."+format), got)
			})
		}
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update to accept):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

// TestValidateFindsEverything checks, independently of the goldens, that
// each file yields the diagnostics it was written for, all in one run.
func TestValidateFindsEverything(t *testing.T) {
	t.Parallel()
	for _, c := range fileCases {
		t.Run(c.file, func(t *testing.T) {
			t.Parallel()
			rep := validateJSON(t, c.env, filepath.Join("testdata", c.file))
			if len(rep.Files) != 1 {
				t.Fatalf("%d files in the report, want 1", len(rep.Files))
			}
			f := rep.Files[0]
			if f.Valid != c.valid {
				t.Errorf("valid = %v, want %v: %+v", f.Valid, c.valid, f.Diagnostics)
			}
			var got []string
			for _, d := range f.Diagnostics {
				got = append(got, d.Code)
			}
			rest := slices.Clone(got)
			for _, want := range c.codes {
				i := slices.Index(rest, want)
				if i < 0 {
					t.Errorf("no (or not enough) %q diagnostics; got codes %v", want, got)
					continue
				}
				rest = slices.Delete(rest, i, i+1)
			}
		})
	}
}

type report struct {
	Files []struct {
		File        string `json:"file"`
		Valid       bool   `json:"valid"`
		Diagnostics []struct {
			Severity string `json:"severity"`
			Code     string `json:"code"`
			Path     string `json:"path"`
			Line     int    `json:"line"`
			Column   int    `json:"column"`
			Message  string `json:"message"`
			Hint     string `json:"hint"`
			Env      string `json:"env"`
		} `json:"diagnostics"`
	} `json:"files"`
}

func validateJSON(t *testing.T, env []string, args ...string) report {
	t.Helper()
	stdout, stderr, code := run(t, env, "", append([]string{"validate", "--format", "json"}, args...)...)
	if code == ExitUsage {
		t.Fatalf("exit 2: %s", stderr)
	}
	var rep report
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("--format json output does not parse as the contract's shape: %v\n%s", err, stdout)
	}
	return rep
}

func TestThreeMistakesAllReported(t *testing.T) {
	t.Parallel()
	rep := validateJSON(t, nil, "testdata/three-mistakes.bad.yaml")
	d := rep.Files[0].Diagnostics
	want := map[string]int{ // path → line
		"/tracer_provder": 3,
		"/meter_provider/readers/0/periodic/exporter/otlp_http/compression": 14,
		"/logger_provider/processors/0/batch/max_queue_size":                18,
	}
	for path, line := range want {
		found := false
		for _, x := range d {
			if x.Path == path && x.Line == line && x.Severity == "error" && x.Column > 0 {
				found = true
			}
		}
		if !found {
			t.Errorf("no error at %s line %d; got %+v", path, line, d)
		}
	}
}

func TestUnknownKeyDidYouMean(t *testing.T) {
	t.Parallel()
	rep := validateJSON(t, nil, "testdata/unknown-key.bad.yaml", "testdata/three-mistakes.bad.yaml")
	for i, want := range []string{`"compression"`, `"tracer_provider"`} {
		found := false
		for _, d := range rep.Files[i].Diagnostics {
			if d.Code == otelconfig.CodeUnknownKey && strings.Contains(d.Hint, "did you mean") && strings.Contains(d.Hint, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no did-you-mean %s hint: %+v", rep.Files[i].File, want, rep.Files[i].Diagnostics)
		}
	}
}

func TestBadEnvNamesTheVariable(t *testing.T) {
	t.Parallel()
	rep := validateJSON(t, []string{"OTEL_TRACES_SAMPLER_ARG=1.5", "OTEL_TRACES_SAMPLER=traceidratio"}, "testdata/minimal.good.yaml")
	f := rep.Files[0]
	if f.Valid {
		t.Fatalf("OTEL_TRACES_SAMPLER_ARG=1.5 passed: %+v", f)
	}
	for _, d := range f.Diagnostics {
		if d.Env == "OTEL_TRACES_SAMPLER_ARG" && d.Severity == "error" {
			return
		}
	}
	t.Errorf("no error names OTEL_TRACES_SAMPLER_ARG: %+v", f.Diagnostics)
}

func TestNoEnvIgnoresTheEnvironment(t *testing.T) {
	t.Parallel()
	env := []string{"OTEL_EXPORTER_OTLP_PROTOCOL=carrier-pigeon", "OTEL_BSP_SCHEDULE_DELAY=-5"}
	if _, _, code := run(t, env, "", "validate", "testdata/bad-env.bad.yaml"); code != ExitInvalid {
		t.Errorf("with the environment: exit %d, want 1", code)
	}
	if out, errb, code := run(t, env, "", "validate", "--no-env", "testdata/bad-env.bad.yaml"); code != ExitOK {
		t.Errorf("--no-env: exit %d, want 0\n%s%s", code, out, errb)
	}
}

func TestStrict(t *testing.T) {
	t.Parallel()
	if _, _, code := run(t, nil, "", "validate", "testdata/warnings.good.yaml"); code != ExitOK {
		t.Errorf("warnings only: exit %d, want 0", code)
	}
	stdout, stderr, code := run(t, nil, "", "validate", "testdata/warnings.good.yaml", "--strict")
	if code != ExitInvalid {
		t.Errorf("--strict with warnings: exit %d, want 1", code)
	}
	if !strings.Contains(stderr, "--strict") || !strings.Contains(stdout, "warning:") {
		t.Errorf("--strict output does not say why:\n%s\n%s", stdout, stderr)
	}
	rep := validateJSON(t, nil, "--strict", "testdata/warnings.good.yaml", "testdata/minimal.good.yaml")
	if rep.Files[0].Valid || !rep.Files[1].Valid {
		t.Errorf("--strict: valid flags %v %v, want false true", rep.Files[0].Valid, rep.Files[1].Valid)
	}
}

func TestSummary(t *testing.T) {
	t.Parallel()
	_, stderr, code := run(t, nil, "", "validate", "testdata/minimal.good.yaml", "testdata/three-mistakes.bad.yaml", "testdata/warnings.good.yaml")
	if code != ExitInvalid {
		t.Errorf("exit %d, want 1", code)
	}
	if want := "3 files: 2 valid, 1 with 3 errors, 2 warnings\n"; stderr != want {
		t.Errorf("summary %q, want %q", stderr, want)
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cases := []struct {
		name string
		args []string
		want int
	}{
		{"valid", []string{"validate", "testdata/minimal.good.yaml"}, ExitOK},
		{"invalid", []string{"validate", "testdata/duplicate-key.bad.yaml"}, ExitInvalid},
		{"missing file", []string{"validate", "testdata/nope.yaml"}, ExitUsage},
		{"missing wins over invalid", []string{"validate", "testdata/duplicate-key.bad.yaml", "testdata/nope.yaml"}, ExitUsage},
		{"directory", []string{"validate", dir}, ExitUsage},
		{"no file", []string{"validate"}, ExitUsage},
		{"unknown flag", []string{"validate", "--frmat", "json", "testdata/minimal.good.yaml"}, ExitUsage},
		{"bad format", []string{"validate", "--format", "xml", "testdata/minimal.good.yaml"}, ExitUsage},
		{"bad service", []string{"validate", "--service", "gateway", "testdata/minimal.good.yaml"}, ExitUsage},
		{"flags after files", []string{"validate", "testdata/minimal.good.yaml", "--format", "json", "--strict"}, ExitOK},
		{"no command", nil, ExitUsage},
		{"unknown command", []string{"lint"}, ExitUsage},
		{"help", []string{"--help"}, ExitOK},
		{"help command", []string{"help", "validate"}, ExitOK},
		{"validate help", []string{"validate", "-h"}, ExitOK},
		{"print missing", []string{"print", "testdata/nope.yaml"}, ExitUsage},
		{"print invalid", []string{"print", "testdata/duplicate-key.bad.yaml"}, ExitInvalid},
		{"print two files", []string{"print", "testdata/minimal.good.yaml", "testdata/otlp.good.yaml"}, ExitUsage},
		{"schema unknown", []string{"schema", "nope"}, ExitUsage},
		{"env extra arg", []string{"env", "x"}, ExitUsage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := run(t, nil, "", c.args...)
			if code != c.want {
				t.Errorf("otelcfg %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(c.args, " "), code, c.want, stdout, stderr)
			}
			if code == ExitUsage && stderr == "" {
				t.Errorf("exit 2 without a message on stderr")
			}
		})
	}
}

func TestOTELConfigFileWhenNoFileGiven(t *testing.T) {
	t.Parallel()
	env := []string{"OTEL_CONFIG_FILE=testdata/duplicate-key.bad.yaml"}
	stdout, _, code := run(t, env, "", "validate")
	if code != ExitInvalid || !strings.Contains(stdout, "duplicate-key.bad.yaml:7:1") {
		t.Errorf("exit %d, output:\n%s", code, stdout)
	}
}

func TestStdin(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("testdata/unknown-key.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	stdout, _, code := run(t, nil, string(src), "validate", "-")
	if code != ExitInvalid || !strings.Contains(stdout, "<stdin>:8:13: error:") {
		t.Errorf("exit %d, output:\n%s", code, stdout)
	}
}

func TestHelpGoesToStdout(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"validate", "--help"}, {"print", "-h"}, {"schema", "--help"}, {"env", "--help"}} {
		stdout, stderr, code := run(t, nil, "", args...)
		if code != ExitOK || stderr != "" || !strings.Contains(stdout, "usage") && !strings.Contains(stdout, "Usage") {
			t.Errorf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, stdout, stderr)
		}
	}
}

func TestParseArgsInterleaved(t *testing.T) {
	t.Parallel()
	e := &env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	fs := newFlagSet("validate")
	strict := fs.Bool("strict", false, "")
	format := fs.String("format", "text", "")
	args, _, ok := parseArgs(e, fs, "", "", []string{"a.yaml", "--format", "json", "b.yaml", "--strict", "--", "--c.yaml"})
	if !ok || !*strict || *format != "json" || !slices.Equal(args, []string{"a.yaml", "b.yaml", "--c.yaml"}) {
		t.Errorf("got args %q strict %v format %q ok %v", args, *strict, *format, ok)
	}
}

func TestColorOnlyOnTerminals(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	e := &env{stdout: &buf, lookup: func(string) (string, bool) { return "", false }}
	if e.colorOK() {
		t.Error("colour into a buffer")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e.stdout = f
	if e.colorOK() {
		t.Error("colour into a regular file")
	}
	e.lookup = func(k string) (string, bool) { return "1", k == "NO_COLOR" }
	on := true
	e.color = &on
	if !e.colorOK() {
		t.Error("WithColor(true) ignored")
	}
}

// TestConformance: the three example files published with the
// OpenTelemetry configuration v1.0.0 validate with zero errors.
func TestConformance(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "..", "shared", "conformance", "upstream-v1.0")
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(files) == 0 {
		t.Skipf("conformance files not found in %s (they live outside the repository, in the shared workspace)", dir)
	}
	if len(files) != 3 {
		t.Errorf("%d conformance files in %s, want 3", len(files), dir)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			rep := validateJSON(t, nil, f)
			for _, d := range rep.Files[0].Diagnostics {
				if d.Severity == "error" {
					t.Errorf("%s:%d:%d: %s [%s] at %s", f, d.Line, d.Column, d.Message, d.Code, d.Path)
				}
			}
			if !rep.Files[0].Valid {
				t.Errorf("%s is not valid", f)
			}
		})
	}
}
