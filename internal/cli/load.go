package cli

import (
	"context"
	"errors"
	"io"
	"slices"

	"github.com/otelcfg/otelcfg/internal/interceptor"
	"github.com/otelcfg/otelcfg/internal/proxy"
	"github.com/otelcfg/otelcfg/otelconfig"
	yaml "go.yaml.in/yaml/v3"
)

// stdinName is the file name diagnostics use for "-".
const stdinName = "<stdin>"

// Kinds of file validate recognises by content.
const (
	kindOtel = "otel"
)

// settingsKind is a service's settings file: recognised by its top-level
// keys and checked by the service's own package, so that the CLI and the
// service agree on what is valid.
type settingsKind struct {
	name      string
	looksLike func(root *yaml.Node) bool
	validate  func(doc *otelconfig.Document) otelconfig.Diagnostics
}

var settingsKinds = []settingsKind{
	{"interceptor settings", interceptor.LooksLikeSettings, interceptor.ValidateSettingsDocument},
	{"proxy settings", proxy.LooksLikeSettings, proxy.ValidateSettingsDocument},
}

type loadOptions struct {
	noEnv   bool
	profile string
	dryRun  bool
}

// loaded is one file after the library's stages.
type loaded struct {
	name  string
	src   []byte
	kind  string
	ioErr bool // the file could not be read: exit 2
	diags otelconfig.Diagnostics
	// doc is the effective tree (after substitution and, for otel.yaml,
	// the overlay); nil when nothing could be read.
	doc *otelconfig.Document
}

// load runs the same stages a service boot runs on path ("-" is stdin).
func (e *env) load(ctx context.Context, path string, lo loadOptions) *loaded {
	var opts []otelconfig.Option
	if path == "-" {
		data, err := io.ReadAll(e.stdin)
		if err != nil {
			return &loaded{name: stdinName, kind: kindOtel, ioErr: true, diags: otelconfig.Diagnostics{{
				Severity: otelconfig.SeverityError, Code: otelconfig.CodeIO, File: stdinName,
				Message: "cannot read standard input: " + err.Error(),
			}}}
		}
		opts = append(opts, otelconfig.WithBytes(stdinName, data))
	} else {
		opts = append(opts, otelconfig.WithFile(path))
	}
	if lo.noEnv {
		opts = append(opts, otelconfig.WithoutEnv())
	} else {
		opts = append(opts, otelconfig.WithEnv(e.lookup))
	}
	if lo.profile != "" {
		// A service boots with its built-in service.name and its profile
		// rules; validate --service sees what that service would.
		opts = append(opts, otelconfig.WithProfile(lo.profile), otelconfig.WithServiceName(otelconfig.Profiles[lo.profile]))
	}
	cfg, err := otelconfig.Load(opts...)
	l := &loaded{name: cfg.Name, src: cfg.Source, kind: kindOtel}
	var re *otelconfig.ReadError
	if errors.As(err, &re) {
		l.ioErr = true
		l.diags = slices.Clone(re.Diagnostics)
		if len(l.diags) == 0 {
			l.diags = otelconfig.Diagnostics{{Severity: otelconfig.SeverityError, Code: otelconfig.CodeIO, File: re.Name, Message: re.Error()}}
		}
		return l
	}
	if k, ok := settingsKindOf(cfg); ok {
		return e.loadSettings(l, k, lo)
	}
	l.doc = cfg.Document
	l.diags = slices.Clone(cfg.Diagnostics)
	if lo.dryRun && cfg.Model != nil && !l.diags.HasErrors() {
		l.diags = append(l.diags, otelconfig.DryRun(ctx, cfg)...)
		l.diags.Sort()
	}
	return l
}

// settingsKindOf recognises a service settings file by content: an
// otel.yaml has file_format; anything else a service package claims is
// that service's settings. Everything else is judged as an otel.yaml, so
// that a file missing file_format gets that diagnostic.
func settingsKindOf(cfg *otelconfig.Config) (settingsKind, bool) {
	if cfg.Root == nil || otelconfig.Lookup(cfg.Root, "/file_format") != nil {
		return settingsKind{}, false
	}
	// Load has already substituted and overlaid cfg.Root; judge the file
	// as written.
	root := otelconfig.Parse(cfg.Name, cfg.Source, otelconfig.Limits{}).Root
	for _, k := range settingsKinds {
		if k.looksLike(root) {
			return k, true
		}
	}
	return settingsKind{}, false
}

// loadSettings checks a service settings file the way the service loads
// it: parse, ${VAR} substitution, then the service's own checks.
func (e *env) loadSettings(l *loaded, k settingsKind, lo loadOptions) *loaded {
	doc := otelconfig.Parse(l.name, l.src, otelconfig.Limits{})
	lookup := e.lookup
	if lo.noEnv {
		lookup = func(string) (string, bool) { return "", false }
	}
	doc.SubstituteEnv(lookup, !lo.noEnv)
	l.kind = k.name
	l.doc = doc
	l.diags = append(slices.Clone(doc.Diagnostics), k.validate(doc)...)
	l.diags.Sort()
	return l
}
