package otlptest

import (
	"bufio"
	"bytes"
	"fmt"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
)

// FromJSONLines returns a Receiver (serving nothing) holding what an
// OpenTelemetry Collector's file exporter wrote in OTLP/JSON, one export
// request per line, so the same accessors (Spans, Logs, Metrics) read a
// real Collector's output. A nil slice is an empty signal.
func FromJSONLines(traces, metrics, logs []byte) (*Receiver, error) {
	r := &Receiver{protocol: "file", done: make(chan struct{}), stop: func() {}, maxItems: DefaultMaxItems}
	err := eachLine(traces, func(line []byte) error {
		var req coltracepb.ExportTraceServiceRequest
		if err := unmarshalJSON(line, &req); err != nil {
			return fmt.Errorf("traces: %w", err)
		}
		r.storeTraces(&req)
		return nil
	})
	if err == nil {
		err = eachLine(metrics, func(line []byte) error {
			var req colmetricspb.ExportMetricsServiceRequest
			if err := unmarshalJSON(line, &req); err != nil {
				return fmt.Errorf("metrics: %w", err)
			}
			r.storeMetrics(&req)
			return nil
		})
	}
	if err == nil {
		err = eachLine(logs, func(line []byte) error {
			var req collogspb.ExportLogsServiceRequest
			if err := unmarshalJSON(line, &req); err != nil {
				return fmt.Errorf("logs: %w", err)
			}
			r.storeLogs(&req)
			return nil
		})
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

func eachLine(b []byte, fn func([]byte) error) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 256<<20)
	for sc.Scan() {
		if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
			if err := fn(line); err != nil {
				return err
			}
		}
	}
	return sc.Err()
}
