package otelconfig

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/otelcfg/otelcfg/examples"
	"go.opentelemetry.io/contrib/otelconf"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// BuiltinName is the name diagnostics use for the built-in configuration
// (examples/otel.yaml, embedded).
const BuiltinName = "<builtin otel.yaml>"

// Option configures Load and Start.
type Option func(*options)

type options struct {
	file     string
	data     []byte
	dataName string
	hasData  bool

	lookup    LookupFunc
	noEnv     bool
	noOverlay bool
	limits    Limits

	defaultService  string
	overrideService string

	// start only
	console     io.Writer
	consoleSet  bool
	noGlobals   bool
	tpOpts      []sdktrace.TracerProviderOption
	mpOpts      []sdkmetric.Option
	lpOpts      []sdklog.LoggerProviderOption
	checkers    []Checker
	profile     string
	skipChecks  bool
	scopeName   string
	errorLogger bool
}

// WithFile loads the configuration from path. Without it, Load uses
// OTEL_CONFIG_FILE, then the built-in console configuration.
func WithFile(path string) Option { return func(o *options) { o.file = path } }

// WithBytes loads the configuration from data; name is used in diagnostics.
func WithBytes(name string, data []byte) Option {
	return func(o *options) { o.dataName, o.data, o.hasData = name, data, true }
}

// WithServiceName gives the service's built-in name: the lowest precedence
// value of service.name (the file, OTEL_RESOURCE_ATTRIBUTES and
// OTEL_SERVICE_NAME all override it).
func WithServiceName(name string) Option { return func(o *options) { o.defaultService = name } }

// WithServiceNameOverride forces service.name over everything else (an
// explicit programmatic choice).
func WithServiceNameOverride(name string) Option {
	return func(o *options) { o.overrideService = name }
}

// WithEnv replaces os.LookupEnv for substitution, the overlay and
// OTEL_CONFIG_FILE.
func WithEnv(lookup LookupFunc) Option { return func(o *options) { o.lookup = lookup } }

// WithEnviron is WithEnv over a KEY=VALUE list, such as os.Environ().
func WithEnviron(environ []string) Option {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return WithEnv(func(k string) (string, bool) { v, ok := m[k]; return v, ok })
}

// WithoutEnv loads the file as written: every ${VAR} takes its default (or
// null), no OTEL_* overlay is applied, and OTEL_CONFIG_FILE is ignored.
func WithoutEnv() Option { return func(o *options) { o.noEnv = true } }

// WithoutOverlay keeps ${VAR} substitution but applies no OTEL_* variable.
func WithoutOverlay() Option { return func(o *options) { o.noOverlay = true } }

// WithLimits bounds the parser (file size, depth, node count).
func WithLimits(l Limits) Option { return func(o *options) { o.limits = l } }

// WithCheckers adds validation passes run after the overlay, before
// decoding (the validate CLI adds schema and lint passes this way).
func WithCheckers(c ...Checker) Option {
	return func(o *options) { o.checkers = append(o.checkers, c...) }
}

// Checker is a validation pass over the effective configuration. It adds
// diagnostics to the document.
type Checker interface {
	Check(d *Document)
}

// CheckerFunc adapts a function to Checker.
type CheckerFunc func(d *Document)

// Check calls f.
func (f CheckerFunc) Check(d *Document) { f(d) }

// Config is a loaded configuration: the effective tree, where each value
// came from, every diagnostic, and (when there are no errors) the decoded
// otelconf model.
type Config struct {
	*Document
	// Model is nil when Diagnostics has errors.
	Model *otelconf.OpenTelemetryConfiguration
	// Disabled is true when telemetry is off (disabled: true, or
	// OTEL_SDK_DISABLED=true).
	Disabled bool
	// LogLevel is the minimum severity of captured log records.
	LogLevel slog.Level
	// ServiceName is the effective service.name.
	ServiceName string
}

// Load runs parse, substitute, overlay, validate and decode. It always
// returns a Config, carrying every diagnostic; the error is non-nil when the
// file cannot be read (it wraps the fs error, so errors.Is(err,
// fs.ErrNotExist) works) or when there is any error diagnostic (an *Error).
func Load(opts ...Option) (*Config, error) {
	o := buildOptions(opts)
	name, src, err := o.source()
	if err != nil {
		d := &Document{Name: name}
		d.errorf(CodeIO, 0, 0, "", "%s", ioHint(err), ioMessage(err))
		return &Config{Document: d, LogLevel: slog.LevelInfo}, &ReadError{Name: name, Err: err, Diagnostics: d.Diagnostics}
	}
	return loadDocument(o, Parse(name, src, o.limits))
}

// LoadDocument runs the stages after parsing on an already parsed document
// (the validate CLI parses once and reuses the Document).
func LoadDocument(d *Document, opts ...Option) (*Config, error) {
	return loadDocument(buildOptions(opts), d)
}

