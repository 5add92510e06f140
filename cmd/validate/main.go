// Command otelcfg checks and explains OpenTelemetry configuration files:
// validate, print, schema and env. Build it with
//
//	go build -o bin/otelcfg ./cmd/validate
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/otelcfg/otelcfg/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
