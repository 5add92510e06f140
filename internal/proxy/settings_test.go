package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/otelcfg/otelcfg/otelconfig"
	"github.com/otelcfg/otelcfg/schemas"
	yaml "go.yaml.in/yaml/v3"
)

func envLookup(kv ...string) otelconfig.LookupFunc {
	m := map[string]string{}
	for _, e := range kv {
		k, v, _ := strings.Cut(e, "=")
		m[k] = v
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSettingsLayering: defaults < file < PROXY_* < flags, per setting.
func TestSettingsLayering(t *testing.T) {
	t.Parallel()
	file := writeTemp(t, "proxy.yaml", `listen: 127.0.0.1:9001
max_body_bytes: 1000
log_bodies: true
models:
  - name: m
    api_base: builtin:echo
upstream:
  timeout: 1m
user_id_mappings:
  default_user_id: from-file
`)
	type got struct {
		listen  string
		maxBody int64
		timeout time.Duration
		user    string
		bodies  bool
	}
	tests := []struct {
		name  string
		env   []string
		flags map[string]string
		want  got
	}{
		{"file", nil, nil, got{"127.0.0.1:9001", 1000, time.Minute, "from-file", true}},
		{"env over file", []string{"PROXY_LISTEN=127.0.0.1:9002", "PROXY_MAX_BODY_BYTES=2000", "PROXY_UPSTREAM_TIMEOUT=2m",
			"PROXY_USER_ID_MAPPINGS_DEFAULT_USER_ID=from-env", "PROXY_LOG_BODIES=false"}, nil,
			got{"127.0.0.1:9002", 2000, 2 * time.Minute, "from-env", false}},
		{"flag over env", []string{"PROXY_LISTEN=127.0.0.1:9002", "PROXY_MAX_BODY_BYTES=2000", "PROXY_UPSTREAM_TIMEOUT=2m"},
			map[string]string{"listen": "127.0.0.1:9003", "max_body_bytes": "3000", "upstream.timeout": "3m",
				"user_id_mappings.default_user_id": "from-flag", "log_bodies": "false"},
			got{"127.0.0.1:9003", 3000, 3 * time.Minute, "from-flag", false}},
		{"empty variable is unset", []string{"PROXY_LISTEN="}, nil, got{"127.0.0.1:9001", 1000, time.Minute, "from-file", true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, ds, err := LoadSettings(file, envLookup(tt.env...), tt.flags)
			if err != nil || len(ds) != 0 {
				t.Fatalf("%v %v", err, ds)
			}
			g := got{s.Listen, s.MaxBodyBytes, s.Upstream.Timeout, s.UserIDMappings.DefaultUserID, s.LogBodies}
			if g != tt.want {
				t.Errorf("got %+v, want %+v", g, tt.want)
			}
			// Untouched settings keep their defaults.
			if s.Server != DefaultServer || s.UserIDMappings.CustomHeader != DefaultCustomHeader || len(s.UserIDMappings.HeaderPatterns) != 3 {
				t.Errorf("defaults lost: %+v", s)
			}
		})
	}
}

func TestSettingsFileAndEnvironment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "proxy.yaml")
	content := `master_key: ${MASTER}
otel_config: otel.yaml
models:
  - name: gpt
    api_base: https://api.openai.com/v1
    api_key: ${OPENAI_API_KEY}
    extra_headers:
      OpenAI-Organization: ${ORG:-org-default}
    timeout: 30s
user_id_mappings:
  header_patterns: []
`
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	s, ds, err := LoadSettings("", envLookup("PROXY_CONFIG="+file, "MASTER=mk", "OPENAI_API_KEY=sk-1"), nil)
	if err != nil || len(ds) != 0 {
		t.Fatalf("%v %v", err, ds)
	}
	m := s.Models[0]
	if s.MasterKey.Value() != "mk" || m.APIKey.Value() != "sk-1" || m.ExtraHeaders["OpenAI-Organization"] != "org-default" || m.Timeout != 30*time.Second || m.UpstreamModel() != "gpt" {
		t.Errorf("settings %+v", s)
	}
	if s.OtelConfig != filepath.Join(dir, "otel.yaml") {
		t.Errorf("otel_config %q is not relative to the settings file", s.OtelConfig)
	}
	if len(s.UserIDMappings.HeaderPatterns) != 0 {
		t.Errorf("header_patterns: [] kept the built-in rules")
	}
	// The env layer holds secrets too, and they stay secrets.
	s, _, _ = LoadSettings(file, envLookup("PROXY_MASTER_KEY=from-env", "MASTER=mk"), nil)
	if s.MasterKey.Value() != "from-env" {
		t.Errorf("PROXY_MASTER_KEY did not win: %q", s.MasterKey.Value())
	}
	if out := fmt.Sprintf("%v %+v %#v", s, s, s); strings.Contains(out, "from-env") || strings.Contains(out, "sk-1") {
		t.Errorf("a secret prints: %s", out)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "key", s.MasterKey)
	if b, _ := json.Marshal(s); strings.Contains(string(b), "from-env") || strings.Contains(buf.String(), "from-env") {
		t.Errorf("a secret marshals or logs: %s %s", b, buf.String())
	}
}

