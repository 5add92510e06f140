//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelcfg/otelcfg/examples"
	"github.com/otelcfg/otelcfg/internal/interceptor"
	"github.com/otelcfg/otelcfg/internal/otlptest"
	"github.com/otelcfg/otelcfg/internal/proxy"
	"github.com/otelcfg/otelcfg/otelconfig"
	"go.opentelemetry.io/otel"
	"google.golang.org/grpc/codes"
)

// A collector in trouble must not hurt the service it observes. The
// faults, each against the example otel.yaml pointed at it by
// OTEL_EXPORTER_OTLP_ENDPOINT (OTLP/gRPC):
//
//   - unreachable: nothing listens on the port;
//   - slow: the receiver accepts every export and never answers
//     (SetDelay(hour));
//   - refusing: the receiver answers every export with Unavailable.
//
// Queues are small (64 spans, 64 log records) and exports give up after
// a second (OTEL_EXPORTER_OTLP_TIMEOUT and the processors' export
// timeouts), so that in a few seconds of load every queue overflows and
// every export fails many times over.
var faultEnv = []string{
	"OTEL_BSP_MAX_QUEUE_SIZE=64",
	"OTEL_BSP_MAX_EXPORT_BATCH_SIZE=32",
	"OTEL_BLRP_MAX_QUEUE_SIZE=64",
	"OTEL_BLRP_MAX_EXPORT_BATCH_SIZE=32",
	"OTEL_EXPORTER_OTLP_TIMEOUT=1000",
	"OTEL_BSP_EXPORT_TIMEOUT=1000",
	"OTEL_BLRP_EXPORT_TIMEOUT=1000",
	"OTEL_METRIC_EXPORT_INTERVAL=1000",
	"OTEL_METRIC_EXPORT_TIMEOUT=1000",
	// A stop flushes into the same trouble: bound it.
	"PROXY_SERVER_SHUTDOWN_TIMEOUT=3s",
	"INTERCEPTOR_TIMEOUTS_SHUTDOWN=3s",
}

type fault struct {
	name string
	// start starts the collector in trouble and returns its URL, and the
	// receiver when one listens.
	start func(t *testing.T) (string, *otlptest.Receiver)
}

var faults = []fault{
	{"unreachable", func(t *testing.T) (string, *otlptest.Receiver) {
		return fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), nil
	}},
	{"slow", func(t *testing.T) (string, *otlptest.Receiver) {
		r := otlptest.NewGRPC(t)
		r.SetDelay(time.Hour)
		return r.Endpoint(), r
	}},
	{"refusing", func(t *testing.T) (string, *otlptest.Receiver) {
		r := otlptest.NewGRPC(t)
		r.SetFailure(codes.Unavailable)
		return r.Endpoint(), r
	}},
}

// Latency bound: with a collector in trouble, the median latency of a
// request (through the proxy alone, and through interceptor and proxy) is
// at most latencyFactor times the median with a healthy collector, plus
// latencySlack, each median over latencySamples requests.
const (
	latencyFactor  = 3
	latencySlack   = 20 * time.Millisecond
	latencySamples = 30
	// loadPerStack requests (4 at a time) overflow every queue many times
	// before latency is measured.
	loadPerStack = 1500
	// exportLinesPer10s is the most console lines about export problems
	// one process may print per started 10 seconds of its life: one per
	// kind (failed exports, dropped log records, dropped spans); plus, at
	// the stop, exportLinesAtStop final counts of drops. One line per
	// record or per failed export would be thousands.
	exportLinesPer10s = 3
	exportLinesAtStop = 2
)

// exportLine matches the console lines about OpenTelemetry's own
// trouble: the rate-limited error handler's and the SDK's warnings.
var exportLine = regexp.MustCompile(`(?m)^.*msg="OpenTelemetry (export problem|SDK: [^"]*)".*$`)

