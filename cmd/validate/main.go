// Command otelcfg checks and explains OpenTelemetry configuration files:
// validate, print, schema and env. Build it with
//
//	go build -o bin/otelcfg ./cmd/validate
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/otelcfg/otelcfg/internal/cli"
)

func main() {
	tuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// tuneGC lets the heap grow to five times its live size between
// collections (GOGC=400) unless GOGC says otherwise. otelcfg lives for a
// few tens of milliseconds, most of them compiling the embedded JSON
// Schema; at the default the collector ran cycle after cycle over a heap
// that only grew, a third of the CPU time of `otelcfg validate` on the
// official examples (see BENCHMARKS.md). GOMEMLIMIT still applies.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(400)
	}
}
