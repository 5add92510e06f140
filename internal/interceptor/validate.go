package interceptor

import (
	"fmt"
	"slices"
	"strings"

	"github.com/otelcfg/otelcfg/internal/svcconf"
	"github.com/otelcfg/otelcfg/otelconfig"
	yaml "go.yaml.in/yaml/v3"
)

// markerKeys are top-level keys only an interceptor settings file has.
// (max_body_bytes is not one: the proxy has it too.)
var markerKeys = []string{"target", "user_id", "user_id_prefix", "port_registry", "project_dir", "timeouts"}

// LooksLikeSettings reports whether a parsed file's top level looks like
// interceptor settings (rather than otel.yaml or another service's
// settings), so that `otelcfg validate` can pick the right checks.
func LooksLikeSettings(root *yaml.Node) bool {
	if root == nil || root.Kind != yaml.MappingNode {
		return false
	}
	found := false
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch k := root.Content[i].Value; {
		case k == "file_format":
			return false
		case slices.Contains(markerKeys, k):
			found = true
		}
	}
	return found
}

// ValidateSettingsDocument checks an interceptor settings file (after
// ${VAR} substitution, as LoadSettings does; references still unexpanded
// are not judged) and returns every problem, with positions. It does not
// repeat doc.Diagnostics (the parser's own) and does not change doc.
func ValidateSettingsDocument(doc *otelconfig.Document) otelconfig.Diagnostics {
	if doc == nil || doc.Root == nil {
		return nil
	}
	v := &validator{doc: doc}
	v.mapping(doc.Root, "")
	v.ds.Sort()
	return v.ds
}

type validator struct {
	doc *otelconfig.Document
	ds  otelconfig.Diagnostics
}

func (v *validator) add(sev otelconfig.Severity, code string, n *yaml.Node, path, msg, hint string) {
	d := otelconfig.Diagnostic{Severity: sev, Code: code, File: v.doc.Name, Path: path, Message: msg, Hint: hint}
	if n != nil {
		d.Line, d.Column = n.Line, n.Column
	}
	v.ds = append(v.ds, d)
}

func (v *validator) errorf(code string, n *yaml.Node, path, hint, format string, args ...any) {
	v.add(otelconfig.SeverityError, code, n, path, fmt.Sprintf(format, args...), hint)
}

// mapping checks the keys of the top level (prefix "") or of a group.
func (v *validator) mapping(m *yaml.Node, prefix string) {
	allowed := childKeys(prefix)
	var minNode, maxNode *yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		kn, vn := m.Content[i], m.Content[i+1]
		key := kn.Value
		path := pointer(prefix) + "/" + escape(key)
		if !slices.Contains(allowed, key) {
			hint := "allowed keys here: " + strings.Join(allowed, ", ")
			switch {
			case prefix == "" && key == "file_format":
				hint = "this looks like an otel.yaml; give it to the interceptor with --otel-config or otel_config"
			case suggest(key, allowed) != "":
				hint = fmt.Sprintf("did you mean %q?", suggest(key, allowed))
			}
			where := "the settings file"
			if prefix != "" {
				where = prefix
			}
			v.errorf(otelconfig.CodeUnknownKey, kn, path, hint, "unknown key %q in %s", key, where)
			continue
		}
		full := key
		if prefix != "" {
			full = prefix + "." + key
		}
		if slices.Contains(groups, full) {
			switch {
			case isNull(vn):
			case vn.Kind != yaml.MappingNode:
				v.errorf(otelconfig.CodeType, vn, path, "", "%s must be a mapping, found %s", full, otelconfig.KindName(vn))
			default:
				v.mapping(vn, full)
			}
			continue
		}
		f, _ := fieldByKey(full)
		v.value(f, vn, path)
		switch full {
		case "port_registry.min_port":
			minNode = vn
		case "port_registry.max_port":
			maxNode = vn
		}
	}
	if prefix == "port_registry" {
		lo, hi := DefaultSettings().PortRegistry.MinPort, DefaultSettings().PortRegistry.MaxPort
		okLo, okHi := true, true
		if minNode != nil {
			lo, okLo = intValue(minNode)
		}
		if maxNode != nil {
			hi, okHi = intValue(maxNode)
		}
		if okLo && okHi && lo >= 1 && hi <= 65535 && lo > hi {
			n := maxNode
			if n == nil {
				n = minNode
			}
			v.errorf(otelconfig.CodeSettings, n, "/port_registry", "min_port defaults to 8888 and max_port to 9999",
				"port range is empty: min_port %d is above max_port %d", lo, hi)
		}
	}
}