// TestTelemetryFaults runs one stack (proxy and interceptor, real
// processes) with a healthy collector and one per fault, side by side so
// that the machine's noise hits them alike; drives load through each;
// then measures request latency by taking turns, one request per stack.
func TestTelemetryFaults(t *testing.T) {
	type run struct {
		name    string
		st      *stack
		rec     *otlptest.Receiver
		started time.Time
	}
	healthy := otlptest.NewGRPC(t)
	runs := []*run{{name: "healthy", rec: healthy, st: startStack(t, "", append([]string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + healthy.Endpoint()}, faultEnv...)...), started: time.Now()}}
	for _, f := range faults {
		ep, rec := f.start(t)
		runs = append(runs, &run{name: f.name, rec: rec, st: startStack(t, "", append([]string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + ep}, faultEnv...)...), started: time.Now()})
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: 30 * time.Second}
	send := func(base string) (time.Duration, error) {
		body := `{"model":"echo-model","messages":[{"role":"user","content":"hello faults"}]}`
		start := time.Now()
		resp, err := client.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("status %d", resp.StatusCode)
		}
		return time.Since(start), nil
	}

	// Load: every queue overflows, every export fails.
	loadStart := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for _, r := range runs {
		for range 4 {
			wg.Go(func() {
				for range loadPerStack / 4 {
					if _, err := send(r.st.url); err != nil {
						failed.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d requests failed under load", n)
	}
	t.Logf("load: %d requests per stack in %v", loadPerStack, time.Since(loadStart).Round(time.Millisecond))

	// Latency, taking turns.
	lat := map[string][]time.Duration{}
	for range latencySamples {
		for _, r := range runs {
			for _, path := range []struct{ key, base string }{{"proxy", r.st.proxyURL}, {"interceptor+proxy", r.st.url}} {
				d, err := send(path.base)
				if err != nil {
					t.Fatalf("%s via %s: %v", r.name, path.key, err)
				}
				lat[r.name+"/"+path.key] = append(lat[r.name+"/"+path.key], d)
			}
		}
	}
	for _, path := range []string{"proxy", "interceptor+proxy"} {
		normal := median(lat["healthy/"+path])
		bound := latencyFactor*normal + latencySlack
		for _, f := range faults {
			got := median(lat[f.name+"/"+path])
			t.Logf("median latency via %s: %s collector %v, healthy %v (bound %v)", path, f.name, got, normal, bound)
			if got > bound {
				t.Errorf("collector %s: median latency via %s is %v, over %d× the healthy %v + %v", f.name, path, got, latencyFactor, normal, latencySlack)
			}
		}
	}

	// The same configuration exports fine to a healthy collector, and
	// the collectors in trouble were really tried.
	if n := healthy.Received(otlptest.SignalTraces); n == 0 {
		t.Errorf("the healthy collector got no spans for %d requests", loadPerStack)
	}
	for _, r := range runs[1:] {
		if r.rec != nil && r.rec.Requests(otlptest.SignalTraces) == 0 {
			t.Errorf("the %s collector was never sent an export", r.name)
		}
	}

	// Stop everything (a stop flushes, into the same trouble) and read
	// what each process said about it.
	for _, r := range runs {
		for _, s := range []*service{r.st.interceptor, r.st.proxy} {
			s.terminate(15 * time.Second)
			life := time.Since(r.started)
			out := s.out.String()
			lines := exportLine.FindAllString(out, -1)
			t.Logf("%s %s: %d console lines about export problems in %v:\n\t%s", r.name, s.name, len(lines), life.Round(time.Second), strings.Join(lines, "\n\t"))
			if r.name == "healthy" {
				continue
			}
			if bound := exportLinesPer10s*(1+int(life/(10*time.Second))) + exportLinesAtStop; len(lines) > bound {
				t.Errorf("%s %s: %d console lines about export problems in %v, over %d", r.name, s.name, len(lines), life.Round(time.Second), bound)
			}
			if !strings.Contains(out, "OpenTelemetry export problem") {
				t.Errorf("%s %s: export failures are never reported", r.name, s.name)
			}
			for _, what := range []string{"log records", "spans"} {
				if n := droppedCount(out, what); n == 0 {
					t.Errorf("%s %s: no console line counts dropped %s", r.name, s.name, what)
				} else {
					t.Logf("%s %s: %d %s reported dropped", r.name, s.name, n, what)
				}
			}
		}
	}
}

// droppedCount sums the counts of the SDK's "dropped <what>" lines.
func droppedCount(out, what string) int {
	re := regexp.MustCompile(`msg="OpenTelemetry SDK: dropped ` + what + `".* dropped=(\d+)`)
	n := 0
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.Atoi(m[1])
		n += v
	}
	return n
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// Memory bound: with a collector in trouble, 20 000 requests through
// interceptor and proxy grow the heap (after GC) by at most memoryBound
// over the heap after a warm-up. The bound leaves room for what the
// configuration allows to be kept (64 spans and 64 log records queued per
// service, a batch of each in flight, the metric aggregations) and for
// the runtime's noise; with queues large enough to keep everything
// (OTEL_B*_MAX_QUEUE_SIZE=1000000) the same run grows it by about 140 MiB.
const (
	memoryRequests = 20000
	memoryBound    = 8 << 20
)

// TestTelemetryFaultMemory runs interceptor and proxy in this process
// (otelconfig.Start with the example otel.yaml and the real OTLP
// exporters, WithoutGlobals) so that the heap can be measured exactly.
func TestTelemetryFaultMemory(t *testing.T) {
	var exportErrors atomic.Int64
	// Without globals the SDK's errors reach otel's global handler; count
	// them instead of logging each.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) { exportErrors.Add(1) }))
	env := map[string]string{}
	for _, kv := range faultEnv {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			ep, _ := f.start(t)
			lookup := func(k string) (string, bool) {
				if k == "OTEL_EXPORTER_OTLP_ENDPOINT" {
					return ep, true
				}
				v, ok := env[k]
				return v, ok
			}
			start := func(service string) *otelconfig.Telemetry {
				tel, err := otelconfig.Start(context.Background(), otelconfig.WithBytes("otel.yaml", examples.OtelYAML),
					otelconfig.WithEnv(lookup), otelconfig.WithServiceName(service), otelconfig.WithoutGlobals(), otelconfig.WithConsole(nil))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					defer cancel()
					_ = tel.Shutdown(ctx)
				})
				return tel
			}
			ps := proxy.DefaultSettings()
			ps.Models = []proxy.ModelSettings{{Name: "echo-model", APIBase: proxy.EchoBase}}
			psrv, err := proxy.New(ps, start(proxy.ServiceName))
			if err != nil {
				t.Fatal(err)
			}
			proxyHTTP := httptest.NewServer(psrv.Handler())
			t.Cleanup(proxyHTTP.Close)
			is := interceptor.DefaultSettings()
			is.Target, is.UserID = proxyHTTP.URL, "memory-user"
			isrv, err := interceptor.New(is, start(interceptor.ServiceName))
			if err != nil {
				t.Fatal(err)
			}
			icHTTP := httptest.NewServer(isrv.Handler())
			t.Cleanup(icHTTP.Close)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
			t.Cleanup(client.CloseIdleConnections)
			drive := func(n int) {
				var wg sync.WaitGroup
				var failed atomic.Int64
				for range 4 {
					wg.Go(func() {
						for range n / 4 {
							resp, err := client.Post(icHTTP.URL+"/v1/chat/completions", "application/json",
								strings.NewReader(`{"model":"echo-model","messages":[{"role":"user","content":"hello memory"}]}`))
							if err != nil {
								failed.Add(1)
								continue
							}
							_, _ = io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							if resp.StatusCode != 200 {
								failed.Add(1)
							}
						}
					})
				}
				wg.Wait()
				if n := failed.Load(); n > 0 {
					t.Fatalf("%d requests failed", n)
				}
			}
			heap := func() uint64 {
				var m runtime.MemStats
				runtime.GC()
				runtime.GC()
				runtime.ReadMemStats(&m)
				return m.HeapAlloc
			}
			drive(1000) // fills the queues and the pools
			before := heap()
			start0 := time.Now()
			drive(memoryRequests)
			after := heap()
			growth := int64(after) - int64(before)
			t.Logf("%s collector: %d requests in %v; heap after GC %.1f MiB -> %.1f MiB (growth %.2f MiB, bound %d MiB); %d export errors so far",
				f.name, memoryRequests, time.Since(start0).Round(time.Millisecond), mib(before), mib(after), float64(growth)/(1<<20), memoryBound>>20, exportErrors.Load())
			if growth > memoryBound {
				t.Errorf("%s collector: the heap grew by %.1f MiB over %d requests, over the bound of %d MiB", f.name, float64(growth)/(1<<20), memoryRequests, memoryBound>>20)
			}
		})
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
