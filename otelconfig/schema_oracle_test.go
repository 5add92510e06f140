package otelconfig

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/otelcfg/otelcfg/internal/yamlschema"
	"github.com/otelcfg/otelcfg/schemas"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// The schema checker (internal/yamlschema) against a general-purpose JSON
// Schema library, the oracle: on every sample document, and under
// fuzzing, both must give the same verdict and the same errors.

var (
	oracleOnce    sync.Once
	oracleSchemas map[string]*jsonschema.Schema
	oracleErr     error
)

func oracle(t testing.TB, name string) *jsonschema.Schema {
	t.Helper()
	oracleOnce.Do(func() {
		oracleSchemas = map[string]*jsonschema.Schema{}
		for _, n := range schemas.Names() {
			b, _ := schemas.Get(n)
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				oracleErr = err
				return
			}
			url := "mem://schemas/" + n + ".schema.json"
			c := jsonschema.NewCompiler()
			c.DefaultDraft(jsonschema.Draft2020)
			if err := c.AddResource(url, doc); err != nil {
				oracleErr = err
				return
			}
			if oracleSchemas[n], err = c.Compile(url); err != nil {
				oracleErr = err
				return
			}
		}
	})
	if oracleErr != nil {
		t.Fatal(oracleErr)
	}
	return oracleSchemas[name]
}

// leafKey is what both checkers must agree on for each error.
type leafKey struct {
	loc    string // instance location, a JSON pointer
	kind   string
	schema string // schema location, a JSON pointer
	detail string
}

func (k leafKey) String() string {
	return fmt.Sprintf("%s %s (schema %s) %s", k.loc, k.kind, k.schema, k.detail)
}

// oracleLeaves flattens the oracle's tree like leaves does. select_ picks
// anyOf/oneOf branches as leaves does; without it every error of every
// branch is kept, and the anyOf/oneOf errors themselves too.
func oracleLeaves(e *jsonschema.ValidationError, select_ bool) []leafKey {
	var walk func(e *jsonschema.ValidationError, prefix []string) []leafKey
	walk = func(e *jsonschema.ValidationError, prefix []string) []leafKey {
		loc := append(slices.Clone(prefix), e.InstanceLocation...)
		if len(e.Causes) == 0 {
			return []leafKey{oracleKey(e, loc)}
		}
		switch k := e.ErrorKind.(type) {
		case *kind.PropertyNames:
			// The oracle reports what is wrong with a key at the document's
			// root (its causes have an empty location), and the location
			// of the PropertyNames error itself shares its backing array
			// with the validator's, which later keys overwrite; yamlschema
			// reports it at the key. So only the key's name is compared.
			var out []leafKey
			for _, c := range e.Causes {
				for _, l := range walk(c, nil) {
					l.loc = keyLoc(k.Property)
					out = append(out, l)
				}
			}
			return out
		case *kind.OneOf, *kind.AnyOf:
			if !select_ {
				out := []leafKey{oracleKey(e, loc)}
				for _, c := range e.Causes {
					out = append(out, walk(c, prefix)...)
				}
				return out
			}
			best, bestDepth := []leafKey(nil), -1
			for _, c := range e.Causes {
				ls := walk(c, prefix)
				depth := 0
				for _, l := range ls {
					if l.kind != "type" {
						depth = max(depth, strings.Count(l.loc, "/")+1)
					}
				}
				if depth > bestDepth {
					best, bestDepth = ls, depth
				}
			}
			if bestDepth <= len(loc) {
				return []leafKey{oracleKey(e, loc)}
			}
			return best
		}
		var out []leafKey
		for _, c := range e.Causes {
			out = append(out, walk(c, prefix)...)
		}
		return out
	}
	return walk(e, nil)
}

func oracleKey(e *jsonschema.ValidationError, loc []string) leafKey {
	_, frag, _ := strings.Cut(e.SchemaURL, "#")
	k := leafKey{loc: pointerOf(loc), schema: frag}
	switch x := e.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		k.kind, k.detail = "additionalProperties", strings.Join(sorted(x.Properties), ",")
	case *kind.Required:
		k.kind, k.detail = "required", strings.Join(x.Missing, ",")
	case *kind.Type:
		k.kind, k.detail = "type", strings.Join(x.Want, ",")
	case *kind.Enum:
		k.kind, k.detail = "enum", fmt.Sprint(x.Want...)
	case *kind.Const:
		k.kind, k.detail = "const", fmt.Sprint(x.Want)
	case *kind.Minimum:
		k.kind, k.detail = "minimum", ratString(x.Want)
	case *kind.Maximum:
		k.kind, k.detail = "maximum", ratString(x.Want)
	case *kind.ExclusiveMinimum:
		k.kind, k.detail = "exclusiveMinimum", ratString(x.Want)
	case *kind.ExclusiveMaximum:
		k.kind, k.detail = "exclusiveMaximum", ratString(x.Want)
	case *kind.MinProperties:
		k.kind, k.detail = "minProperties", fmt.Sprint(x.Got, x.Want)
	case *kind.MaxProperties:
		k.kind, k.detail = "maxProperties", fmt.Sprint(x.Got, x.Want)
	case *kind.MinItems:
		k.kind, k.detail = "minItems", fmt.Sprint(x.Got, x.Want)
	case *kind.MinLength:
		k.kind, k.detail = "minLength", fmt.Sprint(x.Got, x.Want)
	case *kind.Pattern:
		k.kind, k.detail = "pattern", x.Want
	case *kind.AnyOf:
		k.kind = "anyOf"
	case *kind.OneOf:
		k.kind = "oneOf"
	case *kind.FalseSchema:
		k.kind = "false"
	default:
		k.kind = fmt.Sprintf("%T", x)
	}
	return k
}

