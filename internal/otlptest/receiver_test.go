package otlptest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otellog "go.opentelemetry.io/otel/log"
	otelmetric "go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

const waitTimeout = 3 * time.Second

// exporterSet holds the three real OTLP exporters pointed at a receiver.
type exporterSet struct {
	spans   sdktrace.SpanExporter
	logs    sdklog.Exporter
	metrics sdkmetric.Exporter
}

// setup describes how a test connects exporters to a receiver.
type setup struct {
	name  string
	start func(testing.TB) *Receiver
	// exporters builds exporters with retries disabled and a short timeout.
	exporters func(t *testing.T, r *Receiver) exporterSet
}

// testSetups returns the exporter setups the end-to-end tests run with.
func testSetups() []setup {
	return []setup{
		{
			name:  "grpc/endpoint-url",
			start: NewGRPC,
			exporters: func(t *testing.T, r *Receiver) exporterSet {
				ctx := context.Background()
				// The http scheme of Endpoint() means insecure for gRPC.
				te, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(r.Endpoint()),
					otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}), otlptracegrpc.WithTimeout(2*time.Second))
				mustNil(t, err)
				le, err := otlploggrpc.New(ctx, otlploggrpc.WithEndpointURL(r.Endpoint()),
					otlploggrpc.WithRetry(otlploggrpc.RetryConfig{Enabled: false}), otlploggrpc.WithTimeout(2*time.Second))
				mustNil(t, err)
				me, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpointURL(r.Endpoint()),
					otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig{Enabled: false}), otlpmetricgrpc.WithTimeout(2*time.Second))
				mustNil(t, err)
				return exporterSet{te, le, me}
			},
		},
		{
			name:  "grpc/insecure-gzip",
			start: NewGRPC,
			exporters: func(t *testing.T, r *Receiver) exporterSet {
				ctx := context.Background()
				te, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(r.Addr()), otlptracegrpc.WithInsecure(),
					otlptracegrpc.WithCompressor("gzip"),
					otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}), otlptracegrpc.WithTimeout(2*time.Second))
				mustNil(t, err)
				le, err := otlploggrpc.New(ctx, otlploggrpc.WithEndpoint(r.Addr()), otlploggrpc.WithInsecure(),
					otlploggrpc.WithCompressor("gzip"),
					otlploggrpc.WithRetry(otlploggrpc.RetryConfig{Enabled: false}), otlploggrpc.WithTimeout(2*time.Second))
				mustNil(t, err)
				me, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(r.Addr()), otlpmetricgrpc.WithInsecure(),
					otlpmetricgrpc.WithCompressor("gzip"),
					otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig{Enabled: false}), otlpmetricgrpc.WithTimeout(2*time.Second))
				mustNil(t, err)
				return exporterSet{te, le, me}
			},
		},
		{
			name:  "http/signal-url",
			start: NewHTTP,
			exporters: func(t *testing.T, r *Receiver) exporterSet {
				ctx := context.Background()
				te, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(r.SignalURL(SignalTraces)),
					otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}), otlptracehttp.WithTimeout(2*time.Second))
				mustNil(t, err)
				le, err := otlploghttp.New(ctx, otlploghttp.WithEndpointURL(r.SignalURL(SignalLogs)),
					otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: false}), otlploghttp.WithTimeout(2*time.Second))
				mustNil(t, err)
				me, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(r.SignalURL(SignalMetrics)),
					otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}), otlpmetrichttp.WithTimeout(2*time.Second))
				mustNil(t, err)
				return exporterSet{te, le, me}
			},
		},
		{
			name:  "http/insecure-gzip",
			start: NewHTTP,
			exporters: func(t *testing.T, r *Receiver) exporterSet {
				ctx := context.Background()
				te, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(r.Addr()), otlptracehttp.WithInsecure(),
					otlptracehttp.WithCompression(otlptracehttp.GzipCompression),
					otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}), otlptracehttp.WithTimeout(2*time.Second))
				mustNil(t, err)
				le, err := otlploghttp.New(ctx, otlploghttp.WithEndpoint(r.Addr()), otlploghttp.WithInsecure(),
					otlploghttp.WithCompression(otlploghttp.GzipCompression),
					otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: false}), otlploghttp.WithTimeout(2*time.Second))
				mustNil(t, err)
				me, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpoint(r.Addr()), otlpmetrichttp.WithInsecure(),
					otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression),
					otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}), otlpmetrichttp.WithTimeout(2*time.Second))
				mustNil(t, err)
				return exporterSet{te, le, me}
			},
		},
	}
}

