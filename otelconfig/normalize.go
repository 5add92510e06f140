package otelconfig

import (
	"fmt"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// normalizeFile makes the file's own meaning explicit before the overlay,
// where otelconf would otherwise get it wrong:
//   - resource.attributes_list is merged into resource.attributes
//     (otelconf v0.27.0 ignores attributes_list; attributes win per key);
//   - a tls block whose every field is null is "not set" (null means not
//     set in the data model; otelconf refuses an HTTP endpoint next to an
//     all-null tls block).
func (d *Document) normalizeFile() {
	if d.Root == nil {
		return
	}
	d.mergeAttributesList()
	for _, s := range signals {
		for _, e := range s.otlpConfigs(d.Root) {
			if t := mapGet(e.cfg, "tls"); t != nil && allNull(t) {
				mapDelete(e.cfg, "tls")
			}
		}
	}
}

func allNull(n *yaml.Node) bool {
	if isNull(n) {
		return true
	}
	if n.Kind != yaml.MappingNode {
		return false
	}
	for i := 1; i < len(n.Content); i += 2 {
		if !isNull(n.Content[i]) {
			return false
		}
	}
	return true
}

func (d *Document) mergeAttributesList() {
	res := mapGet(d.Root, "resource")
	list := mapGet(res, "attributes_list")
	if list == nil {
		return
	}
	if isNull(list) || list.Kind != yaml.ScalarNode || strings.TrimSpace(list.Value) == "" {
		mapDelete(res, "attributes_list")
		return
	}
	pairs, err := parsePairs(list.Value)
	if err != nil {
		d.errorf(CodeType, list.Line, list.Column, "/resource/attributes_list", "attributes_list: %s", "write key=value pairs separated by commas, like service.namespace=shop,deployment.environment.name=prod", err)
		return
	}
	attrs := mapGet(res, "attributes")
	if isNull(attrs) {
		attrs = newSeq()
		mapSet(res, "attributes", attrs)
	}
	if attrs.Kind != yaml.SequenceNode {
		return // the type error is reported by validation
	}
	have := map[string]bool{}
	for _, a := range attrs.Content {
		if n := mapGet(a, "name"); n != nil {
			have[n.Value] = true
		}
	}
	o := d.OriginOf(list)
	for _, p := range pairs {
		if have[p[0]] {
			continue
		}
		a := newMap("name", strNode(p[0]), "value", strNode(p[1]))
		for _, c := range a.Content {
			c.Line, c.Column = list.Line, list.Column
		}
		a.Line, a.Column = list.Line, list.Column
		attrs.Content = append(attrs.Content, a)
		d.setOriginTree(a, o)
	}
	mapDelete(res, "attributes_list")
}

// serviceName returns the resource's service.name, if set.
func serviceName(root *yaml.Node) (string, bool) {
	attrs := mapGet(mapGet(root, "resource"), "attributes")
	if attrs == nil || attrs.Kind != yaml.SequenceNode {
		return "", false
	}
	for _, a := range attrs.Content {
		if n := mapGet(a, "name"); n != nil && n.Value == "service.name" {
			v := mapGet(a, "value")
			if isNull(v) {
				return "", false
			}
			return v.Value, true
		}
	}
	return "", false
}

// setServiceName sets service.name with the given origin; with onlyIfUnset
// it leaves a name the file (or attributes_list) already gives alone.
func (d *Document) setServiceName(name string, o Origin, onlyIfUnset bool) {
	if _, ok := serviceName(d.Root); ok && onlyIfUnset {
		return
	}
	res := ensureMap(d.Root, "resource")
	if res == nil {
		return
	}
	attrs := mapGet(res, "attributes")
	if isNull(attrs) {
		attrs = newSeq()
		mapSet(res, "attributes", attrs)
	}
	if attrs.Kind != yaml.SequenceNode {
		return
	}
	for _, a := range attrs.Content {
		if n := mapGet(a, "name"); n != nil && n.Value == "service.name" {
			v := strNode(name)
			mapSet(a, "value", v)
			mapDelete(a, "type")
			d.setOrigin(v, o)
			return
		}
	}
	a := newMap("name", strNode("service.name"), "value", strNode(name))
	attrs.Content = append(attrs.Content, a)
	d.setOriginTree(a, o)
}

// checkFileFormat reports a missing or unsupported file_format. 1.0 is
// what this build understands; a newer 1.x loads as 1.0 with a warning,
// since minor versions only add optional properties; 2.x and later, or
// 0.x, are errors.
func (d *Document) checkFileFormat() {
	if d.Root == nil {
		return
	}
	k := mapKey(d.Root, "file_format")
	v := mapGet(d.Root, "file_format")
	if k == nil {
		d.errorf(CodeRequired, 1, 1, "", "file_format is missing", `add file_format: "1.0" as the first line`)
		return
	}
	if isNull(v) || v.Kind != yaml.ScalarNode {
		d.errorf(CodeFileFormat, k.Line, k.Column, "/file_format", "file_format must be a version string", `write file_format: "1.0"`)
		return
	}
	ver := v.Value
	major, minor, ok := strings.Cut(ver, ".")
	switch {
	case ver == "1.0" || ver == "1.0.0":
	case !ok || !isDigits(major) || !isDigits(strings.SplitN(minor, ".", 2)[0]):
		d.errorf(CodeFileFormat, v.Line, v.Column, "/file_format", "file_format %q is not a version like \"1.0\"", `write file_format: "1.0"`, ver)
		return
	case major == "1":
		d.warnf(CodeUnknownVersion, v.Line, v.Column, "/file_format",
			"file_format %q is newer than 1.0, the version this build understands; it is loaded as 1.0", "properties added after 1.0 are reported as unknown and ignored by the SDK", ver)
	default:
		d.errorf(CodeFileFormat, v.Line, v.Column, "/file_format", "file_format %q is not supported: this build understands major version 1 (1.0)", `write file_format: "1.0"`, ver)
		return
	}
	if v.ShortTag() != "!!str" {
		d.warnf(CodeType, v.Line, v.Column, "/file_format", "file_format should be a string", fmt.Sprintf("quote it: file_format: %q (unquoted, 1.10 would read as 1.1)", ver))
	}
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// fillOTLPEndpoints gives every OTLP exporter without an endpoint the
// specification's default (localhost:4317 for gRPC, localhost:4318 plus
// the signal path for HTTP). The format makes endpoint optional, but
// otelconf v0.27.0 refuses an exporter without one.
func (d *Document) fillOTLPEndpoints() {
	for _, s := range signals {
		for _, e := range s.otlpConfigs(d.Root) {
			if !isNull(mapGet(e.cfg, "endpoint")) {
				continue
			}
			ep := "http://localhost:4317"
			if e.kind == "otlp_http" {
				ep = "http://localhost:4318" + s.path
			}
			v := strNode(ep)
			mapSet(e.cfg, "endpoint", v)
			d.setOrigin(v, Origin{Kind: OriginDefault, Detail: "OTLP default endpoint"})
		}
	}
}
