package interceptor

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/otelcfg/otelcfg/internal/svcconf"
	"github.com/otelcfg/otelcfg/otelconfig"
)

// kind says how a setting's value is written and checked.
type kind int

const (
	kindString   kind = iota // free text
	kindHeader               // text sent in an HTTP header
	kindSecret               // a credential: never echoed
	kindPath                 // a file or directory; relative to the settings file, ~ expanded
	kindURL                  // the proxy URL
	kindListen               // host:port, :port or a port number
	kindPort                 // 1-65535
	kindDuration             // a Go duration such as 30s or 5m
	kindBytes                // a byte count >= 1
)

// field is one setting: its key in the settings file, the INTERCEPTOR_*
// variable and the command-line flag that override it. The table drives
// the settings file checks, the environment layer, the flags and the docs,
// so none of them can drift from the others.
type field struct {
	key  string // dotted koanf path, e.g. port_registry.path
	kind kind
	env  string // INTERCEPTOR_* variable
	flag string // command-line flag; "" for none (never for secrets)
	doc  string
}

var fields = []field{
	{key: "listen", kind: kindListen, env: "INTERCEPTOR_LISTEN", flag: "listen",
		doc: "address to listen on: host:port, :port (every interface) or a port (loopback); empty: a stable port for the project from the port registry"},
	{key: "target", kind: kindURL, env: "INTERCEPTOR_TARGET", flag: "target",
		doc: "base URL of the LLM proxy requests are forwarded to"},
	{key: "user_id", kind: kindHeader, env: "INTERCEPTOR_USER_ID", flag: "user-id",
		doc: "memory identity sent as x-memory-user-id; empty: $SUPERMEMORY_USERNAME, else <user_id_prefix>-<project directory name>"},
	{key: "user_id_prefix", kind: kindHeader, env: "INTERCEPTOR_USER_ID_PREFIX", flag: "user-id-prefix",
		doc: "prefix of the directory-derived identity"},
	{key: "api_key", kind: kindSecret, env: "INTERCEPTOR_API_KEY",
		doc: "key sent as Authorization: Bearer on requests that carry no credentials"},
	{key: "project_dir", kind: kindPath, env: "INTERCEPTOR_PROJECT_DIR", flag: "project-dir",
		doc: "project directory: names the derived identity and keys the port registry; empty: the working directory"},
	{key: "otel_config", kind: kindPath, env: "INTERCEPTOR_OTEL_CONFIG", flag: "otel-config",
		doc: "otel.yaml to boot telemetry from; empty: $OTEL_CONFIG_FILE, else built-in console output"},
	{key: "max_body_bytes", kind: kindBytes, env: "INTERCEPTOR_MAX_BODY_BYTES", flag: "max-body-bytes",
		doc: "largest request body in bytes; larger requests get 413 and never reach the proxy"},
	{key: "port_registry.path", kind: kindPath, env: "INTERCEPTOR_PORT_REGISTRY_PATH", flag: "port-registry",
		doc: "port registry file; empty: ~/.config/otelcfg/port_registry.json"},
	{key: "port_registry.min_port", kind: kindPort, env: "INTERCEPTOR_PORT_REGISTRY_MIN_PORT",
		doc: "lowest port the registry hands out"},
	{key: "port_registry.max_port", kind: kindPort, env: "INTERCEPTOR_PORT_REGISTRY_MAX_PORT",
		doc: "highest port the registry hands out"},
	{key: "timeouts.connect", kind: kindDuration, env: "INTERCEPTOR_TIMEOUTS_CONNECT",
		doc: "bound on connecting to the proxy"},
	{key: "timeouts.response_header", kind: kindDuration, env: "INTERCEPTOR_TIMEOUTS_RESPONSE_HEADER",
		doc: "bound on waiting for the proxy's response headers"},
	{key: "timeouts.read_header", kind: kindDuration, env: "INTERCEPTOR_TIMEOUTS_READ_HEADER",
		doc: "bound on reading a client's request headers"},
	{key: "timeouts.read_body", kind: kindDuration, env: "INTERCEPTOR_TIMEOUTS_READ_BODY",
		doc: "bound on reading a client's request body (then 408)"},
	{key: "timeouts.response_idle", kind: kindDuration, env: "INTERCEPTOR_TIMEOUTS_RESPONSE_IDLE",
		doc: "an answer under way is cut when the proxy sends nothing, or the client reads nothing, for this long"},
	{key: "timeouts.response", kind: kindDuration, env: "INTERCEPTOR_TIMEOUTS_RESPONSE",
		doc: "bound on a whole exchange, from the request to the last byte of the answer"},
	{key: "timeouts.idle", kind: kindDuration, env: "INTERCEPTOR_TIMEOUTS_IDLE",
		doc: "idle keep-alive connections are closed after this"},
	{key: "timeouts.shutdown", kind: kindDuration, env: "INTERCEPTOR_TIMEOUTS_SHUTDOWN",
		doc: "bound on draining in-flight requests at shutdown"},
}