func mustNil(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// errRecorder records export errors, which the SDK's synchronous processors
// would otherwise only report to the global error handler.
type errRecorder struct {
	mu   sync.Mutex
	errs []error
}

func (e *errRecorder) record(err error) error {
	if err != nil {
		e.mu.Lock()
		e.errs = append(e.errs, err)
		e.mu.Unlock()
	}
	return err
}

func (e *errRecorder) get() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]error(nil), e.errs...)
}

type recSpanExporter struct {
	sdktrace.SpanExporter
	rec *errRecorder
}

func (x recSpanExporter) ExportSpans(ctx context.Context, s []sdktrace.ReadOnlySpan) error {
	return x.rec.record(x.SpanExporter.ExportSpans(ctx, s))
}

type recLogExporter struct {
	sdklog.Exporter
	rec *errRecorder
}

func (x recLogExporter) Export(ctx context.Context, r []sdklog.Record) error {
	return x.rec.record(x.Exporter.Export(ctx, r))
}

// pipeline is one SDK setup for all three signals.
type pipeline struct {
	tp       *sdktrace.TracerProvider
	lp       *sdklog.LoggerProvider
	mp       *sdkmetric.MeterProvider
	spanErrs *errRecorder
	logErrs  *errRecorder
}

func newPipeline(t *testing.T, ex exporterSet, service string) *pipeline {
	t.Helper()
	res := resource.NewSchemaless(attribute.String("service.name", service))
	p := &pipeline{spanErrs: &errRecorder{}, logErrs: &errRecorder{}}
	p.tp = sdktrace.NewTracerProvider(sdktrace.WithResource(res),
		sdktrace.WithSyncer(recSpanExporter{ex.spans, p.spanErrs}))
	p.lp = sdklog.NewLoggerProvider(sdklog.WithResource(res),
		sdklog.WithProcessor(sdklog.NewSimpleProcessor(recLogExporter{ex.logs, p.logErrs})))
	p.mp = sdkmetric.NewMeterProvider(sdkmetric.WithResource(res),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(ex.metrics, sdkmetric.WithInterval(time.Hour))))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = p.tp.Shutdown(ctx)
		_ = p.lp.Shutdown(ctx)
		_ = p.mp.Shutdown(ctx)
	})
	return p
}

