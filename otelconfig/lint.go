package otelconfig

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"

	yaml "go.yaml.in/yaml/v3"
)

// lint finds what the schema allows but will not work as written: values
// the Go SDK ignores or refuses at boot, OTLP endpoints that cannot work,
// and security problems.
func lint(d *Document) {
	if d.Root == nil {
		return
	}
	lintSupport(d)
	lintEmpty(d)
	lintEndpoints(d)
	lintSecurity(d)
}

// unsupported lists keys valid in file_format 1.0 that otelconf v0.27.0
// does not act on. refused: the SDK refuses to start; otherwise ignored.
var unsupported = []unsupportedKey{
	support(`^/resource/detection~1development$`, false, "resource detectors are not run by otelconf v0.27.0; set attributes, or OTEL_RESOURCE_ATTRIBUTES"),
	support(`^/instrumentation~1development$`, false, "instrumentation settings are not read by the Go SDK"),
	support(`^/(tracer|meter|logger)_provider/\w+_configurator~1development$`, false, "scope configurators are not implemented by otelconf v0.27.0"),
	support(`^/distribution$`, false, "distribution-specific settings are not read by otelconf"),
	support(`^/meter_provider/readers/\d+/periodic/producers$`, false, "metric producers are not implemented by otelconf v0.27.0"),
	support(`^/meter_provider/readers/\d+/pull$`, true, "pull readers (prometheus/development) are not implemented by otelconf v0.27.0: the SDK refuses to start"),
	support(`/exporter/otlp_file~1development$`, true, "the otlp_file/development exporter is not implemented by otelconf v0.27.0: the SDK refuses to start"),
	support(`/(composite|jaeger_remote|probability)~1development$`, true, "this sampler is not implemented by otelconf v0.27.0: the SDK refuses to start"),
	support(`/otlp_http/encoding$`, true, ""),
}

type unsupportedKey struct {
	pattern func() *regexp.Regexp
	// suffix is the literal end of the pattern: a pointer without it
	// cannot match, which spares running every pattern on every node and
	// compiling the patterns a file never comes near.
	suffix  string
	refused bool
	why     string
}

func support(expr string, refused bool, why string) unsupportedKey {
	return unsupportedKey{
		pattern: sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) }),
		suffix:  literalSuffix(expr),
		refused: refused,
		why:     why,
	}
}

// literalSuffix returns the plain characters before the final $ of a
// regular expression (none when it does not end with $).
func literalSuffix(expr string) string {
	body, ok := strings.CutSuffix(expr, "$")
	if !ok {
		return ""
	}
	i := len(body)
	for i > 0 {
		c := body[i-1]
		plain := c == '_' || c == '~' || c == '/' || c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !plain || (i > 1 && body[i-2] == '\\') {
			break
		}
		i--
	}
	return body[i:]
}

func lintSupport(d *Document) {
	Walk(d.Root, func(p string, key, n *yaml.Node) {
		if key == nil {
			return
		}
		for _, u := range unsupported {
			if !strings.HasSuffix(p, u.suffix) || !u.pattern().MatchString(p) {
				continue
			}
			why := u.why
			if strings.HasSuffix(p, "/encoding") {
				if n.Value != "json" {
					return
				}
				why = "the Go SDK sends OTLP/HTTP as protobuf only: otelconf refuses encoding: json at boot"
			}
			verb := "is ignored"
			if u.refused {
				verb = "is refused at boot"
			}
			d.warnf(CodeUnsupported, key.Line, key.Column, p, "%s %s by the Go SDK", why, key.Value, verb)
			return
		}
	})
}

// otlpEndpoints calls fn for every OTLP exporter's endpoint value.
func otlpEndpoints(d *Document, fn func(kind, path string, e otlpExporter, ep *yaml.Node)) {
	for _, s := range signals {
		list := mapGet(mapGet(d.Root, s.provider), s.list)
		if list == nil || list.Kind != yaml.SequenceNode {
			continue
		}
		for i, item := range list.Content {
			k, body := onlyKey(item)
			exp := mapGet(body, "exporter")
			ek, cfg := onlyKey(exp)
			if !isOTLP(ek) || cfg == nil || cfg.Kind != yaml.MappingNode {
				continue
			}
			path := fmt.Sprintf("/%s/%s/%d/%s/exporter/%s", s.provider, s.list, i, k, ek)
			fn(ek, path, otlpExporter{holder: exp, kind: ek, cfg: cfg}, mapGet(cfg, "endpoint"))
		}
	}
}

