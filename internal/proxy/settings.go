// Package proxy is the OpenAI-compatible LLM proxy (litellm-proxy): a
// gateway that maps public model names to OpenAI-compatible upstreams,
// picks a memory user id per request, relays chat completions (JSON and
// Server-Sent Events, unbuffered) and reports every request as one trace
// with GenAI semantic-convention spans, metrics and correlated logs, all
// configured by otel.yaml through otelconfig.
package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"time"

	"github.com/otelcfg/otelcfg/internal/svcconf"
)

// ServiceName is the proxy's built-in service.name.
const ServiceName = "litellm-proxy"

// EchoBase is the api_base of the built-in offline upstream: a
// deterministic completion that echoes the last user message.
const EchoBase = "builtin:echo"

// HeaderUpstreamUserID carries the chosen memory user id upstream.
const HeaderUpstreamUserID = "X-Sm-User-Id"

// Secret is a credential. It prints, logs and marshals as [REDACTED]; only
// Value returns the text.
type Secret = svcconf.Secret

// Settings configure the proxy. The koanf tags are the keys of the
// settings file (examples/proxy.yaml, schemas/proxy.schema.json).
type Settings struct {
	// Listen is host:port, :port (every interface) or a bare port
	// (loopback).
	Listen string `koanf:"listen"`
	// MasterKey, when set, is required as "Authorization: Bearer <key>" on
	// every /v1/* request.
	MasterKey Secret `koanf:"master_key"`
	// OtelConfig is the otel.yaml to boot telemetry from; empty means
	// OTEL_CONFIG_FILE, else the built-in console configuration.
	OtelConfig string `koanf:"otel_config"`
	// LogBodies adds prompts and completions, truncated to LogBodyLimit
	// bytes, to the log records. Off by default: they are user data.
	LogBodies bool `koanf:"log_bodies"`
	// MaxBodyBytes bounds a request body; larger requests get 413.
	MaxBodyBytes int64 `koanf:"max_body_bytes"`
	// Models maps public model names to upstreams, in listing order.
	Models []ModelSettings `koanf:"models"`
	// UserIDMappings pick the memory user id of each request.
	UserIDMappings UserIDMappings `koanf:"user_id_mappings"`
	// Upstream bounds the calls to upstreams.
	Upstream UpstreamSettings `koanf:"upstream"`
	// Server bounds the proxy's own HTTP server.
	Server ServerSettings `koanf:"server"`
}

// ModelSettings is one entry of the model table.
type ModelSettings struct {
	// Name is the public model name clients send.
	Name string `koanf:"name"`
	// APIBase is the OpenAI-compatible base URL (…/v1), or EchoBase.
	APIBase string `koanf:"api_base"`
	// Model is the upstream's model id; empty means Name.
	Model string `koanf:"model"`
	// APIKey is sent upstream as "Authorization: Bearer <key>".
	APIKey Secret `koanf:"api_key"`
	// ExtraHeaders are added to every upstream request of this model.
	ExtraHeaders map[string]string `koanf:"extra_headers"`
	// Timeout overrides Upstream.Timeout for this model; 0 means the
	// default.
	Timeout time.Duration `koanf:"timeout"`
}

// UpstreamModel returns the model id sent upstream.
func (m ModelSettings) UpstreamModel() string {
	if m.Model != "" {
		return m.Model
	}
	return m.Name
}

// UserIDMappings choose the memory user id: the custom header when the
// client sends it, else the first matching header pattern, else the
// default.
type UserIDMappings struct {
	CustomHeader   string          `koanf:"custom_header"`
	HeaderPatterns []HeaderPattern `koanf:"header_patterns"`
	DefaultUserID  string          `koanf:"default_user_id"`
}

// HeaderPattern maps requests whose header matches Pattern (a
// case-insensitive RE2 search) to UserID.
type HeaderPattern struct {
	Header  string `koanf:"header" json:"header"`
	Pattern string `koanf:"pattern" json:"pattern"`
	UserID  string `koanf:"user_id" json:"user_id"`
}