// emit records one span, one log record inside it, and one counter point,
// and flushes the metric. It returns the span context and the metric flush
// error.
func (p *pipeline) emit(ctx context.Context) (trace.SpanContext, error) {
	ctx, span := p.tp.Tracer("otlptest-tracer").Start(ctx, "chat gpt-4o",
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("gen_ai.request.model", "gpt-4o")))
	var rec otellog.Record
	rec.SetBody(attribute.StringValue("hello from the log"))
	rec.SetSeverity(otellog.SeverityWarn)
	rec.SetSeverityText("WARN")
	rec.AddAttributes(attribute.Int("attempt", 2))
	p.lp.Logger("otlptest-logger").Emit(ctx, rec)
	span.End()

	c, err := p.mp.Meter("otlptest-meter").Int64Counter("gen_ai.client.requests", otelmetric.WithUnit("{request}"))
	if err != nil {
		return span.SpanContext(), err
	}
	c.Add(ctx, 3, otelmetric.WithAttributes(attribute.String("gen_ai.request.model", "gpt-4o")))
	return span.SpanContext(), p.mp.ForceFlush(ctx)
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	for _, tc := range testSetups() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := tc.start(t)
			service := "svc-" + strings.ReplaceAll(tc.name, "/", "-")
			p := newPipeline(t, tc.exporters(t, r), service)

			sc, err := p.emit(context.Background())
			if err != nil {
				t.Fatalf("metric export: %v", err)
			}
			r.WaitFor(t, waitTimeout, func(r *Receiver) bool {
				return len(r.Spans()) == 1 && len(r.Logs()) == 1 && len(r.Metrics()) >= 1
			})
			if errs := append(p.spanErrs.get(), p.logErrs.get()...); len(errs) > 0 {
				t.Fatalf("export errors: %v", errs)
			}

			wantTrace, wantSpan := sc.TraceID().String(), sc.SpanID().String()

			s := r.Spans()[0]
			if s.Resource["service.name"] != service {
				t.Errorf("span resource service.name = %q, want %q", s.Resource["service.name"], service)
			}
			if s.TraceID != wantTrace || s.SpanID != wantSpan || s.ParentSpanID != "" {
				t.Errorf("span ids = %s/%s/%q, want %s/%s/\"\"", s.TraceID, s.SpanID, s.ParentSpanID, wantTrace, wantSpan)
			}
			if s.Name != "chat gpt-4o" || s.Kind != tracepb.Span_SPAN_KIND_CLIENT || s.Scope != "otlptest-tracer" {
				t.Errorf("span = name %q kind %v scope %q", s.Name, s.Kind, s.Scope)
			}
			if s.Attributes["gen_ai.request.model"] != "gpt-4o" || s.StatusCode != tracepb.Status_STATUS_CODE_UNSET {
				t.Errorf("span attributes %v status %v", s.Attributes, s.StatusCode)
			}
			if s.StartTime.IsZero() || s.EndTime.Before(s.StartTime) {
				t.Errorf("span times %v..%v", s.StartTime, s.EndTime)
			}

			l := r.Logs()[0]
			if l.Resource["service.name"] != service {
				t.Errorf("log resource service.name = %q, want %q", l.Resource["service.name"], service)
			}
			if l.TraceID != wantTrace || l.SpanID != wantSpan {
				t.Errorf("log ids = %s/%s, want %s/%s", l.TraceID, l.SpanID, wantTrace, wantSpan)
			}
			if l.Body != "hello from the log" || l.SeverityText != "WARN" ||
				l.SeverityNumber != logspb.SeverityNumber_SEVERITY_NUMBER_WARN || l.Scope != "otlptest-logger" {
				t.Errorf("log = %+v", l)
			}
			if l.Attributes["attempt"] != "2" {
				t.Errorf("log attributes = %v", l.Attributes)
			}

			var found bool
			for _, m := range r.Metrics() {
				if m.Name != "gen_ai.client.requests" {
					continue
				}
				found = true
				if m.Resource["service.name"] != service {
					t.Errorf("metric resource service.name = %q, want %q", m.Resource["service.name"], service)
				}
				if !m.HasAttribute("gen_ai.request.model", "gpt-4o") || m.Unit != "{request}" || m.Type != "sum" ||
					len(m.Values) != 1 || m.Values[0] != 3 || m.Scope != "otlptest-meter" {
					t.Errorf("metric = %+v", m)
				}
			}
			if !found {
				t.Errorf("metric gen_ai.client.requests not received; got %+v", r.Metrics())
			}

			for _, sig := range []string{SignalTraces, SignalLogs, SignalMetrics} {
				if n := r.Requests(sig); n != 1 {
					t.Errorf("Requests(%s) = %d, want 1", sig, n)
				}
			}
			if got := len(r.TraceRequests()); got != 1 {
				t.Errorf("TraceRequests() has %d requests, want 1", got)
			}
		})
	}
}

