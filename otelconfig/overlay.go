package otelconfig

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// EnvVar is one row of the overlay table: an OTEL_* variable and what it
// does to the loaded model.
type EnvVar struct {
	Name string
	// Family groups related variables for `otelcfg env`.
	Family string
	// Effect says in a sentence what setting the variable does.
	Effect string
	// Secret values are never printed or put in diagnostics.
	Secret bool
	apply  func(o *overlay, v string) error
}

// EnvVars returns the overlay table in the order it is applied. The table
// is the single source for the overlay, `otelcfg env`, and the docs.
func EnvVars() []EnvVar { return slices.Clone(envTable) }

// overlay applies one variable at a time to a document.
type overlay struct {
	d      *Document
	lookup LookupFunc
	cur    string // the variable being applied
}

// ApplyEnvOverlay overlays the OTEL_* variables of the table onto the
// document, recording each change's origin. A malformed value is an error
// diagnostic naming the variable; the value is then not applied.
func (d *Document) ApplyEnvOverlay(lookup LookupFunc) {
	if d.Root == nil {
		return
	}
	o := &overlay{d: d, lookup: lookup}
	for _, row := range envTable {
		v, ok := lookup(row.Name)
		if !ok || row.apply == nil {
			continue
		}
		o.cur = row.Name
		raw := v
		v = strings.TrimSpace(v)
		if v == "" && raw == "" {
			continue // set but empty means unset, as the env spec says
		}
		if err := row.apply(o, v); err != nil {
			msg := err.Error()
			var ne *noEffect
			sev := SeverityError
			code := CodeEnvValue
			if errors.As(err, &ne) {
				sev, code = SeverityWarning, CodeEnvNoEffect
			} else if !row.Secret {
				msg = fmt.Sprintf("%s=%q: %s", row.Name, truncate(v, 80), msg)
			} else {
				msg = fmt.Sprintf("%s: %s", row.Name, msg)
			}
			d.Diagnostics = append(d.Diagnostics, Diagnostic{
				Severity: sev, Code: code, Env: row.Name, Message: msg, Hint: row.Effect,
			})
		}
	}
}

// noEffect is a variable that is well-formed but has nothing to act on.
type noEffect struct{ msg string }

func (e *noEffect) Error() string { return e.msg }

func (o *overlay) origin() Origin { return Origin{Kind: OriginEnv, Vars: []string{o.cur}} }

// set puts v at m[key] and records that the current variable put it there.
func (o *overlay) set(m *yaml.Node, key string, v *yaml.Node) {
	mapSet(m, key, v)
	o.d.setOriginTree(v, o.origin())
	o.d.setOrigin(mapKey(m, key), o.origin())
}

func (o *overlay) root() *yaml.Node { return o.d.Root }

// ---- value parsers: each returns a message without the value itself ----

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, errors.New("must be true or false")
}

func parseNonNegInt(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt32 {
		return 0, errors.New("must be a whole number of milliseconds or items, 0 or more")
	}
	return n, nil
}

func parsePosInt(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt32 {
		return 0, errors.New("must be a whole number greater than 0")
	}
	return n, nil
}

func parseEnum(v string, allowed ...string) (string, error) {
	l := strings.ToLower(v)
	if slices.Contains(allowed, l) {
		return l, nil
	}
	return "", fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
}

// parsePairs parses the W3C-baggage-like key=value,key=value lists of
// OTEL_RESOURCE_ATTRIBUTES and OTEL_EXPORTER_OTLP_HEADERS, percent-decoding
// values. Messages name the position of a bad pair, never its content.
func parsePairs(v string) ([][2]string, error) {
	var out [][2]string
	for i, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		k, val, ok := strings.Cut(p, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("pair %d is not key=value", i+1)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(val))
		if err != nil {
			return nil, fmt.Errorf("pair %d (%s) has an invalid %%-escape", i+1, k)
		}
		out = append(out, [2]string{k, dv})
	}
	if len(out) == 0 {
		return nil, errors.New("no key=value pairs")
	}
	return out, nil
}

// ---- the model's shape, per signal ----

type signal struct {
	name     string // traces, metrics, logs
	upper    string // TRACES, ...
	provider string // tracer_provider, ...
	list     string // processors or readers
	path     string // /v1/traces
}

var signals = []signal{
	{"traces", "TRACES", "tracer_provider", "processors", "/v1/traces"},
	{"metrics", "METRICS", "meter_provider", "readers", "/v1/metrics"},
	{"logs", "LOGS", "logger_provider", "processors", "/v1/logs"},
}

// holders returns the mappings that hold an `exporter:` key for the signal:
// batch/simple processors, or periodic readers (pull readers export
// nothing the overlay can change).
func (s signal) holders(root *yaml.Node) []*yaml.Node {
	list := mapGet(mapGet(root, s.provider), s.list)
	if list == nil || list.Kind != yaml.SequenceNode {
		return nil
	}
	var out []*yaml.Node
	for _, item := range list.Content {
		kind, body := onlyKey(item)
		switch {
		case s.name == "metrics" && kind == "periodic" && body != nil && body.Kind == yaml.MappingNode:
			out = append(out, body)
		case s.name != "metrics" && (kind == "batch" || kind == "simple") && body != nil && body.Kind == yaml.MappingNode:
			out = append(out, body)
		}
	}
	return out
}

// exporters returns (kind, config-holder) for each exporter of the signal.
func (s signal) exporters(root *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	for _, h := range s.holders(root) {
		if e := mapGet(h, "exporter"); e != nil && e.Kind == yaml.MappingNode {
			out = append(out, e)
		}
	}
	return out
}

