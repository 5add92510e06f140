// Package otlptest provides a real OTLP receiver for tests, benchmarks and
// load tools. It serves OTLP/gRPC or OTLP/HTTP on a loopback port, stores
// what it receives, and supports simple fault injection.
//
// Typical use in a test:
//
//	r := otlptest.NewGRPC(t) // or otlptest.NewHTTP(t)
//	// point an exporter at r.Endpoint() (e.g. OTEL_EXPORTER_OTLP_ENDPOINT)
//	r.WaitFor(t, 2*time.Second, func(r *otlptest.Receiver) bool {
//		return len(r.Spans()) > 0
//	})
//
// Endpoint returns "http://127.0.0.1:PORT" for both protocols; the http
// scheme means "insecure" to OTLP gRPC exporters. Note that for OTLP/HTTP
// exporters a base endpoint (OTEL_EXPORTER_OTLP_ENDPOINT) gets the signal path
// /v1/traces etc. appended, but a per-signal endpoint URL (the
// otlp*http.WithEndpointURL options, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is
// used verbatim; use SignalURL for those, or WithEndpoint(r.Addr()) plus
// WithInsecure().
//
// # Memory bound
//
// Stored data is bounded so that a long load test cannot exhaust memory: for
// each signal the receiver keeps at most MaxItems() items (spans, log records
// or metrics; DefaultMaxItems unless changed with SetMaxItems). When a new
// Export request pushes a signal over the bound, the oldest stored requests
// of that signal are dropped, whole, until it fits again; the newest request
// is always kept, even if it alone exceeds the bound. Counters (Requests,
// Received) are not affected by dropping.
package otlptest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
)

// Signal names accepted by Requests and Received.
const (
	SignalTraces  = "traces"
	SignalMetrics = "metrics"
	SignalLogs    = "logs"
)

// Protocol names accepted by Start. They match the values of
// OTEL_EXPORTER_OTLP_PROTOCOL; both HTTP variants start the same HTTP
// receiver, which accepts protobuf and JSON bodies.
const (
	ProtocolGRPC         = "grpc"
	ProtocolHTTPProtobuf = "http/protobuf"
	ProtocolHTTPJSON     = "http/json"
)

// DefaultMaxItems is the default per-signal bound on stored items.
const DefaultMaxItems = 1_000_000

// pollInterval is the polling period of WaitFor and Await.
const pollInterval = 10 * time.Millisecond

// store holds the retained requests of one signal.
type store[T proto.Message] struct {
	reqs     []T
	counts   []int // items per request, parallel to reqs
	items    int   // sum of counts
	requests int   // Export calls seen, including refused ones
	received int   // items accepted, including later dropped ones
}

func (s *store[T]) add(req T, n, limit int) {
	s.received += n
	if limit <= 0 {
		return
	}
	s.reqs = append(s.reqs, req)
	s.counts = append(s.counts, n)
	s.items += n
	for s.items > limit && len(s.reqs) > 1 {
		var zero T
		s.items -= s.counts[0]
		s.reqs[0] = zero // release for GC
		s.reqs = s.reqs[1:]
		s.counts = s.counts[1:]
	}
}

func (s *store[T]) snapshot() []T {
	return append([]T(nil), s.reqs...)
}

func (s *store[T]) reset() { *s = store[T]{} }

// Receiver is an OTLP receiver listening on loopback. It is safe for
// concurrent use. Create one with NewGRPC, NewHTTP or Start.
type Receiver struct {
	protocol string
	addr     string
	done     chan struct{}
	stop     func() // stops the server and waits for it

	closeOnce sync.Once

	mu       sync.Mutex
	traces   store[*coltracepb.ExportTraceServiceRequest]
	metrics  store[*colmetricspb.ExportMetricsServiceRequest]
	logs     store[*collogspb.ExportLogsServiceRequest]
	maxItems int
	failCode codes.Code // gRPC-style failure; codes.OK = none
	failHTTP int        // HTTP-style failure; 0 = none
	delay    time.Duration
}

// NewGRPC starts an OTLP/gRPC receiver on 127.0.0.1 and stops it when the
// test ends.
func NewGRPC(tb testing.TB) *Receiver {
	tb.Helper()
	return newForTest(tb, ProtocolGRPC)
}

