// Command otelcol-e2e is a minimal OpenTelemetry Collector distribution used
// by the otelcfg end-to-end tests. It contains only the OTLP receiver and the
// debug and file exporters.
package main

import (
	"log"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/otelcol"
)

// collectorVersion is the upstream collector release this distribution is
// built from; keep it in sync with go.mod.
const collectorVersion = "v0.161.0"

func main() {
	info := component.BuildInfo{
		Command:     "otelcol-e2e",
		Description: "Minimal OpenTelemetry Collector for otelcfg end-to-end tests",
		Version:     collectorVersion,
	}

	settings := otelcol.CollectorSettings{
		BuildInfo: info,
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{
					fileprovider.NewFactory(),
					envprovider.NewFactory(),
				},
				DefaultScheme: "env",
			},
		},
		ProviderModules: map[string]string{
			"file": "go.opentelemetry.io/collector/confmap/provider/fileprovider v1.67.0",
			"env":  "go.opentelemetry.io/collector/confmap/provider/envprovider v1.67.0",
		},
	}

	if err := otelcol.NewCommand(settings).Execute(); err != nil {
		log.Fatalf("otelcol-e2e: %v", err)
	}
}
