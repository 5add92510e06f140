package schemas

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// compile compiles the named embedded schema with draft 2020-12 as default.
func compile(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	data, ok := Get(name)
	if !ok {
		t.Fatalf("schema %q is not embedded", name)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("schema %q is not valid JSON: %v", name, err)
	}
	loc := "mem://otelcfg/schemas/" + name + schemaSuffix
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(loc, doc); err != nil {
		t.Fatalf("add schema %q: %v", name, err)
	}
	sch, err := c.Compile(loc)
	if err != nil {
		t.Fatalf("compile schema %q: %v", name, err)
	}
	return sch
}

// decodeYAML decodes a single YAML document into JSON-compatible values
// (map[string]any, []any and scalars).
func decodeYAML(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("invalid YAML: %v", err)
	}
	return normalize(v)
}

// normalize turns map[any]any (YAML allows non-string keys) into
// map[string]any, recursively.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = normalize(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
		return x
	default:
		return v
	}
}

func TestEmbeddedSchemasCompile(t *testing.T) {
	names := Names()
	if !slices.Contains(names, "otel") {
		t.Fatalf("Names() = %v, want it to contain %q", names, "otel")
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			data, _ := Get(name)
			var meta struct {
				Schema string `json:"$schema"`
				ID     string `json:"$id"`
				Title  string `json:"title"`
			}
			if err := json.Unmarshal(data, &meta); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if meta.Schema != "https://json-schema.org/draft/2020-12/schema" {
				t.Errorf("$schema = %q, want draft 2020-12", meta.Schema)
			}
			if meta.ID == "" || meta.Title == "" {
				t.Errorf("$id (%q) and title (%q) must be set", meta.ID, meta.Title)
			}
			compile(t, name)
		})
	}
}

func TestGetAndNames(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"otel", true},
		{"otel.schema.json", true},
		{"otel.schema", true},
		{"", false},
		{"nope", false},
		{"../schemas/otel.schema.json", false},
		{"testdata/otel.minimal.good.yaml", false},
	}
	for _, tt := range tests {
		data, ok := Get(tt.name)
		if ok != tt.ok {
			t.Errorf("Get(%q) ok = %v, want %v", tt.name, ok, tt.ok)
		}
		if ok && !json.Valid(data) {
			t.Errorf("Get(%q) returned invalid JSON", tt.name)
		}
	}

	a, _ := Get("otel")
	a[0] = 'X'
	b, _ := Get("otel")
	if b[0] == 'X' {
		t.Error("Get must return a copy of the embedded bytes")
	}

	names := Names()
	if !slices.IsSorted(names) {
		t.Errorf("Names() = %v is not sorted", names)
	}
	for _, n := range names {
		if strings.HasSuffix(n, ".json") {
			t.Errorf("Names() entry %q still has a file suffix", n)
		}
		if _, ok := Get(n); !ok {
			t.Errorf("Get(%q) failed for a name returned by Names()", n)
		}
	}
}

// wantErrorRE parses the "# want-error: <keyword> at <pointer>" header of bad
// samples. The pointer "/" denotes the document root.
var wantErrorRE = regexp.MustCompile(`^#\s*want-error:\s*(\S+)\s+at\s+(\S+)\s*$`)

type wantError struct{ keyword, pointer string }

func parseWantErrors(t *testing.T, data []byte) []wantError {
	t.Helper()
	var wants []wantError
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		m := wantErrorRE.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		p := m[2]
		if p == "/" {
			p = ""
		}
		wants = append(wants, wantError{keyword: m[1], pointer: p})
	}
	return wants
}

// errorMatches reports whether some node of the validation error tree was
// produced by keyword at the given instance location.
func errorMatches(ve *jsonschema.ValidationError, w wantError) bool {
	if ve.ErrorKind != nil {
		kp := ve.ErrorKind.KeywordPath()
		if len(kp) > 0 && kp[len(kp)-1] == w.keyword && pointer(ve.InstanceLocation) == w.pointer {
			return true
		}
	}
	for _, c := range ve.Causes {
		if errorMatches(c, w) {
			return true
		}
	}
	return false
}

func pointer(tokens []string) string {
	var sb strings.Builder
	for _, tok := range tokens {
		sb.WriteByte('/')
		tok = strings.ReplaceAll(tok, "~", "~0")
		sb.WriteString(strings.ReplaceAll(tok, "/", "~1"))
	}
	return sb.String()
}

