package otelconfig

import (
	"regexp"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Redacted replaces every secret value in printed configuration.
const Redacted = "[REDACTED]"

// secretPointer matches the places of a configuration that hold secrets
// whatever their name: exporter header values and header lists.
var secretPointer = regexp.MustCompile(`(/headers/\d+/value|/headers_list)$`)

// IsSecret reports whether the value n at pointer must never be printed:
// exporter header values and headers_list, any key whose name suggests a
// secret, and any value substituted from a variable whose name does (or
// set by one, like OTEL_EXPORTER_OTLP_HEADERS).
func (d *Document) IsSecret(pointer string, n *yaml.Node) bool {
	if secretPointer.MatchString(pointer) {
		return true
	}
	if i := lastSlash(pointer); i >= 0 && IsSecretName(pointer[i+1:]) && n != nil && n.Kind == yaml.ScalarNode {
		return true
	}
	// A header's name is not secret even when the variable that set it
	// (OTEL_EXPORTER_OTLP_HEADERS) is: only its value is.
	if n != nil && !strings.HasSuffix(pointer, "/name") {
		o := d.OriginOf(n)
		for _, v := range o.Vars {
			if IsSecretName(v) || envSecret[v] {
				return true
			}
		}
	}
	return false
}

// secretPath reports whether the value at a JSON pointer is secret by its
// place or its name, whatever it holds.
func secretPath(pointer string) bool {
	if pointer == "" {
		return false
	}
	return secretPointer.MatchString(pointer) || IsSecretName(pointer[lastSlash(pointer)+1:])
}

func lastSlash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}

// envSecret marks the overlay variables whose values are secret.
var envSecret = func() map[string]bool {
	m := map[string]bool{}
	for _, v := range envTable {
		if v.Secret {
			m[v.Name] = true
		}
	}
	return m
}()
