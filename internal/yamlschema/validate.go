package yamlschema

import (
	"math"
	"math/big"
	"strconv"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// Kind is what an Error is about: the keyword that failed.
type Kind uint8

// Kinds of Error.
const (
	KindGroup                Kind = iota // several errors of one value: see Causes
	KindFalse                            // a false schema
	KindType                             // Names: the wanted types
	KindConst                            // Value: the wanted value
	KindEnum                             // Values: the allowed values
	KindRequired                         // Names: the missing properties, in the schema's order
	KindAdditionalProperties             // Names: the unknown properties, in the document's order
	KindMinProperties                    // Got, Want
	KindMaxProperties                    // Got, Want
	KindMinItems                         // Got, Want
	KindMinLength                        // Got, Want (characters)
	KindPattern                          // Pattern
	KindMinimum                          // Bound
	KindMaximum                          // Bound
	KindExclusiveMinimum                 // Bound
	KindExclusiveMaximum                 // Bound
	KindAnyOf                            // Causes: one per branch
	KindOneOf                            // Causes: one per branch, none when two matched
)

var kindNames = [...]string{
	"group", "false", "type", "const", "enum", "required", "additionalProperties",
	"minProperties", "maxProperties", "minItems", "minLength", "pattern", "minimum",
	"maximum", "exclusiveMinimum", "exclusiveMaximum", "anyOf", "oneOf",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Error is one failed keyword, or a group of them.
type Error struct {
	Kind Kind
	// InstanceLocation is the path of the value in the document, as
	// reference tokens (unescaped).
	InstanceLocation []string
	// Key reports that the value is the property name at
	// InstanceLocation, not its value (a propertyNames failure).
	Key bool
	// Schema is the schema object whose keyword failed.
	Schema *Node

	Names     []string
	Got, Want int
	Value     any   // Const: string, a fmt.Stringer number, bool or nil
	Values    []any // Enum
	Bound     *big.Rat
	Pattern   string
	Causes    []*Error
}

// Valid reports whether the tree satisfies the schema, without building
// any error.
func (s *Schema) Valid(root *yaml.Node) bool {
	v := validator{quiet: true}
	return v.validate(s.root, root, nil)
}

// Validate checks the tree and returns nil, or the errors: a group whose
// causes are each failed keyword (anyOf and oneOf keep one cause per
// branch).
func (s *Schema) Validate(root *yaml.Node) *Error {
	// A valid document, the usual case, is checked without allocating
	// errors; only an invalid one is walked again to explain why.
	if s.Valid(root) {
		return nil
	}
	v := validator{loc: make([]string, 0, 16)}
	var errs []*Error
	v.validate(s.root, root, &errs)
	return &Error{Kind: KindGroup, Causes: errs}
}

type validator struct {
	quiet bool     // only the verdict matters: build no error
	loc   []string // the instance location being checked
	key   bool     // checking a property name (propertyNames)
}

func (v *validator) err(errs *[]*Error, e *Error) {
	if v.quiet {
		return
	}
	e.InstanceLocation = append([]string(nil), v.loc...)
	e.Key = v.key
	*errs = append(*errs, e)
}

// value is what the oracle's validator sees for a node: the scalar
// conversion of otelconfig's toJSONValue.
type value struct {
	t     types // exactly one of tNull, tBoolean, tNumber, tString, tArray, tObject
	b     bool
	isInt bool    // a number with an integer value
	inInt bool    // i holds it exactly
	i     int64   // when inInt
	f     float64 // a float number
	s     string  // string value, or a number's text
}

func valueOf(n *yaml.Node) value {
	switch n.Kind {
	case yaml.MappingNode:
		return value{t: tObject}
	case yaml.SequenceNode:
		return value{t: tArray}
	case yaml.ScalarNode:
	default:
		return value{t: tNull}
	}
	switch n.ShortTag() {
	case "!!null":
		return value{t: tNull}
	case "!!bool":
		switch n.Value {
		case "true":
			return value{t: tBoolean, b: true}
		case "false":
			return value{t: tBoolean}
		}
		var b bool
		if n.Decode(&b) == nil {
			return value{t: tBoolean, b: b}
		}
	case "!!int":
		i, ok := decimal(n.Value)
		if !ok {
			ok = n.Decode(&i) == nil
		}
		if ok {
			return value{t: tNumber, isInt: true, inInt: true, i: i, s: strconv.FormatInt(i, 10)}
		}
	case "!!float":
		var f float64
		if n.Decode(&f) == nil {
			// NaN and infinities are not JSON numbers: a string.
			if f != f || f > 1e308 || f < -1e308 {
				return value{t: tString, s: n.Value}
			}
			val := value{t: tNumber, f: f, s: strconv.FormatFloat(f, 'g', -1, 64), isInt: f == math.Trunc(f)}
			if val.isInt && f >= -(1<<63) && f < 1<<63 {
				val.inInt, val.i = true, int64(f)
			}
			return val
		}
	}
	return value{t: tString, s: n.Value}
}

// decimal parses a canonical decimal integer (what YAML decodes the same
// way whatever its version's rules for prefixes and underscores).
func decimal(s string) (int64, bool) {
	d := s
	if len(d) > 0 && d[0] == '-' {
		d = d[1:]
	}
	if len(d) == 0 || len(d) > 18 || (d[0] == '0' && len(d) > 1) {
		return 0, false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return 0, false
		}
	}
	i, err := strconv.ParseInt(s, 10, 64)
	return i, err == nil
}

func (val *value) rat() *big.Rat {
	r, _ := new(big.Rat).SetString(val.s)
	return r
}

// cmp compares a number with a bound: -1, 0 or +1.
func (val *value) cmp(b *bound) int {
	if val.inInt && b.isInt {
		switch {
		case val.i < b.i:
			return -1
		case val.i > b.i:
			return 1
		}
		return 0
	}
	return val.rat().Cmp(b.rat)
}

// equal compares a value with a const or enum literal.
func (val *value) equal(lit any) bool {
	switch l := lit.(type) {
	case nil:
		return val.t == tNull
	case bool:
		return val.t == tBoolean && val.b == l
	case string:
		return val.t == tString && val.s == l
	case numberLit:
		if val.t != tNumber {
			return false
		}
		r, ok := new(big.Rat).SetString(string(l))
		return ok && val.rat().Cmp(r) == 0
	}
	return false
}

// validate checks n against s, appending errors to errs unless quiet.
func (v *validator) validate(s *Node, n *yaml.Node, errs *[]*Error) bool {
	if s.flags&flagBool != 0 {
		if s.flags&flagTrue == 0 {
			v.err(errs, &Error{Kind: KindFalse, Schema: s})
			return false
		}
		return true
	}
	x := s.x
	if x == nil {
		x = &noExtra
	}
	val := valueOf(n)

	if s.types != 0 {
		if s.types&val.t == 0 && !(s.types&tInteger != 0 && val.t == tNumber && val.isInt) {
			v.err(errs, &Error{Kind: KindType, Schema: s, Names: s.types.names()})
			return false
		}
	}
	if s.flags&flagConst != 0 && !val.equal(x.constVal) {
		v.err(errs, &Error{Kind: KindConst, Schema: s, Value: x.constVal})
		return false
	}
	if x.enum != nil {
		ok := false
		if x.enumSet&val.t != 0 {
			for _, e := range x.enum {
				if val.equal(e) {
					ok = true
					break
				}
			}
		}
		if !ok {
			v.err(errs, &Error{Kind: KindEnum, Schema: s, Values: x.enum})
			return false
		}
	}

	valid := true
	fail := func() bool {
		valid = false
		return v.quiet // stop at the first failure when only the verdict counts
	}
	if s.ref != nil && !v.validate(s.ref, n, errs) && fail() {
		return false
	}

	switch val.t {
	case tObject:
		if !v.object(s, x, n, errs) && fail() {
			return false
		}
	case tArray:
		if x.minItems >= 0 && len(n.Content) < x.minItems {
			v.err(errs, &Error{Kind: KindMinItems, Schema: s, Got: len(n.Content), Want: x.minItems})
			if fail() {
				return false
			}
		}
		if s.items != nil {
			for i, c := range n.Content {
				v.loc = append(v.loc, strconv.Itoa(i))
				ok := v.validate(s.items, c, errs)
				v.loc = v.loc[:len(v.loc)-1]
				if !ok && fail() {
					return false
				}
			}
		}
	case tString:
		if x.minLength >= 0 {
			if l := utf8.RuneCountInString(val.s); l < x.minLength {
				v.err(errs, &Error{Kind: KindMinLength, Schema: s, Got: l, Want: x.minLength})
				if fail() {
					return false
				}
			}
		}
		if x.pattern != nil && !x.pattern.MatchString(val.s) {
			v.err(errs, &Error{Kind: KindPattern, Schema: s, Pattern: x.patternS})
			if fail() {
				return false
			}
		}
	case tNumber:
		for _, c := range [...]struct {
			b    *bound
			kind Kind
			bad  func(int) bool
		}{
			{x.minimum, KindMinimum, func(c int) bool { return c < 0 }},
			{x.maximum, KindMaximum, func(c int) bool { return c > 0 }},
			{x.exclMinimum, KindExclusiveMinimum, func(c int) bool { return c <= 0 }},
			{x.exclMaximum, KindExclusiveMaximum, func(c int) bool { return c >= 0 }},
		} {
			if c.b != nil && c.bad(val.cmp(c.b)) {
				v.err(errs, &Error{Kind: c.kind, Schema: s, Bound: c.b.rat})
				if fail() {
					return false
				}
			}
		}
	}

	for _, sub := range x.allOf {
		if !v.validate(sub, n, errs) && fail() {
			return false
		}
	}
	if x.anyOf != nil && !v.anyOf(s, n, errs) && fail() {
		return false
	}
	if x.oneOf != nil && !v.oneOf(s, n, errs) && fail() {
		return false
	}
	if x.ifS != nil {
		q := validator{quiet: true, key: v.key}
		if q.validate(x.ifS, n, nil) {
			if x.thenS != nil && !v.validate(x.thenS, n, errs) && fail() {
				return false
			}
		} else if x.elseS != nil && !v.validate(x.elseS, n, errs) && fail() {
			return false
		}
	}
	return valid
}

// branch checks n against one branch of anyOf or oneOf, collecting its
// errors apart: nil when it matched.
func (v *validator) branch(s *Node, n *yaml.Node) (bool, *Error) {
	if v.quiet {
		return v.validate(s, n, nil), nil
	}
	var errs []*Error
	if v.validate(s, n, &errs) {
		return true, nil
	}
	if len(errs) == 1 {
		return false, errs[0]
	}
	return false, &Error{Kind: KindGroup, Schema: s, InstanceLocation: append([]string(nil), v.loc...), Key: v.key, Causes: errs}
}

func (v *validator) anyOf(s *Node, n *yaml.Node, errs *[]*Error) bool {
	var causes []*Error
	for _, sub := range s.x.anyOf {
		ok, e := v.branch(sub, n)
		if ok {
			return true
		}
		if e != nil {
			causes = append(causes, e)
		}
	}
	v.err(errs, &Error{Kind: KindAnyOf, Schema: s, Causes: causes})
	return false
}

func (v *validator) oneOf(s *Node, n *yaml.Node, errs *[]*Error) bool {
	var causes []*Error
	matched := -1
	for i, sub := range s.x.oneOf {
		if matched >= 0 {
			q := validator{quiet: true, key: v.key}
			if q.validate(sub, n, nil) {
				v.err(errs, &Error{Kind: KindOneOf, Schema: s})
				return false
			}
			continue
		}
		ok, e := v.branch(sub, n)
		if ok {
			matched = i
		} else if e != nil {
			causes = append(causes, e)
		}
	}
	if matched >= 0 {
		return true
	}
	v.err(errs, &Error{Kind: KindOneOf, Schema: s, Causes: causes})
	return false
}

// object checks the keywords about properties. A key written twice counts
// once, with its last value (as in a decoded map).
func (v *validator) object(s *Node, x *extra, n *yaml.Node, errs *[]*Error) bool {
	valid := true
	fail := func() bool {
		valid = false
		return v.quiet
	}
	pairs := n.Content[:len(n.Content)&^1]
	var later map[string]int // key → index of its last pair, for big mappings
	if len(pairs) > 32 {
		later = make(map[string]int, len(pairs)/2)
		for i := 0; i < len(pairs); i += 2 {
			later[pairs[i].Value] = i
		}
	}
	shadowed := func(i int) bool {
		k := pairs[i].Value
		if later != nil {
			return later[k] != i
		}
		for j := i + 2; j < len(pairs); j += 2 {
			if pairs[j].Value == k {
				return true
			}
		}
		return false
	}
	count := 0
	for i := 0; i < len(pairs); i += 2 {
		if !shadowed(i) {
			count++
		}
	}
	has := func(k string) bool {
		for i := 0; i < len(pairs); i += 2 {
			if pairs[i].Value == k {
				return true
			}
		}
		return false
	}

	if x.minProps >= 0 && count < x.minProps {
		v.err(errs, &Error{Kind: KindMinProperties, Schema: s, Got: count, Want: x.minProps})
		if fail() {
			return false
		}
	}
	if x.maxProps >= 0 && count > x.maxProps {
		v.err(errs, &Error{Kind: KindMaxProperties, Schema: s, Got: count, Want: x.maxProps})
		if fail() {
			return false
		}
	}
	if s.required != nil {
		var missing []string
		for _, r := range s.required {
			if !has(r) {
				if v.quiet {
					return false
				}
				missing = append(missing, r)
			}
		}
		if missing != nil {
			v.err(errs, &Error{Kind: KindRequired, Schema: s, Names: missing})
			valid = false
		}
	}

	var unknown []string
	for i := 0; i < len(pairs); i += 2 {
		if shadowed(i) {
			continue
		}
		name, val := pairs[i].Value, pairs[i+1]
		evaluated := false
		v.loc = append(v.loc, name)
		if sub := s.prop(name); sub != nil {
			evaluated = true
			if !v.validate(sub, val, errs) && fail() {
				v.loc = v.loc[:len(v.loc)-1]
				return false
			}
		}
		for _, pp := range x.patternProps {
			if pp.re.MatchString(name) {
				evaluated = true
				if !v.validate(pp.sch, val, errs) && fail() {
					v.loc = v.loc[:len(v.loc)-1]
					return false
				}
			}
		}
		if !evaluated {
			switch {
			case s.flags&flagAddlFalse != 0:
				if v.quiet {
					v.loc = v.loc[:len(v.loc)-1]
					return false
				}
				unknown = append(unknown, name)
			case s.additional != nil:
				if !v.validate(s.additional, val, errs) && fail() {
					v.loc = v.loc[:len(v.loc)-1]
					return false
				}
			}
		}
		v.loc = v.loc[:len(v.loc)-1]
	}
	if unknown != nil {
		v.err(errs, &Error{Kind: KindAdditionalProperties, Schema: s, Names: unknown})
		valid = false
	}

	if x.propertyNames != nil {
		for i := 0; i < len(pairs); i += 2 {
			if shadowed(i) {
				continue
			}
			name := pairs[i].Value
			// The name is checked as a JSON string, whatever YAML
			// would make of it as a value.
			k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}
			v.loc = append(v.loc, name)
			wasKey := v.key
			v.key = true
			ok := v.validate(x.propertyNames, k, errs)
			v.key = wasKey
			v.loc = v.loc[:len(v.loc)-1]
			if !ok && fail() {
				return false
			}
		}
	}
	return valid
}