// TestSamples validates testdata/<schema>.<case>.good.yaml (must be accepted)
// and testdata/<schema>.<case>.bad.yaml (must be rejected, for the reason
// given in the file's "# want-error:" header) against the embedded schema
// named by the file prefix.
func TestSamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	compiled := map[string]*jsonschema.Schema{}
	counts := map[string]int{}
	for _, file := range files {
		base := filepath.Base(file)
		var good bool
		switch {
		case strings.HasSuffix(base, ".good.yaml"):
			good = true
		case strings.HasSuffix(base, ".bad.yaml"):
		default:
			t.Errorf("%s: sample names must end in .good.yaml or .bad.yaml", file)
			continue
		}
		schemaName, _, _ := strings.Cut(base, ".")
		if good {
			counts[schemaName+" good"]++
		} else {
			counts[schemaName+" bad"]++
		}
		t.Run(strings.TrimSuffix(base, ".yaml"), func(t *testing.T) {
			sch, ok := compiled[schemaName]
			if !ok {
				if _, exists := Get(schemaName); !exists {
					t.Fatalf("no embedded schema %q for sample %s", schemaName, base)
				}
				sch = compile(t, schemaName)
				compiled[schemaName] = sch
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			err = sch.Validate(decodeYAML(t, data))
			if good {
				if err != nil {
					t.Fatalf("expected document to be accepted:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("expected document to be rejected, but it validated")
			}
			var ve *jsonschema.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			wants := parseWantErrors(t, data)
			if len(wants) == 0 {
				t.Fatalf("bad sample lacks a '# want-error: <keyword> at <pointer>' header; got:\n%v", err)
			}
			for _, w := range wants {
				if !errorMatches(ve, w) {
					t.Errorf("no %q error at %q; got:\n%v", w.keyword, w.pointer, err)
				}
			}
		})
	}
	if counts["otel good"] == 0 || counts["otel bad"] == 0 {
		t.Errorf("expected good and bad otel samples in testdata, got %v", counts)
	}
}

// TestInline checks small variations that are easier to read inline.
func TestInline(t *testing.T) {
	sch := compile(t, "otel")
	const head = "file_format: \"1.0\"\n"
	// spanExporter returns a document with one simple span processor whose
	// exporter is given as YAML indented for that position.
	spanExporter := func(exporter string) string {
		return head + "tracer_provider:\n  processors:\n    - simple:\n        exporter:\n          " + exporter + "\n"
	}
	tp := spanExporter("console:")
	tests := []struct {
		name string
		doc  string
		ok   bool
	}{
		{"file_format 1.0", head, true},
		{"file_format 1.12", "file_format: \"1.12\"\n", true},
		{"file_format with rc suffix", "file_format: \"1.0-rc.2\"\n", false},
		{"file_format 0.4", "file_format: \"0.4\"\n", false},
		{"file_format null", "file_format:\n", false},
		{"empty document", "{}\n", false},
		{"top level array", "- file_format: \"1.0\"\n", false},
		{"always_on null", tp + "  sampler:\n    always_on:\n", true},
		{"always_on empty map", tp + "  sampler:\n    always_on: {}\n", true},
		{"always_on with setting", tp + "  sampler:\n    always_on:\n      ratio: 1\n", false},
		{"sampler with two kinds", tp + "  sampler:\n    always_on:\n    always_off:\n", false},
		{"sampler without kind", tp + "  sampler: {}\n", false},
		{"ratio 0", tp + "  sampler:\n    trace_id_ratio_based:\n      ratio: 0\n", true},
		{"ratio negative", tp + "  sampler:\n    trace_id_ratio_based:\n      ratio: -0.1\n", false},
		{"probability/development ratio 2", tp + "  sampler:\n    probability/development:\n      ratio: 2\n", false},
		{"jaeger_remote without endpoint", tp + "  sampler:\n    jaeger_remote/development:\n      initial_sampler:\n        always_on:\n", false},
		{"tracecontext null", head + "propagator:\n  composite:\n    - tracecontext:\n", true},
		{"tracecontext empty map", head + "propagator:\n  composite:\n    - tracecontext: {}\n", true},
		{"tracecontext with setting", head + "propagator:\n  composite:\n    - tracecontext:\n        foo: bar\n", false},
		{"propagator entry with two kinds", head + "propagator:\n  composite:\n    - tracecontext:\n      baggage:\n", false},
		{"detector service null", head + "resource:\n  detection/development:\n    detectors:\n      - service:\n", true},
		{"detector unknown", head + "resource:\n  detection/development:\n    detectors:\n      - kubernetes:\n", false},
		{"log_level fatal4", head + "log_level: fatal4\n", true},
		{"log_level upper case", head + "log_level: INFO\n", false},
		{"log_level trace5", head + "log_level: trace5\n", false},
		{"encoding json", spanExporter("otlp_http:\n            encoding: json"), true},
		{"encoding yaml", spanExporter("otlp_http:\n            encoding: yaml"), false},
		{"max_export_batch_size 0", head + "tracer_provider:\n  processors:\n    - batch:\n        max_export_batch_size: 0\n        exporter:\n          console:\n", false},
		{"schedule_delay 0", head + "tracer_provider:\n  processors:\n    - batch:\n        schedule_delay: 0\n        exporter:\n          console:\n", true},
		{"negative attribute limit", head + "attribute_limits:\n  attribute_count_limit: -1\n", false},
		{"span limit negative", tp + "  limits:\n    event_count_limit: -5\n", false},
		{"disabled as string", head + "disabled: \"yes\"\n", false},
		{"distribution free-form", head + "distribution:\n  acme:\n    anything:\n      goes: [1, 2]\n", true},
		{"distribution entry not a map", head + "distribution:\n  acme: 5\n", false},
		{"distribution empty", head + "distribution: {}\n", false},
		{"instrumentation language free-form", head + "instrumentation/development:\n  java:\n    spring:\n      enabled: true\n", true},
		{"instrumentation unknown language", head + "instrumentation/development:\n  cobol:\n    x: {}\n", false},
		{"instrumentation general unknown key", head + "instrumentation/development:\n  general:\n    peer: {}\n", false},
		{"attribute without type but array", head + "resource:\n  attributes:\n    - name: a\n      value: [1, 2]\n", true},
		{"attribute mixed array", head + "resource:\n  attributes:\n    - name: a\n      value: [1, x]\n", false},
		{"attribute empty array", head + "resource:\n  attributes:\n    - name: a\n      value: []\n", false},
		{"attribute int_array with doubles", head + "resource:\n  attributes:\n    - name: a\n      value: [1.5]\n      type: int_array\n", false},
		{"attribute unknown type", head + "resource:\n  attributes:\n    - name: a\n      value: x\n      type: uuid\n", false},
		{"attribute without name", head + "resource:\n  attributes:\n    - value: x\n", false},
		{"instrument_type unknown", head + "meter_provider:\n  readers:\n    - periodic:\n        exporter:\n          console:\n  views:\n    - selector:\n        instrument_type: summary\n      stream: {}\n", false},
		{"aggregation two kinds", head + "meter_provider:\n  readers:\n    - periodic:\n        exporter:\n          console:\n  views:\n    - selector: {}\n      stream:\n        aggregation:\n          sum:\n          drop:\n", false},
		{"max_scale too large", head + "meter_provider:\n  readers:\n    - periodic:\n        exporter:\n          console:\n  views:\n    - selector: {}\n      stream:\n        aggregation:\n          base2_exponential_bucket_histogram:\n            max_scale: 21\n", false},
		{"reader with two kinds", head + "meter_provider:\n  readers:\n    - periodic:\n        exporter:\n          console:\n      pull:\n        exporter:\n          prometheus/development:\n", false},
		{"pull reader with push exporter", head + "meter_provider:\n  readers:\n    - pull:\n        exporter:\n          console:\n", false},
		{"periodic reader without exporter", head + "meter_provider:\n  readers:\n    - periodic:\n        interval: 1000\n", false},
		{"prometheus translation strategy", head + "meter_provider:\n  readers:\n    - pull:\n        exporter:\n          prometheus/development:\n            translation_strategy: no_translation/development\n", true},
		{"default_histogram_aggregation unknown", head + "meter_provider:\n  readers:\n    - periodic:\n        exporter:\n          console:\n            default_histogram_aggregation: summary\n", false},
		{"exemplar_filter trace_based", head + "meter_provider:\n  exemplar_filter: trace_based\n  readers:\n    - periodic:\n        exporter:\n          console:\n", true},
		{"tracer configurator entry without config", tp + "  tracer_configurator/development:\n    tracers:\n      - name: x\n", false},
		{"logger minimum_severity unknown", head + "logger_provider:\n  processors:\n    - simple:\n        exporter:\n          console:\n  logger_configurator/development:\n    default_config:\n      minimum_severity: loud\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sch.Validate(decodeYAML(t, []byte(tt.doc)))
			if tt.ok && err != nil {
				t.Fatalf("expected acceptance, got:\n%v\ndocument:\n%s", err, tt.doc)
			}
			if !tt.ok && err == nil {
				t.Fatalf("expected rejection, document:\n%s", tt.doc)
			}
		})
	}
}

// TestDevelopmentProperties makes sure every "/development" property that the
// v1.0.0 data model defines is a known property (and no others are).
func TestDevelopmentProperties(t *testing.T) {
	want := []string{
		"/properties/instrumentation/development",
		"/$defs/Resource/properties/detection/development",
		"/$defs/TracerProvider/properties/tracer_configurator/development",
		"/$defs/MeterProvider/properties/meter_configurator/development",
		"/$defs/LoggerProvider/properties/logger_configurator/development",
		"/$defs/Sampler/properties/composite/development",
		"/$defs/Sampler/properties/jaeger_remote/development",
		"/$defs/Sampler/properties/probability/development",
		"/$defs/SpanExporter/properties/otlp_file/development",
		"/$defs/LogRecordExporter/properties/otlp_file/development",
		"/$defs/PushMetricExporter/properties/otlp_file/development",
		"/$defs/PullMetricExporter/properties/prometheus/development",
		"/$defs/ExperimentalPrometheusMetricExporter/properties/without_target_info/development",
	}
	data, _ := Get("otel")
	var root map[string]any
	if err := json.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	var got []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if strings.HasSuffix(path, "/properties") && strings.HasSuffix(k, "/development") {
					got = append(got, path+"/"+k)
				}
				walk(path+"/"+k, e)
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s/%d", path, i), e)
			}
		}
	}
	walk("", root)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("/development properties differ\n got: %q\nwant: %q", got, want)
	}
}

