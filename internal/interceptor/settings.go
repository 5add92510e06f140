// Package interceptor is the client interceptor: a local forwarder that
// editors and CLI tools point at instead of the LLM proxy. It stamps every
// request with the user's memory identity (x-memory-user-id), fills the
// "authentication gap" of tools that cannot send a key, and forwards
// everything, streamed, to the proxy, with OpenTelemetry traces and logs
// from otel.yaml so that one client request is one trace across both
// services.
package interceptor

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/otelcfg/otelcfg/internal/interceptor/portreg"
	"github.com/otelcfg/otelcfg/internal/svcconf"
)

// ServiceName is the interceptor's built-in service.name.
const ServiceName = "litellm-interceptor"

// Headers the interceptor sets on forwarded requests.
const (
	// HeaderUserID carries the memory identity. A value the client sent
	// itself is kept.
	HeaderUserID = "X-Memory-User-Id"
	// HeaderSource names the interceptor as the request's source.
	HeaderSource = "X-Source"
	// SourceValue is the value of HeaderSource.
	SourceValue = "litellm-interceptor"
)

// Secret is a credential. It prints, logs and marshals as [REDACTED]; only
// Value returns the text.
type Secret = svcconf.Secret

const redacted = svcconf.Redacted

// Settings configure the interceptor. Field tags name the keys of the
// settings file (see examples/interceptor.yaml and
// schemas/interceptor.schema.json).
type Settings struct {
	// Listen is the address to listen on: "host:port", ":port" (every
	// interface) or a bare port (loopback). Empty means a stable port for
	// ProjectDir from the port registry.
	Listen string `koanf:"listen"`
	// Target is the base URL of the proxy requests are forwarded to.
	Target string `koanf:"target"`
	// UserID is the memory identity. Empty means SUPERMEMORY_USERNAME, else
	// UserIDPrefix-<name of ProjectDir>.
	UserID string `koanf:"user_id"`
	// UserIDPrefix starts the directory-derived identity.
	UserIDPrefix string `koanf:"user_id_prefix"`
	// APIKey, when set, is sent as "Authorization: Bearer <key>" on requests
	// that carry no credentials of their own.
	APIKey Secret `koanf:"api_key"`
	// ProjectDir is the project the interceptor serves: it names the derived
	// identity and keys the port registry. Empty means the working
	// directory.
	ProjectDir string `koanf:"project_dir"`
	// OtelConfig is the otel.yaml to boot telemetry from. Empty means
	// OTEL_CONFIG_FILE, else the built-in console configuration.
	OtelConfig string `koanf:"otel_config"`
	// MaxBodyBytes bounds a request body: a larger one gets 413 without
	// reaching the proxy (one sent chunked is cut at the limit).
	MaxBodyBytes int64 `koanf:"max_body_bytes"`
	// PortRegistry is where stable per-directory ports are kept.
	PortRegistry PortRegistrySettings `koanf:"port_registry"`
	// Timeouts bound every wait of the interceptor.
	Timeouts Timeouts `koanf:"timeouts"`
}

// PortRegistrySettings locate the port registry and bound its ports.
type PortRegistrySettings struct {
	// Path of the registry file; empty means portreg.DefaultPath().
	Path    string `koanf:"path"`
	MinPort int    `koanf:"min_port"`
	MaxPort int    `koanf:"max_port"`
}

// Timeouts are the interceptor's time limits. Once the proxy has answered,
// only ResponseIdle and Response bound the answer: a stream that keeps
// coming within both is never cut.
type Timeouts struct {
	// Connect bounds dialling the proxy (and the TLS handshake).
	Connect time.Duration `koanf:"connect"`
	// ResponseHeader bounds the wait for the proxy's response headers
	// after the request is sent; a non-streaming completion only answers
	// when it is complete, so this is generous.
	ResponseHeader time.Duration `koanf:"response_header"`
	// ReadHeader bounds reading a client's request headers.
	ReadHeader time.Duration `koanf:"read_header"`
	// ReadBody bounds reading a client's request body; a client that
	// stalls in it gets 408.
	ReadBody time.Duration `koanf:"read_body"`
	// ResponseIdle cuts an answer under way when the proxy sends nothing
	// (or the client reads nothing) for this long. A backstop: the proxy
	// bounds its streams itself, more tightly.
	ResponseIdle time.Duration `koanf:"response_idle"`
	// Response bounds a whole exchange, from the request to the last byte
	// of the answer. A backstop above the proxy's own stream_timeout.
	Response time.Duration `koanf:"response"`
	// Idle closes idle keep-alive connections, client and proxy side.
	Idle time.Duration `koanf:"idle"`
	// Shutdown bounds draining in-flight requests on SIGINT/SIGTERM;
	// requests still running then are cut.
	Shutdown time.Duration `koanf:"shutdown"`
}

// DefaultTarget is the proxy's default address.
const DefaultTarget = "http://127.0.0.1:8764"

// DefaultMaxBodyBytes is the default max_body_bytes, the proxy's own
// default: a larger body would only be refused there.
const DefaultMaxBodyBytes = 10 << 20

