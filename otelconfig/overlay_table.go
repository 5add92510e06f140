package otelconfig

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// envTable is the overlay: applied top to bottom, so that exporter
// selection happens before protocols, protocols before endpoints, and the
// generic OTEL_EXPORTER_OTLP_* rows before the per-signal ones.
var envTable = buildEnvTable()

func buildEnvTable() []EnvVar {
	t := []EnvVar{
		{Name: "OTEL_CONFIG_FILE", Family: "general", Effect: "path of otel.yaml when none is given on the command line (never passed on to otelconf)"},
		{Name: "OTEL_SDK_DISABLED", Family: "general", Effect: "true turns all OpenTelemetry setup off (no-op providers); logs still go to the console", apply: applyDisabled},
		{Name: "OTEL_LOG_LEVEL", Family: "general", Effect: "minimum severity of log records captured (trace, debug, info, warn, error, fatal); sets log_level", apply: applyLogLevel},
		{Name: "OTEL_RESOURCE_ATTRIBUTES", Family: "resource", Effect: "key=value,... merged into resource.attributes (the variable wins per key)", apply: applyResourceAttributes},
		{Name: "OTEL_SERVICE_NAME", Family: "resource", Effect: "resource attribute service.name (wins over the file and OTEL_RESOURCE_ATTRIBUTES)", apply: applyServiceName},
		{Name: "OTEL_PROPAGATORS", Family: "propagation", Effect: "comma list of propagators (tracecontext, baggage, b3, b3multi, jaeger, xray, ottrace, none); replaces propagator", apply: applyPropagators},
		{Name: "OTEL_TRACES_SAMPLER", Family: "sampler", Effect: "replaces tracer_provider.sampler (always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio)", apply: applySampler},
		{Name: "OTEL_TRACES_SAMPLER_ARG", Family: "sampler", Effect: "ratio in [0,1] for the traceidratio samplers", apply: applySamplerArg},
	}
	for _, s := range signals {
		s := s
		t = append(t, EnvVar{
			Name: "OTEL_" + s.upper + "_EXPORTER", Family: "exporter selection",
			Effect: fmt.Sprintf("comma list of otlp, console, none: replaces the %s exporters; none removes %s", s.name, s.provider),
			apply:  func(o *overlay, v string) error { return applyExporterSelection(o, s, v) },
		})
	}
	// Each OTLP setting: the generic row, then one row per signal.
	type otlpRow struct {
		suffix, effect string
		secret         bool
		apply          func(o *overlay, only *signal, v string) error
	}
	rows := []otlpRow{
		{"PROTOCOL", "OTLP protocol: grpc, http/protobuf or http/json (otlp_grpc or otlp_http); when nothing names one, gRPC", false, applyProtocol},
		{"ENDPOINT", "OTLP endpoint; a signal whose exporters are console-only switches to OTLP", false, applyEndpoint},
		{"HEADERS", "key=value,... merged into the exporter headers (the variable wins per key)", true, applyHeaders},
		{"COMPRESSION", "gzip or none", false, applyOTLPField("compression", func(v string) (*yaml.Node, error) {
			e, err := parseEnum(v, "gzip", "none")
			return strNode(e), err
		})},
		{"TIMEOUT", "export timeout in milliseconds", false, applyOTLPField("timeout", func(v string) (*yaml.Node, error) {
			n, err := parseNonNegInt(v)
			return intNode(n), err
		})},
		{"INSECURE", "true allows plaintext gRPC (tls.insecure); ignored by otlp_http, where the URL scheme decides", false, applyInsecure},
		{"CERTIFICATE", "CA certificate file for the server (tls.ca_file)", false, applyTLSFile("ca_file")},
		{"CLIENT_KEY", "client private key file for mTLS (tls.key_file)", false, applyTLSFile("key_file")},
		{"CLIENT_CERTIFICATE", "client certificate file for mTLS (tls.cert_file)", false, applyTLSFile("cert_file")},
	}
	for _, r := range rows {
		r := r
		t = append(t, EnvVar{
			Name: "OTEL_EXPORTER_OTLP_" + r.suffix, Family: "otlp exporter", Secret: r.secret,
			Effect: r.effect + " (every signal without its own variable)",
			apply:  func(o *overlay, v string) error { return r.apply(o, nil, v) },
		})
		for _, s := range signals {
			s := s
			t = append(t, EnvVar{
				Name: "OTEL_EXPORTER_OTLP_" + s.upper + "_" + r.suffix, Family: "otlp exporter", Secret: r.secret,
				Effect: r.effect + " (" + s.name + " only" + map[bool]string{true: ", used as given", false: ""}[r.suffix == "ENDPOINT"] + ")",
				apply:  func(o *overlay, v string) error { return r.apply(o, &s, v) },
			})
		}
	}
	t = append(t,
		EnvVar{Name: "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", Family: "otlp exporter", Effect: "cumulative, delta or low_memory for OTLP metric exporters",
			apply: applyMetricExporterEnum("temporality_preference", "cumulative", "delta", "low_memory")},
		EnvVar{Name: "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", Family: "otlp exporter", Effect: "explicit_bucket_histogram or base2_exponential_bucket_histogram",
			apply: applyMetricExporterEnum("default_histogram_aggregation", "explicit_bucket_histogram", "base2_exponential_bucket_histogram")},
	)
	type numRow struct {
		name, family, field, effect string
		positive                    bool
		target                      func(root *yaml.Node) []*yaml.Node
	}
	bsp := func(root *yaml.Node) []*yaml.Node { return batchHolders(root, signals[0]) }
	blrp := func(root *yaml.Node) []*yaml.Node { return batchHolders(root, signals[2]) }
	readers := func(root *yaml.Node) []*yaml.Node { return signals[1].holders(root) }
	nums := []numRow{
		{"OTEL_BSP_SCHEDULE_DELAY", "batch span processor", "schedule_delay", "delay between exports, ms", false, bsp},
		{"OTEL_BSP_EXPORT_TIMEOUT", "batch span processor", "export_timeout", "export timeout, ms", false, bsp},
		{"OTEL_BSP_MAX_QUEUE_SIZE", "batch span processor", "max_queue_size", "spans queued before dropping", true, bsp},
		{"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "batch span processor", "max_export_batch_size", "spans per export", true, bsp},
		{"OTEL_BLRP_SCHEDULE_DELAY", "batch log processor", "schedule_delay", "delay between exports, ms", false, blrp},
		{"OTEL_BLRP_EXPORT_TIMEOUT", "batch log processor", "export_timeout", "export timeout, ms", false, blrp},
		{"OTEL_BLRP_MAX_QUEUE_SIZE", "batch log processor", "max_queue_size", "log records queued before dropping", true, blrp},
		{"OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "batch log processor", "max_export_batch_size", "log records per export", true, blrp},
		{"OTEL_METRIC_EXPORT_INTERVAL", "periodic reader", "interval", "interval between metric exports, ms", false, readers},
		{"OTEL_METRIC_EXPORT_TIMEOUT", "periodic reader", "timeout", "metric export timeout, ms", false, readers},
	}
	for _, n := range nums {
		n := n
		t = append(t, EnvVar{Name: n.name, Family: n.family, Effect: n.effect + " (" + n.field + " of every " + n.family + ")",
			apply: func(o *overlay, v string) error {
				parse := parseNonNegInt
				if n.positive {
					parse = parsePosInt
				}
				i, err := parse(v)
				if err != nil {
					return err
				}
				hs := n.target(o.root())
				if len(hs) == 0 {
					return &noEffect{fmt.Sprintf("%s has no effect: the configuration has no %s", n.name, n.family)}
				}
				for _, h := range hs {
					o.set(h, n.field, intNode(i))
				}
				return nil
			}})
	}
	type limitRow struct{ name, parent, limits, field string }
	limits := []limitRow{
		{"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "", "attribute_limits", "attribute_value_length_limit"},
		{"OTEL_ATTRIBUTE_COUNT_LIMIT", "", "attribute_limits", "attribute_count_limit"},
		{"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "tracer_provider", "limits", "attribute_value_length_limit"},
		{"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "tracer_provider", "limits", "attribute_count_limit"},
		{"OTEL_SPAN_EVENT_COUNT_LIMIT", "tracer_provider", "limits", "event_count_limit"},
		{"OTEL_SPAN_LINK_COUNT_LIMIT", "tracer_provider", "limits", "link_count_limit"},
		{"OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "tracer_provider", "limits", "event_attribute_count_limit"},
		{"OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "tracer_provider", "limits", "link_attribute_count_limit"},
		{"OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "logger_provider", "limits", "attribute_value_length_limit"},
		{"OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", "logger_provider", "limits", "attribute_count_limit"},
	}
	for _, l := range limits {
		l := l
		where := l.limits + "." + l.field
		if l.parent != "" {
			where = l.parent + "." + where
		}
		t = append(t, EnvVar{Name: l.name, Family: "limits", Effect: where,
			apply: func(o *overlay, v string) error {
				i, err := parseNonNegInt(v)
				if err != nil {
					return err
				}
				parent := o.root()
				if l.parent != "" {
					parent = mapGet(parent, l.parent)
					if parent == nil || parent.Kind != yaml.MappingNode {
						return &noEffect{fmt.Sprintf("%s has no effect: the configuration has no %s", l.name, l.parent)}
					}
				}
				m := ensureMap(parent, l.limits)
				if m == nil {
					return fmt.Errorf("cannot set %s: it is not a mapping in the file", where)
				}
				o.set(m, l.field, intNode(i))
				return nil
			}})
	}
	t = append(t, EnvVar{Name: "OTEL_METRICS_EXEMPLAR_FILTER", Family: "metrics", Effect: "meter_provider.exemplar_filter: always_on, always_off or trace_based",
		apply: func(o *overlay, v string) error {
			f, err := parseEnum(v, "always_on", "always_off", "trace_based")
			if err != nil {
				return err
			}
			mp := mapGet(o.root(), "meter_provider")
			if mp == nil || mp.Kind != yaml.MappingNode {
				return &noEffect{"OTEL_METRICS_EXEMPLAR_FILTER has no effect: the configuration has no meter_provider"}
			}
			o.set(mp, "exemplar_filter", strNode(f))
			return nil
		}})
	return t
}

func batchHolders(root *yaml.Node, s signal) []*yaml.Node {
	list := mapGet(mapGet(root, s.provider), s.list)
	if list == nil || list.Kind != yaml.SequenceNode {
		return nil
	}
	var out []*yaml.Node
	for _, item := range list.Content {
		if k, body := onlyKey(item); k == "batch" && body != nil && body.Kind == yaml.MappingNode {
			out = append(out, body)
		}
	}
	return out
}

func applyDisabled(o *overlay, v string) error {
	b, err := parseBool(v)
	if err != nil {
		return err
	}
	o.set(o.root(), "disabled", boolNode(b))
	return nil
}

// logLevels maps OTEL_LOG_LEVEL spellings to log_level severity names.
var logLevels = map[string]string{
	"trace": "trace", "debug": "debug", "info": "info", "warn": "warn", "warning": "warn",
	"error": "error", "fatal": "fatal",
}

func applyLogLevel(o *overlay, v string) error {
	l, ok := logLevels[strings.ToLower(v)]
	if !ok {
		return errors.New("must be one of trace, debug, info, warn, error, fatal")
	}
	o.set(o.root(), "log_level", strNode(l))
	return nil
}

func resourceAttributes(o *overlay) (*yaml.Node, error) {
	res := ensureMap(o.root(), "resource")
	if res == nil {
		return nil, errors.New("cannot merge: resource is not a mapping in the file")
	}
	attrs := mapGet(res, "attributes")
	if isNull(attrs) {
		attrs = newSeq()
		o.set(res, "attributes", attrs)
	}
	if attrs.Kind != yaml.SequenceNode {
		return nil, errors.New("cannot merge: resource.attributes is not a list in the file")
	}
	return attrs, nil
}

// setAttribute replaces the value of the named resource attribute (as a
// string) or appends it.
func setAttribute(o *overlay, attrs *yaml.Node, name, value string) {
	for _, a := range attrs.Content {
		if n := mapGet(a, "name"); n != nil && n.Value == name {
			o.set(a, "value", strNode(value))
			mapDelete(a, "type")
			return
		}
	}
	a := newMap("name", strNode(name), "value", strNode(value))
	attrs.Content = append(attrs.Content, a)
	o.d.setOriginTree(a, o.origin())
}

func applyResourceAttributes(o *overlay, v string) error {
	pairs, err := parsePairs(v)
	if err != nil {
		return err
	}
	attrs, err := resourceAttributes(o)
	if err != nil {
		return err
	}
	for _, p := range pairs {
		setAttribute(o, attrs, p[0], p[1])
	}
	return nil
}

func applyServiceName(o *overlay, v string) error {
	attrs, err := resourceAttributes(o)
	if err != nil {
		return err
	}
	setAttribute(o, attrs, "service.name", v)
	return nil
}

var knownPropagators = []string{"tracecontext", "baggage", "b3", "b3multi", "jaeger", "xray", "ottrace", "none"}

func applyPropagators(o *overlay, v string) error {
	var names []string
	for _, p := range strings.Split(v, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		if !slices.Contains(knownPropagators, p) {
			return fmt.Errorf("unknown propagator %q (known: %s)", p, strings.Join(knownPropagators, ", "))
		}
		names = append(names, p)
	}
	if len(names) == 0 {
		return errors.New("no propagator named")
	}
	o.set(o.root(), "propagator", newMap("composite_list", strNode(strings.Join(names, ","))))
	return nil
}

func parseRatio(v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 1 {
		return 0, errors.New("must be a number from 0 to 1")
	}
	return f, nil
}

func applySampler(o *overlay, v string) error {
	tp := mapGet(o.root(), "tracer_provider")
	if tp == nil || tp.Kind != yaml.MappingNode {
		return &noEffect{"OTEL_TRACES_SAMPLER has no effect: the configuration has no tracer_provider"}
	}
	ratio := 1.0
	if arg, ok := o.lookup("OTEL_TRACES_SAMPLER_ARG"); ok && strings.TrimSpace(arg) != "" {
		r, err := parseRatio(strings.TrimSpace(arg))
		if err != nil {
			return nil // reported by the OTEL_TRACES_SAMPLER_ARG row
		}
		ratio = r
	}
	ratioSampler := func() *yaml.Node { return newMap("trace_id_ratio_based", newMap("ratio", floatNode(ratio))) }
	var s *yaml.Node
	switch strings.ToLower(v) {
	case "always_on":
		s = newMap("always_on", nullNode())
	case "always_off":
		s = newMap("always_off", nullNode())
	case "traceidratio":
		s = ratioSampler()
	case "parentbased_always_on":
		s = newMap("parent_based", newMap("root", newMap("always_on", nullNode())))
	case "parentbased_always_off":
		s = newMap("parent_based", newMap("root", newMap("always_off", nullNode())))
	case "parentbased_traceidratio":
		s = newMap("parent_based", newMap("root", ratioSampler()))
	case "jaeger_remote", "parentbased_jaeger_remote", "xray", "parentbased_xray":
		return fmt.Errorf("sampler %q is not supported by the Go SDK's declarative configuration", v)
	default:
		return errors.New("must be one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio")
	}
	o.set(tp, "sampler", s)
	return nil
}

func applySamplerArg(o *overlay, v string) error {
	r, err := parseRatio(v)
	if err != nil {
		return err
	}
	if s, ok := o.lookup("OTEL_TRACES_SAMPLER"); ok && strings.TrimSpace(s) != "" {
		return nil // applied together with OTEL_TRACES_SAMPLER
	}
	// Without OTEL_TRACES_SAMPLER, the argument sets the ratio of the
	// file's ratio sampler, wherever it sits in the sampler tree.
	found := false
	Walk(mapGet(mapGet(o.root(), "tracer_provider"), "sampler"), func(_ string, key, n *yaml.Node) {
		if key != nil && key.Value == "trace_id_ratio_based" {
			if m := ensureMapNode(n); m != nil {
				o.set(m, "ratio", floatNode(r))
				found = true
			}
		}
	})
	if !found {
		return &noEffect{"OTEL_TRACES_SAMPLER_ARG has no effect: no traceidratio sampler is configured"}
	}
	return nil
}

// ensureMapNode turns a null scalar into an empty mapping in place.
func ensureMapNode(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.MappingNode {
		return n
	}
	if isNull(n) {
		*n = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
		return n
	}
	return nil
}

func applyExporterSelection(o *overlay, s signal, v string) error {
	var names []string
	for _, p := range strings.Split(v, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		switch p {
		case "":
			continue
		case "otlp", "console", "none":
		case "logging":
			p = "console" // the deprecated spelling
		default:
			return fmt.Errorf("exporter %q is not supported (use otlp, console or none)", p)
		}
		if !slices.Contains(names, p) {
			names = append(names, p)
		}
	}
	if len(names) == 0 {
		return errors.New("no exporter named")
	}
	if slices.Contains(names, "none") {
		if len(names) > 1 {
			return errors.New("none cannot be combined with other exporters")
		}
		mapDelete(o.root(), s.provider)
		return nil
	}
	prov := ensureMap(o.root(), s.provider)
	if prov == nil {
		return fmt.Errorf("cannot replace exporters: %s is not a mapping in the file", s.provider)
	}
	// Keep the first processor/reader's settings (batch sizes, interval) as
	// the template, and reuse existing exporters of the chosen kinds.
	var template *yaml.Node
	kind := "batch"
	if s.name == "metrics" {
		kind = "periodic"
	}
	if list := mapGet(prov, s.list); list != nil && list.Kind == yaml.SequenceNode {
		for _, item := range list.Content {
			k, body := onlyKey(item)
			if (k == kind) && body != nil && body.Kind == yaml.MappingNode {
				template = body
				break
			}
		}
	}
	existing := map[string]*yaml.Node{}
	for _, e := range s.exporters(o.root()) {
		k, _ := onlyKey(e)
		if isOTLP(k) {
			k = "otlp"
		}
		if _, ok := existing[k]; !ok {
			existing[k] = e
		}
	}
	items := newSeq()
	for _, n := range names {
		exp := existing[n]
		if exp == nil {
			if n == "otlp" {
				exp = newMap("otlp_grpc", newMap())
			} else {
				exp = newMap("console", nullNode())
			}
			o.d.setOriginTree(exp, o.origin())
		}
		body := newMap()
		if template != nil {
			for i := 0; i+1 < len(template.Content); i += 2 {
				if template.Content[i].Value != "exporter" {
					body.Content = append(body.Content, template.Content[i], template.Content[i+1])
				}
			}
		}
		body.Content = append(body.Content, strNode("exporter"), exp)
		items.Content = append(items.Content, newMap(kind, body))
	}
	// Only the new structure is the variable's; reused settings and
	// exporters keep their own origins.
	mapSet(prov, s.list, items)
	o.d.setOrigin(mapKey(prov, s.list), o.origin())
	o.d.setOrigin(items, o.origin())
	for _, it := range items.Content {
		_, body := onlyKey(it)
		o.d.setOrigin(it, o.origin())
		o.d.setOrigin(it.Content[0], o.origin())
		o.d.setOrigin(body, o.origin())
	}
	return nil
}

func applyProtocol(o *overlay, only *signal, v string) error {
	p, err := parseEnum(v, protocols...)
	if err != nil {
		return err
	}
	o.forOTLP(only, "PROTOCOL", func(_ signal, e otlpExporter) { o.convert(e, p) })
	return nil
}

func applyEndpoint(o *overlay, only *signal, v string) error {
	if err := validateEndpoint(v); err != nil {
		return err
	}
	for _, s := range signals {
		if only != nil && s.name != only.name {
			continue
		}
		if only == nil {
			if _, ok := o.signalVar(s, "ENDPOINT"); ok {
				continue
			}
		}
		p := o.effectiveProtocol(s)
		o.switchConsoleOnly(s, p)
		for _, e := range s.otlpConfigs(o.root()) {
			ep := v
			if only == nil && e.kind == "otlp_http" {
				ep = joinEndpoint(v, s.path)
			}
			o.set(e.cfg, "endpoint", strNode(ep))
		}
	}
	return nil
}

func applyHeaders(o *overlay, only *signal, v string) error {
	pairs, err := parsePairs(v)
	if err != nil {
		return err
	}
	o.forOTLP(only, "HEADERS", func(_ signal, e otlpExporter) {
		hs := mapGet(e.cfg, "headers")
		if isNull(hs) || hs.Kind != yaml.SequenceNode {
			hs = newSeq()
			o.set(e.cfg, "headers", hs)
		}
		for _, p := range pairs {
			replaced := false
			for _, h := range hs.Content {
				if n := mapGet(h, "name"); n != nil && strings.EqualFold(n.Value, p[0]) {
					o.set(h, "value", strNode(p[1]))
					replaced = true
				}
			}
			if !replaced {
				h := newMap("name", strNode(p[0]), "value", strNode(p[1]))
				hs.Content = append(hs.Content, h)
				o.d.setOriginTree(h, o.origin())
			}
		}
	})
	return nil
}

func applyOTLPField(field string, parse func(string) (*yaml.Node, error)) func(*overlay, *signal, string) error {
	suffix := strings.ToUpper(field)
	return func(o *overlay, only *signal, v string) error {
		n, err := parse(v)
		if err != nil {
			return err
		}
		o.forOTLP(only, suffix, func(_ signal, e otlpExporter) { o.set(e.cfg, field, cloneNode(n)) })
		return nil
	}
}

func applyInsecure(o *overlay, only *signal, v string) error {
	b, err := parseBool(v)
	if err != nil {
		return err
	}
	o.forOTLP(only, "INSECURE", func(_ signal, e otlpExporter) {
		if e.kind == "otlp_grpc" {
			o.set(o.ensureTLS(e), "insecure", boolNode(b))
		}
	})
	return nil
}

func applyTLSFile(field string) func(*overlay, *signal, string) error {
	suffix := map[string]string{"ca_file": "CERTIFICATE", "key_file": "CLIENT_KEY", "cert_file": "CLIENT_CERTIFICATE"}[field]
	return func(o *overlay, only *signal, v string) error {
		o.forOTLP(only, suffix, func(_ signal, e otlpExporter) { o.set(o.ensureTLS(e), field, strNode(v)) })
		return nil
	}
}

func applyMetricExporterEnum(field string, allowed ...string) func(*overlay, string) error {
	return func(o *overlay, v string) error {
		val, err := parseEnum(v, allowed...)
		if err != nil {
			return err
		}
		for _, e := range signals[1].otlpConfigs(o.root()) {
			o.set(e.cfg, field, strNode(val))
		}
		return nil
	}
}

func cloneNode(n *yaml.Node) *yaml.Node {
	c := *n
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, x := range n.Content {
		c.Content[i] = cloneNode(x)
	}
	return &c
}
