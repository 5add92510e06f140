package interceptor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/otelcfg/otelcfg/internal/svcconf"
	"github.com/otelcfg/otelcfg/otelconfig"
	"github.com/otelcfg/otelcfg/schemas"
	yaml "go.yaml.in/yaml/v3"
)

// writeFile writes a settings file into a fresh directory and returns its
// path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadSettingsLayering(t *testing.T) {
	t.Parallel()
	home, _ := os.UserHomeDir()
	tests := []struct {
		name  string
		file  string // settings file content; "" for none
		env   []string
		flags map[string]string
		check func(t *testing.T, s Settings, dir string)
	}{
		{
			name: "defaults",
			check: func(t *testing.T, s Settings, _ string) {
				if !reflect.DeepEqual(s, DefaultSettings()) {
					t.Errorf("got %+v, want the defaults %+v", s, DefaultSettings())
				}
			},
		},
		{
			name: "file over defaults",
			file: "target: http://proxy:1234\nuser_id_prefix: vscode\ntimeouts:\n  connect: 3s\nport_registry:\n  max_port: 9100\n",
			check: func(t *testing.T, s Settings, _ string) {
				want := DefaultSettings()
				want.Target, want.UserIDPrefix = "http://proxy:1234", "vscode"
				want.Timeouts.Connect = 3 * time.Second
				want.PortRegistry.MaxPort = 9100
				if !reflect.DeepEqual(s, want) {
					t.Errorf("got %+v\nwant %+v", s, want)
				}
			},
		},
		{
			name:  "env over file, flags over env",
			file:  "target: http://file:1\nuser_id: from-file\nlisten: 127.0.0.1:7000\n",
			env:   []string{"INTERCEPTOR_TARGET=http://env:2", "INTERCEPTOR_USER_ID=from-env", "INTERCEPTOR_LISTEN=127.0.0.1:7001"},
			flags: map[string]string{"target": "http://flag:3"},
			check: func(t *testing.T, s Settings, _ string) {
				if s.Target != "http://flag:3" || s.UserID != "from-env" || s.Listen != "127.0.0.1:7001" {
					t.Errorf("target=%q user_id=%q listen=%q", s.Target, s.UserID, s.Listen)
				}
			},
		},
		{
			name:  "body limit and answer bounds from file, env and flag",
			file:  "max_body_bytes: 2048\ntimeouts:\n  read_body: 5s\n  response_idle: 1m\n",
			env:   []string{"INTERCEPTOR_MAX_BODY_BYTES=4096", "INTERCEPTOR_TIMEOUTS_RESPONSE=2h"},
			flags: map[string]string{"max_body_bytes": "8192"},
			check: func(t *testing.T, s Settings, _ string) {
				tm := s.Timeouts
				if s.MaxBodyBytes != 8192 || tm.ReadBody != 5*time.Second || tm.ResponseIdle != time.Minute || tm.Response != 2*time.Hour {
					t.Errorf("max_body_bytes=%d read_body=%s response_idle=%s response=%s", s.MaxBodyBytes, tm.ReadBody, tm.ResponseIdle, tm.Response)
				}
			},
		},
		{
			name: "SUPERMEMORY_USERNAME when nothing else names the user",
			env:  []string{"SUPERMEMORY_USERNAME=alice"},
			check: func(t *testing.T, s Settings, _ string) {
				if s.UserID != "alice" {
					t.Errorf("user_id = %q, want alice", s.UserID)
				}
			},
		},
		{
			name: "the file's user_id wins over SUPERMEMORY_USERNAME",
			file: "user_id: bob\n",
			env:  []string{"SUPERMEMORY_USERNAME=alice"},
			check: func(t *testing.T, s Settings, _ string) {
				if s.UserID != "bob" {
					t.Errorf("user_id = %q, want bob", s.UserID)
				}
			},
		},
		{
			name: "INTERCEPTOR_PORT is a loopback port",
			file: "listen: 127.0.0.1:7000\n",
			env:  []string{"INTERCEPTOR_PORT=9123"},
			check: func(t *testing.T, s Settings, _ string) {
				if a, _ := ListenAddr(s.Listen); a != "127.0.0.1:9123" {
					t.Errorf("listen = %q (%s), want 127.0.0.1:9123", s.Listen, a)
				}
			},
		},
		{
			name:  "INTERCEPTOR_LISTEN wins over INTERCEPTOR_PORT, --listen over both",
			env:   []string{"INTERCEPTOR_PORT=9123", "INTERCEPTOR_LISTEN=127.0.0.1:9124"},
			flags: map[string]string{"listen": "127.0.0.1:9125"},
			check: func(t *testing.T, s Settings, _ string) {
				if s.Listen != "127.0.0.1:9125" {
					t.Errorf("listen = %q", s.Listen)
				}
			},
		},
		{
			name: "INTERCEPTOR_LISTEN wins over INTERCEPTOR_PORT",
			env:  []string{"INTERCEPTOR_LISTEN=127.0.0.1:9124", "INTERCEPTOR_PORT=9123"},
			check: func(t *testing.T, s Settings, _ string) {
				if s.Listen != "127.0.0.1:9124" {
					t.Errorf("listen = %q", s.Listen)
				}
			},
		},
		{
			name: "api_key from the environment through ${VAR}",
			file: "api_key: ${MY_KEY}\n",
			env:  []string{"MY_KEY=sk-from-env"},
			check: func(t *testing.T, s Settings, _ string) {
				if s.APIKey.Value() != "sk-from-env" {
					t.Errorf("api_key = %q", s.APIKey.Value())
				}
			},
		},
		{
			name: "unset ${VAR:-} leaves api_key unset",
			file: "api_key: ${MY_KEY:-}\n",
			check: func(t *testing.T, s Settings, _ string) {
				if s.APIKey != "" {
					t.Errorf("api_key = %q", s.APIKey.Value())
				}
			},
		},
		{
			name: "INTERCEPTOR_API_KEY over the file",
			file: "api_key: ${MY_KEY}\n",
			env:  []string{"MY_KEY=a", "INTERCEPTOR_API_KEY=b"},
			check: func(t *testing.T, s Settings, _ string) {
				if s.APIKey.Value() != "b" {
					t.Errorf("api_key = %q", s.APIKey.Value())
				}
			},
		},
		{
			name: "null and empty values keep the defaults",
			file: "target:\ntimeouts:\n  connect: null\nport_registry:\nuser_id_prefix:\n",
			env:  []string{"INTERCEPTOR_TARGET=", "INTERCEPTOR_USER_ID_PREFIX= "},
			check: func(t *testing.T, s Settings, _ string) {
				if !reflect.DeepEqual(s, DefaultSettings()) {
					t.Errorf("got %+v, want the defaults", s)
				}
			},
		},
		{
			name: "relative paths in the file are relative to the file",
			file: "otel_config: otel.yaml\nproject_dir: ../app\nport_registry:\n  path: reg/ports.json\n",
			check: func(t *testing.T, s Settings, dir string) {
				if s.OtelConfig != filepath.Join(dir, "otel.yaml") || s.ProjectDir != filepath.Join(filepath.Dir(dir), "app") ||
					s.PortRegistry.Path != filepath.Join(dir, "reg", "ports.json") {
					t.Errorf("otel_config=%q project_dir=%q registry=%q (file in %s)", s.OtelConfig, s.ProjectDir, s.PortRegistry.Path, dir)
				}
			},
		},
		{
			name: "~ is the home directory",
			file: "port_registry:\n  path: ~/reg.json\n",
			check: func(t *testing.T, s Settings, _ string) {
				if s.PortRegistry.Path != filepath.Join(home, "reg.json") {
					t.Errorf("registry = %q", s.PortRegistry.Path)
				}
			},
		},
		{
			name: "env and flags for nested keys",
			env: []string{"INTERCEPTOR_PORT_REGISTRY=/tmp/a.json", "INTERCEPTOR_PORT_REGISTRY_MIN_PORT=9000",
				"INTERCEPTOR_PORT_REGISTRY_MAX_PORT=9001", "INTERCEPTOR_TIMEOUTS_SHUTDOWN=2s", "INTERCEPTOR_TIMEOUTS_RESPONSE_HEADER=1m"},
			flags: map[string]string{"port_registry.path": "/tmp/b.json"},
			check: func(t *testing.T, s Settings, _ string) {
				want := PortRegistrySettings{Path: "/tmp/b.json", MinPort: 9000, MaxPort: 9001}
				if s.PortRegistry != want || s.Timeouts.Shutdown != 2*time.Second || s.Timeouts.ResponseHeader != time.Minute {
					t.Errorf("registry=%+v timeouts=%+v", s.PortRegistry, s.Timeouts)
				}
			},
		},
		{
			name: "INTERCEPTOR_PORT_REGISTRY_PATH is the long name",
			env:  []string{"INTERCEPTOR_PORT_REGISTRY_PATH=/tmp/c.json"},
			check: func(t *testing.T, s Settings, _ string) {
				if s.PortRegistry.Path != "/tmp/c.json" {
					t.Errorf("registry = %q", s.PortRegistry.Path)
				}
			},
		},
		{
			name: "listen as a YAML integer",
			file: "listen: 9555\n",
			check: func(t *testing.T, s Settings, _ string) {
				if a, _ := ListenAddr(s.Listen); a != "127.0.0.1:9555" {
					t.Errorf("listen = %q", s.Listen)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var file, dir string
			if tt.file != "" {
				file = writeFile(t, "interceptor.yaml", tt.file)
				dir = filepath.Dir(file)
			}
			env := tt.env
			if env == nil {
				env = []string{}
			}
			loaded, err := LoadSettings(LoadOptions{File: file, Environ: env, Flags: tt.flags})
			if err != nil {
				var buf bytes.Buffer
				_ = otelconfig.FormatText(&buf, loaded.Diagnostics, otelconfig.TextOptions{Sources: loaded.Sources})
				t.Fatalf("LoadSettings: %v\n%s", err, buf.String())
			}
			if len(loaded.Diagnostics) > 0 {
				t.Errorf("unexpected diagnostics: %v", loaded.Diagnostics)
			}
			tt.check(t, loaded.Settings, dir)
		})
	}
}