// TestSettingsDiagnostics: every problem of a settings file, with its
// position, through LoadSettings (as at boot).
func TestSettingsDiagnostics(t *testing.T) {
	t.Parallel()
	type want struct {
		pos, sev, code, msg string
	}
	tests := []struct {
		name  string
		file  string
		env   []string
		wants []want
	}{
		{"invalid regex", `models:
  - name: m
    api_base: builtin:echo
user_id_mappings:
  header_patterns:
    - header: user-agent
      pattern: ^Claude (Code
      user_id: claude-code-cli
`, nil, []want{{"7:16", "error", "settings", "pattern \"^Claude (Code\": invalid regular expression: missing closing ): `^Claude (Code`"}}},
		{"unknown key", "modles:\n  - name: m\n    api_base: builtin:echo\n", nil,
			[]want{{"1:1", "error", "unknown-key", `unknown key "modles"`}}},
		{"unknown nested key", "models:\n  - name: m\n    api_base: builtin:echo\n    api_keys: x\n", nil,
			[]want{{"4:5", "error", "unknown-key", `unknown key "api_keys" in /models/0`}}},
		{"duplicate model", "models:\n  - name: m\n    api_base: builtin:echo\n  - name: m\n    api_base: builtin:echo\n", nil,
			[]want{{"4:11", "error", "settings", `model "m" is already defined on line 2`}}},
		{"bad api_base", "models:\n  - name: m\n    api_base: ftp://example.com\n", nil,
			[]want{{"3:15", "error", "settings", "api_base: the scheme must be http or https"}}},
		{"credentials in api_base", "models:\n  - name: m\n    api_base: https://u:p@example.com/v1\n", nil,
			[]want{{"3:15", "error", "settings", "credentials in the URL"}}},
		{"unknown builtin", "models:\n  - name: m\n    api_base: builtin:parrot\n", nil,
			[]want{{"3:15", "error", "settings", `unknown built-in upstream "builtin:parrot"`}}},
		{"missing api_base", "models:\n  - name: m\n", nil,
			[]want{{"2:5", "error", "required", `missing required key "api_base"`}}},
		{"bad duration", "models:\n  - name: m\n    api_base: builtin:echo\nupstream:\n  timeout: 10 seconds\n", nil,
			[]want{{"5:12", "error", "settings", `upstream.timeout: "10 seconds" is not a duration`}}},
		{"zero duration", "models:\n  - name: m\n    api_base: builtin:echo\n    timeout: 0s\n", nil,
			[]want{{"4:14", "error", "settings", "a timeout must be positive"}}},
		{"string for integer", "max_body_bytes: 10MiB\nmodels:\n  - name: m\n    api_base: builtin:echo\n", nil,
			[]want{{"1:17", "error", "type", "expected null or integer, found \"10MiB\""}}},
		{"zero body limit", "max_body_bytes: 0\nmodels:\n  - name: m\n    api_base: builtin:echo\n", nil,
			[]want{{"1:17", "error", "settings", "max_body_bytes: 0: must be at least 1"}}},
		{"reserved extra header", "models:\n  - name: m\n    api_base: builtin:echo\n    extra_headers:\n      Authorization: Bearer x\n", nil,
			[]want{{"5:7", "error", "settings", "header Authorization cannot be set by extra_headers: set api_key instead"}}},
		{"bad custom header", "user_id_mappings:\n  custom_header: x memory\nmodels:\n  - name: m\n    api_base: builtin:echo\n", nil,
			[]want{{"2:18", "error", "settings", `"x memory" is not a valid header name`}}},
		{"literal keys", "master_key: mk-literal\nmodels:\n  - name: m\n    api_base: https://api.openai.com/v1\n    api_key: sk-literal\n", nil,
			[]want{{"1:13", "warning", "security", "master_key is written in the settings file"},
				{"5:14", "warning", "security", "api_key is written in the settings file"}}},
		{"key over plain http", "models:\n  - name: m\n    api_base: http://llm.example.com/v1\n    api_key: ${K}\n", []string{"K=sk"},
			[]want{{"3:15", "warning", "security", "api_key would travel unencrypted to http://llm.example.com/v1"}}},
		{"exposed without master key", "listen: 0.0.0.0:8764\nmodels:\n  - name: m\n    api_base: builtin:echo\n", nil,
			[]want{{"1:9", "warning", "security", "reachable from other machines, without a master_key"}}},
		{"unset variable", "models:\n  - name: m\n    api_base: builtin:echo\n    api_key: ${NOT_SET}\n", nil,
			[]want{{"4:14", "warning", "env-unset", "environment variable NOT_SET is not set"}}},
		{"empty models", "models: []\n", nil,
			[]want{{"1:9", "warning", "settings", "models is empty"}}},
		{"no models at all", "listen: 8764\n", nil,
			[]want{{"", "warning", "settings", "no models configured"}}},
		{"bad variable value", "models:\n  - name: m\n    api_base: builtin:echo\n", []string{"PROXY_UPSTREAM_TIMEOUT=soon", "PROXY_MAX_BODY_BYTES=-1"},
			[]want{{"$PROXY_MAX_BODY_BYTES", "error", "env-value", "-1: must be at least 1"},
				{"$PROXY_UPSTREAM_TIMEOUT", "error", "env-value", `"soon" is not a duration`}}},
		{"stream bounds", "models:\n  - name: m\n    api_base: builtin:echo\nupstream:\n  stream_timeout: 0s\n", []string{"PROXY_UPSTREAM_STREAM_IDLE_TIMEOUT=forever"},
			[]want{{"5:19", "error", "settings", "a timeout must be positive"},
				{"$PROXY_UPSTREAM_STREAM_IDLE_TIMEOUT", "error", "env-value", `"forever" is not a duration`}}},
		{"yaml syntax", "models:\n  - name: m\n   api_base: x\n", nil,
			[]want{{"1:", "error", "yaml-syntax", "YAML syntax error"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := writeTemp(t, "proxy.yaml", tt.file)
			_, ds, err := LoadSettings(file, envLookup(tt.env...), nil)
			wantErr := slices.ContainsFunc(tt.wants, func(w want) bool { return w.sev == "error" })
			var ce *otelconfig.Error
			if wantErr != errors.As(err, &ce) {
				t.Errorf("error %v, want one: %v", err, wantErr)
			}
			if ce != nil && string(ce.Sources[file]) != tt.file {
				t.Error("the error does not carry the file's source")
			}
			if len(ds) != len(tt.wants) {
				t.Errorf("got %d diagnostics, want %d:\n%s", len(ds), len(tt.wants), diagText(ds))
			}
			for _, w := range tt.wants {
				found := slices.ContainsFunc(ds, func(d otelconfig.Diagnostic) bool {
					pos := d.Position()
					if d.File == file {
						pos = strings.TrimPrefix(pos, file+":")
					}
					return strings.HasPrefix(pos, w.pos) && string(d.Severity) == w.sev && d.Code == w.code && strings.Contains(d.Message, w.msg)
				})
				if !found {
					t.Errorf("no %s %s [%s] %q in:\n%s", w.pos, w.sev, w.code, w.msg, diagText(ds))
				}
			}
		})
	}
}

func diagText(ds otelconfig.Diagnostics) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString("  " + d.String() + "\n")
	}
	return b.String()
}

func TestSettingsReadErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tt := range []struct {
		name, path, hint string
	}{
		{"missing", filepath.Join(dir, "nope.yaml"), "check the --config path"},
		{"directory", dir, "name the settings file inside it"},
	} {
		_, ds, err := LoadSettings(tt.path, envLookup(), nil)
		var re *otelconfig.ReadError
		if !errors.As(err, &re) || len(ds) != 1 || ds[0].Code != otelconfig.CodeIO || !strings.HasPrefix(ds[0].Hint, tt.hint) {
			t.Errorf("%s: %v %v", tt.name, err, ds)
		}
	}
	_, _, err := LoadSettings("", envLookup(), map[string]string{"nope": "x"})
	if err == nil || !strings.Contains(err.Error(), `no setting "nope"`) {
		t.Errorf("unknown flag key: %v", err)
	}
	_, ds, err := LoadSettings("", envLookup(), map[string]string{"listen": "nowhere"})
	if err == nil || len(ds) == 0 || ds[0].File != CommandLine || !strings.Contains(ds[0].Message, "--listen") {
		t.Errorf("bad flag value: %v %v", err, ds)
	}
}

func TestLooksLikeSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		yaml string
		want bool
	}{
		{"models:\n  - name: m\n", true},
		{"user_id_mappings: {}\n", true},
		{"master_key: ${K}\nlisten: 1\n", true},
		{"listen: 127.0.0.1:8764\n", false}, // shared with the interceptor
		{"file_format: \"1.0\"\nmodels: []\n", false},
		{"target: http://x\nuser_id: a\n", false},
		{"- models\n", false},
	}
	for _, tt := range tests {
		doc := otelconfig.Parse("x.yaml", []byte(tt.yaml), otelconfig.Limits{})
		root := doc.Root
		if root == nil {
			var n yaml.Node
			_ = yaml.Unmarshal([]byte(tt.yaml), &n)
			root = n.Content[0]
		}
		if got := LooksLikeSettings(root); got != tt.want {
			t.Errorf("LooksLikeSettings(%q) = %v, want %v", tt.yaml, got, tt.want)
		}
	}
	if LooksLikeSettings(nil) {
		t.Error("nil looks like settings")
	}
}