// NewHTTP starts an OTLP/HTTP receiver on 127.0.0.1 and stops it when the
// test ends.
func NewHTTP(tb testing.TB) *Receiver {
	tb.Helper()
	return newForTest(tb, ProtocolHTTPProtobuf)
}

func newForTest(tb testing.TB, protocol string) *Receiver {
	tb.Helper()
	r, err := Start(protocol)
	if err != nil {
		tb.Fatalf("otlptest: %v", err)
	}
	tb.Cleanup(r.Close)
	return r
}

// Start starts a receiver without a testing.TB, for benchmarks and load
// tools. protocol is "grpc", "http", "http/protobuf" or "http/json" (all HTTP
// forms start the same receiver). The caller must call Close.
func Start(protocol string) (*Receiver, error) {
	p := strings.ToLower(strings.TrimSpace(protocol))
	switch p {
	case ProtocolGRPC:
	case "http", ProtocolHTTPProtobuf, ProtocolHTTPJSON:
		p = ProtocolHTTPProtobuf
	default:
		return nil, fmt.Errorf("otlptest: unknown protocol %q (want grpc, http/protobuf or http/json)", protocol)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("otlptest: listen: %w", err)
	}
	r := &Receiver{
		protocol: p,
		addr:     ln.Addr().String(),
		done:     make(chan struct{}),
		maxItems: DefaultMaxItems,
	}
	if p == ProtocolGRPC {
		r.stop = r.serveGRPC(ln)
	} else {
		r.stop = r.serveHTTP(ln)
	}
	return r, nil
}

// Close stops the server, aborting in-flight (delayed) exports. It is
// idempotent. Stored data stays readable after Close.
func (r *Receiver) Close() {
	r.closeOnce.Do(func() {
		close(r.done)
		r.stop()
	})
}

// Protocol returns "grpc" or "http/protobuf" (the HTTP receiver also accepts
// JSON).
func (r *Receiver) Protocol() string { return r.protocol }

// Endpoint returns the receiver's URL, "http://127.0.0.1:PORT". For gRPC
// exporters the http scheme means an insecure connection; for HTTP exporters
// it is the base endpoint to which /v1/{traces,metrics,logs} is appended.
func (r *Receiver) Endpoint() string { return "http://" + r.addr }

// Addr returns the listening address, "127.0.0.1:PORT", suitable for the
// exporters' WithEndpoint options (together with WithInsecure).
func (r *Receiver) Addr() string { return r.addr }

// SignalURL returns the full URL of a signal's OTLP/HTTP path, e.g.
// "http://127.0.0.1:PORT/v1/traces", suitable for per-signal endpoint
// options (otlptracehttp.WithEndpointURL, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).
// For a gRPC receiver it returns Endpoint(). Unknown signals yield Endpoint().
func (r *Receiver) SignalURL(signal string) string {
	if r.protocol == ProtocolGRPC {
		return r.Endpoint()
	}
	switch signal {
	case SignalTraces, SignalMetrics, SignalLogs:
		return r.Endpoint() + "/v1/" + signal
	}
	return r.Endpoint()
}

// Requests returns how many well-formed Export calls for signal ("traces",
// "metrics" or "logs") reached the receiver since start or the last Reset,
// including calls that were refused by SetFailure or aborted during
// SetDelay. A call is counted when it arrives, before any delay. It
// returns 0 for an unknown signal.
func (r *Receiver) Requests(signal string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch signal {
	case SignalTraces:
		return r.traces.requests
	case SignalMetrics:
		return r.metrics.requests
	case SignalLogs:
		return r.logs.requests
	}
	return 0
}

// Received returns how many items (spans, metrics or log records) of signal
// were accepted since start or the last Reset, including items later dropped
// by the memory bound. It is cheap, unlike len(r.Spans()). It returns 0 for
// an unknown signal.
func (r *Receiver) Received(signal string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch signal {
	case SignalTraces:
		return r.traces.received
	case SignalMetrics:
		return r.metrics.received
	case SignalLogs:
		return r.logs.received
	}
	return 0
}

