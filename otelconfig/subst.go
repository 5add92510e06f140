package otelconfig

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// LookupFunc reads one environment variable, like os.LookupEnv.
type LookupFunc func(name string) (string, bool)

// SubstitutionError is an invalid ${...} reference.
type SubstitutionError struct {
	// Offset is the byte offset of the reference in the scalar's value.
	Offset int
	Msg    string
}

func (e *SubstitutionError) Error() string { return e.Msg }

// Reference is one ${...} reference found in a value.
type Reference struct {
	Name       string
	Default    string
	HasDefault bool
	// Defined reports whether the variable was set when substituted.
	Defined bool
}

// Substitute expands the references in one scalar value following the
// OpenTelemetry configuration data model: ${VAR}, ${env:VAR},
// ${VAR:-default}; $$ is a literal $ and never starts a reference; the
// result is never rescanned. A $ that starts no reference is kept. An
// undefined variable without a default expands to "".
func Substitute(s string, lookup LookupFunc) (string, []Reference, error) {
	if !strings.Contains(s, "$") {
		return s, nil, nil
	}
	var b strings.Builder
	var refs []Reference
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i += 2
			continue
		}
		if i+1 >= len(s) || s[i+1] != '{' {
			b.WriteByte('$')
			i++
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", refs, &SubstitutionError{Offset: i, Msg: fmt.Sprintf("unterminated reference %q: missing }", truncate(s[i:], 40))}
		}
		body := s[i+2 : i+end]
		ref, err := parseReference(body)
		if err != nil {
			return "", refs, &SubstitutionError{Offset: i, Msg: fmt.Sprintf("invalid reference %q: %s", truncate(s[i:i+end+1], 60), err)}
		}
		v, ok := lookup(ref.Name)
		ref.Defined = ok
		switch {
		case ok && v != "":
			b.WriteString(v)
		case ref.HasDefault:
			// The data model treats a variable set to "" like an unset
			// one when a default is given (shell :- semantics).
			b.WriteString(ref.Default)
		case ok:
		}
		refs = append(refs, ref)
		i += end + 1
	}
	return b.String(), refs, nil
}

func parseReference(body string) (Reference, error) {
	var r Reference
	name := body
	if j := strings.Index(body, ":-"); j >= 0 {
		name, r.Default, r.HasDefault = body[:j], body[j+2:], true
		if strings.ContainsAny(r.Default, "\n") {
			return r, fmt.Errorf("a default value cannot span lines")
		}
	}
	if p, rest, ok := strings.Cut(name, ":"); ok {
		if p != "env" {
			return r, fmt.Errorf("unsupported prefix %q (only env: is defined)", p)
		}
		name = rest
	}
	if !validEnvName(name) {
		if name == "" {
			return r, fmt.Errorf("empty variable name")
		}
		return r, fmt.Errorf("variable names are letters, digits and _ and do not start with a digit")
	}
	r.Name = name
	return r, nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// SubstituteEnv applies Substitute to every scalar value of the document
// (never to mapping keys), records each substituted node's origin, and
// decides each changed plain scalar's type from its new text, so that
// ${PORT} can be an integer while "${PORT}" stays a string.
//
// With reportUnset, a reference without default to an unset variable is a
// warning (it becomes null, which is valid but rarely meant).
func (d *Document) SubstituteEnv(lookup LookupFunc, reportUnset bool) {
	if d.Root == nil {
		return
	}
	d.substituteNode(d.Root, "", lookup, reportUnset)
}

func (d *Document) substituteNode(n *yaml.Node, path string, lookup LookupFunc, reportUnset bool) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			d.substituteNode(n.Content[i+1], path+"/"+escapePointer(n.Content[i].Value), lookup, reportUnset)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			d.substituteNode(c, path+"/"+strconv.Itoa(i), lookup, reportUnset)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		out, refs, err := Substitute(n.Value, lookup)
		if err != nil {
			line, col := n.Line, n.Column
			// Point at the reference itself when the value is written
			// as is on one line; a folded or escaped one keeps the
			// scalar's start.
			if se, ok := err.(*SubstitutionError); ok && d.sourceAt(line, col, n.Value[:se.Offset]) {
				col += len([]rune(n.Value[:se.Offset]))
			}
			d.errorf(CodeSubstitution, line, col, path, err.Error(), "write ${NAME}, ${env:NAME} or ${NAME:-default}; write $$ for a literal $")
			return
		}
		if out == n.Value && len(refs) == 0 {
			return // only lone $ signs: nothing changed
		}
		names := make([]string, 0, len(refs))
		for _, r := range refs {
			names = append(names, r.Name)
			// Standard OTEL_* variables are optional by design (the
			// official migration template references all of them); an
			// unset variable of the user's own is more likely a mistake.
			if reportUnset && !r.Defined && !r.HasDefault && !strings.HasPrefix(r.Name, "OTEL_") {
				d.warnf(CodeEnvUnset, n.Line, n.Column, path, "environment variable %s is not set and has no default: the value is null", "set it, or write ${"+r.Name+":-default}", r.Name)
			}
		}
		n.Value = out
		d.retag(n)
		if len(refs) > 0 {
			d.setOrigin(n, Origin{Kind: OriginSubstitution, File: d.Name, Line: n.Line, Column: n.Column, Vars: names})
		}
	}
}

// retag decides a scalar's type from its (new) text. Quoted and block
// scalars stay strings; an explicit tag is kept; a plain scalar is resolved
// by the YAML 1.2 core rules, and an empty one is null. A value that would
// look like YAML structure ("a: b", "- x", "*ref", "# c") is just a string:
// it never becomes structure.
func (d *Document) retag(n *yaml.Node) {
	if n.Style&yaml.TaggedStyle != 0 {
		return
	}
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		n.Tag = "!!str"
		return
	}
	probe := yaml.Node{Kind: yaml.ScalarNode, Value: n.Value}
	n.Tag = probe.ShortTag()
	if n.Value == "" {
		n.Tag = "!!null"
	}
	if n.Tag == "!!str" && needsQuoting(n.Value) {
		// Keep the printed form a string: encoders would otherwise emit
		// structure-looking text unquoted in some styles.
		n.Style = yaml.DoubleQuotedStyle
	}
}

func needsQuoting(s string) bool {
	return strings.ContainsAny(s, ":#\n\"'*&!|>%@`{}[],") || strings.HasPrefix(s, "-") || strings.HasPrefix(s, "?") || strings.TrimSpace(s) != s
}

// sourceAt reports whether the source text at line:col (col in runes)
// starts with text on that same line.
func (d *Document) sourceAt(line, col int, text string) bool {
	src := d.Source
	for i := 1; i < line; i++ {
		j := bytes.IndexAny(src, "\r\n")
		if j < 0 {
			return false
		}
		if src[j] == '\r' && j+1 < len(src) && src[j+1] == '\n' {
			j++
		}
		src = src[j+1:]
	}
	if j := bytes.IndexAny(src, "\r\n"); j >= 0 {
		src = src[:j]
	}
	for k := 1; k < col; k++ {
		if len(src) == 0 {
			return false
		}
		_, size := utf8.DecodeRune(src)
		src = src[size:]
	}
	return strings.HasPrefix(string(src), text)
}
