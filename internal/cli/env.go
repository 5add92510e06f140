package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/otelcfg/otelcfg/otelconfig"
)

const envSynopsis = "otelcfg env [--format text|json]"

const envHelp = `
Lists every OTEL_* variable the overlay understands, in the order it is
applied: its family, its current value, and its effect on the loaded
configuration. Secret values (and values of variables whose name suggests
a secret) are shown as [REDACTED].`

// unset is shown for a variable that is not set (or set to "", which the
// overlay treats the same way).
const unset = "(unset)"

type envRow struct {
	Name   string `json:"name"`
	Family string `json:"family"`
	Set    bool   `json:"set"`
	Value  string `json:"value"`
	Secret bool   `json:"secret"`
	Effect string `json:"effect"`
}

func runEnv(_ context.Context, e *env, args []string) int {
	fs := newFlagSet("env")
	format := &enumFlag{value: "text", allowed: []string{"text", "json"}}
	fs.Var(format, "format", "output `format`: text or json")
	rest, code, ok := parseArgs(e, fs, envSynopsis, envHelp, args)
	if !ok {
		return code
	}
	if len(rest) > 0 {
		return usageError(e, "env", "unexpected argument %q\nusage: %s", rest[0], envSynopsis)
	}
	var rows []envRow
	for _, v := range otelconfig.EnvVars() {
		r := envRow{Name: v.Name, Family: v.Family, Effect: v.Effect, Secret: v.Secret || otelconfig.IsSecretName(v.Name), Value: unset}
		if val, set := e.lookup(v.Name); set && val != "" {
			r.Set, r.Value = true, val
			if r.Secret {
				r.Value = otelconfig.Redacted
			}
		}
		rows = append(rows, r)
	}
	if format.value == "json" {
		if err := encodeJSON(e.stdout, map[string][]envRow{"variables": rows}); err != nil {
			return ExitUsage
		}
		return ExitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tFAMILY\tVALUE\tEFFECT")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Family, printable(r.Value), r.Effect)
	}
	if err := tw.Flush(); err != nil {
		return ExitUsage
	}
	return ExitOK
}

// printable keeps a value on one table row and free of terminal escapes.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len([]rune(s)) > 60 {
		s = string([]rune(s)[:60]) + "…"
	}
	return s
}