// SetFailure makes every following Export call fail with code until it is
// called with codes.OK. A gRPC receiver returns a status with that code; an
// HTTP receiver answers with the HTTP status that OTLP/HTTP and grpc-gateway
// associate with it (e.g. Unavailable -> 503, ResourceExhausted -> 429,
// InvalidArgument -> 400) and a google.rpc.Status body. Refused requests are
// counted by Requests but not stored. It replaces any SetHTTPFailure.
//
// Note that exporters retry retryable codes (Unavailable, ResourceExhausted,
// ...) by default; disable their retry to see the error quickly.
func (r *Receiver) SetFailure(code codes.Code) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failCode, r.failHTTP = code, 0
}

// SetHTTPFailure makes every following Export call fail with the HTTP status
// (e.g. http.StatusServiceUnavailable) until it is called with 0 or a 2xx
// status. A gRPC receiver returns the gRPC code corresponding to the status
// (e.g. 503 -> Unavailable, 429 -> ResourceExhausted, 400 ->
// InvalidArgument). It replaces any SetFailure.
func (r *Receiver) SetHTTPFailure(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if status >= 200 && status < 300 {
		status = 0
	}
	r.failCode, r.failHTTP = codes.OK, status
}

// SetDelay makes every following Export call block for d before it is
// answered (and its data stored), or until the caller gives up (context
// canceled or deadline exceeded) or the receiver is closed, in which case
// nothing is stored. Zero disables the delay. The delay applies before a
// failure set with SetFailure is returned.
func (r *Receiver) SetDelay(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay = d
}

// SetMaxItems changes the per-signal bound on stored items (see the package
// documentation). n <= 0 stores nothing (counters still work), which suits
// pure load tests. It applies to following requests only.
func (r *Receiver) SetMaxItems(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.maxItems = n
}

// MaxItems returns the current per-signal bound on stored items.
func (r *Receiver) MaxItems() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxItems
}

// Reset clears stored data and the Requests and Received counters. Fault
// settings (SetFailure, SetDelay) and MaxItems are kept.
func (r *Receiver) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.traces.reset()
	r.metrics.reset()
	r.logs.reset()
}

// TraceRequests returns deep copies of the stored trace Export requests,
// oldest first.
func (r *Receiver) TraceRequests() []*coltracepb.ExportTraceServiceRequest {
	r.mu.Lock()
	reqs := r.traces.snapshot()
	r.mu.Unlock()
	return cloneAll(reqs)
}

// MetricRequests returns deep copies of the stored metrics Export requests,
// oldest first.
func (r *Receiver) MetricRequests() []*colmetricspb.ExportMetricsServiceRequest {
	r.mu.Lock()
	reqs := r.metrics.snapshot()
	r.mu.Unlock()
	return cloneAll(reqs)
}

// LogRequests returns deep copies of the stored logs Export requests, oldest
// first.
func (r *Receiver) LogRequests() []*collogspb.ExportLogsServiceRequest {
	r.mu.Lock()
	reqs := r.logs.snapshot()
	r.mu.Unlock()
	return cloneAll(reqs)
}

func cloneAll[T proto.Message](in []T) []T {
	out := make([]T, len(in))
	for i, m := range in {
		out[i] = proto.Clone(m).(T)
	}
	return out
}

// WaitFor polls cond every 10ms until it returns true, and fails tb with
// t.Fatalf if that does not happen within timeout. cond is called without
// the receiver's lock held, so it may use any Receiver method. Like Fatalf,
// WaitFor must be called from the test's goroutine.
func (r *Receiver) WaitFor(tb testing.TB, timeout time.Duration, cond func(*Receiver) bool) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := r.Await(ctx, cond); err != nil {
		tb.Fatalf("otlptest: condition not met within %v: %s", timeout, r.summary())
	}
}

