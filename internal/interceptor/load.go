package interceptor

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
	"github.com/otelcfg/otelcfg/internal/svcconf"
	"github.com/otelcfg/otelcfg/otelconfig"
	yaml "go.yaml.in/yaml/v3"
)

// LoadOptions say where LoadSettings reads from.
type LoadOptions struct {
	// File is the settings file; empty means $INTERCEPTOR_CONFIG, and no
	// file when that is unset too.
	File string
	// Environ is the environment as KEY=VALUE (os.Environ() when nil). It
	// feeds ${VAR} substitution in the file, SUPERMEMORY_USERNAME and the
	// INTERCEPTOR_* layer.
	Environ []string
	// Flags maps settings keys (e.g. "listen", "port_registry.path") to
	// values given on the command line: only flags the user set.
	Flags map[string]string
	// Limits bound the settings file parser (zero: otelconfig defaults).
	Limits otelconfig.Limits
}

// Loaded is the outcome of LoadSettings.
type Loaded struct {
	Settings Settings
	// File is the settings file read ("" when none).
	File string
	// Diagnostics holds every problem found, warnings included.
	Diagnostics otelconfig.Diagnostics
	// Sources maps file names to contents, for otelconfig.FormatText.
	Sources map[string][]byte
}

// LoadSettings layers, lowest first: DefaultSettings, SUPERMEMORY_USERNAME
// (as user_id), the settings file (after ${VAR} substitution), the
// INTERCEPTOR_* variables, and the flags. Every problem of every layer is
// reported at once. The error is an *otelconfig.Error when a diagnostic is
// an error, or an *otelconfig.ReadError when the file cannot be read; the
// Loaded value carries the diagnostics either way.
func LoadSettings(o LoadOptions) (*Loaded, error) {
	environ := o.Environ
	if environ == nil {
		environ = os.Environ()
	}
	envMap := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			envMap[k] = v
		}
	}
	lookup := func(k string) (string, bool) { v, ok := envMap[k]; return v, ok }

	out := &Loaded{Sources: map[string][]byte{}}
	k := koanf.New(".")
	if err := k.Load(structs.Provider(DefaultSettings(), "koanf"), nil); err != nil {
		return out, fmt.Errorf("interceptor: defaults: %w", err)
	}

	// SUPERMEMORY_USERNAME is shared with other Supermemory tools; the
	// interceptor's own user_id (file, INTERCEPTOR_USER_ID, --user-id) is
	// more specific and wins over it.
	if v := strings.TrimSpace(envMap[EnvUsername]); v != "" {
		if err := checkHeaderValue(v); err != nil {
			out.Diagnostics = append(out.Diagnostics, envDiag(otelconfig.SeverityError, EnvUsername, err.Error(), ""))
		} else {
			_ = k.Set("user_id", v)
		}
	}

	file := o.File
	if file == "" {
		file = strings.TrimSpace(envMap[EnvConfig])
	}
	if file != "" {
		out.File = file
		data, err := readLimited(file, o.Limits)
		if err != nil {
			d := otelconfig.Diagnostic{Severity: otelconfig.SeverityError, Code: otelconfig.CodeIO, File: file,
				Message: fmt.Sprintf("cannot read settings file %s: %v", file, svcconf.UnwrapPathError(err)), Hint: svcconf.IOHint(err, EnvConfig, "interceptor")}
			out.Diagnostics = append(out.Diagnostics, d)
			return out, &otelconfig.ReadError{Name: file, Err: err, Diagnostics: out.Diagnostics}
		}
		out.Sources[file] = data
		doc := otelconfig.Parse(file, data, o.Limits)
		doc.SubstituteEnv(lookup, true)
		out.Diagnostics = append(out.Diagnostics, doc.Diagnostics...)
		out.Diagnostics = append(out.Diagnostics, ValidateSettingsDocument(doc)...)
		if doc.Root != nil && !out.Diagnostics.HasErrors() {
			m, err := documentMap(doc.Root, filepath.Dir(file))
			if err != nil {
				return out, fmt.Errorf("interceptor: %s: %w", file, err)
			}
			if err := k.Load(confmap.Provider(m, ""), nil); err != nil {
				return out, fmt.Errorf("interceptor: %s: %w", file, err)
			}
		}
	}

	// INTERCEPTOR_* variables. An unknown one is most likely a typo, so it
	// is a warning rather than silence.
	var envDiags otelconfig.Diagnostics
	listenSet := strings.TrimSpace(envMap["INTERCEPTOR_LISTEN"]) != ""
	envProvider := env.Provider(".", env.Opt{
		Prefix:      "INTERCEPTOR_",
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, v string) (string, any) {
			if name == EnvConfig {
				return "", nil
			}
			f, ok := fieldByEnv(name)
			if !ok {
				var names []string
				for _, e := range EnvVars() {
					names = append(names, e.Name)
				}
				hint := "the interceptor reads: " + strings.Join(names, ", ")
				if s := suggest(name, names); s != "" {
					hint = fmt.Sprintf("did you mean %s?", s)
				}
				envDiags = append(envDiags, envDiag(otelconfig.SeverityWarning, name, fmt.Sprintf("unknown variable %s is ignored", name), hint))
				envDiags[len(envDiags)-1].Code = otelconfig.CodeUnknownKey
				return "", nil
			}
			if strings.TrimSpace(v) == "" {
				return "", nil // set but empty means unset
			}
			if name == EnvPort && listenSet {
				return "", nil // INTERCEPTOR_LISTEN is more specific
			}
			val, err := parseValue(f, strings.TrimSpace(v))
			if err != nil {
				envDiags = append(envDiags, envDiag(otelconfig.SeverityError, name, "invalid value: "+err.Error(), ""))
				return "", nil
			}
			if f.kind == kindPath {
				val = svcconf.ResolvePath(val.(string), "")
			}
			if f.kind == kindSecret {
				val = Secret(val.(string))
			}
			return f.key, val
		},
	})
	if err := k.Load(envProvider, nil); err != nil {
		return out, fmt.Errorf("interceptor: environment: %w", err)
	}
	sort.SliceStable(envDiags, func(i, j int) bool { return envDiags[i].Env < envDiags[j].Env })
	out.Diagnostics = append(out.Diagnostics, envDiags...)

	// Flags: the top layer.
	flagMap := map[string]any{}
	for _, key := range sortedKeys(o.Flags) {
		f, ok := fieldByKey(key)
		if !ok {
			return out, fmt.Errorf("interceptor: no setting %q for a flag", key)
		}
		val, err := parseValue(f, strings.TrimSpace(o.Flags[key]))
		if err != nil {
			out.Diagnostics = append(out.Diagnostics, otelconfig.Diagnostic{Severity: otelconfig.SeverityError, Code: otelconfig.CodeSettings,
				File: "<command line>", Message: fmt.Sprintf("invalid value for --%s: %v", f.flag, err)})
			continue
		}
		if f.kind == kindPath {
			val = svcconf.ResolvePath(val.(string), "")
		}
		flagMap[key] = val
	}
	if err := k.Load(confmap.Provider(flagMap, "."), nil); err != nil {
		return out, fmt.Errorf("interceptor: flags: %w", err)
	}

	if err := k.UnmarshalWithConf("", &out.Settings, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		out.Diagnostics = append(out.Diagnostics, otelconfig.Diagnostic{Severity: otelconfig.SeverityError, Code: otelconfig.CodeSettings, Message: err.Error()})
	}
	if !out.Diagnostics.HasErrors() {
		out.Diagnostics = append(out.Diagnostics, crossCheck(out.Settings)...)
	}
	if out.Diagnostics.HasErrors() {
		return out, &otelconfig.Error{Diagnostics: out.Diagnostics, Sources: out.Sources}
	}
	return out, nil
}

