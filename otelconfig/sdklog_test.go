package otelconfig

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otelcfg/otelcfg/examples"
	"github.com/otelcfg/otelcfg/internal/otlptest"
)

// TestDroppedSpansReported: the batch span processor counts the spans it
// drops on a full queue but says so only in a debug line; the console gets
// it as a "dropped spans" warning with the count.
func TestDroppedSpansReported(t *testing.T) {
	rcv := otlptest.NewGRPC(t)
	rcv.SetDelay(time.Hour) // accepts, never answers
	var console syncWriter
	prev := slog.Default()
	defer slog.SetDefault(prev)
	env := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":    rcv.Endpoint(),
		"OTEL_BSP_MAX_QUEUE_SIZE":        "10",
		"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "5",
		"OTEL_BSP_SCHEDULE_DELAY":        "50",
		"OTEL_BSP_EXPORT_TIMEOUT":        "200",
	}
	tel, err := Start(context.Background(), WithBytes("otel.yaml", examples.OtelYAML), WithEnv(mapLookup(env)), WithConsole(&console))
	if err != nil {
		t.Fatal(err)
	}
	tr := tel.TracerProvider().Tracer("test")
	const spans = 2000
	for range spans {
		_, s := tr.Start(context.Background(), "burst")
		s.End()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = tel.Shutdown(ctx)
	lines := regexp.MustCompile(`msg="OpenTelemetry SDK: dropped spans" dropped=(\d+)`).FindAllStringSubmatch(console.String(), -1)
	n := 0
	for _, l := range lines {
		v, _ := strconv.Atoi(l[1])
		n += v
	}
	// At most the queue and one batch get through the stuck exporter.
	if n < spans-20 || n > spans {
		t.Errorf("%d spans reported dropped in %d lines, want about %d:\n%s", n, len(lines), spans, truncate(console.String(), 2000))
	}
}

// TestSDKLogRate: each SDK message reaches the console at most once per
// interval; the ones in between are counted, their dropped counts summed,
// and what is pending is printed by flush, so no count is lost.
func TestSDKLogRate(t *testing.T) {
	var console syncWriter
	sink := newSDKLogSink(NewConsoleHandler(&console, slog.LevelInfo), time.Hour)
	for range 1000 {
		sink.Info(1, "dropped log records", "dropped", uint64(3))
		sink.Error(fmt.Errorf("boom"), "export failed")
		sink.Info(sdkDebug, "exporting spans", "count", 5, "total_dropped", uint32(0))
		sink.Info(4, "chatter")
	}
	for i := range 100 {
		sink.Info(sdkDebug, "exporting spans", "count", 5, "total_dropped", uint32(7*(i+1)))
	}
	if got := strings.Count(console.String(), "\n"); got != 3 {
		t.Fatalf("%d lines before the flush, want 3 (one per message):\n%s", got, console.String())
	}
	sink.lim.flush()
	out := console.String()
	for _, want := range []string{
		`msg="OpenTelemetry SDK: dropped log records" dropped=3` + "\n",
		`msg="OpenTelemetry SDK: dropped log records" dropped=2997 suppressed=998` + "\n",
		`msg="OpenTelemetry SDK: export failed" error=boom` + "\n",
		`msg="OpenTelemetry SDK: export failed" error=boom suppressed=998` + "\n",
		`msg="OpenTelemetry SDK: dropped spans" dropped=7` + "\n",
		`msg="OpenTelemetry SDK: dropped spans" dropped=693 suppressed=98` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "chatter") {
		t.Errorf("SDK info chatter reached the console:\n%s", out)
	}
}