// TestValidateSettingsDocument is the call `otelcfg validate` makes: the
// document is not changed and its own diagnostics are not repeated.
func TestValidateSettingsDocument(t *testing.T) {
	t.Parallel()
	doc := otelconfig.Parse("p.yaml", []byte("models:\n  - name: m\n    api_base: ${BASE}\n    timout: 5s\n"), otelconfig.Limits{})
	// Not substituted: the reference is not judged as a URL.
	ds := ValidateSettingsDocument(doc)
	if len(ds) != 1 || ds[0].Code != otelconfig.CodeUnknownKey || ds[0].Line != 4 || ds[0].Hint != `did you mean "timeout"?` {
		t.Errorf("diagnostics:\n%s", diagText(ds))
	}
	if len(doc.Diagnostics) != 0 {
		t.Error("ValidateSettingsDocument added diagnostics to the document")
	}
	doc.SubstituteEnv(envLookup("BASE=gopher://x"), true)
	if ds := ValidateSettingsDocument(doc); len(ds) != 2 || !strings.Contains(ds[0].Message, "http or https") {
		t.Errorf("after substitution:\n%s", diagText(ds))
	}
	if ValidateSettingsDocument(nil) != nil {
		t.Error("nil document")
	}
}

// TestExampleSettings: examples/proxy.yaml loads clean without any
// environment, passes the schema, and documents every setting.
func TestExampleSettings(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "examples", "proxy.yaml")
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(src), "# yaml-language-server: $schema=../schemas/proxy.schema.json\n") {
		t.Error("the example does not start with the schema modeline")
	}
	s, ds, err := LoadSettings(path, envLookup(), nil)
	if err != nil || len(ds) != 0 {
		t.Fatalf("%v\n%s", err, diagText(ds))
	}
	if len(s.Models) < 2 || s.Models[0].APIBase != EchoBase || s.Models[1].APIBase != EchoBase {
		t.Errorf("the example's models are not offline: %+v", s.Models)
	}
	doc := otelconfig.Parse(path, src, otelconfig.Limits{})
	if !LooksLikeSettings(doc.Root) {
		t.Error("the example does not look like proxy settings")
	}
	for _, f := range fields {
		if !strings.Contains(string(src), lastKey(f.key)+":") {
			t.Errorf("examples/proxy.yaml does not document %s", f.key)
		}
	}
	for _, k := range []string{"name:", "api_base:", "model:", "api_key:", "extra_headers:", "timeout:", "header:", "pattern:", "user_id:", "${OPENAI_API_KEY}"} {
		if !strings.Contains(string(src), k) {
			t.Errorf("examples/proxy.yaml does not show %s", k)
		}
	}
	if _, err := New(s, nil); err != nil {
		t.Errorf("New on the example: %v", err)
	}
}

