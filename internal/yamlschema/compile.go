// Package yamlschema checks YAML node trees against a JSON Schema (draft
// 2020-12) restricted to the keywords otelcfg's embedded schemas use.
//
// It exists so that a process checking an otel.yaml does not pay for a
// general-purpose JSON Schema library: compiling the draft meta-schemas at
// package init and validating schemas/otel.schema.json against them cost
// about 12 ms per process, three times what the rest of `otelcfg validate`
// costs. Here a schema is parsed once, lazily, by a small scanner straight
// into its compiled form, and a document is checked on its yaml.Node tree
// without converting it to maps first.
//
// Every keyword the package does not implement is refused by Compile, so a
// schema edit cannot be silently ignored. The general-purpose library
// (github.com/santhosh-tekuri/jsonschema/v6) remains the oracle of the
// tests: both must give the same verdict and the same errors on every
// sample document and under fuzzing.
package yamlschema

import (
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Types of JSON values, as a bit set.
type types uint8

const (
	tNull types = 1 << iota
	tBoolean
	tNumber
	tInteger
	tString
	tArray
	tObject
)

// typeNames is in the order errors list wanted types (the oracle's order).
var typeNames = []struct {
	t    types
	name string
}{
	{tNull, "null"}, {tBoolean, "boolean"}, {tNumber, "number"}, {tInteger, "integer"},
	{tString, "string"}, {tArray, "array"}, {tObject, "object"},
}

func (t types) names() []string {
	var out []string
	for _, tn := range typeNames {
		if t&tn.t != 0 {
			out = append(out, tn.name)
		}
	}
	return out
}

// Node is one compiled schema object (or boolean schema). The keywords
// most schema objects have are fields; the others live in x, allocated only
// for the objects that use them (compiling is a good part of a short
// process's time, and most of it is allocating).
type Node struct {
	parent *Node
	tok    string // this node's last JSON pointer token, unescaped

	types types
	flags flags

	ref        *Node
	props      []prop // sorted by name
	additional *Node  // additionalProperties as a schema (false is flagAddlFalse)
	items      *Node
	required   []string
	x          *extra
}

type flags uint8

const (
	flagBool      flags = 1 << iota // a true or false schema
	flagTrue                        // with flagBool: the true schema
	flagAddlFalse                   // additionalProperties: false
	flagConst                       // has const (its value may be null)
)

type prop struct {
	name string
	s    *Node
}

type extra struct {
	constVal any   // string, numberLit, bool or nil
	enum     []any // same kinds of values
	enumSet  types // the types of the enum's values

	patternProps  []patternProp
	propertyNames *Node
	minProps      int // -1 when absent, as the other counts
	maxProps      int
	minItems      int
	minLength     int

	pattern  *regexp.Regexp
	patternS string

	minimum, maximum, exclMinimum, exclMaximum *bound

	allOf, anyOf, oneOf []*Node
	ifS, thenS, elseS   *Node

	defs map[string]*Node
}

// noExtra stands for the keywords of a Node without any.
var noExtra = extra{minProps: -1, maxProps: -1, minItems: -1, minLength: -1}

func (n *Node) ext() *extra {
	if n.x == nil {
		x := noExtra
		n.x = &x
	}
	return n.x
}

// prop returns the schema of a property, or nil.
func (n *Node) prop(name string) *Node {
	i, ok := slices.BinarySearchFunc(n.props, name, func(p prop, name string) int { return strings.Compare(p.name, name) })
	if !ok {
		return nil
	}
	return n.props[i].s
}

type patternProp struct {
	re  *regexp.Regexp
	sch *Node
}

// Location is the node's JSON pointer within its schema document, e.g.
// "/$defs/Sampler".
func (n *Node) Location() string {
	if n.parent == nil {
		return ""
	}
	return n.parent.Location() + "/" + escape(n.tok)
}

// PropertyNames returns the names under the node's "properties", sorted.
func (n *Node) PropertyNames() []string {
	out := make([]string, len(n.props))
	for i, p := range n.props {
		out[i] = p.name
	}
	return out
}

// bound is a numeric keyword's value: an int64 when the literal is one,
// else an exact rational.
type bound struct {
	lit   string
	isInt bool
	i     int64
	rat   *big.Rat
}

// Rat is the bound's exact value.
func (b *bound) Rat() *big.Rat { return b.rat }

func newBound(lit string) (*bound, error) {
	b := &bound{lit: lit}
	if i, err := strconv.ParseInt(lit, 10, 64); err == nil {
		b.isInt, b.i = true, i
	}
	r, ok := new(big.Rat).SetString(lit)
	if !ok {
		return nil, fmt.Errorf("%q is not a number", lit)
	}
	b.rat = r
	return b, nil
}

// numberLit is a number in a const or an enum, kept as written.
type numberLit string

func (n numberLit) String() string { return string(n) }

// Schema is a compiled schema document.
type Schema struct {
	root *Node
}

// Root is the document's top schema.
func (s *Schema) Root() *Node { return s.root }

const draft202012 = "https://json-schema.org/draft/2020-12/schema"

// Compile parses a JSON Schema document. It fails on invalid JSON, on a
// keyword this package does not implement, on a $ref it cannot resolve
// (only "#..." pointers into the same document are) and on an invalid
// regular expression.
func Compile(data []byte) (*Schema, error) {
	c := &compiler{p: parser{s: string(data)}}
	root, err := c.schema(nil, "")
	if err != nil {
		return nil, err
	}
	c.p.ws()
	if c.p.pos != len(c.p.s) {
		return nil, c.p.errorf("unexpected data after the schema")
	}
	for _, r := range c.refs {
		t, err := resolve(root, r.ptr)
		if err != nil {
			return nil, fmt.Errorf("%s: $ref %q: %v", locationOf(r.n), r.ptr, err)
		}
		r.n.ref = t
	}
	if err := refCycles(c.refs); err != nil {
		return nil, err
	}
	return &Schema{root: root}, nil
}

// refCycles refuses a $ref that leads back to where it started without
// going into the document (through $ref, allOf, anyOf, oneOf, if, then or
// else only): checking any document would recurse for ever.
func refCycles(refs []ref) error {
	state := map[*Node]uint8{} // 1: on the current path, 2: done
	var visit func(n *Node) error
	visit = func(n *Node) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("%s: $ref cycle that never goes into the document", locationOf(n))
		case 2:
			return nil
		}
		state[n] = 1
		next := []*Node{n.ref}
		if x := n.x; x != nil {
			next = append(append(append(append(next, x.allOf...), x.anyOf...), x.oneOf...), x.ifS, x.thenS, x.elseS)
		}
		for _, m := range next {
			if m != nil {
				if err := visit(m); err != nil {
					return err
				}
			}
		}
		state[n] = 2
		return nil
	}
	for _, r := range refs {
		if err := visit(r.n); err != nil {
			return err
		}
	}
	return nil
}

