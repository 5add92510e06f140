package otelconfig

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/contrib/otelconf"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/log/global"
	nooplog "go.opentelemetry.io/otel/log/noop"
	"go.opentelemetry.io/otel/metric"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	nooptrace "go.opentelemetry.io/otel/trace/noop"
)

// ScopeName is the instrumentation scope of log records bridged from slog.
const ScopeName = "github.com/otelcfg/otelcfg/otelconfig"

// WithConsole sets where human-readable log lines go (default os.Stderr);
// nil turns the console off (records are then only exported).
func WithConsole(w io.Writer) Option {
	return func(o *options) { o.console, o.consoleSet = w, true }
}

// WithoutGlobals keeps Start from setting the global providers, the
// propagator and the slog default; use the Telemetry's accessors instead
// (two services in one process, tests).
func WithoutGlobals() Option { return func(o *options) { o.noGlobals = true } }

// WithTracerProviderOptions, WithMeterProviderOptions and
// WithLoggerProviderOptions pass extra SDK options to otelconf; the
// configuration takes precedence over them.
func WithTracerProviderOptions(opts ...sdktrace.TracerProviderOption) Option {
	return func(o *options) { o.tpOpts = append(o.tpOpts, opts...) }
}

// WithMeterProviderOptions: see WithTracerProviderOptions.
func WithMeterProviderOptions(opts ...sdkmetric.Option) Option {
	return func(o *options) { o.mpOpts = append(o.mpOpts, opts...) }
}

// WithLoggerProviderOptions: see WithTracerProviderOptions.
func WithLoggerProviderOptions(opts ...sdklog.LoggerProviderOption) Option {
	return func(o *options) { o.lpOpts = append(o.lpOpts, opts...) }
}

// Telemetry is a running OpenTelemetry setup. Shutdown flushes and stops
// it.
type Telemetry struct {
	cfg     *Config
	sdk     *otelconf.SDK
	tp      trace.TracerProvider
	mp      metric.MeterProvider
	lp      log.LoggerProvider
	prop    propagation.TextMapPropagator
	logger  *slog.Logger
	console slog.Handler
	globals bool
	sdkLog  *sdkLogLimiter // nil unless Start installed the SDK's logger

	once        sync.Once
	shutdownErr error
}

// Start loads the configuration and starts OpenTelemetry from it: it is
// Load followed by StartConfig. On a configuration error it returns an
// *Error with every diagnostic and starts nothing.
func Start(ctx context.Context, opts ...Option) (*Telemetry, error) {
	cfg, err := Load(opts...)
	if err != nil {
		return nil, err
	}
	return StartConfig(ctx, cfg, opts...)
}

// envMu serialises the moments when OTEL_CONFIG_FILE is hidden from
// otelconf.NewSDK, which would otherwise load that file in place of the
// model it is given and lose the overlay.
var envMu sync.Mutex

var hiddenVars = []string{"OTEL_CONFIG_FILE", "OTEL_EXPERIMENTAL_CONFIG_FILE"}

func newSDK(opts ...otelconf.ConfigurationOption) (otelconf.SDK, error) {
	envMu.Lock()
	defer envMu.Unlock()
	saved := map[string]string{}
	for _, k := range hiddenVars {
		if v, ok := os.LookupEnv(k); ok {
			saved[k] = v
			_ = os.Unsetenv(k)
		}
	}
	defer func() {
		for k, v := range saved {
			_ = os.Setenv(k, v)
		}
	}()
	return otelconf.NewSDK(opts...)
}

