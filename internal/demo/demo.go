// Package demo runs the offline demo: it loads examples/otel.yaml through
// otelconfig exactly as a service does, then emits one span with a log
// record inside it, so the console shows a trace and a log line that carry
// the same trace_id.
package demo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/otelcfg/otelcfg/otelconfig"
)

// Main runs the demo and returns the process exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("otel-config", "examples/otel.yaml", "otel.yaml to load")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	tel, err := otelconfig.Start(ctx, otelconfig.WithFile(*file), otelconfig.WithServiceName("otelcfg-demo"), otelconfig.WithConsole(stdout))
	if err != nil {
		var ce *otelconfig.Error
		if errors.As(err, &ce) {
			_ = otelconfig.FormatText(stderr, ce.Diagnostics, otelconfig.TextOptions{Sources: ce.Sources})
			return 1
		}
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, span := tel.TracerProvider().Tracer("otelcfg-demo").Start(ctx, "demo request")
	slog.InfoContext(ctx, "Received request", "method", "POST", "path", "/v1/chat/completions")
	time.Sleep(5 * time.Millisecond)
	span.End()
	fmt.Fprintf(stdout, "\nservice.name=%s trace_id=%s span_id=%s\n", tel.Config().ServiceName, span.SpanContext().TraceID(), span.SpanContext().SpanID())
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(sctx); err != nil {
		fmt.Fprintln(stderr, "shutdown:", err)
		return 1
	}
	return 0
}