func TestSetFailure(t *testing.T) {
	t.Parallel()
	setups := testSetups()
	tests := []struct {
		name   string
		setup  setup
		inject func(*Receiver)
		want   string // substring of the span export error
	}{
		{"grpc/code", setups[0], func(r *Receiver) { r.SetFailure(codes.PermissionDenied) }, "PermissionDenied"},
		{"grpc/http-status", setups[1], func(r *Receiver) { r.SetHTTPFailure(http.StatusServiceUnavailable) }, "Unavailable"},
		{"http/code", setups[2], func(r *Receiver) { r.SetFailure(codes.InvalidArgument) }, "400"},
		{"http/http-status", setups[3], func(r *Receiver) { r.SetHTTPFailure(http.StatusTooManyRequests) }, "retry-able request failure"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := tc.setup.start(t)
			// Call the exporters directly, so their errors are returned
			// rather than sent to the global error handler.
			ex := tc.setup.exporters(t, r)
			mp := sdkmetric.NewMeterProvider(
				sdkmetric.WithReader(sdkmetric.NewPeriodicReader(ex.metrics, sdkmetric.WithInterval(time.Hour))))
			t.Cleanup(func() {
				_ = ex.spans.Shutdown(context.Background())
				_ = ex.logs.Shutdown(context.Background())
				_ = mp.Shutdown(context.Background())
			})
			counter, err := mp.Meter("m").Int64Counter("requests")
			mustNil(t, err)
			counter.Add(context.Background(), 1)
			spans, logs := endedSpans(t), emittedLogs(t)
			exportAll := func() (spanErr, logErr, metricErr error) {
				ctx := context.Background()
				return ex.spans.ExportSpans(ctx, spans), ex.logs.Export(ctx, logs), mp.ForceFlush(ctx)
			}

			tc.inject(r)
			spanErr, logErr, metricErr := exportAll()
			if spanErr == nil || !strings.Contains(spanErr.Error(), tc.want) {
				t.Errorf("span export error = %v, want one containing %q", spanErr, tc.want)
			}
			if logErr == nil || metricErr == nil {
				t.Errorf("log export error = %v, metric export error = %v; want errors", logErr, metricErr)
			}
			for _, sig := range []string{SignalTraces, SignalLogs, SignalMetrics} {
				if n := r.Requests(sig); n != 1 {
					t.Errorf("Requests(%s) = %d, want 1 (retries are disabled)", sig, n)
				}
				if n := r.Received(sig); n != 0 {
					t.Errorf("Received(%s) = %d, want 0", sig, n)
				}
			}
			if len(r.Spans())+len(r.Logs())+len(r.Metrics()) != 0 {
				t.Error("refused data was stored")
			}

			// Clearing the failure lets exports through again.
			r.SetFailure(codes.OK)
			if errs := errors.Join(exportAll()); errs != nil {
				t.Errorf("exports after clearing the failure: %v", errs)
			}
			if len(r.Spans()) != 1 || len(r.Logs()) != 1 || len(r.Metrics()) != 1 {
				t.Errorf("after clearing failure: %d spans, %d logs, %d metrics", len(r.Spans()), len(r.Logs()), len(r.Metrics()))
			}
		})
	}
}

