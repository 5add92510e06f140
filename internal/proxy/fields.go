package proxy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/otelcfg/otelcfg/internal/svcconf"
	"github.com/otelcfg/otelcfg/otelconfig"
)

// kind says how a scalar setting is written and checked.
type kind int

const (
	kindListen      kind = iota // host:port, :port or a port number
	kindSecret                  // a credential: never echoed
	kindPath                    // a file; relative to the settings file
	kindBool                    // true or false
	kindBytes                   // a byte count >= 1
	kindCount                   // an integer >= 0
	kindDuration                // a Go duration > 0, such as 30s or 5m
	kindHeaderName              // an HTTP header name
	kindHeaderValue             // non-empty text sent in an HTTP header
)

// field is one scalar setting: its key in the settings file (dotted for
// groups), the PROXY_* variable and the flag that override it. The table
// drives the settings file checks, the environment layer, the flags and
// EnvVars, so none of them can drift from the others. The lists (models,
// user_id_mappings.header_patterns) only come from the settings file.
type field struct {
	key  string
	kind kind
	flag string // "" for none (never for secrets: a flag shows in ps)
	doc  string
}

var fields = []field{
	{key: "listen", kind: kindListen, flag: "listen",
		doc: "address to listen on: host:port, :port (every interface) or a port (loopback)"},
	{key: "master_key", kind: kindSecret,
		doc: "when set, /v1/* requires Authorization: Bearer <master_key>"},
	{key: "otel_config", kind: kindPath, flag: "otel-config",
		doc: "otel.yaml to boot telemetry from; empty: $OTEL_CONFIG_FILE, else built-in console output"},
	{key: "log_bodies", kind: kindBool, flag: "log-bodies",
		doc: "log prompts and completions (truncated); off by default"},
	{key: "max_body_bytes", kind: kindBytes, flag: "max-body-bytes",
		doc: "largest accepted request body in bytes; larger requests get 413"},
	{key: "user_id_mappings.custom_header", kind: kindHeaderName,
		doc: "request header whose value is the memory user id when present"},
	{key: "user_id_mappings.default_user_id", kind: kindHeaderValue, flag: "default-user-id",
		doc: "memory user id when neither the custom header nor a pattern applies"},
	{key: "upstream.timeout", kind: kindDuration, flag: "upstream-timeout",
		doc: "bound on a non-streamed completion and on the start of a stream (then 504); per model: timeout"},
	{key: "upstream.stream_idle_timeout", kind: kindDuration,
		doc: "a started stream is cut when the upstream sends nothing (or the client reads nothing) for this long"},
	{key: "upstream.stream_timeout", kind: kindDuration,
		doc: "bound on a whole streamed completion, from the request to its last event"},
	{key: "upstream.connect_timeout", kind: kindDuration,
		doc: "bound on connecting to an upstream, TLS included"},
	{key: "upstream.max_idle_conns", kind: kindCount,
		doc: "idle upstream connections kept, all hosts together"},
	{key: "upstream.max_idle_conns_per_host", kind: kindCount,
		doc: "idle upstream connections kept per host"},
	{key: "upstream.max_conns_per_host", kind: kindCount,
		doc: "upstream connections per host, busy or idle; 0: no limit"},
	{key: "upstream.idle_conn_timeout", kind: kindDuration,
		doc: "idle upstream connections are closed after this"},
	{key: "server.read_header_timeout", kind: kindDuration,
		doc: "bound on reading a request's headers"},
	{key: "server.read_timeout", kind: kindDuration,
		doc: "bound on reading a request's body"},
	{key: "server.idle_timeout", kind: kindDuration,
		doc: "idle client connections are closed after this"},
	{key: "server.shutdown_timeout", kind: kindDuration, flag: "shutdown-timeout",
		doc: "bound on draining in-flight requests at shutdown"},
}

// EnvConfig names the settings file when --config is not given.
const EnvConfig = "PROXY_CONFIG"

// envPrefix starts every variable the proxy reads.
const envPrefix = "PROXY_"

// envName is the variable of a setting: PROXY_ and the key in upper case,
// dots as underscores (upstream.timeout → PROXY_UPSTREAM_TIMEOUT).
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func fieldByKey(key string) (field, bool) {
	for _, f := range fields {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

// groups are the settings that are mappings.
var groups = []string{"user_id_mappings", "upstream", "server"}

// EnvVar documents one PROXY_* variable.
type EnvVar struct {
	Name string
	// Key is the settings file key it overrides ("" when none).
	Key    string
	Doc    string
	Secret bool
}

// EnvVars lists every environment variable the proxy reads itself (besides
// ${VAR} references in its settings file and the OTEL_* variables of
// otel.yaml).
func EnvVars() []EnvVar {
	out := []EnvVar{{Name: EnvConfig, Doc: "settings file, when --config is not given"}}
	for _, f := range fields {
		out = append(out, EnvVar{Name: envName(f.key), Key: f.key, Doc: f.doc, Secret: f.kind == kindSecret})
	}
	return out
}

// Flag documents one command-line flag that overrides a setting.
type Flag struct {
	Name string
	Key  string
	Doc  string
	Bool bool
}

// Flags lists the command-line flags that override settings (besides
// --config).
func Flags() []Flag {
	var out []Flag
	for _, f := range fields {
		if f.flag != "" {
			out = append(out, Flag{Name: f.flag, Key: f.key, Doc: f.doc, Bool: f.kind == kindBool})
		}
	}
	return out
}

// childKeys returns the scalar keys and groups allowed directly under
// prefix ("" for the top level), lists excluded.
func childKeys(prefix string) []string {
	var out []string
	for _, f := range fields {
		rest := f.key
		if prefix != "" {
			var ok bool
			if rest, ok = strings.CutPrefix(f.key, prefix+"."); !ok {
				continue
			}
		}
		head, _, _ := strings.Cut(rest, ".")
		if !slices.Contains(out, head) {
			out = append(out, head)
		}
	}
	return out
}

// parseValue checks and converts a value given as text (an environment
// variable or a flag) to what koanf stores for the setting.
func parseValue(f field, v string) (any, error) {
	v = strings.TrimSpace(v)
	switch f.kind {
	case kindListen:
		if _, err := ListenAddr(v); err != nil {
			return nil, err
		}
	case kindBool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", v)
		}
		return b, nil
	case kindBytes, kindCount:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", v)
		}
		if err := checkInt(f, n); err != nil {
			return nil, err
		}
		if f.kind == kindCount {
			return int(n), nil
		}
		return n, nil
	case kindDuration:
		return svcconf.ParseDuration(v)
	case kindHeaderName:
		if err := checkHeaderName(v); err != nil {
			return nil, err
		}
	case kindHeaderValue:
		if err := checkUserID(v); err != nil {
			return nil, err
		}
	case kindSecret:
		if err := checkHeaderValue(v); err != nil {
			return nil, fmt.Errorf("the value cannot be sent in an HTTP header")
		}
		return Secret(v), nil
	}
	return v, nil
}

func checkInt(f field, n int64) error {
	switch {
	case f.kind == kindBytes && n < 1:
		return fmt.Errorf("%d: must be at least 1", n)
	case f.kind == kindCount && n < 0:
		return fmt.Errorf("%d: must not be negative", n)
	case n > 1<<40:
		return fmt.Errorf("%d is out of range", n)
	}
	return nil
}

// suggest returns the candidate closest to s when it is close enough to be
// a typo: within a third of its length, and always within 2.
func suggest(s string, candidates []string) string {
	return otelconfig.SuggestWithin(s, candidates, max(2, len(s)/3))
}
