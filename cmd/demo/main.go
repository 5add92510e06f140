// Command demo is the offline demo: see internal/demo.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/otelcfg/otelcfg/internal/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := demo.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