func TestSetDelay(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{ProtocolGRPC, ProtocolHTTPProtobuf} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			r, err := Start(proto)
			mustNil(t, err)
			t.Cleanup(r.Close)
			ctx := context.Background()
			var exp sdktrace.SpanExporter
			if proto == ProtocolGRPC {
				exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(r.Endpoint()),
					otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
			} else {
				exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(r.Addr()), otlptracehttp.WithInsecure(),
					otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
			}
			mustNil(t, err)
			t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
			spans := endedSpans(t)

			// A long delay blocks the export until the caller gives up.
			r.SetDelay(time.Minute)
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- exp.ExportSpans(cctx, spans) }()
			r.WaitFor(t, waitTimeout, func(r *Receiver) bool { return r.Requests(SignalTraces) == 1 })
			select {
			case err := <-done:
				t.Fatalf("export returned during the delay: %v", err)
			case <-time.After(50 * time.Millisecond):
			}
			cancel()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("export succeeded despite the delay")
				}
			case <-time.After(waitTimeout):
				t.Fatal("export not aborted by context cancellation")
			}
			if n := len(r.Spans()); n != 0 {
				t.Errorf("aborted export stored %d spans", n)
			}

			// A short delay only slows the export down.
			r.SetDelay(50 * time.Millisecond)
			start := time.Now()
			mustNil(t, exp.ExportSpans(ctx, spans))
			if d := time.Since(start); d < 50*time.Millisecond {
				t.Errorf("export took %v, want >= 50ms", d)
			}
			if len(r.Spans()) != 1 {
				t.Errorf("spans = %d, want 1", len(r.Spans()))
			}
		})
	}
}

// endedSpans returns one ended span from a real SDK tracer.
func endedSpans(t *testing.T) []sdktrace.ReadOnlySpan {
	t.Helper()
	var got []sdktrace.ReadOnlySpan
	cap := captureProcessor{spans: &got}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(cap))
	_, s := tp.Tracer("t").Start(context.Background(), "delayed")
	s.End()
	if len(got) != 1 {
		t.Fatalf("captured %d spans", len(got))
	}
	return got
}

// emittedLogs returns one log record from a real SDK logger.
func emittedLogs(t *testing.T) []sdklog.Record {
	t.Helper()
	lc := &logCapture{}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(lc))
	var rec otellog.Record
	rec.SetBody(attribute.StringValue("refused?"))
	lp.Logger("l").Emit(context.Background(), rec)
	if len(lc.recs) != 1 {
		t.Fatalf("captured %d log records", len(lc.recs))
	}
	return lc.recs
}

type logCapture struct{ recs []sdklog.Record }

func (c *logCapture) OnEmit(_ context.Context, r *sdklog.Record) error {
	c.recs = append(c.recs, r.Clone())
	return nil
}
func (c *logCapture) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (c *logCapture) Shutdown(context.Context) error                         { return nil }
func (c *logCapture) ForceFlush(context.Context) error                       { return nil }

type captureProcessor struct {
	sdktrace.SpanProcessor
	spans *[]sdktrace.ReadOnlySpan
}