func TestLoadSettingsConfigFromEnv(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "i.yaml", "user_id: from-config-var\n")
	loaded, err := LoadSettings(LoadOptions{Environ: []string{EnvConfig + "=" + file}})
	if err != nil {
		t.Fatal(err)
	}
	if loaded.File != file || loaded.Settings.UserID != "from-config-var" {
		t.Fatalf("file=%q user_id=%q", loaded.File, loaded.Settings.UserID)
	}
	// --config wins over INTERCEPTOR_CONFIG.
	other := writeFile(t, "j.yaml", "user_id: from-flag\n")
	loaded, err = LoadSettings(LoadOptions{File: other, Environ: []string{EnvConfig + "=" + file}})
	if err != nil || loaded.Settings.UserID != "from-flag" {
		t.Fatalf("user_id=%q err=%v", loaded.Settings.UserID, err)
	}
}

// diag is the part of a Diagnostic a test pins down.
type diag struct {
	sev  otelconfig.Severity
	code string
	line int
	col  int
	path string
	env  string
	text string // a substring of Message or Hint
}

func TestLoadSettingsDiagnostics(t *testing.T) {
	t.Parallel()
	const E, W = otelconfig.SeverityError, otelconfig.SeverityWarning
	tests := []struct {
		name  string
		file  string
		env   []string
		flags map[string]string
		want  []diag
	}{
		{
			name: "every problem of a file at once",
			file: "target: ftp://x\n" +
				"user_idd: bob\n" +
				"timeouts:\n" +
				"  connect: 10\n" +
				"  shutdown: -1s\n" +
				"port_registry:\n" +
				"  min_port: 9000\n" +
				"  max_port: 8000\n" +
				"api_key: sk-literal\n",
			want: []diag{
				{E, otelconfig.CodeSettings, 1, 9, "/target", "", "http or https"},
				{E, otelconfig.CodeUnknownKey, 2, 1, "/user_idd", "", `did you mean "user_id"?`},
				{E, otelconfig.CodeType, 4, 12, "/timeouts/connect", "", "must be a string"},
				{E, otelconfig.CodeSettings, 5, 13, "/timeouts/shutdown", "", "must be positive"},
				{E, otelconfig.CodeSettings, 8, 13, "/port_registry", "", "min_port 9000 is above max_port 8000"},
				{W, otelconfig.CodeSecurity, 9, 10, "/api_key", "", "written in the settings file"},
			},
		},
		{
			name: "types",
			file: "listen: [1, 2]\nuser_id: 42\nport_registry: 5\ntimeouts:\n  idle: {a: 1}\nproject_dir: true\n",
			want: []diag{
				{E, otelconfig.CodeType, 1, 9, "/listen", "", "found a list"},
				{E, otelconfig.CodeType, 2, 10, "/user_id", "", `quote it`},
				{E, otelconfig.CodeType, 3, 16, "/port_registry", "", "must be a mapping"},
				{E, otelconfig.CodeType, 5, 9, "/timeouts/idle", "", "found a mapping"},
				{E, otelconfig.CodeType, 6, 14, "/project_dir", "", "found a boolean"},
			},
		},
		{
			name: "values",
			file: "listen: localhost\ntarget: http://h:1?x=1\nport_registry:\n  min_port: 0\n  max_port: 70000\nuser_id: \"a\\nb\"\n",
			want: []diag{
				{E, otelconfig.CodeSettings, 1, 9, "/listen", "", "not host:port"},
				{E, otelconfig.CodeSettings, 2, 9, "/target", "", "query string"},
				{E, otelconfig.CodeSettings, 4, 13, "/port_registry/min_port", "", "not a port"},
				{E, otelconfig.CodeSettings, 5, 13, "/port_registry/max_port", "", "not a port"},
				{E, otelconfig.CodeSettings, 6, 10, "/user_id", "", "control character"},
			},
		},
		{
			name: "body limit and answer bounds",
			file: "max_body_bytes: 0\ntimeouts:\n  read_body: 0s\n  response: soon\n",
			env:  []string{"INTERCEPTOR_MAX_BODY_BYTES=lots", "INTERCEPTOR_TIMEOUTS_RESPONSE_IDLE=-1m"},
			want: []diag{
				{E, otelconfig.CodeSettings, 1, 17, "/max_body_bytes", "", "not a byte count"},
				{E, otelconfig.CodeSettings, 3, 14, "/timeouts/read_body", "", "must be positive"},
				{E, otelconfig.CodeSettings, 4, 13, "/timeouts/response", "", "not a duration"},
				{E, otelconfig.CodeEnvValue, 0, 0, "", "INTERCEPTOR_MAX_BODY_BYTES", "not an integer"},
				{E, otelconfig.CodeEnvValue, 0, 0, "", "INTERCEPTOR_TIMEOUTS_RESPONSE_IDLE", "must be positive"},
			},
		},
		{
			name: "max_body_bytes is an integer",
			file: "max_body_bytes: 10MiB\n",
			want: []diag{{E, otelconfig.CodeType, 1, 17, "/max_body_bytes", "", "must be an integer"}},
		},
		{
			name: "an otel.yaml given as settings",
			file: "file_format: \"1.0\"\n",
			want: []diag{{E, otelconfig.CodeUnknownKey, 1, 1, "/file_format", "", "--otel-config"}},
		},
		{
			name: "YAML syntax error",
			file: "target: [\n",
			want: []diag{{E, otelconfig.CodeSyntax, 1, 1, "", "", "YAML syntax error"}},
		},
		{
			name: "bad ${VAR} reference",
			file: "user_id: ${1X}\n",
			want: []diag{{E, otelconfig.CodeSubstitution, 1, 10, "/user_id", "", "invalid reference"}},
		},
		{
			name: "environment values and typos",
			env: []string{"INTERCEPTOR_TARGET=nope", "INTERCEPTOR_PORT=http", "INTERCEPTOR_TIMEOUTS_IDLE=5",
				"INTERCEPTOR_TARGT=http://x", "SUPERMEMORY_USERNAME=a\x01b"},
			want: []diag{
				{E, otelconfig.CodeEnvValue, 0, 0, "", "SUPERMEMORY_USERNAME", "control character"},
				{E, otelconfig.CodeEnvValue, 0, 0, "", "INTERCEPTOR_PORT", "not a number"},
				{E, otelconfig.CodeEnvValue, 0, 0, "", "INTERCEPTOR_TARGET", "scheme must be http or https"},
				{W, otelconfig.CodeUnknownKey, 0, 0, "", "INTERCEPTOR_TARGT", "did you mean INTERCEPTOR_TARGET?"},
				{E, otelconfig.CodeEnvValue, 0, 0, "", "INTERCEPTOR_TIMEOUTS_IDLE", "not a duration"},
			},
		},
		{
			name:  "flag values",
			flags: map[string]string{"listen": "nowhere", "target": "http://"},
			want: []diag{
				{E, otelconfig.CodeSettings, 0, 0, "", "", "invalid value for --listen"},
				{E, otelconfig.CodeSettings, 0, 0, "", "", "invalid value for --target"},
			},
		},
		{
			name: "a port range made empty by the environment",
			file: "port_registry:\n  max_port: 9000\n",
			env:  []string{"INTERCEPTOR_PORT_REGISTRY_MIN_PORT=9500"},
			want: []diag{{E, otelconfig.CodeSettings, 0, 0, "/port_registry", "", "min_port 9500 is above max_port 9000"}},
		},
		{
			name: "api_key on every interface",
			env:  []string{"INTERCEPTOR_API_KEY=sk-1", "INTERCEPTOR_LISTEN=:8899"},
			want: []diag{{W, otelconfig.CodeSecurity, 0, 0, "/listen", "", "anyone who can connect"}},
		},
		{
			name: "an unset variable without default",
			file: "user_id: ${NOPE}\n",
			want: []diag{{W, otelconfig.CodeEnvUnset, 1, 10, "/user_id", "", "NOPE is not set"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var file string
			if tt.file != "" {
				file = writeFile(t, "interceptor.yaml", tt.file)
			}
			env := append([]string{}, tt.env...)
			loaded, err := LoadSettings(LoadOptions{File: file, Environ: env, Flags: tt.flags})
			wantErr := slices.ContainsFunc(tt.want, func(d diag) bool { return d.sev == E })
			var ce *otelconfig.Error
			if wantErr != errors.As(err, &ce) {
				t.Fatalf("err = %v, want an *otelconfig.Error: %v", err, wantErr)
			}
			if ce != nil && !slices.Equal(ce.Diagnostics, loaded.Diagnostics) {
				t.Errorf("the error and Loaded carry different diagnostics")
			}
			got := loaded.Diagnostics
			if len(got) != len(tt.want) {
				t.Fatalf("got %d diagnostics, want %d:\n%s", len(got), len(tt.want), dump(got))
			}
			for i, w := range tt.want {
				g := got[i]
				if g.Severity != w.sev || g.Code != w.code || g.Line != w.line || g.Column != w.col || g.Path != w.path || g.Env != w.env ||
					!strings.Contains(g.Message+" "+g.Hint, w.text) {
					t.Errorf("diagnostic %d:\n got %s (hint %q, env %q)\nwant %+v", i, g, g.Hint, g.Env, w)
				}
				if w.line > 0 && g.File != file {
					t.Errorf("diagnostic %d names file %q, want %q", i, g.File, file)
				}
				if strings.Contains(g.Message+g.Hint, "sk-") {
					t.Errorf("diagnostic %d repeats a key: %s", i, g)
				}
			}
			// The text form shows the source line under positioned errors.
			var buf bytes.Buffer
			_ = otelconfig.FormatText(&buf, got, otelconfig.TextOptions{Sources: loaded.Sources})
			if tt.file != "" && got[0].Line > 0 && !strings.Contains(buf.String(), " | ") {
				t.Errorf("FormatText shows no source line:\n%s", buf.String())
			}
		})
	}
}

func dump(ds otelconfig.Diagnostics) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "  %s (hint %q, env %q)\n", d, d.Hint, d.Env)
	}
	return b.String()
}

func TestLoadSettingsReadErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name, path string
		is         error
		hint       string
	}{
		{"missing", filepath.Join(dir, "nope.yaml"), fs.ErrNotExist, "--config"},
		{"directory", dir, svcconf.ErrIsDir, "name the settings file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			loaded, err := LoadSettings(LoadOptions{File: tt.path, Environ: []string{}})
			var re *otelconfig.ReadError
			if !errors.As(err, &re) || !errors.Is(err, tt.is) {
				t.Fatalf("err = %v, want a ReadError wrapping %v", err, tt.is)
			}
			if len(loaded.Diagnostics) != 1 || loaded.Diagnostics[0].Code != otelconfig.CodeIO || !strings.Contains(loaded.Diagnostics[0].Hint, tt.hint) {
				t.Fatalf("diagnostics = %v", loaded.Diagnostics)
			}
		})
	}
	big := writeFile(t, "big.yaml", "user_id: "+strings.Repeat("x", 2000)+"\n")
	loaded, err := LoadSettings(LoadOptions{File: big, Environ: []string{}, Limits: otelconfig.Limits{MaxFileSize: 100}})
	if err == nil || loaded.Diagnostics[0].Code != otelconfig.CodeTooLarge {
		t.Fatalf("a file over the limit: err=%v diagnostics=%v", err, loaded.Diagnostics)
	}
}

