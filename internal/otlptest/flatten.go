package otlptest

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"maps"
	"strconv"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Attribute values in the flattened types are the string form of the OTLP
// AnyValue: strings as is, booleans "true"/"false", integers in decimal,
// doubles in the shortest 'g' form, bytes in standard base64, arrays and
// key-value lists as JSON. Ids are lowercase hex, or "" when absent or all
// zero.

// Span is a flattened span. All maps are copies owned by the caller.
type Span struct {
	Resource      map[string]string // resource attributes
	Scope         string            // instrumentation scope name
	ScopeVersion  string
	TraceID       string // lowercase hex
	SpanID        string // lowercase hex
	ParentSpanID  string // lowercase hex, "" for a root span
	Name          string
	Kind          tracepb.Span_SpanKind
	Attributes    map[string]string
	StatusCode    tracepb.Status_StatusCode
	StatusMessage string
	StartTime     time.Time
	EndTime       time.Time
	Events        []SpanEvent
}

// SpanEvent is a flattened span event.
type SpanEvent struct {
	Name       string
	Attributes map[string]string
}

// LogRecord is a flattened log record. All maps are copies owned by the
// caller.
type LogRecord struct {
	Resource       map[string]string // resource attributes
	Scope          string            // instrumentation scope name
	ScopeVersion   string
	TraceID        string // lowercase hex, "" when unset
	SpanID         string // lowercase hex, "" when unset
	Body           string // string form of the body AnyValue
	SeverityText   string
	SeverityNumber logspb.SeverityNumber
	EventName      string
	Attributes     map[string]string
	Time           time.Time // time_unix_nano, or observed time when unset
}

// Metric is a flattened metric. All maps are copies owned by the caller.
type Metric struct {
	Resource     map[string]string // resource attributes
	Scope        string            // instrumentation scope name
	ScopeVersion string
	Name         string
	Description  string
	Unit         string
	// Type is "gauge", "sum", "histogram", "exponential_histogram",
	// "summary", or "" when the metric has no data.
	Type string
	// Attributes holds the attributes of each data point, in order.
	Attributes []map[string]string
	// Values holds a number per data point, parallel to Attributes: the
	// value for gauges and sums, the sum for histograms and summaries.
	Values []float64
}

// HasAttribute reports whether any data point of m has attribute key=value.
func (m Metric) HasAttribute(key, value string) bool {
	for _, a := range m.Attributes {
		if v, ok := a[key]; ok && v == value {
			return true
		}
	}
	return false
}

// Spans returns the stored spans, flattened, oldest request first.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	reqs := r.traces.snapshot()
	r.mu.Unlock()

	var out []Span
	for _, req := range reqs {
		for _, rs := range req.GetResourceSpans() {
			res := attrMap(rs.GetResource().GetAttributes())
			for _, ss := range rs.GetScopeSpans() {
				scope := ss.GetScope()
				for _, s := range ss.GetSpans() {
					sp := Span{
						Resource:      maps.Clone(res),
						Scope:         scope.GetName(),
						ScopeVersion:  scope.GetVersion(),
						TraceID:       idHex(s.GetTraceId()),
						SpanID:        idHex(s.GetSpanId()),
						ParentSpanID:  idHex(s.GetParentSpanId()),
						Name:          s.GetName(),
						Kind:          s.GetKind(),
						Attributes:    attrMap(s.GetAttributes()),
						StatusCode:    s.GetStatus().GetCode(),
						StatusMessage: s.GetStatus().GetMessage(),
						StartTime:     unixNano(s.GetStartTimeUnixNano()),
						EndTime:       unixNano(s.GetEndTimeUnixNano()),
					}
					for _, e := range s.GetEvents() {
						sp.Events = append(sp.Events, SpanEvent{Name: e.GetName(), Attributes: attrMap(e.GetAttributes())})
					}
					out = append(out, sp)
				}
			}
		}
	}
	return out
}

