package otelconfig

import (
	"strings"
	"testing"
)

func TestLiteralSuffix(t *testing.T) {
	for expr, want := range map[string]string{
		`^/distribution$`:                        "/distribution",
		`/(a|b)~1development$`:                   "~1development",
		`^/readers/\d+/pull$`:                    "/pull",
		`^/x/\w+_configurator~1development$`:     "_configurator~1development",
		`/headers/\d$`:                           "",
		`^/a.b$`:                                 "b",
		`/no/anchor`:                             "",
		`/otlp_http/encoding$`:                   "/otlp_http/encoding",
		`(authorization|auth|api[-_]?key|token)`: "",
	} {
		if got := literalSuffix(expr); got != want {
			t.Errorf("literalSuffix(%q) = %q, want %q", expr, got, want)
		}
	}
	// The filter must never hide a match: every pattern's suffix ends the
	// pointers it matches.
	for _, u := range unsupported {
		if u.suffix == "" || !strings.HasPrefix(u.suffix, "/") && !strings.HasPrefix(u.suffix, "~") && !strings.HasPrefix(u.suffix, "_") {
			t.Errorf("pattern %v: suffix %q", u.pattern(), u.suffix)
		}
	}
}
