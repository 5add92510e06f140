package otelconfig_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/otelcfg/otelcfg/otelconfig"
)

// Start loads otel.yaml (here the built-in example), overlays the OTEL_*
// environment, starts the providers and bridges slog to OpenTelemetry.
func Example() {
	ctx := context.Background()
	tel, err := otelconfig.Start(ctx,
		otelconfig.WithEnviron([]string{"OTEL_SDK_DISABLED=true"}), // in this example: no exporters
		otelconfig.WithServiceName("litellm-proxy"),
		otelconfig.WithConsole(nil),
		otelconfig.WithoutGlobals(),
	)
	if err != nil {
		fmt.Println(err) // every diagnostic, with file:line:col
		return
	}
	defer tel.Shutdown(ctx)

	tel.Logger().InfoContext(ctx, "Received request", slog.String("model", "gpt-4o-mini"))
	fmt.Println(tel.Config().ServiceName, tel.Enabled())
	// Output: litellm-proxy false
}

// Load returns the effective configuration with every diagnostic and the
// origin of every value, without starting anything.
func ExampleLoad() {
	cfg, err := otelconfig.Load(
		otelconfig.WithBytes("otel.yaml", []byte("file_format: \"1.0\"\nlog_level: info\nlog_level: debug\n")),
		otelconfig.WithEnviron(nil),
	)
	if err != nil {
		for _, d := range cfg.Diagnostics {
			fmt.Println(d)
		}
	}
	// Output: otel.yaml:3:1: error: duplicate key "log_level" [duplicate-key] at /log_level
}
