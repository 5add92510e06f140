package otelconfig

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync"

	"github.com/otelcfg/otelcfg/internal/yamlschema"
	"github.com/otelcfg/otelcfg/schemas"
	yaml "go.yaml.in/yaml/v3"
)

// Schema is a compiled embedded JSON Schema that checks a Document and
// reports every violation as a positioned Diagnostic.
type Schema struct {
	name     string
	compiled *yamlschema.Schema
}

var (
	schemaMu    sync.Mutex
	schemaCache = map[string]*Schema{}
)

// LoadSchema compiles the embedded schema of that name ("otel", "proxy",
// "interceptor"), once per process.
func LoadSchema(name string) (*Schema, error) {
	schemaMu.Lock()
	defer schemaMu.Unlock()
	if s, ok := schemaCache[name]; ok {
		return s, nil
	}
	b, ok := schemas.Get(name)
	if !ok {
		return nil, fmt.Errorf("otelconfig: no embedded schema %q (have %s)", name, strings.Join(schemas.Names(), ", "))
	}
	compiled, err := yamlschema.Compile(b)
	if err != nil {
		return nil, fmt.Errorf("otelconfig: schema %s: %w", name, err)
	}
	s := &Schema{name: name, compiled: compiled}
	schemaCache[name] = s
	return s, nil
}

// SchemaChecker checks a document against the named embedded schema.
func SchemaChecker(name string) Checker {
	return CheckerFunc(func(d *Document) {
		s, err := LoadSchema(name)
		if err != nil {
			d.errorf(CodeSchema, 0, 0, "", "%v", "", err)
			return
		}
		s.Check(d)
	})
}

// Check validates d.Root and adds one diagnostic per violation, at the
// position of the offending value (or key), with hints for unknown keys.
func (s *Schema) Check(d *Document) {
	if d.Root == nil {
		return
	}
	ve := s.compiled.Validate(d.Root)
	if ve == nil {
		return
	}
	// A newer 1.x file may use properties this build does not know:
	// those are warnings, not errors.
	unknownSev := SeverityError
	if v := mapGet(d.Root, "file_format"); v != nil && v.Value != "1.0" && strings.HasPrefix(v.Value, "1.") {
		unknownSev = SeverityWarning
	}
	seen := map[string]bool{}
	for _, leaf := range leaves(ve) {
		for _, diag := range describe(d, leaf, unknownSev) {
			key := diag.Path + "\x00" + diag.Code + "\x00" + diag.Message
			if seen[key] {
				continue
			}
			seen[key] = true
			d.Diagnostics = append(d.Diagnostics, diag)
		}
	}
}