func ourLeaves(e *yamlschema.Error, select_ bool) []leafKey {
	var ls []*yamlschema.Error
	if select_ {
		ls = leaves(e)
	} else {
		var walk func(e *yamlschema.Error)
		walk = func(e *yamlschema.Error) {
			if e.Kind != yamlschema.KindGroup {
				ls = append(ls, e)
			}
			for _, c := range e.Causes {
				walk(c)
			}
		}
		walk(e)
	}
	out := make([]leafKey, 0, len(ls))
	for _, e := range ls {
		k := leafKey{loc: pointerOf(e.InstanceLocation), kind: e.Kind.String(), schema: e.Schema.Location()}
		if e.Key {
			k.loc = keyLoc(e.InstanceLocation[len(e.InstanceLocation)-1])
		}
		switch e.Kind {
		case yamlschema.KindAdditionalProperties:
			k.detail = strings.Join(sorted(e.Names), ",")
		case yamlschema.KindRequired, yamlschema.KindType:
			k.detail = strings.Join(e.Names, ",")
		case yamlschema.KindEnum:
			k.detail = fmt.Sprint(e.Values...)
		case yamlschema.KindConst:
			k.detail = fmt.Sprint(e.Value)
		case yamlschema.KindMinimum, yamlschema.KindMaximum, yamlschema.KindExclusiveMinimum, yamlschema.KindExclusiveMaximum:
			k.detail = ratString(e.Bound)
		case yamlschema.KindMinProperties, yamlschema.KindMaxProperties, yamlschema.KindMinItems, yamlschema.KindMinLength:
			k.detail = fmt.Sprint(e.Got, e.Want)
		case yamlschema.KindPattern:
			k.detail = e.Pattern
		}
		out = append(out, k)
	}
	return out
}