func isOTLP(kind string) bool { return kind == "otlp_grpc" || kind == "otlp_http" }

// otlpConfigs returns the configuration mapping of every OTLP exporter of
// the signal, creating an empty mapping for `otlp_grpc:` written as null.
func (s signal) otlpConfigs(root *yaml.Node) []otlpExporter {
	var out []otlpExporter
	for _, e := range s.exporters(root) {
		kind, _ := onlyKey(e)
		if !isOTLP(kind) {
			continue
		}
		if m := ensureMap(e, kind); m != nil {
			out = append(out, otlpExporter{holder: e, kind: kind, cfg: m})
		}
	}
	return out
}

type otlpExporter struct {
	holder *yaml.Node // the `exporter:` mapping
	kind   string     // otlp_grpc or otlp_http
	cfg    *yaml.Node // its settings
}

// signalVar returns the value of OTEL_EXPORTER_OTLP_<SIGNAL>_<suffix>.
func (o *overlay) signalVar(s signal, suffix string) (string, bool) {
	v, ok := o.lookup("OTEL_EXPORTER_OTLP_" + s.upper + "_" + suffix)
	return strings.TrimSpace(v), ok && strings.TrimSpace(v) != ""
}

// protocolKind maps an OTLP protocol name to the exporter kind and encoding.
func protocolKind(p string) (kind, encoding string) {
	switch p {
	case "http/protobuf":
		return "otlp_http", "protobuf"
	case "http/json":
		return "otlp_http", "json"
	}
	return "otlp_grpc", ""
}

var protocols = []string{"grpc", "http/protobuf", "http/json"}

// effectiveProtocol is the protocol the environment names for a signal, or
// "" when none does.
func (o *overlay) effectiveProtocol(s signal) string {
	if v, ok := o.signalVar(s, "PROTOCOL"); ok {
		if p, err := parseEnum(v, protocols...); err == nil {
			return p
		}
	}
	if v, ok := o.lookup("OTEL_EXPORTER_OTLP_PROTOCOL"); ok {
		if p, err := parseEnum(strings.TrimSpace(v), protocols...); err == nil {
			return p
		}
	}
	return ""
}

// convert turns an OTLP exporter into the kind of protocol p, keeping the
// settings both kinds share.
func (o *overlay) convert(e otlpExporter, p string) {
	kind, enc := protocolKind(p)
	cfg := e.cfg
	if kind != e.kind {
		nc := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for i := 0; i+1 < len(cfg.Content); i += 2 {
			k := cfg.Content[i].Value
			if k == "encoding" {
				continue // only otlp_http has one
			}
			v := cfg.Content[i+1]
			if k == "tls" && kind == "otlp_http" && v.Kind == yaml.MappingNode {
				v2 := *v
				v2.Content = nil
				for j := 0; j+1 < len(v.Content); j += 2 {
					if v.Content[j].Value != "insecure" { // gRPC only
						v2.Content = append(v2.Content, v.Content[j], v.Content[j+1])
					}
				}
				v = &v2
			}
			nc.Content = append(nc.Content, cfg.Content[i], v)
		}
		// The settings carried over keep their own origins.
		e.holder.Content = nil
		mapSet(e.holder, kind, nc)
		o.d.setOrigin(mapKey(e.holder, kind), o.origin())
		o.d.setOrigin(nc, o.origin())
		cfg = nc
	}
	if kind == "otlp_http" {
		cur := mapGet(cfg, "encoding")
		if enc == "json" || (cur != nil && cur.Value != enc) {
			o.set(cfg, "encoding", strNode(enc))
		}
	}
}

// switchConsoleOnly replaces the console exporters of a signal whose
// exporters are all console with OTLP exporters of the given protocol:
// "console for dev, OTLP when an endpoint is set".
func (o *overlay) switchConsoleOnly(s signal, p string) {
	exps := s.exporters(o.root())
	if len(exps) == 0 {
		return
	}
	for _, e := range exps {
		if k, _ := onlyKey(e); k != "console" {
			return
		}
	}
	if p == "" {
		p = "grpc"
	}
	kind, enc := protocolKind(p)
	for _, e := range exps {
		cfg := newMap()
		if enc == "json" {
			cfg = newMap("encoding", strNode(enc))
		}
		e.Content = nil
		o.set(e, kind, cfg)
	}
}

func joinEndpoint(base, path string) string {
	return strings.TrimRight(base, "/") + path
}

func validateEndpoint(v string) error {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return errors.New("must be an absolute http:// or https:// URL, like http://localhost:4317")
	}
	return nil
}

// forOTLP applies fn to every OTLP exporter of every signal that the
// signal-specific variable OTEL_EXPORTER_OTLP_<SIGNAL>_<suffix> does not
// override (suffix ""), or of signal s only.
func (o *overlay) forOTLP(only *signal, suffix string, fn func(s signal, e otlpExporter)) {
	for _, s := range signals {
		if only != nil && s.name != only.name {
			continue
		}
		if only == nil {
			if _, ok := o.signalVar(s, suffix); ok {
				continue
			}
		}
		for _, e := range s.otlpConfigs(o.root()) {
			fn(s, e)
		}
	}
}

func (o *overlay) ensureTLS(e otlpExporter) *yaml.Node {
	t := ensureMap(e.cfg, "tls")
	if t == nil {
		t = newMap()
		o.set(e.cfg, "tls", t)
	}
	return t
}
