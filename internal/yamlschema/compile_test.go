package yamlschema

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/otelcfg/otelcfg/schemas"
	yaml "go.yaml.in/yaml/v3"
)

// TestEmbeddedSchemasCompile: every schema otelcfg ships uses only
// keywords this package implements (Compile refuses any other).
func TestEmbeddedSchemasCompile(t *testing.T) {
	names := schemas.Names()
	if len(names) < 3 {
		t.Fatalf("schemas.Names() = %v", names)
	}
	for _, name := range names {
		b, _ := schemas.Get(name)
		if _, err := Compile(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCompileRefuses(t *testing.T) {
	cases := []struct{ name, schema, want string }{
		{"$ref to itself", `{"$ref": "#"}`, "$ref cycle"},
		{"$ref cycle through anyOf", `{"$defs": {"A": {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/A"}]}}, "$ref": "#/$defs/A"}`, "$ref cycle"},
		{"unknown keyword", `{"type": "object", "unevaluatedProperties": false}`, `keyword "unevaluatedProperties" is not supported`},
		{"unknown keyword deep", `{"$defs": {"A": {"properties": {"x": {"format": "uri"}}}}}`, `#/$defs/A/properties/x: keyword "format"`},
		{"not", `{"not": {"type": "string"}}`, `keyword "not"`},
		{"uniqueItems", `{"items": {"uniqueItems": true}}`, `#/items: keyword "uniqueItems"`},
		{"other draft", `{"$schema": "http://json-schema.org/draft-07/schema#"}`, "only draft 2020-12"},
		{"nested $schema", `{"properties": {"a": {"$schema": "x"}}}`, "$schema is only supported at the root"},
		{"nested $id", `{"$defs": {"a": {"$id": "x"}}}`, "$id is only supported at the root"},
		{"remote ref", `{"$ref": "other.json#/a"}`, "only references within the same document"},
		{"anchor ref", `{"$ref": "#a"}`, "anchors are not supported"},
		{"dangling ref", `{"$ref": "#/$defs/Missing"}`, "no schema at #/$defs/Missing"},
		{"bad regexp", `{"pattern": "(["}`, "root: pattern: error parsing regexp"},
		{"bad pattern property", `{"patternProperties": {"(": true}}`, "error parsing regexp"},
		{"object const", `{"const": {"a": 1}}`, "only strings, numbers, booleans and null"},
		{"array enum", `{"enum": [[1]]}`, "only strings, numbers, booleans and null"},
		{"unknown type", `{"type": "int"}`, `unknown type "int"`},
		{"negative count", `{"minItems": -1}`, "non-negative integer"},
		{"fractional count", `{"minLength": 1.5}`, "non-negative integer"},
		{"twice", `{"type": "string", "type": "object"}`, "appears twice"},
		{"empty anyOf", `{"anyOf": []}`, "must not be empty"},
		{"not a schema", `{"items": 3}`, "must be an object or a boolean"},
		{"bad JSON", `{"type": "string",}`, "schema JSON"},
		{"trailing data", `{} {}`, "unexpected data"},
		{"unterminated", `{"description": "abc`, "unterminated string"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Compile([]byte(c.schema))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Compile(%s) = %v, want an error containing %q", c.schema, err, c.want)
			}
		})
	}
}

// TestStrings: the scanner decodes strings as encoding/json does.
func TestStrings(t *testing.T) {
	for _, s := range []string{
		`"plain"`, `"a\"b"`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\u0000-\u0008\u001f"`, `"\u00fc"`,
		`"\ud83d\ude00"`, `"\ud83d"`, `"\ude00x"`, `"µs"`, `"^[^\u0000-\u0008\n-\u001f\u007f]*$"`,
	} {
		var want string
		if err := json.Unmarshal([]byte(s), &want); err != nil {
			t.Fatal(err)
		}
		p := parser{s: s}
		got, err := p.str()
		if err != nil || got != want || p.pos != len(s) {
			t.Errorf("str(%s) = %q, %v (pos %d), want %q", s, got, err, p.pos, want)
		}
	}
}

// TestLocations: errors name the schema object whose keyword failed, and
// the value's path in the document.
func TestLocations(t *testing.T) {
	s, err := Compile([]byte(`{
		"$defs": {"Port": {"type": "integer", "minimum": 1, "description": "a \"port\""}},
		"type": "object",
		"properties": {"a/b": {"type": "array", "items": {"$ref": "#/$defs/Port"}}},
		"additionalProperties": false
	}`))
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal([]byte("a/b: [1, 0]\nc: 1\n"), &root); err != nil {
		t.Fatal(err)
	}
	doc := root.Content[0]
	if s.Valid(doc) {
		t.Fatal("Valid = true")
	}
	e := s.Validate(doc)
	if e == nil || e.Kind != KindGroup || len(e.Causes) != 2 {
		t.Fatalf("Validate = %+v, want a group of two errors", e)
	}
	min, addl := e.Causes[0], e.Causes[1]
	if min.Kind != KindMinimum || strings.Join(min.InstanceLocation, "|") != "a/b|1" || min.Schema.Location() != "/$defs/Port" || min.Bound.String() != "1/1" {
		t.Errorf("first error: %v at %q, schema %q, bound %v", min.Kind, min.InstanceLocation, min.Schema.Location(), min.Bound)
	}
	if addl.Kind != KindAdditionalProperties || len(addl.InstanceLocation) != 0 || strings.Join(addl.Names, ",") != "c" || strings.Join(addl.Schema.PropertyNames(), ",") != "a/b" {
		t.Errorf("second error: %v at %q, names %v, known %v", addl.Kind, addl.InstanceLocation, addl.Names, addl.Schema.PropertyNames())
	}
	if got := s.Root().prop("a/b").items.Location(); got != "/properties/a~1b/items" {
		t.Errorf("Location() = %q", got)
	}
}

func BenchmarkCompileOtel(b *testing.B) {
	data, _ := schemas.Get("otel")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Compile(data); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzCompile: the schema parser never panics, never accepts what is not
// JSON, and a schema it accepts checks documents without panicking.
func FuzzCompile(f *testing.F) {
	for _, name := range schemas.Names() {
		b, _ := schemas.Get(name)
		f.Add(b)
	}
	for _, s := range []string{`{}`, `{"type":"object","properties":{"a":{"type":"integer","minimum":1}}}`,
		`{"$defs":{"A":{"type":"string","pattern":"^a"}},"$ref":"#/$defs/A"}`, `{"enum":[1,"a",null,true,{"k":[]}]}`,
		`{"description":"\u00e9\ud83d\ude00"}`, `{"type":["string","null"],"minLength":2}`, `[]`, `{"a":`} {
		f.Add([]byte(s))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("a: 1\nb: [x, {c: null}]\n"), &doc); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Compile(data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted what is not JSON: %q", data)
		}
		_ = s.Validate(doc.Content[0])
	})
}