// MaxHeaderBytes bounds a request's header block (net/http allows 4 KiB
// more): larger headers get 431. An editor's request needs a few hundred
// bytes; 64 KiB leaves room without letting a client make the interceptor
// hold a megabyte per connection. It is the proxy's limit too, and the
// headers the interceptor adds fit in net/http's 4 KiB of slack.
const MaxHeaderBytes = 64 << 10

// DefaultUserIDPrefix starts directory-derived identities, as the original
// PyCharm integration did.
const DefaultUserIDPrefix = "pycharm"

// DefaultTimeouts are the timeouts used when none are configured.
var DefaultTimeouts = Timeouts{
	Connect:        10 * time.Second,
	ResponseHeader: 10 * time.Minute,
	ReadHeader:     10 * time.Second,
	ReadBody:       60 * time.Second,
	ResponseIdle:   10 * time.Minute,
	Response:       90 * time.Minute,
	Idle:           2 * time.Minute,
	Shutdown:       15 * time.Second,
}

// DefaultSettings returns the built-in settings, the lowest layer.
func DefaultSettings() Settings {
	return Settings{
		Target:       DefaultTarget,
		UserIDPrefix: DefaultUserIDPrefix,
		MaxBodyBytes: DefaultMaxBodyBytes,
		PortRegistry: PortRegistrySettings{MinPort: portreg.DefaultMinPort, MaxPort: portreg.DefaultMaxPort},
		Timeouts:     DefaultTimeouts,
	}
}

// Validate checks settings built in code (LoadSettings reports the same
// problems as diagnostics, with positions).
func (s Settings) Validate() error {
	var errs []string
	if _, err := parseTarget(s.Target); err != nil {
		errs = append(errs, "target: "+err.Error())
	}
	if s.Listen != "" {
		if _, err := ListenAddr(s.Listen); err != nil {
			errs = append(errs, "listen: "+err.Error())
		}
	}
	for k, v := range map[string]string{"user_id": s.UserID, "user_id_prefix": s.UserIDPrefix, "api_key": s.APIKey.Value()} {
		if err := checkHeaderValue(v); err != nil {
			errs = append(errs, k+": "+err.Error())
		}
	}
	if s.MaxBodyBytes < 1 {
		errs = append(errs, fmt.Sprintf("max_body_bytes: must be at least 1, got %d", s.MaxBodyBytes))
	}
	if err := checkPortRange(s.PortRegistry.MinPort, s.PortRegistry.MaxPort); err != nil {
		errs = append(errs, "port_registry: "+err.Error())
	}
	for _, t := range []struct {
		name string
		d    time.Duration
	}{
		{"connect", s.Timeouts.Connect}, {"response_header", s.Timeouts.ResponseHeader},
		{"read_header", s.Timeouts.ReadHeader}, {"read_body", s.Timeouts.ReadBody},
		{"response_idle", s.Timeouts.ResponseIdle}, {"response", s.Timeouts.Response},
		{"idle", s.Timeouts.Idle}, {"shutdown", s.Timeouts.Shutdown},
	} {
		if t.d <= 0 {
			errs = append(errs, fmt.Sprintf("timeouts.%s: must be positive, got %s", t.name, t.d))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("interceptor: invalid settings: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Registry returns the port registry the settings describe.
func (s Settings) Registry() (*portreg.Registry, error) {
	p := s.PortRegistry.Path
	if p == "" {
		var err error
		if p, err = portreg.DefaultPath(); err != nil {
			return nil, err
		}
	}
	return &portreg.Registry{Path: p, MinPort: s.PortRegistry.MinPort, MaxPort: s.PortRegistry.MaxPort}, nil
}

// ListenAddr turns a listen setting into a host:port for net.Listen: a
// bare port means loopback, because the interceptor injects credentials
// and must not be reachable from the network by accident.
func ListenAddr(s string) (string, error) { return svcconf.ListenAddr(s) }

func checkPortRange(lo, hi int) error {
	switch {
	case lo < 1 || lo > 65535:
		return fmt.Errorf("min_port %d is not from 1 to 65535", lo)
	case hi < 1 || hi > 65535:
		return fmt.Errorf("max_port %d is not from 1 to 65535", hi)
	case lo > hi:
		return fmt.Errorf("min_port %d is above max_port %d", lo, hi)
	}
	return nil
}

// parseTarget checks the proxy URL: absolute http(s), with a host, and
// nothing the forwarder could not honour (query, fragment).
func parseTarget(s string) (*url.URL, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty URL")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("not a URL: %v", unwrapURLError(err))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%s: the scheme must be http or https", redactURL(u))
	case u.Host == "":
		return nil, fmt.Errorf("%s: no host", redactURL(u))
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("%s: a query string cannot be part of the target (each request's own query is forwarded)", redactURL(u))
	case u.Fragment != "":
		return nil, fmt.Errorf("%s: a fragment cannot be part of the target", redactURL(u))
	}
	if _, err := svcconf.ParsePort(u.Port(), 1); u.Port() != "" && err != nil {
		return nil, fmt.Errorf("%s: %v", redactURL(u), err)
	}
	return u, nil
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// redactURL prints a URL without its password.
func redactURL(u *url.URL) string { return u.Redacted() }

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