// UpstreamSettings bound upstream calls and size the connection pool.
type UpstreamSettings struct {
	// Timeout bounds a non-streamed completion, and the wait for a
	// streamed one to start (its first event); on expiry the client gets
	// 504. A stream that has started is not cut by it.
	Timeout time.Duration `koanf:"timeout"`
	// StreamIdleTimeout cuts a started stream when the upstream sends
	// nothing for this long (or the client reads nothing for this long);
	// the client gets an error event.
	StreamIdleTimeout time.Duration `koanf:"stream_idle_timeout"`
	// StreamTimeout bounds a streamed completion in all, from the request
	// to its last event: a stream that would go on forever ends with an
	// error event.
	StreamTimeout time.Duration `koanf:"stream_timeout"`
	// ConnectTimeout bounds dialling an upstream and the TLS handshake.
	ConnectTimeout      time.Duration `koanf:"connect_timeout"`
	MaxIdleConns        int           `koanf:"max_idle_conns"`
	MaxIdleConnsPerHost int           `koanf:"max_idle_conns_per_host"`
	// MaxConnsPerHost bounds connections to one upstream host; 0 means
	// no limit.
	MaxConnsPerHost int           `koanf:"max_conns_per_host"`
	IdleConnTimeout time.Duration `koanf:"idle_conn_timeout"`
}

// ServerSettings bound the proxy's HTTP server.
type ServerSettings struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration `koanf:"read_header_timeout"`
	// ReadTimeout bounds reading a request's body.
	ReadTimeout time.Duration `koanf:"read_timeout"`
	// IdleTimeout closes idle keep-alive connections.
	IdleTimeout time.Duration `koanf:"idle_timeout"`
	// ShutdownTimeout bounds draining in-flight requests, then flushing
	// telemetry, on SIGINT/SIGTERM.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
}

// Defaults.
const (
	DefaultListen        = "127.0.0.1:8764"
	DefaultCustomHeader  = "x-memory-user-id"
	DefaultUserID        = "default-dev"
	DefaultMaxBodyBytes  = 10 << 20
	LogBodyLimit         = 4 << 10
	maxResponseBytes     = 32 << 20 // a non-streamed completion larger than this is refused (502)
	maxClientUserIDBytes = 256
)

// MaxHeaderBytes bounds a request's header block (request line included;
// net/http allows 4 KiB more): larger headers get 431 before any handler
// runs. An OpenAI request needs a few hundred bytes; 64 KiB leaves room
// for long cookies and trace baggage without letting a client make the
// server hold a megabyte per connection.
const MaxHeaderBytes = 64 << 10

// DefaultHeaderPatterns recognise the usual clients by User-Agent.
var DefaultHeaderPatterns = []HeaderPattern{
	{Header: "user-agent", Pattern: "^Claude Code", UserID: "claude-code-cli"},
	{Header: "user-agent", Pattern: "^OpenAIClientImpl/Java", UserID: "pycharm-ai"},
	{Header: "user-agent", Pattern: "^anthropic-sdk-python", UserID: "anthropic-python"},
}

// DefaultUpstream and DefaultServer are the limits used when none are
// configured.
var (
	DefaultUpstream = UpstreamSettings{
		Timeout:             10 * time.Minute,
		StreamIdleTimeout:   5 * time.Minute,
		StreamTimeout:       time.Hour,
		ConnectTimeout:      10 * time.Second,
		MaxIdleConns:        100,
		MaxIdleConnsPerHost: 32,
		MaxConnsPerHost:     0,
		IdleConnTimeout:     90 * time.Second,
	}
	DefaultServer = ServerSettings{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ShutdownTimeout:   30 * time.Second,
	}
)

