package cli

import (
	"context"
	"strings"

	"github.com/otelcfg/otelcfg/schemas"
)

const schemaSynopsis = "otelcfg schema [NAME]"

const schemaHelp = `
Prints an embedded JSON Schema (draft 2020-12), "otel" by default, for
editors and other tools. For yaml-language-server, put this line at the top
of otel.yaml instead:

  # yaml-language-server: $schema=<path or URL of otel.schema.json>`

func runSchema(_ context.Context, e *env, args []string) int {
	fs := newFlagSet("schema")
	names, code, ok := parseArgs(e, fs, schemaSynopsis, schemaHelp+"\n\nSchemas: "+strings.Join(schemas.Names(), ", "), args)
	if !ok {
		return code
	}
	name := "otel"
	switch len(names) {
	case 0:
	case 1:
		name = names[0]
	default:
		return usageError(e, "schema", "one NAME at a time\nusage: %s", schemaSynopsis)
	}
	data, found := schemas.Get(name)
	if !found {
		return usageError(e, "schema", "no schema named %q; available: %s", name, strings.Join(schemas.Names(), ", "))
	}
	if _, err := e.stdout.Write(data); err != nil {
		return ExitUsage
	}
	return ExitOK
}