// keyLoc stands for the location of a property name that failed
// propertyNames (see oracleLeaves).
func keyLoc(name string) string { return ".../" + escapePointer(name) + " (key)" }

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func keySet(ks []leafKey) []string {
	var out []string
	for _, k := range ks {
		out = append(out, k.String())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// agree checks one document against one schema with both checkers.
func agree(t testing.TB, name string, d *Document) {
	t.Helper()
	if d.Root == nil {
		return
	}
	ours, err := LoadSchema(name)
	if err != nil {
		t.Fatal(err)
	}
	theirs := oracle(t, name)
	oerr := theirs.Validate(toJSONValue(d.Root))
	yerr := ours.compiled.Validate(d.Root)
	if (oerr == nil) != (yerr == nil) {
		t.Fatalf("schema %s: the oracle says valid=%v, yamlschema says valid=%v", name, oerr == nil, yerr == nil)
	}
	if ours.compiled.Valid(d.Root) != (yerr == nil) {
		t.Fatalf("schema %s: Valid and Validate disagree", name)
	}
	if oerr == nil {
		return
	}
	var ve *jsonschema.ValidationError
	if !errors.As(oerr, &ve) {
		t.Fatalf("schema %s: oracle: %v", name, oerr)
	}
	for _, sel := range []bool{false, true} {
		want, got := keySet(oracleLeaves(ve, sel)), keySet(ourLeaves(yerr, sel))
		if !slices.Equal(want, got) {
			t.Fatalf("schema %s, selected branches only %v: errors differ\noracle:\n  %s\nyamlschema:\n  %s",
				name, sel, strings.Join(want, "\n  "), strings.Join(got, "\n  "))
		}
	}
}

// conformanceGlob finds the official example files, next to the
// repository when they are around.
const conformanceGlob = "../../shared/conformance/*/*.yaml"

// sampleFiles are every YAML file the repository's tests use, plus the
// examples and the official conformance files when they are around.
func sampleFiles(t testing.TB) []string {
	var files []string
	for _, g := range []string{
		"../schemas/testdata/*.yaml", "testdata/*.yaml", "../internal/cli/testdata/*.yaml",
		"../examples/*.yaml", conformanceGlob,
	} {
		m, err := filepath.Glob(g)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	return files
}

func TestSchemaCheckerAgreesWithOracle(t *testing.T) {
	files := sampleFiles(t)
	if m, _ := filepath.Glob(conformanceGlob); len(m) == 0 {
		t.Run("conformance", func(t *testing.T) {
			t.Skip("no " + conformanceGlob + ": the official conformance files are not part of this run")
		})
	}
	if len(files) < 40 {
		t.Fatalf("only %d sample files", len(files))
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			// Every document against every schema: a file of the wrong
			// kind is a good source of errors.
			docs := []*Document{Parse(f, src, Limits{})}
			if cfg, _ := Load(WithBytes(f, src), WithoutEnv()); cfg != nil && cfg.Document != nil {
				docs = append(docs, cfg.Document) // after substitution
			}
			for _, d := range docs {
				for _, name := range schemas.Names() {
					agree(t, name, d)
				}
			}
		})
	}
}

// FuzzSchemaAgrees: on any document, yamlschema and the oracle give the
// same verdict and the same errors, for every embedded schema.
func FuzzSchemaAgrees(f *testing.F) {
	for _, file := range sampleFiles(f) {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("file_format: \"1.0\"\nresource:\n  attributes:\n    - {name: a, type: int, value: 1.5}\n"))
	f.Add([]byte("models: [{name: a, api_base: ftp://x, extra_headers: {\"a b\": 1}}]\n"))
	f.Add([]byte("listen: 1e3\nmax_body_bytes: 0x10\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		d := Parse("fuzz.yaml", src, Limits{})
		for _, name := range schemas.Names() {
			agree(t, name, d)
		}
	})
}

// TestSchemaScalarsAgree puts awkward YAML scalars where the schemas check
// types, bounds, enums, patterns and conditions: the scalar conversion is
// where two checkers are most likely to part.
func TestSchemaScalarsAgree(t *testing.T) {
	scalars := []string{
		"0", "-0", "1", "-1", "007", "0x10", "0o17", "1_000", "+5", "1.0", "1.5", "-1.5", "0.0",
		"1e3", "1E-3", "1e400", "-1e400", ".inf", "-.inf", ".nan", "9223372036854775807",
		"9223372036854775808", "-9223372036854775809", "99999999999999999999", "65535", "65536",
		"true", "false", "True", "yes", "no", "on", "null", "~", "", `""`, `"5"`, "'1.0'",
		"!!int 5", "!!float 5", "!!str 5", "!!bool true", "!!int '0x1f'", "!!float '.5'", "!!null x",
		"2001-12-14", "!!binary aGk=", "info", "INFO", "warn2", "[]", "[1]", "{}", "{a: 1}",
		"1.0.1", `"1.0"`, "1.10", "\"\\t\"", "ünï", "127.0.0.1:99999", ":8080",
	}
	templates := map[string][]string{
		"otel": {
			"file_format: %s\n",
			"file_format: \"1.0\"\nlog_level: %s\n",
			"file_format: \"1.0\"\ndisabled: %s\n",
			"file_format: \"1.0\"\ntracer_provider:\n  processors:\n    - batch:\n        max_queue_size: %s\n        exporter: {console: }\n",
			"file_format: \"1.0\"\ntracer_provider:\n  processors: [{simple: {exporter: {console: }}}]\n  sampler:\n    trace_id_ratio_based:\n      ratio: %s\n",
			"file_format: \"1.0\"\nresource:\n  attributes:\n    - name: a\n      value: %s\n      type: int\n",
			"file_format: \"1.0\"\nresource:\n  attributes:\n    - name: a\n      value: [%s]\n      type: double_array\n",
			"file_format: \"1.0\"\nresource:\n  attributes:\n    - name: a\n      value: %[1]s\n      type: %[1]s\n",
			"file_format: \"1.0\"\nmeter_provider:\n  readers:\n    - periodic:\n        interval: %s\n        exporter: {console: }\n",
		},
		"proxy": {
			"listen: %s\n",
			"models:\n  - name: %[1]s\n    api_base: %[1]s\n",
			"models: [{name: a, api_base: builtin:echo, extra_headers: {%[1]s: %[1]s}}]\n",
		},
		"interceptor": {
			"listen: %s\n",
			"target: %s\n",
		},
	}
	for name, ts := range templates {
		for _, tmpl := range ts {
			for _, s := range scalars {
				src := fmt.Sprintf(tmpl, s)
				d := Parse("scalar.yaml", []byte(src), Limits{})
				t.Run(name+"/"+src, func(t *testing.T) { agree(t, name, d) })
			}
		}
	}
}