// TestSchemaMatchesFields keeps schemas/proxy.schema.json in step with
// the field table: every setting is a property, with its variable named in
// the description, and every property is a setting or a list.
func TestSchemaMatchesFields(t *testing.T) {
	t.Parallel()
	raw, ok := schemas.Get("proxy")
	if !ok {
		t.Fatal("schemas has no proxy schema")
	}
	var sch struct {
		Properties map[string]struct {
			Description string                     `json:"description"`
			Properties  map[string]json.RawMessage `json:"properties"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &sch); err != nil {
		t.Fatal(err)
	}
	var inSchema []string
	for k, p := range sch.Properties {
		if len(p.Properties) == 0 {
			inSchema = append(inSchema, k)
		}
		for sub, sp := range p.Properties {
			inSchema = append(inSchema, k+"."+sub)
			var d struct {
				Description string `json:"description"`
			}
			_ = json.Unmarshal(sp, &d)
			if f, ok := fieldByKey(k + "." + sub); ok && !strings.Contains(d.Description, envName(f.key)) {
				t.Errorf("schema description of %s does not name %s", f.key, envName(f.key))
			}
		}
		if f, ok := fieldByKey(k); ok && !strings.Contains(p.Description, envName(f.key)) {
			t.Errorf("schema description of %s does not name %s", f.key, envName(f.key))
		}
	}
	lists := []string{"models", "user_id_mappings.header_patterns"}
	for _, f := range fields {
		if !slices.Contains(inSchema, f.key) {
			t.Errorf("setting %s is not in the schema", f.key)
		}
	}
	for _, k := range inSchema {
		if _, ok := fieldByKey(k); !ok && !slices.Contains(lists, k) {
			t.Errorf("schema property %s is not a setting", k)
		}
	}
	for _, g := range groups {
		if childKeys(g) == nil {
			t.Errorf("group %s has no settings", g)
		}
	}
}

func TestEnvVarsAndFlags(t *testing.T) {
	t.Parallel()
	var names []string
	for _, e := range EnvVars() {
		names = append(names, e.Name)
		if e.Name == "PROXY_MASTER_KEY" && !e.Secret {
			t.Error("PROXY_MASTER_KEY is not marked secret")
		}
	}
	for _, want := range []string{"PROXY_CONFIG", "PROXY_LISTEN", "PROXY_MASTER_KEY", "PROXY_MAX_BODY_BYTES", "PROXY_UPSTREAM_TIMEOUT",
		"PROXY_UPSTREAM_MAX_IDLE_CONNS_PER_HOST", "PROXY_SERVER_SHUTDOWN_TIMEOUT", "PROXY_USER_ID_MAPPINGS_DEFAULT_USER_ID"} {
		if !slices.Contains(names, want) {
			t.Errorf("EnvVars lacks %s", want)
		}
	}
	for _, f := range Flags() {
		if fd, _ := fieldByKey(f.Key); fd.kind == kindSecret {
			t.Errorf("secret %s has a flag: it would show in ps", f.Key)
		}
	}
	ds := unknownEnv([]string{"PROXY_LISTN=x", "PROXY_LISTEN=y", "PATH=/bin"})
	if len(ds) != 1 || ds[0].Env != "PROXY_LISTN" || ds[0].Hint != "did you mean PROXY_LISTEN?" {
		t.Errorf("unknown variables: %v", ds)
	}
}

func TestSettingsValidate(t *testing.T) {
	t.Parallel()
	if err := DefaultSettings().Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	s := DefaultSettings()
	s.Listen = "nowhere"
	s.MaxBodyBytes = 0
	s.Upstream.Timeout = 0
	s.Upstream.MaxConnsPerHost = -1
	s.UserIDMappings.DefaultUserID = ""
	s.Models = []ModelSettings{{Name: "", APIBase: EchoBase, ExtraHeaders: map[string]string{"Host": "x", "X-Ok": "a\nb"}}}
	err := s.Validate()
	for _, want := range []string{"listen:", "max_body_bytes", "upstream.timeout", "max_conns_per_host", "default_user_id", "models[0].name",
		"header Host cannot be set", "models[0].extra_headers.X-Ok"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate does not report %q: %v", want, err)
		}
	}
}

func TestListenAddr(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"8764": "127.0.0.1:8764", ":8764": ":8764", "0.0.0.0:1": "0.0.0.0:1", "[::1]:80": "[::1]:80"} {
		if got, err := ListenAddr(in); err != nil || got != want {
			t.Errorf("ListenAddr(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "host", "1:99999", "a b:1"} {
		if _, err := ListenAddr(in); err == nil {
			t.Errorf("ListenAddr(%q) accepted", in)
		}
	}
}

// TestSchemaSamples: the proxy's own checks agree with the schema on its
// sample files (schemas/testdata/proxy.*): good ones have no error, bad
// ones at least one.
func TestSchemaSamples(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "..", "schemas", "testdata", "proxy.*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		doc := otelconfig.Parse(file, src, otelconfig.Limits{})
		doc.SubstituteEnv(envLookup(), false)
		ds := append(doc.Diagnostics, ValidateSettingsDocument(doc)...)
		if good := strings.HasSuffix(file, ".good.yaml"); good == ds.HasErrors() {
			t.Errorf("%s: good=%v but:\n%s", filepath.Base(file), good, diagText(ds))
		}
	}
}