// TestObjectsAreClosed walks otel.schema.json and checks that every object
// type declares additionalProperties or unevaluatedProperties, and that only
// the free-form maps of the data model allow extra keys.
func TestObjectsAreClosed(t *testing.T) {
	freeForm := map[string]bool{
		"/$defs/Distribution":                                                     true,
		"/$defs/Distribution/additionalProperties":                                true,
		"/$defs/ExperimentalLanguageSpecificInstrumentation":                      true,
		"/$defs/ExperimentalLanguageSpecificInstrumentation/additionalProperties": true,
	}
	data, _ := Get("otel")
	var root any
	if err := json.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	objects := 0
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if isObjectType(x["type"]) {
				objects++
				ap, hasAP := x["additionalProperties"]
				up, hasUP := x["unevaluatedProperties"]
				switch {
				case !hasAP && !hasUP && !freeForm[path]:
					t.Errorf("%s: object schema without additionalProperties/unevaluatedProperties", path)
				case hasAP && ap != false && !freeForm[path]:
					t.Errorf("%s: additionalProperties = %v, want false", path, ap)
				case hasUP && up != false && !freeForm[path]:
					t.Errorf("%s: unevaluatedProperties = %v, want false", path, up)
				}
			}
			for k, e := range x {
				walk(path+"/"+k, e)
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s/%d", path, i), e)
			}
		}
	}
	walk("", root)
	if objects < 50 {
		t.Errorf("only %d object schemas found; walker broken?", objects)
	}
}

