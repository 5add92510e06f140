package proxy

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/otelcfg/otelcfg/internal/svcconf"
	"github.com/otelcfg/otelcfg/otelconfig"
	yaml "go.yaml.in/yaml/v3"
)

// markerKeys are top-level keys only a proxy settings file has.
var markerKeys = map[string]bool{
	"models": true, "user_id_mappings": true, "master_key": true,
	"log_bodies": true, "max_body_bytes": true, "upstream": true,
}

// LooksLikeSettings reports whether a parsed file's top level looks like
// proxy settings (rather than an otel.yaml or another service's settings),
// so that `otelcfg validate` can pick the right checks.
func LooksLikeSettings(root *yaml.Node) bool {
	if root == nil || root.Kind != yaml.MappingNode {
		return false
	}
	found := false
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch k := root.Content[i].Value; {
		case k == "file_format":
			return false
		case markerKeys[k]:
			found = true
		}
	}
	return found
}

// ValidateSettingsDocument checks a proxy settings file (after ${VAR}
// substitution, as LoadSettings does; references left unexpanded are not
// judged) against schemas/proxy.schema.json and the proxy's own rules, and
// returns every problem with its position. It does not repeat
// doc.Diagnostics (the parser's own) and does not change doc.
func ValidateSettingsDocument(doc *otelconfig.Document) otelconfig.Diagnostics {
	if doc == nil || doc.Root == nil {
		return nil
	}
	v := &validator{doc: doc}
	v.document()
	// The proxy's own message is the more precise one where both the
	// schema and a rule object to the same value.
	own := map[string]bool{}
	for _, d := range v.ds {
		own[d.Path] = true
	}
	for _, d := range schemaDiagnostics(doc) {
		if own[d.Path] {
			continue
		}
		if d.Code != otelconfig.CodeUnknownKey && v.unexpanded(otelconfig.Lookup(doc.Root, d.Path)) {
			continue // a ${VAR} left unexpanded: its value is only known at boot
		}
		v.ds = append(v.ds, d)
	}
	v.ds.Sort()
	return v.ds
}

// schemaDiagnostics runs the embedded schema on a copy of doc, so that doc
// itself gains no diagnostics.
func schemaDiagnostics(doc *otelconfig.Document) otelconfig.Diagnostics {
	s, err := otelconfig.LoadSchema("proxy")
	if err != nil {
		return otelconfig.Diagnostics{{Severity: otelconfig.SeverityError, Code: otelconfig.CodeSchema, File: doc.Name, Message: err.Error()}}
	}
	c := *doc
	c.Diagnostics = nil
	s.Check(&c)
	return c.Diagnostics
}

type validator struct {
	doc *otelconfig.Document
	ds  otelconfig.Diagnostics
}

func (v *validator) add(sev otelconfig.Severity, code string, n *yaml.Node, path, hint, format string, args ...any) {
	d := otelconfig.Diagnostic{Severity: sev, Code: code, File: v.doc.Name, Path: path, Message: fmt.Sprintf(format, args...), Hint: hint}
	if n != nil {
		d.Line, d.Column = n.Line, n.Column
	}
	v.ds = append(v.ds, d)
}

func (v *validator) errorf(n *yaml.Node, path, hint, format string, args ...any) {
	v.add(otelconfig.SeverityError, otelconfig.CodeSettings, n, path, hint, format, args...)
}

func (v *validator) warnf(code string, n *yaml.Node, path, hint, format string, args ...any) {
	v.add(otelconfig.SeverityWarning, code, n, path, hint, format, args...)
}

func (v *validator) document() {
	root := v.doc.Root
	v.scalars(root, "")
	for _, g := range groups {
		if m := get(root, g); m != nil && m.Kind == yaml.MappingNode {
			v.scalars(m, g)
		}
	}
	if ms := get(root, "models"); ms != nil && ms.Kind == yaml.SequenceNode {
		v.models(ms)
	}
	if hp := otelconfig.Lookup(root, "/user_id_mappings/header_patterns"); hp != nil && hp.Kind == yaml.SequenceNode {
		v.patterns(hp)
	}
	v.exposure()
}

// scalars checks the table's settings found directly in mapping m.
func (v *validator) scalars(m *yaml.Node, prefix string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		key := m.Content[i].Value
		full := key
		if prefix != "" {
			full = prefix + "." + key
		}
		f, ok := fieldByKey(full)
		if !ok {
			continue // groups, lists, and unknown keys (the schema reports those)
		}
		v.value(f, m.Content[i+1], pointer(full))
	}
}