// DefaultSettings returns the built-in settings, the lowest layer. It has
// no models: a settings file names them.
func DefaultSettings() Settings {
	return Settings{
		Listen:       DefaultListen,
		MaxBodyBytes: DefaultMaxBodyBytes,
		UserIDMappings: UserIDMappings{
			CustomHeader:   DefaultCustomHeader,
			HeaderPatterns: append([]HeaderPattern(nil), DefaultHeaderPatterns...),
			DefaultUserID:  DefaultUserID,
		},
		Upstream: DefaultUpstream,
		Server:   DefaultServer,
	}
}

// Validate checks settings built in code; LoadSettings reports the same
// problems as positioned diagnostics.
func (s Settings) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, err := ListenAddr(s.Listen); err != nil {
		add("listen: %v", err)
	}
	if err := checkHeaderValue(s.MasterKey.Value()); err != nil {
		add("master_key: the value cannot be sent in an HTTP header")
	}
	if s.MaxBodyBytes < 1 {
		add("max_body_bytes: must be at least 1, got %d", s.MaxBodyBytes)
	}
	seen := map[string]bool{}
	for i, m := range s.Models {
		p := fmt.Sprintf("models[%d]", i)
		if err := checkModelName(m.Name); err != nil {
			add("%s.name: %v", p, err)
		} else if seen[m.Name] {
			add("%s.name: model %q is defined twice", p, m.Name)
		}
		seen[m.Name] = true
		if _, err := parseAPIBase(m.APIBase); err != nil {
			add("%s.api_base: %v", p, err)
		}
		if err := checkHeaderValue(m.APIKey.Value()); err != nil {
			add("%s.api_key: the value cannot be sent in an HTTP header", p)
		}
		for k, v := range m.ExtraHeaders {
			if err := checkExtraHeader(k); err != nil {
				add("%s.extra_headers: %v", p, err)
			}
			if err := checkHeaderValue(v); err != nil {
				add("%s.extra_headers.%s: %v", p, k, err)
			}
		}
		if m.Timeout < 0 {
			add("%s.timeout: must not be negative", p)
		}
	}
	u := s.UserIDMappings
	if err := checkHeaderName(u.CustomHeader); err != nil {
		add("user_id_mappings.custom_header: %v", err)
	}
	if err := checkUserID(u.DefaultUserID); err != nil {
		add("user_id_mappings.default_user_id: %v", err)
	}
	for i, hp := range u.HeaderPatterns {
		p := fmt.Sprintf("user_id_mappings.header_patterns[%d]", i)
		if err := checkHeaderName(hp.Header); err != nil {
			add("%s.header: %v", p, err)
		}
		if _, err := compilePattern(hp.Pattern); err != nil {
			add("%s.pattern: %v", p, err)
		}
		if err := checkUserID(hp.UserID); err != nil {
			add("%s.user_id: %v", p, err)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"upstream.timeout", s.Upstream.Timeout}, {"upstream.connect_timeout", s.Upstream.ConnectTimeout},
		{"upstream.stream_idle_timeout", s.Upstream.StreamIdleTimeout}, {"upstream.stream_timeout", s.Upstream.StreamTimeout},
		{"upstream.idle_conn_timeout", s.Upstream.IdleConnTimeout},
		{"server.read_header_timeout", s.Server.ReadHeaderTimeout}, {"server.read_timeout", s.Server.ReadTimeout},
		{"server.idle_timeout", s.Server.IdleTimeout}, {"server.shutdown_timeout", s.Server.ShutdownTimeout},
	} {
		if d.v <= 0 {
			add("%s: must be positive, got %s", d.name, d.v)
		}
	}
	for _, c := range []struct {
		name string
		v    int
	}{
		{"upstream.max_idle_conns", s.Upstream.MaxIdleConns}, {"upstream.max_idle_conns_per_host", s.Upstream.MaxIdleConnsPerHost},
		{"upstream.max_conns_per_host", s.Upstream.MaxConnsPerHost},
	} {
		if c.v < 0 {
			add("%s: must not be negative, got %d", c.name, c.v)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("proxy: invalid settings: %w", errors.Join(errs...))
	}
	return nil
}