// Logs returns the stored log records, flattened, oldest request first.
func (r *Receiver) Logs() []LogRecord {
	r.mu.Lock()
	reqs := r.logs.snapshot()
	r.mu.Unlock()

	var out []LogRecord
	for _, req := range reqs {
		for _, rl := range req.GetResourceLogs() {
			res := attrMap(rl.GetResource().GetAttributes())
			for _, sl := range rl.GetScopeLogs() {
				scope := sl.GetScope()
				for _, l := range sl.GetLogRecords() {
					ts := l.GetTimeUnixNano()
					if ts == 0 {
						ts = l.GetObservedTimeUnixNano()
					}
					out = append(out, LogRecord{
						Resource:       maps.Clone(res),
						Scope:          scope.GetName(),
						ScopeVersion:   scope.GetVersion(),
						TraceID:        idHex(l.GetTraceId()),
						SpanID:         idHex(l.GetSpanId()),
						Body:           anyString(l.GetBody()),
						SeverityText:   l.GetSeverityText(),
						SeverityNumber: l.GetSeverityNumber(),
						EventName:      l.GetEventName(),
						Attributes:     attrMap(l.GetAttributes()),
						Time:           unixNano(ts),
					})
				}
			}
		}
	}
	return out
}

// Metrics returns the stored metrics, flattened, oldest request first. A
// metric exported repeatedly (e.g. by a periodic reader) appears once per
// export.
func (r *Receiver) Metrics() []Metric {
	r.mu.Lock()
	reqs := r.metrics.snapshot()
	r.mu.Unlock()

	var out []Metric
	for _, req := range reqs {
		for _, rm := range req.GetResourceMetrics() {
			res := attrMap(rm.GetResource().GetAttributes())
			for _, sm := range rm.GetScopeMetrics() {
				scope := sm.GetScope()
				for _, m := range sm.GetMetrics() {
					fm := Metric{
						Resource:     maps.Clone(res),
						Scope:        scope.GetName(),
						ScopeVersion: scope.GetVersion(),
						Name:         m.GetName(),
						Description:  m.GetDescription(),
						Unit:         m.GetUnit(),
					}
					addPoints(&fm, m)
					out = append(out, fm)
				}
			}
		}
	}
	return out
}

func addPoints(fm *Metric, m *metricspb.Metric) {
	add := func(attrs []*commonpb.KeyValue, v float64) {
		fm.Attributes = append(fm.Attributes, attrMap(attrs))
		fm.Values = append(fm.Values, v)
	}
	number := func(p *metricspb.NumberDataPoint) float64 {
		if v, ok := p.GetValue().(*metricspb.NumberDataPoint_AsInt); ok {
			return float64(v.AsInt)
		}
		return p.GetAsDouble()
	}
	switch d := m.GetData().(type) {
	case *metricspb.Metric_Gauge:
		fm.Type = "gauge"
		for _, p := range d.Gauge.GetDataPoints() {
			add(p.GetAttributes(), number(p))
		}
	case *metricspb.Metric_Sum:
		fm.Type = "sum"
		for _, p := range d.Sum.GetDataPoints() {
			add(p.GetAttributes(), number(p))
		}
	case *metricspb.Metric_Histogram:
		fm.Type = "histogram"
		for _, p := range d.Histogram.GetDataPoints() {
			add(p.GetAttributes(), p.GetSum())
		}
	case *metricspb.Metric_ExponentialHistogram:
		fm.Type = "exponential_histogram"
		for _, p := range d.ExponentialHistogram.GetDataPoints() {
			add(p.GetAttributes(), p.GetSum())
		}
	case *metricspb.Metric_Summary:
		fm.Type = "summary"
		for _, p := range d.Summary.GetDataPoints() {
			add(p.GetAttributes(), p.GetSum())
		}
	}
}

// idHex renders an id as lowercase hex, "" when empty or all zero.
func idHex(b []byte) string {
	for _, c := range b {
		if c != 0 {
			return hex.EncodeToString(b)
		}
	}
	return ""
}

func unixNano(ns uint64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns))
}

// attrMap converts attributes to a map of string forms. It never returns
// nil.
func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = anyString(kv.GetValue())
	}
	return m
}

// anyString renders an AnyValue as a string (see the comment at the top of
// this file). A nil or empty value renders as "".
func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	case *commonpb.AnyValue_BytesValue:
		return base64.StdEncoding.EncodeToString(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue, *commonpb.AnyValue_KvlistValue:
		b, err := json.Marshal(anyNative(v))
		if err != nil {
			return ""
		}
		return string(b)
	}
	return "" // unset, or a profiling-only string index
}

// anyNative converts an AnyValue to plain Go values for JSON rendering.
func anyNative(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BytesValue:
		return x.BytesValue // base64 in JSON
	case *commonpb.AnyValue_ArrayValue:
		out := make([]any, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, anyNative(e))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		out := make(map[string]any, len(x.KvlistValue.GetValues()))
		for _, kv := range x.KvlistValue.GetValues() {
			out[kv.GetKey()] = anyNative(kv.GetValue())
		}
		return out
	}
	return nil
}