// TestSchemaSamplesAgree runs the Go checks on the schema's samples: the
// editor (schema) and the service must accept and refuse the same files.
func TestSchemaSamplesAgree(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "..", "schemas", "testdata", "interceptor.*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no interceptor samples: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			doc := otelconfig.Parse(filepath.Base(f), src, otelconfig.Limits{})
			doc.SubstituteEnv(func(string) (string, bool) { return "", false }, false)
			errs := ValidateSettingsDocument(doc).Errors()
			good := strings.HasSuffix(f, ".good.yaml")
			if good && len(errs) > 0 {
				t.Errorf("the schema accepts it, the service refuses it:\n%s", dump(errs))
			}
			if !good && len(errs) == 0 {
				t.Errorf("the schema refuses it, the service accepts it")
			}
		})
	}
}

// TestSchemaAndExampleCoverEveryField keeps fields.go, the schema and
// examples/interceptor.yaml in step.
func TestSchemaAndExampleCoverEveryField(t *testing.T) {
	t.Parallel()
	data, ok := schemas.Get("interceptor")
	if !ok {
		t.Fatal("schemas/interceptor.schema.json is not embedded")
	}
	var sch struct {
		Properties map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(data, &sch); err != nil {
		t.Fatal(err)
	}
	var inSchema []string
	for k, p := range sch.Properties {
		if len(p.Properties) == 0 {
			inSchema = append(inSchema, k)
		}
		for sub := range p.Properties {
			inSchema = append(inSchema, k+"."+sub)
		}
	}
	sort.Strings(inSchema)
	keys := settingKeys()
	sort.Strings(keys)
	if !slices.Equal(inSchema, keys) {
		t.Errorf("schema keys %v\nsettings keys %v", inSchema, keys)
	}

	// The koanf tags of Settings are the same keys.
	var tags []string
	var walk func(rt reflect.Type, prefix string)
	walk = func(rt reflect.Type, prefix string) {
		for i := range rt.NumField() {
			f := rt.Field(i)
			tag := prefix + f.Tag.Get("koanf")
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, tag+".")
				continue
			}
			tags = append(tags, tag)
		}
	}
	walk(reflect.TypeFor[Settings](), "")
	sort.Strings(tags)
	if !slices.Equal(tags, keys) {
		t.Errorf("Settings tags %v\nfields %v", tags, keys)
	}

	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "interceptor.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(example, []byte("# yaml-language-server: $schema=../schemas/interceptor.schema.json\n")) {
		t.Error("examples/interceptor.yaml does not start with the schema modeline")
	}
	for _, k := range keys {
		leaf := k[strings.LastIndex(k, ".")+1:]
		if !bytes.Contains(example, []byte(leaf+":")) {
			t.Errorf("examples/interceptor.yaml does not document %s", k)
		}
	}
	for _, e := range EnvVars() {
		if e.Key != "" && !slices.Contains(keys, e.Key) {
			t.Errorf("EnvVars: %s names unknown key %s", e.Name, e.Key)
		}
	}
}