// crossCheck finds problems that only the combination of the layers shows.
func crossCheck(s Settings) otelconfig.Diagnostics {
	var ds otelconfig.Diagnostics
	if err := checkPortRange(s.PortRegistry.MinPort, s.PortRegistry.MaxPort); err != nil {
		ds = append(ds, otelconfig.Diagnostic{Severity: otelconfig.SeverityError, Code: otelconfig.CodeSettings, Path: "/port_registry",
			Message: "invalid port range after applying the environment and flags: " + err.Error()})
	}
	if s.Listen != "" && s.APIKey != "" {
		if addr, err := ListenAddr(s.Listen); err == nil && !svcconf.IsLoopbackListen(addr) {
			ds = append(ds, otelconfig.Diagnostic{Severity: otelconfig.SeverityWarning, Code: otelconfig.CodeSecurity, Path: "/listen",
				Message: fmt.Sprintf("listening on %s, reachable from other machines, while api_key is set: anyone who can connect uses your key", addr),
				Hint:    "listen on 127.0.0.1 or localhost"})
		}
	}
	return ds
}

func envDiag(sev otelconfig.Severity, name, msg, hint string) otelconfig.Diagnostic {
	return otelconfig.Diagnostic{Severity: sev, Code: otelconfig.CodeEnvValue, Env: name, Message: name + ": " + msg, Hint: hint}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// readLimited reads at most the parser's size limit plus one byte, so a
// huge file is refused without being read in full.
func readLimited(path string, lim otelconfig.Limits) ([]byte, error) {
	max := lim.MaxFileSize
	if max <= 0 {
		max = otelconfig.DefaultLimits.MaxFileSize
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: svcconf.ErrIsDir}
	}
	return io.ReadAll(io.LimitReader(f, max+1))
}

// documentMap turns a checked settings tree into a nested map for koanf.
// Nulls are dropped (a null means "use the default"), and relative paths
// are taken relative to the settings file's directory.
func documentMap(root *yaml.Node, base string) (map[string]any, error) {
	var m map[string]any
	if err := root.Decode(&m); err != nil {
		return nil, err
	}
	dropNulls(m)
	for _, f := range fields {
		if f.kind != kindPath {
			continue
		}
		parent, leaf := m, f.key
		if g, l, ok := strings.Cut(f.key, "."); ok {
			sub, _ := m[g].(map[string]any)
			if sub == nil {
				continue
			}
			parent, leaf = sub, l
		}
		if s, ok := parent[leaf].(string); ok && s != "" {
			parent[leaf] = svcconf.ResolvePath(s, base)
		}
	}
	if ms, ok := m["api_key"].(string); ok {
		m["api_key"] = Secret(ms)
	}
	return m, nil
}

func dropNulls(m map[string]any) {
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			dropNulls(x)
			if len(x) == 0 {
				delete(m, k)
			}
		}
	}
}
