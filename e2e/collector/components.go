package main

import (
	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"
)

// components returns the factories of the (deliberately small) set of
// components compiled into otelcol-e2e: the OTLP receiver, the debug and file
// exporters, and the otelconf-based telemetry factory the service requires.
func components() (otelcol.Factories, error) {
	var (
		factories otelcol.Factories
		err       error
	)

	factories.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](
		otlpreceiver.NewFactory(),
	)
	if err != nil {
		return otelcol.Factories{}, err
	}

	factories.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](
		debugexporter.NewFactory(),
		fileexporter.NewFactory(),
	)
	if err != nil {
		return otelcol.Factories{}, err
	}

	// No processors, extensions or connectors are needed, but empty maps keep
	// the "components" sub-command output well-formed.
	factories.Processors = map[component.Type]processor.Factory{}
	factories.Extensions = map[component.Type]extension.Factory{}
	factories.Connectors = map[component.Type]connector.Factory{}

	// Since the telemetry factory became pluggable, otelcol requires one to be
	// set; otelconftelemetry provides the usual service::telemetry section.
	factories.Telemetry = otelconftelemetry.NewFactory()

	factories.ReceiverModules = map[component.Type]string{
		otlpreceiver.NewFactory().Type(): "go.opentelemetry.io/collector/receiver/otlpreceiver " + collectorVersion,
	}
	factories.ExporterModules = map[component.Type]string{
		debugexporter.NewFactory().Type(): "go.opentelemetry.io/collector/exporter/debugexporter " + collectorVersion,
		fileexporter.NewFactory().Type():  "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter " + collectorVersion,
	}

	return factories, nil
}