// Variables that are not a setting of their own.
const (
	// EnvConfig names the settings file when --config is not given.
	EnvConfig = "INTERCEPTOR_CONFIG"
	// EnvPort is a port number to listen on (loopback); INTERCEPTOR_LISTEN
	// and --listen win over it.
	EnvPort = "INTERCEPTOR_PORT"
	// EnvPortRegistry is a short name for INTERCEPTOR_PORT_REGISTRY_PATH.
	EnvPortRegistry = "INTERCEPTOR_PORT_REGISTRY"
	// EnvUsername is the shared memory identity of the Supermemory tools;
	// the interceptor's own user_id setting wins over it.
	EnvUsername = "SUPERMEMORY_USERNAME"
)

// envAliases map extra variables onto a setting.
var envAliases = map[string]string{
	EnvPort:         "listen",
	EnvPortRegistry: "port_registry.path",
}

// groups are the settings that are mappings.
var groups = []string{"port_registry", "timeouts"}

func fieldByKey(key string) (field, bool) {
	for _, f := range fields {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

func fieldByEnv(name string) (field, bool) {
	if key, ok := envAliases[name]; ok {
		f, _ := fieldByKey(key)
		if name == EnvPort {
			f.kind = kindPort // INTERCEPTOR_PORT is a port number only
		}
		f.env = name
		return f, true
	}
	for _, f := range fields {
		if f.env == name {
			return f, true
		}
	}
	return field{}, false
}

// EnvVar documents one INTERCEPTOR_* (or related) variable.
type EnvVar struct {
	Name string
	// Key is the settings file key it overrides ("" when none).
	Key    string
	Doc    string
	Secret bool
}

// EnvVars lists every environment variable the interceptor reads, for
// documentation and `otelcfg env`-like listings.
func EnvVars() []EnvVar {
	out := []EnvVar{{Name: EnvConfig, Doc: "settings file, when --config is not given"}}
	for _, f := range fields {
		out = append(out, EnvVar{Name: f.env, Key: f.key, Doc: f.doc, Secret: f.kind == kindSecret})
	}
	out = append(out,
		EnvVar{Name: EnvPort, Key: "listen", Doc: "port to listen on (loopback); INTERCEPTOR_LISTEN and --listen win over it"},
		EnvVar{Name: EnvPortRegistry, Key: "port_registry.path", Doc: "short for INTERCEPTOR_PORT_REGISTRY_PATH"},
		EnvVar{Name: EnvUsername, Key: "user_id", Doc: "memory identity when user_id is not set"},
	)
	return out
}

// settingKeys returns every leaf key, dotted.
func settingKeys() []string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return keys
}

// childKeys returns the keys allowed directly under prefix ("" for the top
// level).
func childKeys(prefix string) []string {
	var out []string
	for _, k := range settingKeys() {
		rest := k
		if prefix != "" {
			var ok bool
			if rest, ok = strings.CutPrefix(k, prefix+"."); !ok {
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

// parseValue checks and converts one value given as text (an environment
// variable or a flag). Paths are resolved later.
func parseValue(f field, v string) (any, error) {
	switch f.kind {
	case kindURL:
		if _, err := parseTarget(v); err != nil {
			return nil, err
		}
	case kindListen:
		if _, err := ListenAddr(v); err != nil {
			return nil, err
		}
	case kindPort:
		n, err := svcconf.ParsePort(v, 1)
		if err != nil {
			return nil, err
		}
		if f.key == "listen" {
			return v, nil
		}
		return n, nil
	case kindDuration:
		return svcconf.ParseDuration(v)
	case kindBytes:
		return parseBytes(v)
	case kindHeader, kindSecret:
		if err := checkHeaderValue(v); err != nil {
			if f.kind == kindSecret {
				return nil, fmt.Errorf("the value cannot be sent in an HTTP header")
			}
			return nil, err
		}
	}
	return v, nil
}

func parseBytes(v string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not an integer", v)
	case n < 1 || n > 1<<40:
		return 0, fmt.Errorf("%d is not a byte count from 1 to 2^40", n)
	}
	return n, nil
}

// suggest returns the candidate closest to s when it is close enough to be
// a typo: within a third of its length, and always within 2.
func suggest(s string, candidates []string) string {
	return otelconfig.SuggestWithin(s, candidates, max(2, len(s)/3))
}
