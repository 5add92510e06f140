package proxy

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
	"github.com/otelcfg/otelcfg/internal/svcconf"
	"github.com/otelcfg/otelcfg/otelconfig"
	yaml "go.yaml.in/yaml/v3"
)

// CommandLine is the file name of diagnostics about flags.
const CommandLine = "<command line>"

// LoadSettings layers, lowest first: DefaultSettings, the settings file
// at path (empty: $PROXY_CONFIG, and no file when that is unset too) after
// ${VAR} substitution, the PROXY_* variables, and flags (settings keys such
// as "listen" or "upstream.timeout" mapped to the text given on the command
// line; only flags the user set). lookup reads the environment (nil:
// os.LookupEnv).
//
// Every problem of every layer is reported at once. The error is an
// *otelconfig.Error (with the file's source, for otelconfig.FormatText)
// when a diagnostic is an error, or an *otelconfig.ReadError when the file
// cannot be read; the diagnostics (warnings included) are returned either
// way.
func LoadSettings(path string, lookup otelconfig.LookupFunc, flags map[string]string) (Settings, otelconfig.Diagnostics, error) {
	l, err := loadSettings(path, lookup, flags)
	return l.settings, l.diags, err
}

type loaded struct {
	settings Settings
	file     string
	diags    otelconfig.Diagnostics
	sources  map[string][]byte
}

func loadSettings(path string, lookup otelconfig.LookupFunc, flags map[string]string) (*loaded, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	out := &loaded{settings: DefaultSettings(), sources: map[string][]byte{}}
	k := koanf.New(".")
	if err := k.Load(structs.Provider(DefaultSettings(), "koanf"), nil); err != nil {
		return out, fmt.Errorf("proxy: defaults: %w", err)
	}

	file := path
	if file == "" {
		if v, ok := lookup(EnvConfig); ok {
			file = strings.TrimSpace(v)
		}
	}
	if file != "" {
		out.file = file
		data, err := readLimited(file)
		if err != nil {
			d := otelconfig.Diagnostic{Severity: otelconfig.SeverityError, Code: otelconfig.CodeIO, File: file,
				Message: fmt.Sprintf("cannot read settings file %s: %v", file, svcconf.UnwrapPathError(err)), Hint: svcconf.IOHint(err, EnvConfig, "proxy")}
			out.diags = append(out.diags, d)
			return out, &otelconfig.ReadError{Name: file, Err: err, Diagnostics: out.diags}
		}
		out.sources[file] = data
		doc := otelconfig.Parse(file, data, otelconfig.Limits{})
		doc.SubstituteEnv(lookup, true)
		out.diags = append(out.diags, doc.Diagnostics...)
		out.diags = append(out.diags, ValidateSettingsDocument(doc)...)
		out.diags.Sort()
		if doc.Root != nil && !out.diags.HasErrors() {
			m, err := documentMap(doc.Root, filepath.Dir(file))
			if err != nil {
				return out, fmt.Errorf("proxy: %s: %w", file, err)
			}
			if err := k.Load(confmap.Provider(m, ""), nil); err != nil {
				return out, fmt.Errorf("proxy: %s: %w", file, err)
			}
		}
	}

	envMap := map[string]any{}
	for _, f := range fields {
		name := envName(f.key)
		v, ok := lookup(name)
		if !ok || strings.TrimSpace(v) == "" {
			continue // empty is unset, as for most tools: PROXY_MASTER_KEY= does not turn auth off
		}
		val, err := parseValue(f, v)
		if err != nil {
			out.diags = append(out.diags, otelconfig.Diagnostic{Severity: otelconfig.SeverityError, Code: otelconfig.CodeEnvValue,
				Env: name, Path: pointer(f.key), Message: fmt.Sprintf("%s: %v", name, err)})
			continue
		}
		if f.kind == kindPath {
			val = svcconf.ResolvePath(val.(string), "")
		}
		envMap[f.key] = val
	}
	if err := k.Load(confmap.Provider(envMap, "."), nil); err != nil {
		return out, fmt.Errorf("proxy: environment: %w", err)
	}

	flagMap := map[string]any{}
	keys := make([]string, 0, len(flags))
	for key := range flags {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		f, ok := fieldByKey(key)
		if !ok {
			return out, fmt.Errorf("proxy: no setting %q for a flag", key)
		}
		name := "--" + f.flag
		if f.flag == "" {
			name = "the value of " + key
		}
		val, err := parseValue(f, flags[key])
		if err != nil {
			out.diags = append(out.diags, otelconfig.Diagnostic{Severity: otelconfig.SeverityError, Code: otelconfig.CodeSettings,
				File: CommandLine, Path: pointer(key), Message: fmt.Sprintf("invalid value for %s: %v", name, err)})
			continue
		}
		if f.kind == kindPath {
			val = svcconf.ResolvePath(val.(string), "")
		}
		flagMap[key] = val
	}
	if err := k.Load(confmap.Provider(flagMap, "."), nil); err != nil {
		return out, fmt.Errorf("proxy: flags: %w", err)
	}

	var s Settings
	if err := k.UnmarshalWithConf("", &s, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		out.diags = append(out.diags, otelconfig.Diagnostic{Severity: otelconfig.SeverityError, Code: otelconfig.CodeSettings, File: out.file, Message: err.Error()})
	} else {
		out.settings = s
	}
	if !out.diags.HasErrors() {
		out.diags = append(out.diags, crossCheck(out.settings, out.diags)...)
	}
	if out.diags.HasErrors() {
		return out, &otelconfig.Error{Diagnostics: out.diags, Sources: out.sources}
	}
	return out, nil
}