// leaves flattens the error tree to its most specific causes. For oneOf
// and anyOf failures it keeps the causes of the branch that got furthest
// (the deepest instance location), so a typo inside one kind of exporter
// is not drowned by "is not the other kinds" noise.
func leaves(e *yamlschema.Error) []*yamlschema.Error {
	if len(e.Causes) == 0 {
		return []*yamlschema.Error{e}
	}
	switch e.Kind {
	case yamlschema.KindOneOf, yamlschema.KindAnyOf:
		best, bestDepth := []*yamlschema.Error(nil), -1
		for _, c := range e.Causes {
			ls := leaves(c)
			depth := 0
			for _, l := range ls {
				if l.Kind != yamlschema.KindType {
					depth = max(depth, len(l.InstanceLocation)+1)
				}
			}
			if depth > bestDepth {
				best, bestDepth = ls, depth
			}
		}
		if bestDepth <= len(e.InstanceLocation) {
			// Every branch failed right here (usually on type): one
			// summary error reads better than each branch's complaint.
			return []*yamlschema.Error{e}
		}
		return best
	}
	var out []*yamlschema.Error
	for _, c := range e.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

func pointerOf(loc []string) string {
	var b strings.Builder
	for _, t := range loc {
		b.WriteString("/" + escapePointer(t))
	}
	return b.String()
}

func describe(d *Document, e *yamlschema.Error, unknownSev Severity) []Diagnostic {
	ptr := pointerOf(e.InstanceLocation)
	node := Lookup(d.Root, ptr)
	what := describeNode(node)
	if e.Key {
		// propertyNames: the offending value is the key itself.
		parent := ptr[:strings.LastIndexByte(ptr, '/')]
		node = mapKey(Lookup(d.Root, parent), e.InstanceLocation[len(e.InstanceLocation)-1])
		what = "key " + describeNode(node)
	}
	line, col := 0, 0
	if node != nil {
		line, col = node.Line, node.Column
	}
	mk := func(sev Severity, code, path string, line, col int, msg, hint string) Diagnostic {
		if line == 0 {
			// Created by the overlay: point at the nearest ancestor
			// written in the file.
			line, col = d.nearestPosition(path)
		}
		return Diagnostic{Severity: sev, Code: code, File: d.Name, Line: line, Column: col, Path: path, Message: msg, Hint: d.envHint(path, hint)}
	}
	switch e.Kind {
	case yamlschema.KindAdditionalProperties:
		allowed := e.Schema.PropertyNames()
		var out []Diagnostic
		for _, p := range e.Names {
			kn := mapKey(node, p)
			l, c := line, col
			if kn != nil {
				l, c = kn.Line, kn.Column
			}
			hint := ""
			if m := Suggest(p, allowed); m != "" {
				hint = fmt.Sprintf("did you mean %q?", m)
			} else if len(allowed) > 0 && len(allowed) <= 12 {
				hint = "known keys here: " + strings.Join(allowed, ", ")
			}
			where := "at the top level"
			if ptr != "" {
				where = "in " + ptr
			}
			out = append(out, mk(unknownSev, CodeUnknownKey, ptr+"/"+escapePointer(p), l, c, fmt.Sprintf("unknown key %q %s", p, where), hint))
		}
		return out
	case yamlschema.KindRequired:
		var out []Diagnostic
		for _, m := range e.Names {
			out = append(out, mk(SeverityError, CodeRequired, ptr+"/"+escapePointer(m), line, col, fmt.Sprintf("missing required key %q", m), requiredHint(m)))
		}
		return out
	case yamlschema.KindType:
		return []Diagnostic{mk(SeverityError, CodeType, ptr, line, col, fmt.Sprintf("expected %s, found %s", strings.Join(e.Names, " or "), what), "")}
	case yamlschema.KindEnum:
		var want []string
		for _, w := range e.Values {
			if w != nil {
				want = append(want, fmt.Sprint(w))
			}
		}
		got := ""
		switch {
		case e.Key:
			got = e.InstanceLocation[len(e.InstanceLocation)-1]
		case node != nil:
			got = fmt.Sprint(toJSONValue(node))
		}
		hint := ""
		if m := Suggest(got, want); m != "" {
			hint = fmt.Sprintf("did you mean %q?", m)
		}
		return []Diagnostic{mk(SeverityError, CodeEnum, ptr, line, col, fmt.Sprintf("%s is not one of %s", what, strings.Join(want, ", ")), hint)}
	case yamlschema.KindConst:
		return []Diagnostic{mk(SeverityError, CodeEnum, ptr, line, col, fmt.Sprintf("%s must be %v", what, e.Value), "")}
	case yamlschema.KindMinimum:
		return []Diagnostic{mk(SeverityError, CodeBounds, ptr, line, col, fmt.Sprintf("%s is below the minimum %s", what, ratString(e.Bound)), "")}
	case yamlschema.KindMaximum:
		return []Diagnostic{mk(SeverityError, CodeBounds, ptr, line, col, fmt.Sprintf("%s is above the maximum %s", what, ratString(e.Bound)), "")}
	case yamlschema.KindExclusiveMinimum:
		return []Diagnostic{mk(SeverityError, CodeBounds, ptr, line, col, fmt.Sprintf("%s must be greater than %s", what, ratString(e.Bound)), "")}
	case yamlschema.KindExclusiveMaximum:
		return []Diagnostic{mk(SeverityError, CodeBounds, ptr, line, col, fmt.Sprintf("%s must be less than %s", what, ratString(e.Bound)), "")}
	case yamlschema.KindMinProperties:
		return []Diagnostic{mk(SeverityError, CodeRequired, ptr, line, col, fmt.Sprintf("%s needs a value: choose one of %s", lastToken(ptr), strings.Join(e.Schema.PropertyNames(), ", ")), "")}
	case yamlschema.KindMaxProperties:
		keys := ""
		if node != nil && node.Kind == yaml.MappingNode {
			var ks []string
			for i := 0; i < len(node.Content); i += 2 {
				ks = append(ks, node.Content[i].Value)
			}
			keys = " (" + strings.Join(ks, ", ") + ")"
		}
		return []Diagnostic{mk(SeverityError, CodeSchema, ptr, line, col, fmt.Sprintf("%s takes exactly one kind, found %d%s", lastToken(ptr), e.Got, keys), "split it into separate list entries")}
	case yamlschema.KindPattern:
		return []Diagnostic{mk(SeverityError, CodeSchema, ptr, line, col, fmt.Sprintf("%s does not match the pattern %s", what, e.Pattern), "")}
	case yamlschema.KindMinItems:
		return []Diagnostic{mk(SeverityError, CodeSchema, ptr, line, col, fmt.Sprintf("%s needs at least %d entries", lastToken(ptr), e.Want), "")}
	case yamlschema.KindMinLength:
		return []Diagnostic{mk(SeverityError, CodeSchema, ptr, line, col, fmt.Sprintf("minLength: got %d, want %d", e.Got, e.Want), "")}
	case yamlschema.KindOneOf, yamlschema.KindAnyOf:
		return []Diagnostic{mk(SeverityError, CodeType, ptr, line, col, fmt.Sprintf("%s is not a valid %s", what, lastToken(ptr)), "")}
	}
	return []Diagnostic{mk(SeverityError, CodeSchema, ptr, line, col, fmt.Sprintf("%s is not allowed here (%s)", what, e.Kind), "")}
}

func ratString(r *big.Rat) string {
	if r == nil {
		return "?"
	}
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func lastToken(ptr string) string {
	if i := strings.LastIndexByte(ptr, '/'); i >= 0 {
		t := ptr[i+1:]
		if _, err := strconv.Atoi(t); err == nil {
			return lastToken(ptr[:i]) + " entry"
		}
		return strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return "document"
}

func requiredHint(key string) string {
	switch key {
	case "file_format":
		return `add file_format: "1.0" as the first line`
	case "exporter":
		return "every processor and periodic reader needs an exporter, e.g. exporter: {console: }"
	case "processors":
		return "list at least one processor, e.g. - batch: {exporter: {console: }}"
	case "readers":
		return "list at least one reader, e.g. - periodic: {exporter: {console: }}"
	}
	return ""
}

// envHint adds, to a diagnostic about an overlaid value, which variable
// put it there.
func (d *Document) envHint(path, hint string) string {
	n := Lookup(d.Root, path)
	if n == nil {
		return hint
	}
	if o := d.OriginOf(n); o.Kind == OriginEnv || o.Kind == OriginSubstitution {
		note := "the value comes from " + o.String()
		if hint == "" {
			return note
		}
		return hint + "; " + note
	}
	return hint
}

// nearestPosition walks up a pointer to the closest node with a file
// position.
func (d *Document) nearestPosition(path string) (int, int) {
	for p := path; ; {
		if n := Lookup(d.Root, p); n != nil && n.Line > 0 {
			return n.Line, n.Column
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			return 0, 0
		}
		p = p[:i]
	}
}

func describeNode(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!str":
			return strconv.Quote(truncate(n.Value, 60))
		}
		return truncate(n.Value, 60)
	}
	return kindName(n)
}

// Suggest returns the candidate nearest to s when it is near enough to be
// a likely typo (edit distance at most a third of the length, max 3). It
// is the one typo suggester of the project; the services use SuggestWithin
// with their own, more lenient, bound.
func Suggest(s string, candidates []string) string {
	return SuggestWithin(s, candidates, min(3, max(1, len(s)/3)))
}

// SuggestWithin returns the candidate nearest to s, ignoring case, when its
// optimal-string-alignment distance to s is at most limit, else "". Ties go
// to the earlier candidate.
func SuggestWithin(s string, candidates []string, limit int) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	if bestD <= limit {
		return best
	}
	return ""
}

// editDistance is the optimal-string-alignment distance: insertions,
// deletions, substitutions and swaps of neighbours ("compresison") each
// cost one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// toJSONValue converts a node tree to the values the validator expects,
// numbers as json.Number so integers and floats keep their text.
func toJSONValue(n *yaml.Node) any {
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = toJSONValue(n.Content[i+1])
		}
		return m
	case yaml.SequenceNode:
		a := make([]any, len(n.Content))
		for i, c := range n.Content {
			a[i] = toJSONValue(c)
		}
		return a
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil
		case "!!bool":
			var b bool
			if n.Decode(&b) == nil {
				return b
			}
		case "!!int":
			var i int64
			if n.Decode(&i) == nil {
				return json.Number(strconv.FormatInt(i, 10))
			}
		case "!!float":
			var f float64
			if n.Decode(&f) == nil {
				// NaN and infinities are not JSON numbers: report them as
				// what they are, a non-number.
				if f != f || f > 1e308 || f < -1e308 {
					return n.Value
				}
				return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
			}
		}
		return n.Value
	}
	return nil
}