// Await polls cond every 10ms until it returns true (nil error) or ctx is
// done (ctx.Err()). It is the testing.TB-free form of WaitFor.
func (r *Receiver) Await(ctx context.Context, cond func(*Receiver) bool) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		if cond(r) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// summary describes the receiver state for failure messages.
func (r *Receiver) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := fmt.Sprintf("%s receiver at %s got requests traces=%d metrics=%d logs=%d; stored spans=%d metrics=%d logs=%d",
		r.protocol, r.Endpoint(),
		r.traces.requests, r.metrics.requests, r.logs.requests,
		r.traces.items, r.metrics.items, r.logs.items)
	if r.failCode != codes.OK || r.failHTTP != 0 {
		s += fmt.Sprintf("; failure injected (code=%v http=%d)", r.failCode, r.failHTTP)
	}
	if r.delay > 0 {
		s += fmt.Sprintf("; delay %v", r.delay)
	}
	return s
}

// errAborted reports an export aborted during the injected delay.
type errAborted struct{ err error }

func (e errAborted) Error() string { return "otlptest: export aborted: " + e.err.Error() }

// failure is the outcome of the fault-injection checks for one request.
type failure struct {
	code codes.Code // gRPC code; OK when none
	http int        // HTTP status; 0 when none
}

// begin counts a request for signal, applies the injected delay and returns
// the injected failure, if any. A non-nil error means the export was aborted
// (caller gone or receiver closed) during the delay.
func (r *Receiver) begin(ctx context.Context, signal string) (failure, error) {
	r.mu.Lock()
	switch signal {
	case SignalTraces:
		r.traces.requests++
	case SignalMetrics:
		r.metrics.requests++
	case SignalLogs:
		r.logs.requests++
	}
	delay := r.delay
	r.mu.Unlock()

	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return failure{}, errAborted{ctx.Err()}
		case <-r.done:
			return failure{}, errAborted{fmt.Errorf("receiver closed")}
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	f := failure{code: r.failCode, http: r.failHTTP}
	switch {
	case f.code != codes.OK:
		f.http = httpStatusFromCode(f.code)
	case f.http != 0:
		f.code = codeFromHTTPStatus(f.http)
	}
	return f, nil
}

func (r *Receiver) storeTraces(req *coltracepb.ExportTraceServiceRequest) {
	n := 0
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.traces.add(req, n, r.maxItems)
}

func (r *Receiver) storeMetrics(req *colmetricspb.ExportMetricsServiceRequest) {
	n := 0
	for _, rm := range req.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			n += len(sm.GetMetrics())
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.metrics.add(req, n, r.maxItems)
}

func (r *Receiver) storeLogs(req *collogspb.ExportLogsServiceRequest) {
	n := 0
	for _, rl := range req.GetResourceLogs() {
		for _, sl := range rl.GetScopeLogs() {
			n += len(sl.GetLogRecords())
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs.add(req, n, r.maxItems)
}

// httpStatusFromCode maps a gRPC code to an HTTP status as grpc-gateway does.
func httpStatusFromCode(c codes.Code) int {
	switch c {
	case codes.OK:
		return 200
	case codes.Canceled:
		return 499
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return 400
	case codes.DeadlineExceeded:
		return 504
	case codes.NotFound:
		return 404
	case codes.AlreadyExists, codes.Aborted:
		return 409
	case codes.PermissionDenied:
		return 403
	case codes.Unauthenticated:
		return 401
	case codes.ResourceExhausted:
		return 429
	case codes.Unimplemented:
		return 501
	case codes.Unavailable:
		return 503
	default: // Unknown, Internal, DataLoss
		return 500
	}
}

// codeFromHTTPStatus maps an HTTP status to a gRPC code, following the gRPC
// HTTP-to-code mapping where it exists.
func codeFromHTTPStatus(s int) codes.Code {
	switch s {
	case 400:
		return codes.InvalidArgument
	case 401:
		return codes.Unauthenticated
	case 403:
		return codes.PermissionDenied
	case 404:
		return codes.NotFound
	case 409:
		return codes.Aborted
	case 429:
		return codes.ResourceExhausted
	case 499:
		return codes.Canceled
	case 501:
		return codes.Unimplemented
	case 502, 503:
		return codes.Unavailable
	case 504:
		return codes.DeadlineExceeded
	}
	if s >= 500 {
		return codes.Internal
	}
	return codes.Unknown
}
