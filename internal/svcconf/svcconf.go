// Package svcconf is the settings machinery the services (the proxy and
// the interceptor) share: the Secret type and the parsing of values given
// as text. Each service keeps its own fields, defaults and checks.
package svcconf

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Redacted is what a Secret prints instead of the credential.
const Redacted = "[REDACTED]"

// Secret is a credential. It prints, logs and marshals as [REDACTED]; only
// Value returns the text.
type Secret string

// Value returns the credential itself.
func (s Secret) Value() string { return string(s) }

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// GoString keeps %#v from printing the credential.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalText keeps encoders (JSON, YAML) from writing the credential.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue keeps slog from writing the credential.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// ParseDuration parses a timeout: a Go duration such as 30s, greater than
// zero.
func ParseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 30s, 5m or 1h30m", v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: a timeout must be positive", v)
	}
	return d, nil
}
