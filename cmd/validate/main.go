// Command otelcfg checks and explains OpenTelemetry configuration files:
// validate, print, schema and env. Build it with
//
//	go build -o bin/otelcfg ./cmd/validate
package main

import (
	"context"
	"os"
	"runtime/debug"

	"github.com/otelcfg/otelcfg/internal/cli"
)

// main leaves SIGINT and SIGTERM to their default, ending the process:
// otelcfg holds nothing to flush or release. Catching them (as the
// services do) cost a signal-handling goroutine and thread at every start,
// about 0.2 ms of a 10 ms run, and made Ctrl-C do nothing while
// `otelcfg validate -` waited for standard input.
func main() {
	tuneGC()
	os.Exit(cli.Run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// tuneGC lets the heap grow to five times its live size between
// collections (GOGC=400) unless GOGC says otherwise. otelcfg lives for
// about ten milliseconds and its heap only grows: at the default the
// collector ran cycle after cycle, a third of the CPU time of `otelcfg
// validate` on the official examples (see BENCHMARKS.md). With 400 a run
// over a few files collects nothing, and a run over many still reuses
// memory: turning the collector off (with a memory limit) was measured
// slower on 30 files, every allocation then touching fresh pages.
// GOMEMLIMIT still applies.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(400)
	}
}