func (c captureProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (c captureProcessor) OnEnd(s sdktrace.ReadOnlySpan)                   { *c.spans = append(*c.spans, s) }
func (c captureProcessor) Shutdown(context.Context) error                  { return nil }
func (c captureProcessor) ForceFlush(context.Context) error                { return nil }

func TestCloseAbortsDelayedExport(t *testing.T) {
	t.Parallel()
	r, err := Start("grpc")
	mustNil(t, err)
	exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpointURL(r.Endpoint()),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
	mustNil(t, err)
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	r.SetDelay(time.Minute)
	done := make(chan error, 1)
	spans := endedSpans(t)
	go func() { done <- exp.ExportSpans(context.Background(), spans) }()
	r.WaitFor(t, waitTimeout, func(r *Receiver) bool { return r.Requests(SignalTraces) == 1 })
	r.Close()
	r.Close() // idempotent
	select {
	case err := <-done:
		if err == nil {
			t.Error("export succeeded, want error after Close")
		}
	case <-time.After(waitTimeout):
		t.Fatal("delayed export not aborted by Close")
	}
}

// post sends body to the receiver's HTTP signal path.
func post(t *testing.T, r *Receiver, path, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.Endpoint()+path, bytes.NewReader(body))
	mustNil(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	mustNil(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	mustNil(t, err)
	return resp, b
}

func TestHTTPJSON(t *testing.T) {
	t.Parallel()
	r := NewHTTP(t)
	const traceID, spanID = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
	requests := []struct{ path, body string }{
		{"/v1/traces", `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json-svc"}}]},
			"scopeSpans":[{"scope":{"name":"js"},"spans":[{"traceId":"` + traceID + `","spanId":"` + spanID + `",
			"parentSpanId":"","name":"GET /","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,
			"attributes":[{"key":"n","value":{"intValue":"42"}},{"key":"ok","value":{"boolValue":true}},
			{"key":"list","value":{"arrayValue":{"values":[{"stringValue":"a"},{"doubleValue":1.5}]}}}],
			"status":{"code":2,"message":"boom"},"futureField":{"x":1}}]}]}]}`},
		{"/v1/logs", `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json-svc"}}]},
			"scopeLogs":[{"logRecords":[{"traceId":"` + traceID + `","spanId":"` + spanID + `","severityNumber":17,
			"severityText":"ERROR","body":{"stringValue":"bad thing"},"eventName":"gen_ai.choice"}]}]}]}`},
		{"/v1/metrics", `{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json-svc"}}]},
			"scopeMetrics":[{"metrics":[{"name":"gen_ai.client.token.usage","unit":"{token}","histogram":{"dataPoints":[
			{"attributes":[{"key":"gen_ai.request.model","value":{"stringValue":"m1"}}],"count":"2","sum":30},
			{"attributes":[{"key":"gen_ai.request.model","value":{"stringValue":"m2"}}],"count":"1","sum":5}],
			"aggregationTemporality":2}}]}]}]}`},
	}
	for _, req := range requests {
		resp, body := post(t, r, req.path, "application/json; charset=utf-8", []byte(req.body))
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != contentTypeJSON {
			t.Fatalf("POST %s: %s %q %s", req.path, resp.Status, resp.Header.Get("Content-Type"), body)
		}
	}

	s := r.Spans()
	if len(s) != 1 {
		t.Fatalf("spans = %d", len(s))
	}
	want := Span{
		Resource: map[string]string{"service.name": "json-svc"}, Scope: "js",
		TraceID: traceID, SpanID: spanID, Name: "GET /", Kind: tracepb.Span_SPAN_KIND_SERVER,
		Attributes: map[string]string{"n": "42", "ok": "true", "list": `["a",1.5]`},
		StatusCode: tracepb.Status_STATUS_CODE_ERROR, StatusMessage: "boom",
		StartTime: time.Unix(1544712660, 0), EndTime: time.Unix(1544712661, 0),
	}
	if got := fmt.Sprintf("%+v", s[0]); got != fmt.Sprintf("%+v", want) {
		t.Errorf("span:\n got %s\nwant %+v", got, want)
	}
	l := r.Logs()
	if len(l) != 1 || l[0].TraceID != traceID || l[0].SpanID != spanID || l[0].Body != "bad thing" ||
		l[0].SeverityNumber != logspb.SeverityNumber_SEVERITY_NUMBER_ERROR || l[0].EventName != "gen_ai.choice" {
		t.Errorf("logs = %+v", l)
	}
	m := r.Metrics()
	if len(m) != 1 || m[0].Type != "histogram" || !m[0].HasAttribute("gen_ai.request.model", "m2") ||
		m[0].HasAttribute("gen_ai.request.model", "m3") || len(m[0].Values) != 2 || m[0].Values[0] != 30 {
		t.Errorf("metrics = %+v", m)
	}
}

func TestHTTPErrors(t *testing.T) {
	t.Parallel()
	r := NewHTTP(t)
	tests := []struct {
		name, method, path, contentType, encoding, body string
		want                                            int
	}{
		{"unknown path", http.MethodPost, "/", contentTypeProtobuf, "", "", http.StatusNotFound},
		{"wrong method", http.MethodGet, "/v1/traces", "", "", "", http.StatusMethodNotAllowed},
		{"wrong content type", http.MethodPost, "/v1/traces", "text/plain", "", "", http.StatusUnsupportedMediaType},
		{"bad json", http.MethodPost, "/v1/logs", contentTypeJSON, "", "{", http.StatusBadRequest},
		{"bad protobuf", http.MethodPost, "/v1/metrics", contentTypeProtobuf, "", "\xff\xff", http.StatusBadRequest},
		{"bad gzip", http.MethodPost, "/v1/traces", contentTypeProtobuf, "gzip", "not gzip", http.StatusBadRequest},
		{"unknown encoding", http.MethodPost, "/v1/traces", contentTypeProtobuf, "br", "", http.StatusBadRequest},
		{"empty protobuf ok", http.MethodPost, "/v1/traces", contentTypeProtobuf, "", "", http.StatusOK},
	}
	for _, tc := range tests {
		req, err := http.NewRequest(tc.method, r.Endpoint()+tc.path, strings.NewReader(tc.body))
		mustNil(t, err)
		req.Header.Set("Content-Type", tc.contentType)
		if tc.encoding != "" {
			req.Header.Set("Content-Encoding", tc.encoding)
		}
		resp, err := http.DefaultClient.Do(req)
		mustNil(t, err)
		_ = resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	if n := r.Requests(SignalTraces); n != 1 {
		t.Errorf("Requests(traces) = %d, want 1 (only well-formed requests count)", n)
	}
}

// traceReq builds a trace request with n spans named name-0..name-(n-1).
func traceReq(name string, n int) *coltracepb.ExportTraceServiceRequest {
	ss := &tracepb.ScopeSpans{}
	for i := range n {
		ss.Spans = append(ss.Spans, &tracepb.Span{Name: fmt.Sprintf("%s-%d", name, i), TraceId: []byte{0: 1, 15: byte(i)}})
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{ss}}}}
}

func spanNames(r *Receiver) []string {
	var out []string
	for _, s := range r.Spans() {
		out = append(out, s.Name)
	}
	return out
}

func TestMaxItemsAndReset(t *testing.T) {
	t.Parallel()
	r, err := Start("http")
	mustNil(t, err)
	defer r.Close()
	if r.MaxItems() != DefaultMaxItems {
		t.Fatalf("MaxItems() = %d", r.MaxItems())
	}
	r.SetMaxItems(3)
	for _, name := range []string{"a", "b", "c", "d"} {
		r.storeTraces(traceReq(name, 1))
	}
	if got := strings.Join(spanNames(r), ","); got != "b-0,c-0,d-0" {
		t.Errorf("after 4 single-span requests with limit 3: %s", got)
	}
	r.storeTraces(traceReq("big", 5)) // the newest request is always kept whole
	if got := strings.Join(spanNames(r), ","); got != "big-0,big-1,big-2,big-3,big-4" {
		t.Errorf("after an oversized request: %s", got)
	}
	r.storeTraces(traceReq("e", 2))
	if got := strings.Join(spanNames(r), ","); got != "e-0,e-1" {
		t.Errorf("after dropping the oversized request: %s", got)
	}
	if n := r.Received(SignalTraces); n != 11 {
		t.Errorf("Received = %d, want 11", n)
	}

	r.SetMaxItems(0) // count only
	r.storeTraces(traceReq("f", 1))
	if len(r.Spans()) != 2 || r.Received(SignalTraces) != 12 {
		t.Errorf("with MaxItems 0: spans %v received %d", spanNames(r), r.Received(SignalTraces))
	}

	// Returned data is a copy.
	r.SetMaxItems(10)
	r.storeTraces(traceReq("g", 1))
	r.TraceRequests()[0].ResourceSpans = nil
	r.Spans()[0].Attributes["x"] = "y"
	if len(r.Spans()) != 3 || len(r.Spans()[0].Attributes) != 0 {
		t.Error("mutating returned data changed the receiver")
	}

	r.Reset()
	if len(r.Spans()) != 0 || r.Received(SignalTraces) != 0 || len(r.TraceRequests()) != 0 {
		t.Error("Reset did not clear stored data")
	}
	if r.MaxItems() != 10 {
		t.Error("Reset changed MaxItems")
	}
}

func TestLogIDsEmptyWhenZero(t *testing.T) {
	t.Parallel()
	r, err := Start("grpc")
	mustNil(t, err)
	defer r.Close()
	r.storeLogs(&collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{ScopeLogs: []*logspb.ScopeLogs{{
		LogRecords: []*logspb.LogRecord{{TraceId: make([]byte, 16), ObservedTimeUnixNano: 5}},
	}}}}})
	l := r.Logs()
	if len(l) != 1 || l[0].TraceID != "" || l[0].SpanID != "" || l[0].Time != time.Unix(0, 5) {
		t.Errorf("logs = %+v", l)
	}
}

