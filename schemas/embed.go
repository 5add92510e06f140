// Package schemas embeds the JSON Schemas (draft 2020-12) shipped with
// otelcfg, e.g. otel.schema.json for OpenTelemetry declarative configuration
// files (otel.yaml).
//
// Every file matching *.json in this directory is embedded. Schemas are
// addressed by their base name: "otel" and "otel.schema.json" both refer to
// otel.schema.json.
package schemas

import (
	"embed"
	"io/fs"
	"slices"
	"strings"
)

//go:embed *.json
var files embed.FS

const schemaSuffix = ".schema.json"

// Get returns the raw bytes of the named schema. name may be a base name
// ("otel") or a file name ("otel.schema.json"). The returned slice is a fresh
// copy that the caller may modify. The boolean reports whether the schema
// exists.
func Get(name string) ([]byte, bool) {
	if name == "" || strings.ContainsAny(name, `/\`) {
		return nil, false
	}
	for _, candidate := range []string{name, name + schemaSuffix, name + ".json"} {
		data, err := files.ReadFile(candidate)
		if err == nil {
			return data, true
		}
	}
	return nil, false
}

// Names returns the sorted base names of all embedded schemas, i.e. the file
// names without the ".schema.json" (or plain ".json") suffix.
func Names() []string {
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		names = append(names, baseName(e.Name()))
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// baseName strips the schema file suffix from a file name.
func baseName(file string) string {
	if b, ok := strings.CutSuffix(file, schemaSuffix); ok {
		return b
	}
	return strings.TrimSuffix(file, ".json")
}
