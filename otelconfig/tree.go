package otelconfig

import (
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Small helpers over yaml.Node trees. Nodes created here carry no position
// (Line 0); their origin is recorded by the stage that creates them.

func mapGet(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func mapKey(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i]
		}
	}
	return nil
}

// mapSet replaces the value of key, or appends the pair.
func mapSet(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, strNode(key), v)
}

func mapDelete(m *yaml.Node, key string) {
	if m == nil {
		return
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

// isNull reports whether n is absent or an explicit null.
func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// ensureMap returns m[key] as a mapping, replacing a null (or absent) value
// with an empty mapping. It returns nil when the value is something else.
func ensureMap(m *yaml.Node, key string) *yaml.Node {
	v := mapGet(m, key)
	if v != nil && v.Kind == yaml.MappingNode {
		return v
	}
	if !isNull(v) {
		return nil
	}
	nm := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	if v != nil {
		nm.Line, nm.Column = v.Line, v.Column
	}
	mapSet(m, key, nm)
	return nm
}

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func intNode(i int64) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(i, 10)}
}

func floatNode(f float64) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: strconv.FormatFloat(f, 'g', -1, 64)}
}

func boolNode(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

func nullNode() *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: ""}
}

func newMap(kv ...any) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Content = append(m.Content, strNode(kv[i].(string)), kv[i+1].(*yaml.Node))
	}
	return m
}

func newSeq(items ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: items}
}

// onlyKey returns the single key and value of a one-entry mapping (the shape
// of every exporter, processor and sampler choice).
func onlyKey(m *yaml.Node) (string, *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode || len(m.Content) != 2 {
		return "", nil
	}
	return m.Content[0].Value, m.Content[1]
}

// Lookup returns the node at a JSON pointer, or nil.
func Lookup(root *yaml.Node, pointer string) *yaml.Node {
	if pointer == "" {
		return root
	}
	if !strings.HasPrefix(pointer, "/") {
		return nil
	}
	n := root
	for _, tok := range strings.Split(pointer[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch {
		case n == nil:
			return nil
		case n.Kind == yaml.MappingNode:
			n = mapGet(n, tok)
		case n.Kind == yaml.SequenceNode:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n.Content) {
				return nil
			}
			n = n.Content[i]
		default:
			return nil
		}
	}
	return n
}

// Walk calls fn for every node below root with its JSON pointer; key is the
// mapping key node for mapping values (nil otherwise).
func Walk(root *yaml.Node, fn func(pointer string, key, value *yaml.Node)) {
	walk(root, "", nil, fn)
}

func walk(n *yaml.Node, path string, key *yaml.Node, fn func(string, *yaml.Node, *yaml.Node)) {
	if n == nil {
		return
	}
	fn(path, key, n)
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			walk(n.Content[i+1], path+"/"+escapePointer(n.Content[i].Value), n.Content[i], fn)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			walk(c, path+"/"+strconv.Itoa(i), nil, fn)
		}
	}
}