// value checks one setting's value.
func (v *validator) value(f field, n *yaml.Node, path string) {
	if isNull(n) {
		return // null: the default applies
	}
	if n.Kind != yaml.ScalarNode {
		v.errorf(otelconfig.CodeType, n, path, "", "%s must be %s, found %s", f.key, kindWant(f.kind), otelconfig.KindName(n))
		return
	}
	if strings.Contains(n.Value, "${") && v.doc.OriginOf(n).Kind != otelconfig.OriginSubstitution {
		return // not substituted yet: the value is only known at boot
	}
	tag := n.ShortTag()
	switch f.kind {
	case kindPort:
		p, ok := intValue(n)
		if !ok {
			v.errorf(otelconfig.CodeType, n, path, quoteHint(n), "%s must be an integer, found %s", f.key, otelconfig.KindName(n))
			return
		}
		if p < 1 || p > 65535 {
			v.errorf(otelconfig.CodeSettings, n, path, "", "%s %d is not a port (1 to 65535)", f.key, p)
		}
		return
	case kindBytes:
		b, ok := intValue(n)
		if !ok {
			v.errorf(otelconfig.CodeType, n, path, quoteHint(n), "%s must be an integer, found %s", f.key, otelconfig.KindName(n))
			return
		}
		if b < 1 || b > 1<<40 {
			v.errorf(otelconfig.CodeSettings, n, path, "", "%s %d is not a byte count from 1 to 2^40", f.key, b)
		}
		return
	case kindListen:
		if tag != "!!str" && tag != "!!int" {
			v.errorf(otelconfig.CodeType, n, path, "", "listen must be host:port, :port or a port number, found %s", otelconfig.KindName(n))
			return
		}
		if _, err := ListenAddr(n.Value); err != nil {
			v.errorf(otelconfig.CodeSettings, n, path, "for example 127.0.0.1:8888, or leave it out for a port from the registry", "listen: %v", err)
		}
		return
	}
	if tag != "!!str" {
		v.errorf(otelconfig.CodeType, n, path, quoteHint(n), "%s must be a string, found %s", f.key, otelconfig.KindName(n))
		return
	}
	switch f.kind {
	case kindURL:
		if _, err := parseTarget(n.Value); err != nil {
			v.errorf(otelconfig.CodeSettings, n, path, "for example http://127.0.0.1:8764", "target: %v", err)
		}
	case kindDuration:
		if _, err := svcconf.ParseDuration(n.Value); err != nil {
			v.errorf(otelconfig.CodeSettings, n, path, "units are ns, us, ms, s, m, h", "%s: %v", f.key, err)
		}
	case kindHeader:
		if err := checkHeaderValue(n.Value); err != nil {
			v.errorf(otelconfig.CodeSettings, n, path, "", "%s: %v", f.key, err)
		}
	case kindSecret:
		if err := checkHeaderValue(n.Value); err != nil {
			v.errorf(otelconfig.CodeSettings, n, path, "", "%s: the value cannot be sent in an HTTP header", f.key)
		}
		if n.Value != "" && v.doc.OriginOf(n).Kind == otelconfig.OriginFile {
			v.add(otelconfig.SeverityWarning, otelconfig.CodeSecurity, n, path,
				"api_key is written in the settings file", "read it from the environment instead: api_key: ${LITELLM_API_KEY}")
		}
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func intValue(n *yaml.Node) (int, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		return 0, false
	}
	var i int
	if err := n.Decode(&i); err != nil {
		return 0, false
	}
	return i, true
}

func quoteHint(n *yaml.Node) string {
	if n.ShortTag() == "!!str" {
		return ""
	}
	if n.ShortTag() == "!!int" || n.ShortTag() == "!!float" || n.ShortTag() == "!!bool" {
		return fmt.Sprintf("quote it to make it a string: %q", n.Value)
	}
	return ""
}

func kindWant(k kind) string {
	switch k {
	case kindPort, kindBytes:
		return "an integer"
	case kindListen:
		return "host:port, :port or a port number"
	}
	return "a string"
}

// pointer turns a dotted group key into a JSON pointer.
func pointer(dotted string) string {
	if dotted == "" {
		return ""
	}
	parts := strings.Split(dotted, ".")
	for i, p := range parts {
		parts[i] = escape(p)
	}
	return "/" + strings.Join(parts, "/")
}

func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
