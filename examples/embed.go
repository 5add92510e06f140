// Package examples holds the documented example configurations. The
// services boot with OtelYAML when no otel.yaml is given, so the documented
// file and the built-in default can never drift apart.
package examples

import _ "embed"

// OtelYAML is examples/otel.yaml: console exporters for every signal.
//
//go:embed otel.yaml
var OtelYAML []byte