func TestAnyString(t *testing.T) {
	t.Parallel()
	kv := func(k string, v *commonpb.AnyValue) *commonpb.KeyValue { return &commonpb.KeyValue{Key: k, Value: v} }
	str := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	tests := []struct {
		name string
		v    *commonpb.AnyValue
		want string
	}{
		{"nil", nil, ""},
		{"empty", &commonpb.AnyValue{}, ""},
		{"string", str("x"), "x"},
		{"bool", &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: true}}, "true"},
		{"int", &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: -7}}, "-7"},
		{"double", &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 0.25}}, "0.25"},
		{"bytes", &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte("hi")}}, "aGk="},
		{"array", &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{
			Values: []*commonpb.AnyValue{str("a"), {Value: &commonpb.AnyValue_IntValue{IntValue: 1}}}}}}, `["a",1]`},
		{"kvlist", &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{
			Values: []*commonpb.KeyValue{kv("b", str("2")), kv("a", str("1"))}}}}, `{"a":"1","b":"2"}`},
	}
	for _, tc := range tests {
		if got := anyString(tc.v); got != tc.want {
			t.Errorf("%s: anyString = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestStart(t *testing.T) {
	t.Parallel()
	if _, err := Start("zipkin"); err == nil {
		t.Error("Start(zipkin) succeeded")
	}
	for _, tc := range []struct{ in, protocol string }{
		{"grpc", ProtocolGRPC}, {"http", ProtocolHTTPProtobuf}, {"http/json", ProtocolHTTPProtobuf}, {"HTTP/Protobuf", ProtocolHTTPProtobuf},
	} {
		r, err := Start(tc.in)
		mustNil(t, err)
		if r.Protocol() != tc.protocol || !strings.HasPrefix(r.Endpoint(), "http://127.0.0.1:") ||
			r.Endpoint() != "http://"+r.Addr() {
			t.Errorf("Start(%q): protocol %q endpoint %q", tc.in, r.Protocol(), r.Endpoint())
		}
		wantURL := r.Endpoint() + "/v1/logs"
		if tc.protocol == ProtocolGRPC {
			wantURL = r.Endpoint()
		}
		if got := r.SignalURL(SignalLogs); got != wantURL {
			t.Errorf("SignalURL = %q, want %q", got, wantURL)
		}
		r.Close()
		r.Close()
	}
}

// fakeTB captures Fatalf from WaitFor.
type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestWaitFor(t *testing.T) {
	t.Parallel()
	r := NewGRPC(t)

	// Success once the condition becomes true.
	go r.storeTraces(traceReq("late", 1))
	r.WaitFor(t, waitTimeout, func(r *Receiver) bool { return r.Received(SignalTraces) == 1 })

	// Timeout fails with a descriptive message.
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.WaitFor(f, 30*time.Millisecond, func(*Receiver) bool { return false })
	}()
	<-done
	for _, want := range []string{"condition not met within 30ms", "traces=0", "stored spans=1", r.Endpoint()} {
		if !strings.Contains(f.msg, want) {
			t.Errorf("WaitFor failure message %q lacks %q", f.msg, want)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Await(ctx, func(*Receiver) bool { return false }); !errors.Is(err, context.Canceled) {
		t.Errorf("Await = %v, want context.Canceled", err)
	}
}