func isObjectType(t any) bool {
	switch x := t.(type) {
	case string:
		return x == "object"
	case []any:
		return slices.Contains(x, any("object"))
	}
	return false
}

// envRefRE matches "$$" (an escaped dollar) and ${VAR}, ${env:VAR},
// ${VAR:-default} references as used by the declarative config spec.
var envRefRE = regexp.MustCompile(`\$\$|\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}`)

// substituteDefaults replaces each environment reference by its default
// value, or by nothing when it has none.
func substituteDefaults(s string) string {
	return envRefRE.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		return envRefRE.FindStringSubmatch(m)[2]
	})
}

func TestSubstituteDefaults(t *testing.T) {
	tests := map[string]string{
		"a: ${X}":                     "a: ",
		"a: ${X:-5}":                  "a: 5",
		"a: ${env:X:-http://h:1}/v1":  "a: http://h:1/v1",
		"a: $${X}":                    "a: ${X}",
		"a: ${X:-tracecontext,b3}":    "a: tracecontext,b3",
		"a: plain $ sign and ${1BAD}": "a: plain $ sign and ${1BAD}",
	}
	for in, want := range tests {
		if got := substituteDefaults(in); got != want {
			t.Errorf("substituteDefaults(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestUpstreamExamples validates the official example files of the
// opentelemetry-configuration v1.0.0 release, which live outside this
// module's folder in shared/conformance/upstream-v1.0.
func TestUpstreamExamples(t *testing.T) {
	dir := filepath.Join("..", "..", "shared", "conformance", "upstream-v1.0")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("upstream example folder %s not available (%v); skipping conformance check", dir, err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"otel-getting-started.yaml", "otel-sdk-config.yaml", "otel-sdk-migration-config.yaml"} {
		if !slices.Contains(files, filepath.Join(dir, want)) {
			t.Errorf("expected upstream example %s in %s", want, dir)
		}
	}
	sch := compile(t, "otel")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			doc := decodeYAML(t, []byte(substituteDefaults(string(raw))))
			if err := sch.Validate(doc); err != nil {
				t.Fatalf("upstream example rejected:\n%v", err)
			}
		})
	}
}