// StartConfig starts OpenTelemetry from a loaded configuration. Options
// that only concern loading are ignored here.
func StartConfig(ctx context.Context, cfg *Config, opts ...Option) (*Telemetry, error) {
	o := buildOptions(opts)
	if cfg == nil || cfg.Document == nil {
		return nil, errors.New("otelconfig: nil configuration")
	}
	if cfg.Diagnostics.HasErrors() || (cfg.Model == nil && cfg.Root != nil) {
		return nil, &Error{Diagnostics: cfg.Diagnostics, Sources: map[string][]byte{cfg.Name: cfg.Source}}
	}
	consoleW := io.Writer(os.Stderr)
	if o.consoleSet {
		consoleW = o.console
	}
	t := &Telemetry{cfg: cfg, globals: !o.noGlobals}
	if consoleW != nil {
		t.console = NewConsoleHandler(consoleW, cfg.LogLevel)
	}

	if cfg.Disabled || cfg.Model == nil {
		t.tp, t.mp, t.lp = nooptrace.NewTracerProvider(), noopmetric.NewMeterProvider(), nooplog.NewLoggerProvider()
		t.prop = propagation.NewCompositeTextMapPropagator()
		t.logger = slog.New(newLevelHandler(cfg.LogLevel, t.console))
	} else {
		model, tpLimits, lpLimits := limitExtras(*cfg.Model)
		// See dedup.go: the SDK skips its per-attribute de-duplication and
		// dedupProvider does the same work in one cheap pass, unless a caller
		// asked for duplicates to be kept.
		dedup := sdkFieldsReadable() && !callerAllowsDup(o.lpOpts)
		if dedup {
			lpLimits = append([]sdklog.LoggerProviderOption{sdklog.WithAllowKeyDuplication()}, lpLimits...)
		}
		sdkOpts := []otelconf.ConfigurationOption{
			otelconf.WithContext(ctx),
			otelconf.WithOpenTelemetryConfiguration(model),
			otelconf.WithTracerProviderOptions(append(tpLimits, o.tpOpts...)...),
			otelconf.WithMeterProviderOptions(append(meterExtras(cfg.Model), o.mpOpts...)...),
			otelconf.WithLoggerProviderOptions(append(lpLimits, o.lpOpts...)...),
		}
		sdk, err := newSDK(sdkOpts...)
		if err != nil {
			d := Diagnostic{Severity: SeverityError, Code: CodeSDK, File: cfg.Name, Message: "the OpenTelemetry SDK refused the configuration: " + err.Error()}
			cfg.Diagnostics = append(cfg.Diagnostics, d)
			return nil, &Error{Diagnostics: cfg.Diagnostics, Sources: map[string][]byte{cfg.Name: cfg.Source}}
		}
		t.sdk = &sdk
		t.tp, t.mp, t.lp, t.prop = sdk.TracerProvider(), sdk.MeterProvider(), sdk.LoggerProvider(), sdk.Propagator()
		if lp, ok := t.lp.(*sdklog.LoggerProvider); ok && dedup {
			t.lp = &dedupProvider{sdk: lp, limit: sdkCountLimit(lp)}
		}
		var bridge slog.Handler
		if cfg.Model.LoggerProvider != nil {
			bridge = newBridgeHandler(t.lp)
		}
		t.logger = slog.New(newLevelHandler(cfg.LogLevel, bridge, t.console))
	}

	if t.globals {
		otel.SetTracerProvider(t.tp)
		otel.SetMeterProvider(t.mp)
		global.SetLoggerProvider(t.lp)
		otel.SetTextMapPropagator(t.prop)
		slog.SetDefault(t.logger)
		if t.console != nil {
			otel.SetErrorHandler(&rateLimitedErrors{log: slog.New(t.console), interval: 10 * time.Second})
			sink := newSDKLogSink(t.console, 10*time.Second)
			t.sdkLog = sink.lim
			otel.SetLogger(logr.New(sink))
		}
	}
	return t, nil
}

// callerAllowsDup reports whether the caller's own logger provider options
// include sdklog.WithAllowKeyDuplication, read from a provider built from
// them alone (building one runs no processor).
func callerAllowsDup(opts []sdklog.LoggerProviderOption) bool {
	return len(opts) > 0 && sdkAllowsDup(sdklog.NewLoggerProvider(opts...))
}

// meterExtras applies what otelconf v0.27.0 reads into its model but does
// not act on: meter_provider.exemplar_filter.
func meterExtras(m *otelconf.OpenTelemetryConfiguration) []sdkmetric.Option {
	if m.MeterProvider == nil || m.MeterProvider.ExemplarFilter == nil {
		return nil
	}
	switch *m.MeterProvider.ExemplarFilter {
	case "always_on":
		return []sdkmetric.Option{sdkmetric.WithExemplarFilter(exemplar.AlwaysOnFilter)}
	case "always_off":
		return []sdkmetric.Option{sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter)}
	case "trace_based":
		return []sdkmetric.Option{sdkmetric.WithExemplarFilter(exemplar.TraceBasedFilter)}
	}
	return nil
}

// Config returns the configuration the telemetry was started from.
func (t *Telemetry) Config() *Config { return t.cfg }

// Enabled reports whether OpenTelemetry is on (not disabled).
func (t *Telemetry) Enabled() bool { return t.sdk != nil }

// TracerProvider returns the configured tracer provider (no-op when
// disabled).
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.tp }

// MeterProvider returns the configured meter provider.
func (t *Telemetry) MeterProvider() metric.MeterProvider { return t.mp }

// LoggerProvider returns the configured logger provider: the SDK's, behind
// otelconfig's de-duplication of attribute keys (see dedup.go); it has the
// SDK provider's ForceFlush and Shutdown.
func (t *Telemetry) LoggerProvider() log.LoggerProvider { return t.lp }

// Propagator returns the configured propagator.
func (t *Telemetry) Propagator() propagation.TextMapPropagator { return t.prop }

// Logger returns the slog logger wired to the logger provider and the
// console; Start also makes it slog's default unless WithoutGlobals.
func (t *Telemetry) Logger() *slog.Logger { return t.logger }

// Shutdown flushes and stops every provider once, bounded by ctx, and
// returns their errors joined. Later calls return the first result. After
// it, slog's default (if Start set it) writes to the console only, so late
// log lines are not lost into a stopped provider.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	t.once.Do(func() {
		if t.sdk != nil {
			t.shutdownErr = t.sdk.Shutdown(ctx)
		}
		if t.sdkLog != nil {
			// The last drops and failures, said during the flush.
			t.sdkLog.flush()
		}
		if t.globals && slog.Default() == t.logger {
			slog.SetDefault(slog.New(newLevelHandler(t.cfg.LogLevel, t.console)))
		}
	})
	return t.shutdownErr
}
