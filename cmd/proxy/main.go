// Command proxy is the OpenAI-compatible LLM proxy (litellm-proxy),
// instrumented through otelconfig. See internal/proxy.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/otelcfg/otelcfg/internal/proxy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := proxy.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