// crossCheck finds what only the combination of the layers shows.
func crossCheck(s Settings, have otelconfig.Diagnostics) otelconfig.Diagnostics {
	var ds otelconfig.Diagnostics
	reported := func(code, path string) bool {
		return slices.ContainsFunc(have, func(d otelconfig.Diagnostic) bool { return d.Code == code && d.Path == path })
	}
	if len(s.Models) == 0 && !reported(otelconfig.CodeSettings, "/models") {
		ds = append(ds, otelconfig.Diagnostic{Severity: otelconfig.SeverityWarning, Code: otelconfig.CodeSettings, Path: "/models",
			Message: "no models configured: every chat completion will get 404",
			Hint:    "name a settings file with --config or $" + EnvConfig + " (see examples/proxy.yaml)"})
	}
	if addr, err := ListenAddr(s.Listen); err == nil && !svcconf.IsLoopbackListen(addr) && s.MasterKey == "" && !reported(otelconfig.CodeSecurity, "/listen") {
		ds = append(ds, otelconfig.Diagnostic{Severity: otelconfig.SeverityWarning, Code: otelconfig.CodeSecurity, Path: "/listen",
			Message: fmt.Sprintf("listening on %s, reachable from other machines, without a master_key: anyone who can connect uses the upstream keys", addr),
			Hint:    "set master_key (or PROXY_MASTER_KEY), or listen on 127.0.0.1"})
	}
	return ds
}

// unknownEnv warns about PROXY_* variables the proxy does not read: most
// likely typos, which would otherwise be silently ignored.
func unknownEnv(environ []string) otelconfig.Diagnostics {
	known := map[string]bool{}
	var names []string
	for _, e := range EnvVars() {
		known[e.Name] = true
		names = append(names, e.Name)
	}
	var ds otelconfig.Diagnostics
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) || known[name] {
			continue
		}
		hint := "the proxy reads: " + strings.Join(names, ", ")
		if s := suggest(name, names); s != "" {
			hint = fmt.Sprintf("did you mean %s?", s)
		}
		ds = append(ds, otelconfig.Diagnostic{Severity: otelconfig.SeverityWarning, Code: otelconfig.CodeUnknownKey, Env: name,
			Message: fmt.Sprintf("unknown variable %s is ignored", name), Hint: hint})
	}
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].Env < ds[j].Env })
	return ds
}

// readLimited reads at most the parser's size limit plus one byte, so a
// huge file is refused without being read in full.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: svcconf.ErrIsDir}
	}
	if !st.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: errNotRegular}
	}
	return io.ReadAll(io.LimitReader(f, otelconfig.DefaultLimits.MaxFileSize+1))
}

var errNotRegular = errors.New("is not a regular file")

// documentMap turns a checked settings tree into a nested map for koanf.
// A null means "use the default", so nulls are dropped; a relative
// otel_config is relative to the settings file.
func documentMap(root *yaml.Node, base string) (map[string]any, error) {
	var m map[string]any
	if err := root.Decode(&m); err != nil {
		return nil, err
	}
	dropNulls(m)
	if s, ok := m["otel_config"].(string); ok && s != "" {
		m["otel_config"] = svcconf.ResolvePath(s, base)
	}
	return m, nil
}

func dropNulls(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e == nil {
				delete(x, k)
				continue
			}
			dropNulls(e)
		}
	case []any:
		for _, e := range x {
			dropNulls(e)
		}
	}
}
