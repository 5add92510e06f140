package otelconfig

import (
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

func mapLookup(m map[string]string) LookupFunc {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// TestSubstitution covers each rule of the data model's substitution, on
// nodes: the value's text and the type YAML gives it afterwards.
func TestSubstitution(t *testing.T) {
	env := map[string]string{
		"STR":     "hello",
		"NUM":     "42",
		"FLOAT":   "0.25",
		"BOOL":    "true",
		"EMPTY":   "",
		"COLON":   "a: b",
		"HASH":    "value # not a comment",
		"QUOTE":   `say "hi"`,
		"NEWLINE": "line1\nline2",
		"STAR":    "*anchor",
		"DASH":    "- item",
		"NESTED":  "${STR}",
		"DOLLARS": "$$",
		"BRACES":  "{a: 1}",
	}
	tests := []struct {
		name    string
		yaml    string // the value as written after "v: "
		want    string
		wantTag string
		wantErr string
	}{
		{name: "plain reference", yaml: "${STR}", want: "hello", wantTag: "!!str"},
		{name: "env prefix", yaml: "${env:STR}", want: "hello", wantTag: "!!str"},
		{name: "inside text", yaml: "pre-${STR}-post", want: "pre-hello-post", wantTag: "!!str"},
		{name: "two references", yaml: "${STR}${NUM}", want: "hello42", wantTag: "!!str"},
		{name: "default when unset", yaml: "${UNSET:-fallback}", want: "fallback", wantTag: "!!str"},
		{name: "default ignored when set", yaml: "${STR:-fallback}", want: "hello", wantTag: "!!str"},
		{name: "default when empty", yaml: "${EMPTY:-fallback}", want: "fallback", wantTag: "!!str"},
		{name: "default with colon and url", yaml: "${UNSET:-http://localhost:4318}/v1/traces", want: "http://localhost:4318/v1/traces", wantTag: "!!str"},
		{name: "env prefix with default", yaml: "${env:UNSET:-d}", want: "d", wantTag: "!!str"},
		{name: "unset without default is null", yaml: "${UNSET}", want: "", wantTag: "!!null"},
		{name: "empty is null", yaml: "${EMPTY}", want: "", wantTag: "!!null"},
		{name: "quoted unset is empty string", yaml: `"${UNSET}"`, want: "", wantTag: "!!str"},
		{name: "type decided after: int", yaml: "${NUM}", want: "42", wantTag: "!!int"},
		{name: "type decided after: float", yaml: "${FLOAT}", want: "0.25", wantTag: "!!float"},
		{name: "type decided after: bool", yaml: "${BOOL}", want: "true", wantTag: "!!bool"},
		{name: "quoted stays string", yaml: `"${NUM}"`, want: "42", wantTag: "!!str"},
		{name: "single quoted stays string", yaml: `'${BOOL}'`, want: "true", wantTag: "!!str"},
		{name: "explicit tag kept", yaml: `!!str ${NUM}`, want: "42", wantTag: "!!str"},
		{name: "default decides type", yaml: "${UNSET:-7}", want: "7", wantTag: "!!int"},
		{name: "no structure from colon-space", yaml: "${COLON}", want: "a: b", wantTag: "!!str"},
		{name: "no comment from hash", yaml: "${HASH}", want: "value # not a comment", wantTag: "!!str"},
		{name: "double quote kept", yaml: "${QUOTE}", want: `say "hi"`, wantTag: "!!str"},
		{name: "newline kept in one string", yaml: "${NEWLINE}", want: "line1\nline2", wantTag: "!!str"},
		{name: "star is no alias", yaml: "${STAR}", want: "*anchor", wantTag: "!!str"},
		{name: "dash is no list", yaml: "${DASH}", want: "- item", wantTag: "!!str"},
		{name: "braces are no mapping", yaml: "${BRACES}", want: "{a: 1}", wantTag: "!!str"},
		{name: "not recursive", yaml: "${NESTED}", want: "${STR}", wantTag: "!!str"},
		{name: "value's $$ not unescaped", yaml: "${DOLLARS}", want: "$$", wantTag: "!!str"},
		{name: "escape $$", yaml: "cost $$5", want: "cost $5", wantTag: "!!str"},
		{name: "escaped reference is literal", yaml: "$${STR}", want: "${STR}", wantTag: "!!str"},
		{name: "$$$ then reference", yaml: "$$${STR}", want: "$hello", wantTag: "!!str"},
		{name: "lone dollar kept", yaml: "a$b", want: "a$b", wantTag: "!!str"},
		{name: "trailing dollar kept", yaml: "a$", want: "a$", wantTag: "!!str"},
		{name: "invalid name", yaml: "${1ABC}", wantErr: "variable names"},
		{name: "empty name", yaml: "${}", wantErr: "empty variable name"},
		{name: "unterminated", yaml: "${STR", wantErr: "unterminated"},
		{name: "unknown prefix", yaml: "${file:STR}", wantErr: "unsupported prefix"},
		{name: "dash in name", yaml: "${A-B}", wantErr: "variable names"},
		{name: "space in name", yaml: `"${A B}"`, wantErr: "variable names"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := Parse("t.yaml", []byte("v: "+tt.yaml+"\n"), Limits{})
			if d.Root == nil {
				t.Fatalf("parse: %v", d.Diagnostics)
			}
			d.SubstituteEnv(mapLookup(env), true)
			n := mapGet(d.Root, "v")
			if tt.wantErr != "" {
				if len(d.Diagnostics) != 1 || d.Diagnostics[0].Code != CodeSubstitution || !strings.Contains(d.Diagnostics[0].Message, tt.wantErr) {
					t.Fatalf("diagnostics = %v, want one %s error containing %q", d.Diagnostics, CodeSubstitution, tt.wantErr)
				}
				if d.Diagnostics[0].Line != 1 || d.Diagnostics[0].Column < 4 {
					t.Errorf("position = %d:%d, want line 1, column at the reference", d.Diagnostics[0].Line, d.Diagnostics[0].Column)
				}
				return
			}
			if n.Value != tt.want || n.ShortTag() != tt.wantTag {
				t.Errorf("got %q (%s), want %q (%s)", n.Value, n.ShortTag(), tt.want, tt.wantTag)
			}
			// The printed form must read back as the same value and type:
			// a substituted value never becomes structure.
			out, err := yaml.Marshal(d.Root)
			if err != nil {
				t.Fatal(err)
			}
			var back yaml.Node
			if err := yaml.Unmarshal(out, &back); err != nil {
				t.Fatalf("re-read %q: %v", out, err)
			}
			bn := mapGet(back.Content[0], "v")
			if bn.Kind != yaml.ScalarNode || bn.Value != tt.want || bn.ShortTag() != tt.wantTag {
				t.Errorf("printed %q reads back as %q (%s)", out, bn.Value, bn.ShortTag())
			}
		})
	}
}

func TestSubstitutionNeverTouchesKeys(t *testing.T) {
	d := Parse("t.yaml", []byte("${STR}: ${STR}\n"), Limits{})
	d.SubstituteEnv(mapLookup(map[string]string{"STR": "x"}), true)
	if k := d.Root.Content[0].Value; k != "${STR}" {
		t.Errorf("key = %q, want it unchanged", k)
	}
	if v := d.Root.Content[1].Value; v != "x" {
		t.Errorf("value = %q, want x", v)
	}
}

func TestSubstitutionRecordsOrigin(t *testing.T) {
	d := Parse("o.yaml", []byte("a: 1\nb: ${X}-${Y:-y}\n"), Limits{})
	d.SubstituteEnv(mapLookup(map[string]string{"X": "x"}), true)
	o := d.OriginOf(mapGet(d.Root, "b"))
	if o.Kind != OriginSubstitution || o.Line != 2 || strings.Join(o.Vars, ",") != "X,Y" {
		t.Errorf("origin = %+v", o)
	}
	if got := o.String(); got != "${X}, ${Y} at o.yaml:2" {
		t.Errorf("origin string = %q", got)
	}
	if o := d.OriginOf(mapGet(d.Root, "a")); o.Kind != OriginFile || o.Line != 1 {
		t.Errorf("untouched origin = %+v", o)
	}
}

func TestUnsetVariableWarning(t *testing.T) {
	d := Parse("w.yaml", []byte("a: ${MY_TOKEN}\nb: ${OTEL_SOMETHING}\nc: ${WITH:-default}\n"), Limits{})
	d.SubstituteEnv(mapLookup(nil), true)
	if len(d.Diagnostics) != 1 || d.Diagnostics[0].Code != CodeEnvUnset || d.Diagnostics[0].Line != 1 || d.Diagnostics[0].Severity != SeverityWarning {
		t.Fatalf("diagnostics = %v, want one env-unset warning on line 1 (OTEL_* references are optional by design)", d.Diagnostics)
	}
}

// TestSubstitutionErrorPosition: an invalid reference is pointed at when
// the value is written as is on one line; otherwise the position is the
// scalar's start, never a column past the end of a line.
func TestSubstitutionErrorPosition(t *testing.T) {
	for _, tt := range []struct {
		name, src string
		line, col int
	}{
		{"plain", "x: ab ${\n", 1, 7},
		{"after unicode", "x: é ${\n", 1, 6},
		{"folded plain", "k: aaaaaaa\n b ${\n", 1, 4},
		{"quoted with an escape", "x: \"\\tb ${\"\n", 1, 4},
		{"crlf", "a: 1\r\nx: ab ${\r\n", 2, 7},
		{"lone cr", "a: 1\rx: ab ${\r", 2, 7},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := Parse("f.yaml", []byte(tt.src), Limits{})
			d.SubstituteEnv(mapLookup(nil), true)
			if len(d.Diagnostics) != 1 || d.Diagnostics[0].Line != tt.line || d.Diagnostics[0].Column != tt.col {
				t.Fatalf("diagnostics = %v, want one at %d:%d", d.Diagnostics, tt.line, tt.col)
			}
		})
	}
}