func loadDocument(o *options, d *Document) (*Config, error) {
	cfg := &Config{Document: d, LogLevel: slog.LevelInfo}
	if d.Root != nil {
		lookup := d.boundedLookup(o.lookup, o.limits.MaxEnvValue)
		if o.noEnv {
			lookup = func(string) (string, bool) { return "", false }
		}
		d.SubstituteEnv(lookup, !o.noEnv)
		d.checkFileFormat()
		d.normalizeFile()
		if o.defaultService != "" {
			d.setServiceName(o.defaultService, Origin{Kind: OriginDefault, Detail: "built-in name of the service"}, true)
		}
		if !o.noEnv && !o.noOverlay {
			d.ApplyEnvOverlay(lookup)
		}
		d.fillOTLPEndpoints()
		if o.overrideService != "" {
			d.setServiceName(o.overrideService, Origin{Kind: OriginOption, Detail: "WithServiceNameOverride"}, false)
		}
		for _, c := range builtinCheckers(o) {
			c.Check(d)
		}
		for _, c := range o.checkers {
			c.Check(d)
		}
		cfg.ServiceName, _ = serviceName(d.Root)
	}
	if !d.Diagnostics.HasErrors() {
		if m, ok := d.decode(); ok {
			cfg.Model = m
			cfg.Disabled = m.Disabled != nil && *m.Disabled
			if m.LogLevel != nil {
				cfg.LogLevel = severityLevel(string(*m.LogLevel))
			}
		}
	}
	d.Diagnostics.Sort()
	if d.Diagnostics.HasErrors() {
		cfg.Model = nil
		return cfg, &Error{Diagnostics: d.Diagnostics, Sources: map[string][]byte{d.Name: d.Source}}
	}
	return cfg, nil
}

func buildOptions(opts []Option) *options {
	o := &options{lookup: os.LookupEnv}
	for _, opt := range opts {
		opt(o)
	}
	if o.lookup == nil {
		o.lookup = os.LookupEnv
	}
	o.limits = o.limits.withDefaults()
	return o
}

// source picks the configuration: WithBytes, WithFile, OTEL_CONFIG_FILE,
// then the built-in default.
func (o *options) source() (string, []byte, error) {
	switch {
	case o.hasData:
		return o.dataName, o.data, nil
	case o.file != "":
		return o.readFile(o.file)
	}
	if !o.noEnv {
		if p, ok := o.lookup("OTEL_CONFIG_FILE"); ok && strings.TrimSpace(p) != "" {
			return o.readFile(strings.TrimSpace(p))
		}
	}
	return BuiltinName, examples.OtelYAML, nil
}

// readFile reads at most the size limit (plus one byte, to tell that the
// file is larger) so that a huge file is never read in full.
func (o *options) readFile(path string) (string, []byte, error) {
	// Stat first: opening a FIFO or a device could block or never end.
	st, err := os.Stat(path)
	if err != nil {
		return path, nil, err
	}
	if st.IsDir() {
		return path, nil, &fs.PathError{Op: "read", Path: path, Err: errIsDir}
	}
	if !st.Mode().IsRegular() {
		return path, nil, &fs.PathError{Op: "read", Path: path, Err: errNotRegular}
	}
	f, err := os.Open(path)
	if err != nil {
		return path, nil, err
	}
	defer f.Close()
	// One buffer sized from the stat (never past the limit plus one byte,
	// which tells that the file is larger); ReadAll's doubling would
	// allocate twice the limit for a huge file.
	max := o.limits.MaxFileSize
	buf := make([]byte, min(st.Size(), max)+1)
	n, err := io.ReadFull(f, buf)
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		return path, buf[:n], nil
	case err != nil:
		return path, nil, err
	case int64(n) <= max:
		// The file grew after the stat: read on, up to the limit.
		rest, err := io.ReadAll(io.LimitReader(f, max+1-int64(n)))
		if err != nil {
			return path, nil, err
		}
		return path, append(buf, rest...), nil
	}
	return path, buf, nil
}

var (
	errIsDir      = errors.New("is a directory, not a file")
	errNotRegular = errors.New("is not a regular file")
)

// ReadError is returned by Load when the configuration file cannot be read.
type ReadError struct {
	Name        string
	Err         error
	Diagnostics Diagnostics
}

func (e *ReadError) Error() string { return "otelconfig: " + ioMessage(e.Err) }
func (e *ReadError) Unwrap() error { return e.Err }

func ioMessage(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Sprintf("cannot read %s: %v", pe.Path, pe.Err)
	}
	return "cannot read configuration: " + err.Error()
}

func ioHint(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "check the path, or set OTEL_CONFIG_FILE"
	case errors.Is(err, fs.ErrPermission):
		return "the service user needs read permission on the file"
	case errors.Is(err, errIsDir):
		return "name the otel.yaml file inside it"
	}
	return ""
}

// severityLevel maps a log_level severity name (info, info2, ..., warn)
// to the slog level that filters records.
func severityLevel(s string) slog.Level {
	s = strings.TrimRight(strings.ToLower(s), "1234")
	switch s {
	case "trace":
		return slog.LevelDebug - 4
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	case "fatal":
		return slog.LevelError + 4
	}
	return slog.LevelInfo
}

// boundedLookup refuses, once per variable and with a diagnostic naming
// it, a value longer than max: no real setting is that long, and a huge
// value must not be copied into every node that references it.
func (d *Document) boundedLookup(lookup LookupFunc, max int) LookupFunc {
	reported := map[string]bool{}
	return func(name string) (string, bool) {
		v, ok := lookup(name)
		if ok && len(v) > max {
			if !reported[name] {
				reported[name] = true
				d.Diagnostics = append(d.Diagnostics, Diagnostic{Severity: SeverityError, Code: CodeEnvValue, Env: name,
					Message: fmt.Sprintf("environment variable %s is %d bytes long, over the limit of %d", name, len(v), max),
					Hint:    "no configuration value is that long; check how the variable is set"})
			}
			return "", false
		}
		return v, ok
	}
}
