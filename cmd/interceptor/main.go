// Command interceptor is the client interceptor: a local forwarder that
// stamps requests with the user's memory identity and streams them to the
// LLM proxy. See internal/interceptor.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/otelcfg/otelcfg/internal/interceptor"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := interceptor.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