// scalar returns n when it holds a value the rules can judge: not null,
// not a collection (the schema reports wrong types), and not a ${VAR}
// reference left unexpanded (its value is only known at boot).
func (v *validator) scalar(n *yaml.Node) (*yaml.Node, string) {
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" || v.unexpanded(n) {
		return nil, ""
	}
	return n, n.ShortTag()
}

// unexpanded reports whether n is a scalar holding a ${VAR} reference that
// no substitution has replaced.
func (v *validator) unexpanded(n *yaml.Node) bool {
	return n != nil && n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") &&
		v.doc.OriginOf(n).Kind != otelconfig.OriginSubstitution
}

func (v *validator) value(f field, n *yaml.Node, path string) {
	n, tag := v.scalar(n)
	if n == nil {
		return
	}
	switch f.kind {
	case kindListen:
		if tag == "!!str" || tag == "!!int" {
			if _, err := ListenAddr(n.Value); err != nil {
				v.errorf(n, path, "for example 127.0.0.1:8764, :8764 or 8764", "listen: %v", err)
			}
		}
	case kindSecret:
		if tag == "!!str" {
			v.secret(n, path, f.key, "${LITELLM_MASTER_KEY}")
		}
	case kindBytes, kindCount:
		if tag == "!!int" {
			i, err := strconv.ParseInt(n.Value, 0, 64)
			if err == nil {
				err = checkInt(f, i)
			}
			if err != nil {
				v.errorf(n, path, "", "%s: %v", f.key, err)
			}
		}
	case kindDuration:
		if tag == "!!str" {
			v.duration(n, path, f.key)
		}
	case kindHeaderName:
		if tag == "!!str" {
			if err := checkHeaderName(n.Value); err != nil {
				v.errorf(n, path, "", "%s: %v", f.key, err)
			}
		}
	case kindHeaderValue:
		if tag == "!!str" {
			if err := checkUserID(n.Value); err != nil {
				v.errorf(n, path, "", "%s: %v", f.key, err)
			}
		}
	}
}

func (v *validator) duration(n *yaml.Node, path, key string) {
	if _, err := svcconf.ParseDuration(n.Value); err != nil {
		v.errorf(n, path, "units are ns, us, ms, s, m, h", "%s: %v", key, err)
	}
}

// secret checks a credential and warns when it is written in the file
// itself instead of coming from the environment.
func (v *validator) secret(n *yaml.Node, path, key, ref string) {
	if err := checkHeaderValue(n.Value); err != nil {
		v.errorf(n, path, "", "%s: the value cannot be sent in an HTTP header", key)
	}
	if n.Value != "" && v.doc.OriginOf(n).Kind == otelconfig.OriginFile {
		v.warnf(otelconfig.CodeSecurity, n, path, "read it from the environment instead: "+lastKey(key)+": "+ref,
			"%s is written in the settings file", lastKey(key))
	}
}

func (v *validator) models(seq *yaml.Node) {
	if len(seq.Content) == 0 {
		v.warnf(otelconfig.CodeSettings, seq, "/models", "add at least one, e.g. {name: gpt-4o-mini, api_base: builtin:echo}",
			"models is empty: every chat completion will get 404")
	}
	names := map[string]*yaml.Node{}
	for i, m := range seq.Content {
		if m.Kind != yaml.MappingNode {
			continue
		}
		p := "/models/" + strconv.Itoa(i)
		if n, tag := v.scalar(get(m, "name")); tag == "!!str" {
			switch err := checkModelName(n.Value); {
			case err != nil:
				v.errorf(n, p+"/name", "", "model name: %v", err)
			case names[n.Value] != nil:
				v.errorf(n, p+"/name", "each public name maps to one upstream; remove one entry or rename it",
					"model %q is already defined on line %d", n.Value, names[n.Value].Line)
			default:
				names[n.Value] = n
			}
		}
		var base *yaml.Node
		if n, tag := v.scalar(get(m, "api_base")); tag == "!!str" {
			base = n
			if _, err := parseAPIBase(n.Value); err != nil {
				v.errorf(n, p+"/api_base", "for example https://api.openai.com/v1, or "+EchoBase+" for the offline echo", "api_base: %v", err)
			}
		}
		if n, tag := v.scalar(get(m, "model")); tag == "!!str" && strings.TrimSpace(n.Value) == "" {
			v.errorf(n, p+"/model", "leave it out to send the public name", "model: empty upstream model id")
		}
		if n, tag := v.scalar(get(m, "api_key")); tag == "!!str" {
			v.secret(n, p+"/api_key", "api_key", "${OPENAI_API_KEY}")
			if base != nil && n.Value != "" && insecureRemote(base.Value) {
				v.warnf(otelconfig.CodeSecurity, base, p+"/api_base", "use https://",
					"api_key would travel unencrypted to %s", base.Value)
			}
		}
		if n, tag := v.scalar(get(m, "timeout")); tag == "!!str" {
			v.duration(n, p+"/timeout", "timeout")
		}
		if h := get(m, "extra_headers"); h != nil && h.Kind == yaml.MappingNode {
			v.extraHeaders(h, p+"/extra_headers")
		}
	}
}

