// Package telemetrytest holds the test scaffolding the services' tests
// share: a quiet otel.yaml to start Telemetry from, an in-memory log
// exporter, and for their hop benchmarks the default telemetry against a
// real OTLP receiver, a loopback server answering a completion and the
// load loop.
package telemetrytest

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
)

// QuietOtel is an otel.yaml with every signal on and no exporter: tests add
// in-memory ones through options, and nothing reaches the console.
const QuietOtel = `file_format: "1.0"
tracer_provider:
  processors: []
logger_provider:
  processors: []
meter_provider:
  readers: []
`

// LogExporter keeps every exported log record. The zero value is ready.
type LogExporter struct {
	mu      sync.Mutex
	records []sdklog.Record
}

// Export keeps a copy of the records.
func (e *LogExporter) Export(_ context.Context, rs []sdklog.Record) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range rs {
		e.records = append(e.records, r.Clone())
	}
	return nil
}

// Shutdown does nothing.
func (e *LogExporter) Shutdown(context.Context) error { return nil }

// ForceFlush does nothing.
func (e *LogExporter) ForceFlush(context.Context) error { return nil }

// All returns the records exported so far.
func (e *LogExporter) All() []sdklog.Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]sdklog.Record(nil), e.records...)
}

// ByBody returns the records whose body is msg.
func (e *LogExporter) ByBody(msg string) []sdklog.Record {
	var out []sdklog.Record
	for _, r := range e.All() {
		if r.Body().AsString() == msg {
			out = append(out, r)
		}
	}
	return out
}

// LogAttrs returns a record's attributes as text.
func LogAttrs(r sdklog.Record) map[string]string {
	m := map[string]string{}
	r.WalkAttributes(func(kv attribute.KeyValue) bool {
		m[string(kv.Key)] = kv.Value.Emit()
		return true
	})
	return m
}