type compiler struct {
	p    parser
	refs []ref // resolved once the whole document is read
}

type ref struct {
	n   *Node
	ptr string
}

// keywords are the ones Compile accepts; annotations are parsed over and
// ignored.
var keywords = map[string]int{
	"type": 1, "$ref": 2, "properties": 3, "additionalProperties": 4, "patternProperties": 5,
	"propertyNames": 6, "items": 7, "minItems": 8, "required": 9, "minimum": 10, "maximum": 11,
	"exclusiveMinimum": 12, "exclusiveMaximum": 13, "minProperties": 14, "maxProperties": 15,
	"minLength": 16, "enum": 17, "const": 18, "pattern": 19, "if": 20, "then": 21, "else": 22,
	"anyOf": 23, "allOf": 24, "oneOf": 25, "$defs": 26,
	// annotations
	"description": 40, "default": 41, "examples": 42, "$comment": 43, "title": 44,
	// only at the root
	"$schema": 50, "$id": 51,
}

func locationOf(n *Node) string {
	if l := n.Location(); l != "" {
		return "#" + l
	}
	return "the schema's root"
}

func (c *compiler) schema(parent *Node, tok string) (*Node, error) {
	p := &c.p
	n := &Node{parent: parent, tok: tok}
	p.ws()
	switch p.peek() {
	case 't', 'f':
		v, err := p.scalar()
		if err != nil {
			return nil, err
		}
		n.flags |= flagBool
		if v.(bool) {
			n.flags |= flagTrue
		}
		return n, nil
	case '{':
	default:
		return nil, p.errorf("%s: a schema must be an object or a boolean", locationOf(n))
	}
	var seen uint64
	err := p.object(func(key string) error {
		k, ok := keywords[key]
		if !ok {
			return fmt.Errorf("%s: keyword %q is not supported by otelcfg's schema checker (internal/yamlschema)", locationOf(n), key)
		}
		if seen&(1<<k) != 0 {
			return fmt.Errorf("%s: keyword %q appears twice", locationOf(n), key)
		}
		seen |= 1 << k
		return c.keyword(n, key)
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

func (c *compiler) keyword(n *Node, key string) error {
	p := &c.p
	var err error
	switch key {
	case "description", "default", "examples", "$comment", "title":
		return p.skip()
	case "$schema":
		if n.parent != nil {
			return fmt.Errorf("%s: $schema is only supported at the root", locationOf(n))
		}
		s, err := p.str()
		if err != nil {
			return err
		}
		if s != draft202012 {
			return fmt.Errorf("$schema %q: only draft 2020-12 (%s) is supported", s, draft202012)
		}
		return nil
	case "$id":
		if n.parent != nil {
			return fmt.Errorf("%s: $id is only supported at the root", locationOf(n))
		}
		_, err := p.str()
		return err
	case "type":
		p.ws()
		if p.peek() == '[' {
			return p.array(func(int) error {
				t, err := c.typeName(n)
				n.types |= t
				return err
			})
		}
		n.types, err = c.typeName(n)
		return err
	case "$ref":
		ptr, err := p.str()
		c.refs = append(c.refs, ref{n, ptr})
		return err
	case "properties", "$defs", "patternProperties":
		var props []prop
		holder := &Node{parent: n, tok: key}
		err := p.object(func(name string) error {
			s, err := c.schema(holder, name)
			if err != nil {
				return err
			}
			props = append(props, prop{name, s})
			if key == "patternProperties" {
				re, err := regexp.Compile(name)
				if err != nil {
					return fmt.Errorf("%s: %v", locationOf(s), err)
				}
				n.ext().patternProps = append(n.ext().patternProps, patternProp{re, s})
			}
			return nil
		})
		if err != nil {
			return err
		}
		slices.SortFunc(props, func(a, b prop) int { return strings.Compare(a.name, b.name) })
		for i := 1; i < len(props); i++ {
			if props[i].name == props[i-1].name {
				return fmt.Errorf("%s: %q appears twice", locationOf(holder), props[i].name)
			}
		}
		switch key {
		case "properties":
			n.props = props
		case "$defs":
			n.ext().defs = make(map[string]*Node, len(props))
			for _, p := range props {
				n.x.defs[p.name] = p.s
			}
		}
		return nil
	case "additionalProperties":
		n.additional, err = c.schema(n, key)
		if err == nil && n.additional.flags&flagBool != 0 {
			if n.additional.flags&flagTrue == 0 {
				n.flags |= flagAddlFalse
			}
			n.additional = nil // true: nothing to check
		}
		return err
	case "propertyNames":
		n.ext().propertyNames, err = c.schema(n, key)
	case "items":
		n.items, err = c.schema(n, key)
	case "if":
		n.ext().ifS, err = c.schema(n, key)
	case "then":
		n.ext().thenS, err = c.schema(n, key)
	case "else":
		n.ext().elseS, err = c.schema(n, key)
	case "allOf", "anyOf", "oneOf":
		var list []*Node
		holder := &Node{parent: n, tok: key}
		err = p.array(func(i int) error {
			s, err := c.schema(holder, strconv.Itoa(i))
			list = append(list, s)
			return err
		})
		if err == nil && len(list) == 0 {
			err = fmt.Errorf("%s: %s must not be empty", locationOf(holder), key)
		}
		switch key {
		case "allOf":
			n.ext().allOf = list
		case "anyOf":
			n.ext().anyOf = list
		case "oneOf":
			n.ext().oneOf = list
		}
	case "minItems":
		n.ext().minItems, err = c.count(n, key)
	case "minProperties":
		n.ext().minProps, err = c.count(n, key)
	case "maxProperties":
		n.ext().maxProps, err = c.count(n, key)
	case "minLength":
		n.ext().minLength, err = c.count(n, key)
	case "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum":
		var lit string
		if lit, err = p.number(); err != nil {
			return err
		}
		b, err := newBound(lit)
		if err != nil {
			return fmt.Errorf("%s: %s: %v", locationOf(n), key, err)
		}
		switch key {
		case "minimum":
			n.ext().minimum = b
		case "maximum":
			n.ext().maximum = b
		case "exclusiveMinimum":
			n.ext().exclMinimum = b
		case "exclusiveMaximum":
			n.ext().exclMaximum = b
		}
	case "required":
		err = p.array(func(int) error {
			s, err := p.str()
			n.required = append(n.required, s)
			return err
		})
	case "enum":
		x := n.ext()
		x.enum = []any{}
		err = p.array(func(int) error {
			v, err := p.scalar()
			if err != nil {
				return fmt.Errorf("%s: enum: %v (only strings, numbers, booleans and null are supported)", locationOf(n), err)
			}
			x.enum = append(x.enum, v)
			x.enumSet |= typeOfLiteral(v)
			return nil
		})
	case "const":
		n.flags |= flagConst
		n.ext().constVal, err = p.scalar()
		if err != nil {
			err = fmt.Errorf("%s: const: %v (only strings, numbers, booleans and null are supported)", locationOf(n), err)
		}
	case "pattern":
		x := n.ext()
		if x.patternS, err = p.str(); err != nil {
			return err
		}
		if x.pattern, err = regexp.Compile(x.patternS); err != nil {
			err = fmt.Errorf("%s: pattern: %v", locationOf(n), err)
		}
	default:
		// keywords and this switch disagree: a bug here, not in the schema.
		panic("yamlschema: keyword without a case: " + key)
	}
	return err
}

func (c *compiler) typeName(n *Node) (types, error) {
	s, err := c.p.str()
	if err != nil {
		return 0, err
	}
	for _, tn := range typeNames {
		if tn.name == s {
			return tn.t, nil
		}
	}
	return 0, fmt.Errorf("%s: unknown type %q", locationOf(n), s)
}

func (c *compiler) count(n *Node, key string) (int, error) {
	lit, err := c.p.number()
	if err != nil {
		return 0, err
	}
	i, err := strconv.Atoi(lit)
	if err != nil || i < 0 {
		return 0, fmt.Errorf("%s: %s must be a non-negative integer, found %s", locationOf(n), key, lit)
	}
	return i, nil
}

func typeOfLiteral(v any) types {
	switch v.(type) {
	case nil:
		return tNull
	case bool:
		return tBoolean
	case numberLit:
		return tNumber
	case string:
		return tString
	}
	return 0
}

// resolve finds the schema a local $ref points at.
func resolve(root *Node, ref string) (*Node, error) {
	frag, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, fmt.Errorf("only references within the same document (#/...) are supported")
	}
	if frag == "" {
		return root, nil
	}
	if !strings.HasPrefix(frag, "/") {
		return nil, fmt.Errorf("anchors are not supported")
	}
	n := root
	toks := strings.Split(frag[1:], "/")
	for i := 0; i < len(toks); i++ {
		tok := unescape(toks[i])
		next := func() (string, bool) {
			if i+1 >= len(toks) {
				return "", false
			}
			i++
			return unescape(toks[i]), true
		}
		var found *Node
		switch tok {
		case "properties", "$defs", "patternProperties":
			name, ok := next()
			if !ok {
				break
			}
			switch tok {
			case "properties":
				found = n.prop(name)
			case "$defs":
				found = n.ext().defs[name]
			case "patternProperties":
				for _, pp := range n.ext().patternProps {
					if pp.sch.tok == name {
						found = pp.sch
					}
				}
			}
		case "allOf", "anyOf", "oneOf":
			idx, ok := next()
			if !ok {
				break
			}
			list := map[string][]*Node{"allOf": n.ext().allOf, "anyOf": n.ext().anyOf, "oneOf": n.ext().oneOf}[tok]
			if j, err := strconv.Atoi(idx); err == nil && j >= 0 && j < len(list) {
				found = list[j]
			}
		case "items":
			found = n.items
		case "additionalProperties":
			found = n.additional
		case "propertyNames":
			found = n.ext().propertyNames
		case "if":
			found = n.ext().ifS
		case "then":
			found = n.ext().thenS
		case "else":
			found = n.ext().elseS
		}
		if found == nil {
			return nil, fmt.Errorf("no schema at %s", ref)
		}
		n = found
	}
	return n, nil
}

func escape(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func unescape(s string) string {
	if !strings.Contains(s, "~") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
}