// ListenAddr turns a listen setting into host:port for net.Listen; a bare
// port means loopback.
func ListenAddr(s string) (string, error) { return svcconf.ListenAddr(s) }

// parseAPIBase checks an upstream base URL: builtin:echo, or absolute
// http(s) with a host and without credentials (they belong in api_key,
// which never reaches telemetry) or a fragment.
func parseAPIBase(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == EchoBase {
		return nil, nil
	}
	if s == "" {
		return nil, fmt.Errorf("empty URL")
	}
	u, err := url.Parse(s)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		return nil, fmt.Errorf("not a URL: %v", err)
	}
	switch {
	case u.Scheme == "builtin":
		return nil, fmt.Errorf("unknown built-in upstream %q (the only one is %s)", s, EchoBase)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("the scheme must be http or https (or the api_base %s)", EchoBase)
	case u.Host == "":
		return nil, fmt.Errorf("no host")
	case u.User != nil:
		return nil, fmt.Errorf("credentials in the URL would reach logs and spans; put the key in api_key")
	case u.Fragment != "":
		return nil, fmt.Errorf("a fragment cannot be part of the api_base")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port %q is not a number from 1 to 65535", p)
		}
	}
	return u, nil
}

func checkModelName(s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("empty model name")
	}
	return checkHeaderValue(s)
}

func checkUserID(s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("empty user id")
	}
	return checkHeaderValue(s)
}

// compilePattern compiles a header pattern: a case-insensitive RE2 search.
func compilePattern(p string) (*regexp.Regexp, error) {
	if p == "" {
		return nil, fmt.Errorf("empty pattern")
	}
	re, err := regexp.Compile("(?i)" + p)
	if err != nil {
		msg := err.Error()
		var se *syntax.Error
		if errors.As(err, &se) {
			msg = fmt.Sprintf("%s: `%s`", se.Code, strings.TrimPrefix(se.Expr, "(?i)"))
		}
		return nil, fmt.Errorf("invalid regular expression: %s", msg)
	}
	return re, nil
}

// checkHeaderName accepts an HTTP header field name (an RFC 9110 token).
func checkHeaderName(s string) error {
	if s == "" {
		return fmt.Errorf("empty header name")
	}
	for _, r := range s {
		if r > 0x7e || !isTokenChar(byte(r)) {
			return fmt.Errorf("%q is not a valid header name", s)
		}
	}
	return nil
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// reservedHeaders are set by the proxy or the HTTP stack; an extra header
// cannot replace them.
var reservedHeaders = map[string]string{
	"Authorization":      "set api_key instead",
	"Content-Length":     "the proxy computes it",
	"Content-Type":       "the proxy sends application/json",
	"Host":               "it comes from api_base",
	"Transfer-Encoding":  "the HTTP stack sets it",
	"Connection":         "the HTTP stack sets it",
	"Traceparent":        "the proxy's upstream span sets it",
	"Tracestate":         "the proxy's upstream span sets it",
	HeaderUpstreamUserID: "the proxy sets it from user_id_mappings",
}

func checkExtraHeader(name string) error {
	if err := checkHeaderName(name); err != nil {
		return err
	}
	if why, ok := reservedHeaders[http.CanonicalHeaderKey(name)]; ok {
		return fmt.Errorf("header %s cannot be set by extra_headers: %s", name, why)
	}
	return nil
}

// checkHeaderValue refuses what cannot travel in an HTTP header value.
func checkHeaderValue(v string) error {
	for i, r := range v {
		if r == '\t' {
			continue
		}
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("control character %U at offset %d cannot be sent in an HTTP header", r, i)
		}
	}
	return nil
}