func (v *validator) extraHeaders(m *yaml.Node, path string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, val := m.Content[i], m.Content[i+1]
		p := path + "/" + escape(k.Value)
		if err := checkExtraHeader(k.Value); err != nil {
			v.errorf(k, p, "", "extra_headers: %v", err)
			continue
		}
		n, tag := v.scalar(val)
		if tag != "!!str" {
			continue
		}
		if err := checkHeaderValue(n.Value); err != nil {
			v.errorf(n, p, "", "extra_headers %s: %v", k.Value, err)
		}
		if otelconfig.IsSecretName(k.Value) && n.Value != "" && v.doc.OriginOf(n).Kind == otelconfig.OriginFile {
			v.warnf(otelconfig.CodeSecurity, n, p, "read it from the environment instead: ${VARIABLE}",
				"the value of header %s looks like a credential written in the settings file", k.Value)
		}
	}
}

func (v *validator) patterns(seq *yaml.Node) {
	for i, m := range seq.Content {
		if m.Kind != yaml.MappingNode {
			continue
		}
		p := "/user_id_mappings/header_patterns/" + strconv.Itoa(i)
		if n, tag := v.scalar(get(m, "header")); tag == "!!str" {
			if err := checkHeaderName(n.Value); err != nil {
				v.errorf(n, p+"/header", "for example user-agent", "header: %v", err)
			}
		}
		if n, tag := v.scalar(get(m, "pattern")); tag == "!!str" {
			if _, err := compilePattern(n.Value); err != nil {
				v.errorf(n, p+"/pattern", "patterns are RE2 regular expressions (https://github.com/google/re2/wiki/Syntax), matched case-insensitively",
					"pattern %q: %v", n.Value, err)
			}
		}
		if n, tag := v.scalar(get(m, "user_id")); tag == "!!str" {
			if err := checkUserID(n.Value); err != nil {
				v.errorf(n, p+"/user_id", "", "user_id: %v", err)
			}
		}
	}
}

// exposure warns about a proxy reachable from the network without a
// master key: anyone who can connect spends the upstream keys.
func (v *validator) exposure() {
	n, tag := v.scalar(get(v.doc.Root, "listen"))
	if n == nil || (tag != "!!str" && tag != "!!int") {
		return
	}
	addr, err := ListenAddr(n.Value)
	if err != nil || svcconf.IsLoopbackListen(addr) {
		return
	}
	if k, _ := v.scalar(get(v.doc.Root, "master_key")); k != nil && k.Value != "" {
		return
	}
	if k := get(v.doc.Root, "master_key"); k != nil && strings.Contains(k.Value, "${") {
		return // set at boot
	}
	v.warnf(otelconfig.CodeSecurity, n, "/listen", "set master_key, or listen on 127.0.0.1",
		"listening on %s, reachable from other machines, without a master_key: anyone who can connect uses the upstream keys", addr)
}

// insecureRemote reports whether an api_base is plain http to a host that
// is not this machine.
func insecureRemote(base string) bool {
	u, err := parseAPIBase(base)
	if err != nil || u == nil || u.Scheme != "http" {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return false
	}
	ip := net.ParseIP(h)
	return ip == nil || !ip.IsLoopback()
}

func get(m *yaml.Node, key string) *yaml.Node {
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

func lastKey(dotted string) string {
	if i := strings.LastIndexByte(dotted, '.'); i >= 0 {
		return dotted[i+1:]
	}
	return dotted
}

// pointer turns a dotted key into a JSON pointer.
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