func lintEndpoints(d *Document) {
	otlpEndpoints(d, func(kind, path string, e otlpExporter, ep *yaml.Node) {
		if isNull(ep) || ep.Kind != yaml.ScalarNode {
			return
		}
		p := path + "/endpoint"
		line, col := d.posOf(ep, p)
		u, err := url.Parse(ep.Value)
		switch kind {
		case "otlp_http":
			if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
				d.add(SeverityError, CodeEndpoint, line, col, p, "OTLP/HTTP endpoint %q is not an absolute http:// or https:// URL", d.envHint(p, "write it like http://localhost:4318/v1/traces"), truncate(ep.Value, 80))
				return
			}
			if u.Port() == "4317" {
				d.warnf(CodeEndpoint, line, col, p, "OTLP/HTTP endpoint uses port 4317, the OTLP/gRPC port", d.envHint(p, "OTLP/HTTP listens on 4318 by default; or use otlp_grpc"))
			}
		case "otlp_grpc":
			if err == nil && u.Scheme != "" && u.Host != "" {
				if u.Scheme != "http" && u.Scheme != "https" {
					d.add(SeverityError, CodeEndpoint, line, col, p, "OTLP/gRPC endpoint %q has scheme %q", d.envHint(p, "use http:// (plaintext) or https:// (TLS), like http://localhost:4317"), truncate(ep.Value, 80), u.Scheme)
					return
				}
				if u.Path != "" && u.Path != "/" {
					d.warnf(CodeEndpoint, line, col, p, "OTLP/gRPC ignores the path %q of the endpoint", d.envHint(p, "gRPC routes by service name; give only scheme, host and port"), u.Path)
				}
				if u.Port() == "4318" {
					d.warnf(CodeEndpoint, line, col, p, "OTLP/gRPC endpoint uses port 4318, the OTLP/HTTP port", d.envHint(p, "OTLP/gRPC listens on 4317 by default; or use otlp_http"))
				}
				return
			}
			// host:port without a scheme is accepted by otelconf.
			if _, port, err := net.SplitHostPort(ep.Value); err != nil || port == "" {
				d.add(SeverityError, CodeEndpoint, line, col, p, "OTLP/gRPC endpoint %q is neither a URL nor host:port", d.envHint(p, "write it like http://localhost:4317"), truncate(ep.Value, 80))
			}
		}
	})
}

// posOf returns n's position, or that of its nearest positioned ancestor
// when the overlay created it.
func (d *Document) posOf(n *yaml.Node, path string) (int, int) {
	if n != nil && n.Line > 0 {
		return n.Line, n.Column
	}
	return d.nearestPosition(path)
}

var secretName = regexp.MustCompile(`(?i)(authorization|auth|api[-_]?key|token|secret|password|passwd|credential|cookie|private[-_]?key|signature|session|(^|[-_])key$)`)

// IsSecretName reports whether a header, key or variable name suggests a
// secret value (Authorization, api-key, *_TOKEN, *_SECRET, *_PASSWORD, ...).
func IsSecretName(name string) bool { return secretName.MatchString(name) }

func isLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func lintSecurity(d *Document) {
	literalSecret := false
	otlpEndpoints(d, func(kind, path string, e otlpExporter, ep *yaml.Node) {
		insecure := false
		if t := mapGet(e.cfg, "tls"); t != nil {
			if v := mapGet(t, "insecure"); v != nil && v.Value == "true" {
				insecure = true
			}
		}
		if !isNull(ep) {
			u, err := url.Parse(ep.Value)
			host := ""
			if err == nil && u.Host != "" {
				host = u.Hostname()
				insecure = insecure || u.Scheme == "http"
			} else if h, _, err := net.SplitHostPort(ep.Value); err == nil {
				host = h
			}
			if insecure && host != "" && !isLoopback(host) {
				line, col := d.posOf(ep, path+"/endpoint")
				d.warnf(CodeSecurity, line, col, path+"/endpoint", "telemetry to %s is sent in plaintext", d.envHint(path+"/endpoint", "use https:// (and tls.ca_file for a private CA) for anything that leaves this host"), host)
			}
		}
		// A literal secret in the file: every copy of the file leaks it.
		if hs := mapGet(e.cfg, "headers"); hs != nil && hs.Kind == yaml.SequenceNode {
			for i, h := range hs.Content {
				name, val := mapGet(h, "name"), mapGet(h, "value")
				if name == nil || isNull(val) || val.Value == "" || !IsSecretName(name.Value) {
					continue
				}
				if d.OriginOf(val).Kind == OriginFile {
					literalSecret = true
					d.warnf(CodeSecurity, val.Line, val.Column, fmt.Sprintf("%s/headers/%d/value", path, i), "header %q has a literal secret value in the file", "write value: ${ENV_VAR} and set the variable at deploy time", name.Value)
				}
			}
		}
		if hl := mapGet(e.cfg, "headers_list"); hl != nil && hl.Kind == yaml.ScalarNode && d.OriginOf(hl).Kind == OriginFile {
			if pairs, err := parsePairs(hl.Value); err == nil {
				for _, p := range pairs {
					if IsSecretName(p[0]) && p[1] != "" {
						literalSecret = true
						d.warnf(CodeSecurity, hl.Line, hl.Column, path+"/headers_list", "headers_list has a literal secret value for %q in the file", "write headers_list: ${OTEL_EXPORTER_OTLP_HEADERS} and set the variable at deploy time", p[0])
					}
				}
			}
		}
	})
	if literalSecret {
		if st, err := os.Stat(d.Name); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o004 != 0 {
			d.warnf(CodeSecurity, 0, 0, "", "%s is readable by every user on this machine (mode %s) and holds a literal secret", "chmod o-r the file, and move the secret to an environment variable", d.Name, strconv.FormatUint(uint64(st.Mode().Perm()), 8))
		}
	}
}

// lintEmpty: an empty processor or reader list is valid for a program that
// adds its own, but in a file it usually means nothing is exported.
func lintEmpty(d *Document) {
	for _, s := range signals {
		list := mapGet(mapGet(d.Root, s.provider), s.list)
		if list != nil && list.Kind == yaml.SequenceNode && len(list.Content) == 0 {
			p := "/" + s.provider + "/" + s.list
			line, col := d.posOf(list, p)
			d.warnf(CodeSchema, line, col, p, "%s.%s is empty: no %s are exported", fmt.Sprintf("add an exporter, or remove %s (OTEL_%s_EXPORTER=none does that too)", s.provider, s.upper), s.provider, s.list, s.name)
		}
	}
}
