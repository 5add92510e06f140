package otelconfig

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"

	"go.opentelemetry.io/contrib/otelconf"
	yaml "go.yaml.in/yaml/v3"
)

// Profiles are the services that ship with otelcfg and the built-in
// service.name each boots with.
var Profiles = map[string]string{
	"interceptor": "litellm-interceptor",
	"proxy":       "litellm-proxy",
}

// ProfileChecker adds the rules a configuration must follow for the
// interceptor → proxy setup to produce one correlated trace per request.
func ProfileChecker(name string) Checker {
	return CheckerFunc(func(d *Document) {
		if _, ok := Profiles[name]; !ok {
			d.errorf(CodeProfile, 0, 0, "", "unknown service profile %q (known: interceptor, proxy)", "", name)
			return
		}
		if d.Root == nil {
			return
		}
		if v := mapGet(d.Root, "disabled"); v != nil && v.Value == "true" {
			return // telemetry deliberately off: nothing to correlate
		}
		profilePropagation(d)
		profileLogs(d)
		profileSampler(d)
		profileServiceName(d, name)
	})
}

func profilePropagation(d *Document) {
	p := mapGet(d.Root, "propagator")
	pos := func() (int, int) {
		if k := mapKey(d.Root, "propagator"); k != nil {
			return k.Line, k.Column
		}
		return 1, 1
	}
	has := false
	if list := mapGet(p, "composite"); list != nil && list.Kind == yaml.SequenceNode {
		for _, e := range list.Content {
			if k, _ := onlyKey(e); k == "tracecontext" {
				has = true
			}
		}
	}
	if cl := mapGet(p, "composite_list"); cl != nil && cl.Kind == yaml.ScalarNode {
		for _, n := range strings.Split(cl.Value, ",") {
			if strings.TrimSpace(n) == "tracecontext" {
				has = true
			}
		}
	}
	if !has {
		l, c := pos()
		d.errorf(CodeProfile, l, c, "/propagator", "the propagators do not include tracecontext: interceptor → proxy requests would start new traces", d.envHint("/propagator", "add - tracecontext: under propagator.composite (or OTEL_PROPAGATORS=tracecontext,baggage)"))
	}
}

func profileLogs(d *Document) {
	lp := mapGet(d.Root, "logger_provider")
	procs := mapGet(lp, "processors")
	if lp == nil || procs == nil || procs.Kind != yaml.SequenceNode || len(procs.Content) == 0 {
		l, c := 1, 1
		if k := mapKey(d.Root, "logger_provider"); k != nil {
			l, c = k.Line, k.Column
		}
		d.errorf(CodeProfile, l, c, "/logger_provider", "no logger provider with a processor: the service's log records would not be exported", "add logger_provider.processors with a batch processor and an exporter (OTEL_LOGS_EXPORTER=none removes it)")
	}
}

func profileSampler(d *Document) {
	s := mapGet(mapGet(d.Root, "tracer_provider"), "sampler")
	if s == nil {
		return
	}
	root := s
	if k, v := onlyKey(s); k == "parent_based" {
		if r := mapGet(v, "root"); r != nil {
			root = r
		} else {
			return // default root: always_on
		}
	}
	k, v := onlyKey(root)
	drops := k == "always_off"
	if k == "trace_id_ratio_based" {
		if r := mapGet(v, "ratio"); r != nil && (r.Value == "0" || r.Value == "0.0") {
			drops = true
		}
	}
	if drops {
		line, col := d.posOf(root, "/tracer_provider/sampler")
		d.warnf(CodeProfile, line, col, "/tracer_provider/sampler", "the sampler drops every trace that starts here", d.envHint("/tracer_provider/sampler", "use parent_based with root always_on, or a ratio above 0"))
	}
}

// profileServiceName: both services boot from the same otel.yaml; a
// service.name fixed by the file (or the environment) would give both the
// same name and merge their telemetry.
func profileServiceName(d *Document, profile string) {
	attrs := mapGet(mapGet(d.Root, "resource"), "attributes")
	if attrs == nil || attrs.Kind != yaml.SequenceNode {
		return
	}
	for _, a := range attrs.Content {
		if n := mapGet(a, "name"); n == nil || n.Value != "service.name" {
			continue
		}
		v := mapGet(a, "value")
		if isNull(v) {
			return
		}
		o := d.OriginOf(v)
		other := "proxy"
		if profile == "proxy" {
			other = "interceptor"
		}
		switch o.Kind {
		case OriginFile, OriginSubstitution:
			d.errorf(CodeProfile, v.Line, v.Column, "/resource/attributes", "service.name is fixed to %q by the file: the %s and the %s would report the same service", "remove it; each service supplies its own name (litellm-interceptor, litellm-proxy), or set OTEL_SERVICE_NAME per service", v.Value, profile, other)
		case OriginEnv:
			d.warnf(CodeProfile, 0, 0, "/resource/attributes", "service.name is %q from %s: set it per service, or the %s and the %s report the same service", "", v.Value, o.String(), profile, other)
		}
		return
	}
}

// DryRun builds the SDK from a loaded configuration the way Start does,
// exporting nothing, then shuts it down: it finds what otelconf refuses
// only at boot. It returns those problems as diagnostics.
func DryRun(ctx context.Context, cfg *Config) Diagnostics {
	if cfg == nil || cfg.Model == nil || cfg.Disabled {
		return nil
	}
	err := dryRunSDK(ctx, cfg.Model)
	if err == nil {
		return nil
	}
	var out Diagnostics
	for _, line := range strings.Split(err.Error(), "\n") {
		out = append(out, Diagnostic{Severity: SeverityError, Code: CodeSDK, File: cfg.Name, Message: "the OpenTelemetry SDK refuses this configuration at boot: " + line})
	}
	return out
}

var stdoutMu sync.Mutex

// dryRunSDK builds the SDK with console exporters writing nowhere (a dry
// run must not print telemetry into a validator's output) and stops it
// with a cancelled context, so nothing is flushed or exported.
func dryRunSDK(ctx context.Context, m *otelconf.OpenTelemetryConfiguration) error {
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	if devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
		saved := os.Stdout
		os.Stdout = devnull
		defer func() { os.Stdout = saved; devnull.Close() }()
	}
	sdk, err := newSDK(otelconf.WithContext(ctx), otelconf.WithOpenTelemetryConfiguration(*dryRunModel(m)))
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = sdk.Shutdown(sctx)
	return nil
}

// dryRunModel returns m with the queue of every batch log processor cut to
// one record, copying what it changes. sdk/log allocates a processor's whole
// queue when it is built (2048 records of about half a kilobyte by
// default): that memory, never used by a dry run, was most of the time of
// `otelcfg validate` on the official examples, in page faults. otelconf only
// checks that max_queue_size is above zero, which a value of one keeps
// true; a value it refuses is left alone so that the refusal still shows,
// and max_export_batch_size is clamped to the queue silently by the SDK.
func dryRunModel(m *otelconf.OpenTelemetryConfiguration) *otelconf.OpenTelemetryConfiguration {
	if m.LoggerProvider == nil {
		return m
	}
	c, lp := *m, *m.LoggerProvider
	lp.Processors = slices.Clone(lp.Processors)
	for i, p := range lp.Processors {
		if p.Batch == nil || (p.Batch.MaxQueueSize != nil && *p.Batch.MaxQueueSize <= 0) {
			continue
		}
		b, one := *p.Batch, 1
		b.MaxQueueSize = &one
		lp.Processors[i].Batch = &b
	}
	c.LoggerProvider = &lp
	return &c
}