// TestExampleLoads boots the documented example exactly as a user would.
func TestExampleLoads(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "examples", "interceptor.yaml")
	loaded, err := LoadSettings(LoadOptions{File: path, Environ: []string{}})
	if err != nil || len(loaded.Diagnostics) > 0 {
		t.Fatalf("err=%v diagnostics:\n%s", err, dump(loaded.Diagnostics))
	}
	s := loaded.Settings
	if s.OtelConfig != filepath.Join(filepath.Dir(path), "otel.yaml") {
		t.Errorf("otel_config = %q", s.OtelConfig)
	}
	if _, err := os.Stat(s.OtelConfig); err != nil {
		t.Errorf("the example's otel_config does not exist: %v", err)
	}
	if err := s.Validate(); err != nil {
		t.Error(err)
	}
	doc := otelconfig.Parse(path, mustRead(t, path), otelconfig.Limits{})
	if !LooksLikeSettings(doc.Root) {
		t.Error("LooksLikeSettings(example) = false")
	}
	// Validating the raw file (no substitution) must not misjudge ${...}.
	if ds := ValidateSettingsDocument(doc); len(ds) > 0 {
		t.Errorf("raw example: %s", dump(ds))
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLooksLikeSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src  string
		want bool
	}{
		{"target: http://x\n", true},
		{"user_id_prefix: a\n", true},
		{"port_registry: {}\n", true},
		{"listen: 1\nuser_id: a\n", true},
		{"file_format: \"1.0\"\n", false},
		{"file_format: \"1.0\"\ntarget: x\n", false},
		{"listen: 127.0.0.1:8764\nmodels: []\n", false},
		{"- a\n", false},
	}
	for _, tt := range tests {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(tt.src), &n); err != nil {
			t.Fatal(err)
		}
		if got := LooksLikeSettings(n.Content[0]); got != tt.want {
			t.Errorf("LooksLikeSettings(%q) = %v, want %v", tt.src, got, tt.want)
		}
	}
	if LooksLikeSettings(nil) {
		t.Error("LooksLikeSettings(nil) = true")
	}
	if ValidateSettingsDocument(nil) != nil || ValidateSettingsDocument(&otelconfig.Document{}) != nil {
		t.Error("ValidateSettingsDocument of nothing must be empty")
	}
}

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	s := DefaultSettings()
	s.APIKey = "sk-very-secret"
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("settings", "key", s.APIKey, "settings", s)
	j, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{
		"%v": fmt.Sprintf("%v", s), "%+v": fmt.Sprintf("%+v", s), "%#v": fmt.Sprintf("%#v", s), "%s": fmt.Sprintf("%s", s.APIKey),
		"json": string(j), "yaml": string(y), "slog": logged.String(),
	} {
		if strings.Contains(out, "very-secret") {
			t.Errorf("%s prints the key: %s", name, out)
		}
		if !strings.Contains(out, redacted) {
			t.Errorf("%s does not say [REDACTED]: %s", name, out)
		}
	}
	if s.APIKey.Value() != "sk-very-secret" {
		t.Error("Value must return the key")
	}
	if Secret("").String() != "" {
		t.Error("an empty secret prints as empty")
	}
}

func TestListenAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"8888", "127.0.0.1:8888", true},
		{"0", "127.0.0.1:0", true},
		{":8888", ":8888", true},
		{"localhost:8888", "localhost:8888", true},
		{"[::1]:8888", "[::1]:8888", true},
		{" 127.0.0.1:1 ", "127.0.0.1:1", true},
		{"70000", "", false},
		{"localhost", "", false},
		{"a b:1", "", false},
		{"h:port", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := ListenAddr(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ListenAddr(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestSettingsValidate(t *testing.T) {
	t.Parallel()
	mod := func(f func(*Settings)) Settings { s := DefaultSettings(); f(&s); return s }
	tests := []struct {
		name string
		s    Settings
		want string
	}{
		{"defaults", DefaultSettings(), ""},
		{"no target", mod(func(s *Settings) { s.Target = "" }), "target"},
		{"relative target", mod(func(s *Settings) { s.Target = "/v1" }), "target"},
		{"bad listen", mod(func(s *Settings) { s.Listen = "x" }), "listen"},
		{"zero timeout", mod(func(s *Settings) { s.Timeouts.Connect = 0 }), "timeouts.connect"},
		{"empty range", mod(func(s *Settings) { s.PortRegistry.MinPort = 9000; s.PortRegistry.MaxPort = 8000 }), "port_registry"},
		{"newline in user id", mod(func(s *Settings) { s.UserID = "a\r\nX-Evil: 1" }), "user_id"},
	}
	for _, tt := range tests {
		err := tt.s.Validate()
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate() = %v, want mention of %q", tt.name, err, tt.want)
		}
	}
}
