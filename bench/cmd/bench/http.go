package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"time"

	"github.com/otelcfg/otelcfg/bench/load"
	"github.com/otelcfg/otelcfg/bench/report"
	"github.com/otelcfg/otelcfg/internal/otlptest"
	"github.com/otelcfg/otelcfg/internal/proxy"
	"github.com/otelcfg/otelcfg/otelconfig"
)

// chatBody is the request of every HTTP figure: a small non-streamed chat
// completion for the model "bench".
const chatBody = `{"model":"bench","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"benchmark one proxy hop please"}]}`

const chatPath = "/v1/chat/completions"

func chatTarget(base string) load.Target {
	return load.Target{
		Method: http.MethodPost, URL: base + chatPath, Body: []byte(chatBody),
		Header: http.Header{"Content-Type": {"application/json"}, "User-Agent": {"otelcfg-bench"}},
	}
}

// upstream serves the proxy's builtin echo completion over HTTP on
// loopback: an OpenAI-compatible upstream that costs the same whoever
// calls it.
type upstream struct {
	url string
	srv *http.Server
}

func startUpstream() (*upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &upstream{url: "http://" + ln.Addr().String(), srv: &http.Server{Handler: proxy.EchoHandler(), ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = u.srv.Serve(ln) }()
	return u, nil
}

func (u *upstream) close() { _ = u.srv.Close() }

// stack is every server of the HTTP figures: the upstream, the OTLP
// receiver, the proxy and the interceptor (telemetry on: examples/otel.yaml
// with OTEL_EXPORTER_OTLP_ENDPOINT at the receiver) and two bare
// reverse-proxy hops (bare1 → upstream, bare2 → bare1), and the same two
// hops wrapped in otelhttp with telemetry on (floor1 → upstream, floor2 →
// floor1): what the instrumentation DESIGN.md asks for costs any hop.
type stack struct {
	up                       *upstream
	rcv                      *otlptest.Receiver
	prx, icp, bare1, bare2   *proc
	floor1, floor2           *proc
	proxyURL, interceptorURL string
	bare1URL, bare2URL       string
	floor1URL, floor2URL     string
}

func (c *config) startStack() (*stack, error) {
	s := &stack{}
	ok := false
	defer func() {
		if !ok {
			s.stop()
		}
	}()
	var err error
	if s.up, err = startUpstream(); err != nil {
		return nil, err
	}
	if s.rcv, err = otlptest.Start(otlptest.ProtocolGRPC); err != nil {
		return nil, err
	}
	s.rcv.SetMaxItems(0) // count only: a long run must not grow this process
	otlpEnv := cleanEnv("OTEL_EXPORTER_OTLP_ENDPOINT=" + s.rcv.Endpoint())

	settings, err := c.writeProxySettings("http", s.up.url+"/v1", 90*time.Second)
	if err != nil {
		return nil, err
	}
	addrs := make([]string, 6)
	for i := range addrs {
		if addrs[i], err = freeAddr(); err != nil {
			return nil, err
		}
	}
	bare := filepath.Join(c.bin, "bench-bareproxy")
	if s.bare1, err = startProc("bare hop 1", addrs[0], cleanEnv(), bare, "--listen", addrs[0], "--target", s.up.url); err != nil {
		return nil, err
	}
	if s.bare2, err = startProc("bare hop 2", addrs[1], cleanEnv(), bare, "--listen", addrs[1], "--target", "http://"+addrs[0]); err != nil {
		return nil, err
	}
	if s.floor1, err = startProc("otelhttp hop 1", addrs[4], otlpEnv, bare, "--otel", "--listen", addrs[4], "--target", s.up.url); err != nil {
		return nil, err
	}
	if s.floor2, err = startProc("otelhttp hop 2", addrs[5], otlpEnv, bare, "--otel", "--listen", addrs[5], "--target", "http://"+addrs[4]); err != nil {
		return nil, err
	}
	if s.prx, err = startProc("proxy", addrs[2], otlpEnv, filepath.Join(c.bin, "proxy"), "--config", settings, "--listen", addrs[2]); err != nil {
		return nil, err
	}
	if s.icp, err = startProc("interceptor", addrs[3], otlpEnv, filepath.Join(c.bin, "interceptor"), "run",
		"--listen", addrs[3], "--target", "http://"+addrs[2], "--user-id", "bench",
		"--otel-config", filepath.Join(c.repo, "examples", "otel.yaml")); err != nil {
		return nil, err
	}
	s.bare1URL, s.bare2URL = "http://"+addrs[0], "http://"+addrs[1]
	s.proxyURL, s.interceptorURL = "http://"+addrs[2], "http://"+addrs[3]
	s.floor1URL, s.floor2URL = "http://"+addrs[4], "http://"+addrs[5]
	ok = true
	return s, nil
}

func (s *stack) stop() {
	for _, p := range []*proc{s.icp, s.prx, s.floor2, s.floor1, s.bare2, s.bare1} {
		p.stop()
	}
	if s.rcv != nil {
		s.rcv.Close()
	}
	if s.up != nil {
		s.up.close()
	}
}

// runLoad is one bounded load run against base.
func runLoad(base string, conc, requests, warmup int) (load.Result, error) {
	ctx, cancel := withTimeout(2 * time.Minute)
	defer cancel()
	res, err := load.Run(ctx, chatTarget(base), load.Options{Concurrency: conc, Requests: requests, Warmup: warmup, Duration: time.Minute})
	if err != nil {
		return res, err
	}
	if res.Errors > 0 {
		return res, fmt.Errorf("%s: %d errors, first: %s", base, res.Errors, res.FirstError)
	}
	if res.Count() < requests {
		return res, fmt.Errorf("%s: only %d of %d requests within the time bound", base, res.Count(), requests)
	}
	return res, nil
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// latency measures the added latency of one hop, p50 and p99, at
// concurrency 1 and 16: (latency through the hop) − (latency direct to the
// upstream), for the proxy (telemetry on), a bare httputil.ReverseProxy
// and the same wrapped in otelhttp (telemetry on), in rounds that rotate
// the order of the four.
func (c *config) latency() ([]report.Row, error) {
	s, err := c.startStack()
	if err != nil {
		return nil, err
	}
	defer s.stop()
	var rows []report.Row
	cpu0, err := s.cpu()
	if err != nil {
		return nil, err
	}
	served := 0
	for _, lc := range []struct{ conc, requests, warmup int }{{1, 3000, 300}, {16, 16000, 1600}} {
		served += c.rounds * (lc.requests + lc.warmup)
		var oursP50, oursP99, bareP50, bareP99, floorP50, floorP99 []float64
		var dirP50, dirP99 []float64
		targets := []string{s.up.url, s.bare1URL, s.proxyURL, s.floor1URL}
		for round := range c.rounds {
			res := map[string]load.Result{}
			for i := range targets {
				t := targets[(i+round)%len(targets)]
				r, err := runLoad(t, lc.conc, lc.requests, lc.warmup)
				if err != nil {
					return nil, err
				}
				res[t] = r
			}
			d, b, p, f := res[s.up.url], res[s.bare1URL], res[s.proxyURL], res[s.floor1URL]
			floorP50 = append(floorP50, us(f.P(50)-d.P(50)))
			floorP99 = append(floorP99, us(f.P(99)-d.P(99)))
			dirP50, dirP99 = append(dirP50, us(d.P(50))), append(dirP99, us(d.P(99)))
			bareP50 = append(bareP50, us(b.P(50)-d.P(50)))
			bareP99 = append(bareP99, us(b.P(99)-d.P(99)))
			oursP50 = append(oursP50, us(p.P(50)-d.P(50)))
			oursP99 = append(oursP99, us(p.P(99)-d.P(99)))
		}
		r50 := report.RatioRow(fmt.Sprintf("added latency of the proxy hop, telemetry on, c=%d, p50", lc.conc),
			load.Median(oursP50), load.Median(bareP50), report.Micros, "≤ 1.3×", 1.3, true)
		r50.Note = fmt.Sprintf("direct to the upstream: p50 %.0f µs, p99 %.0f µs; medians of %d rounds of %d requests (after %d warm-up) per target",
			load.Median(dirP50), load.Median(dirP99), c.rounds, lc.requests, lc.warmup)
		r99 := report.RatioRow(fmt.Sprintf("added latency of the proxy hop, telemetry on, c=%d, p99", lc.conc),
			load.Median(oursP99), load.Median(bareP99), report.Micros, "≤ 1.5×", 1.5, true)
		f50 := report.RatioRow(fmt.Sprintf("added latency of a bare hop in otelhttp, telemetry on, c=%d, p50", lc.conc),
			load.Median(floorP50), load.Median(bareP50), report.Micros, "— (the instrumentation's floor)", 0, true)
		f99 := report.RatioRow(fmt.Sprintf("added latency of a bare hop in otelhttp, telemetry on, c=%d, p99", lc.conc),
			load.Median(floorP99), load.Median(bareP99), report.Micros, "— (the instrumentation's floor)", 0, true)
		for _, r := range []*report.Row{&f50, &f99} {
			if r.Met != report.Noise {
				r.Met = report.Info
			}
		}
		rows = append(rows, r50, r99, f50, f99)
	}
	time.Sleep(1500 * time.Millisecond) // the last batches are exported
	cpu1, err := s.cpu()
	if err != nil {
		return nil, err
	}
	rows[0].Note += fmt.Sprintf("; CPU per request (user+system, whole process, exports included): proxy %.0f µs, bare hop %.0f µs",
		(cpu1[0]-cpu0[0])/float64(served)*1e6, (cpu1[1]-cpu0[1])/float64(served)*1e6)
	return rows, c.checkReceived(s)
}

// cpu returns the CPU seconds used so far by the proxy and the first bare
// hop.
func (s *stack) cpu() ([2]float64, error) {
	var out [2]float64
	for i, p := range []*proc{s.prx, s.bare1} {
		v, err := cpuSeconds(p.cmd.Process.Pid)
		if err != nil {
			return out, err
		}
		out[i] = v
	}
	return out, nil
}

// checkReceived makes sure telemetry really was on: the receiver got
// spans, log records and (after a metric export interval) metrics.
func (c *config) checkReceived(s *stack) error {
	if s.rcv.Received(otlptest.SignalTraces) == 0 || s.rcv.Received(otlptest.SignalLogs) == 0 {
		return fmt.Errorf("the OTLP receiver got %d spans and %d log records: telemetry was not on",
			s.rcv.Received(otlptest.SignalTraces), s.rcv.Received(otlptest.SignalLogs))
	}
	return nil
}

// throughput compares requests/s through interceptor + proxy with two
// bare reverse-proxy hops, concurrency 16.
func (c *config) throughput() ([]report.Row, error) {
	s, err := c.startStack()
	if err != nil {
		return nil, err
	}
	defer s.stop()
	const conc, requests, warmup = 16, 16000, 1600
	rps := map[string][]float64{}
	cpuBefore, err := s.chainCPU()
	if err != nil {
		return nil, err
	}
	order := []string{s.interceptorURL, s.bare2URL, s.floor2URL}
	for round := range c.rounds {
		for i := range order {
			t := order[(i+round)%len(order)]
			r, err := runLoad(t, conc, requests, warmup)
			if err != nil {
				return nil, err
			}
			rps[t] = append(rps[t], r.RPS())
		}
	}
	ours, base := rps[s.interceptorURL], rps[s.bare2URL]
	r := report.RatioRow("requests/s through interceptor + proxy, telemetry on, c=16", load.Median(ours), load.Median(base), report.PerSec, "≥ 0.8×", 0.8, false)
	r.Baseline += " (2 bare hops)"
	time.Sleep(1500 * time.Millisecond)
	cpuAfter, err := s.chainCPU()
	if err != nil {
		return nil, err
	}
	n := float64(c.rounds * (requests + warmup))
	r.Note = fmt.Sprintf("medians of %d rounds of %d requests (after %d warm-up); CPU per request of the two hops together: interceptor + proxy %.0f µs, bare hops %.0f µs",
		c.rounds, requests, warmup, (cpuAfter[0]-cpuBefore[0])/n*1e6, (cpuAfter[1]-cpuBefore[1])/n*1e6)
	f := report.RatioRow("requests/s through two bare hops in otelhttp, telemetry on, c=16", load.Median(rps[s.floor2URL]), load.Median(base), report.PerSec, "— (the instrumentation's floor)", 0, false)
	f.Baseline += " (2 bare hops)"
	if f.Met != report.Noise {
		f.Met = report.Info
	}
	return []report.Row{r, f}, c.checkReceived(s)
}

// chainCPU returns the CPU seconds used so far by interceptor + proxy and
// by the two bare hops.
func (s *stack) chainCPU() ([2]float64, error) {
	var out [2]float64
	for i, pair := range [][2]*proc{{s.icp, s.prx}, {s.bare2, s.bare1}} {
		for _, p := range pair {
			v, err := cpuSeconds(p.cmd.Process.Pid)
			if err != nil {
				return out, err
			}
			out[i] += v
		}
	}
	return out, nil
}

// memory reads the proxy's RSS at idle and after rssRequests requests (a
// process, telemetry on), then counts goroutines before and after load in
// an in-process proxy.
func (c *config) memory() ([]report.Row, error) {
	rows, err := c.rss()
	if err != nil {
		return nil, err
	}
	g, err := c.goroutines()
	if err != nil {
		return nil, err
	}
	return append(rows, g), nil
}

func (c *config) rss() ([]report.Row, error) {
	up, err := startUpstream()
	if err != nil {
		return nil, err
	}
	defer up.close()
	rcv, err := otlptest.Start(otlptest.ProtocolGRPC)
	if err != nil {
		return nil, err
	}
	defer rcv.Close()
	rcv.SetMaxItems(0)
	settings, err := c.writeProxySettings("rss", up.url+"/v1", 90*time.Second)
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p, err := startProc("proxy", addr, cleanEnv("OTEL_EXPORTER_OTLP_ENDPOINT="+rcv.Endpoint()), filepath.Join(c.bin, "proxy"), "--config", settings, "--listen", addr)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	time.Sleep(time.Second) // idle: booted, listening, nothing served
	idle, err := rssMiB(p.cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	res, err := runLoad("http://"+addr, 16, c.rssRequests, 0)
	if err != nil {
		return nil, err
	}
	after, err := rssMiB(p.cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	r := report.Row{
		Figure:   fmt.Sprintf("proxy RSS after %d requests (c=16, telemetry on)", c.rssRequests),
		Ours:     report.MiB(after),
		Baseline: report.MiB(idle) + " (idle)",
		Ratio:    fmt.Sprintf("+%.1f MiB", after-idle),
		Target:   "growth < 20 MiB",
		Met:      report.Missed,
		Note:     fmt.Sprintf("VmRSS of the bin/proxy process; the load ran at %.0f req/s", res.RPS()),
	}
	if after-idle < 20 {
		r.Met = report.Met
	}
	return []report.Row{r}, nil
}

type flusher interface{ ForceFlush(context.Context) error }

// goroutines runs the proxy in this process (proxy.New + Serve, the same
// code bin/proxy runs) and counts goroutines at idle and after a load,
// once the clients have closed their connections and the upstream's idle
// connections have expired (idle_conn_timeout 1s here, to keep the wait
// short).
func (c *config) goroutines() (report.Row, error) {
	const figure = "goroutines after load stops (in-process proxy, c=16)"
	up, err := startUpstream()
	if err != nil {
		return report.Row{}, err
	}
	defer up.close()
	rcv, err := otlptest.Start(otlptest.ProtocolGRPC)
	if err != nil {
		return report.Row{}, err
	}
	defer rcv.Close()
	rcv.SetMaxItems(0)
	cold := runtime.NumGoroutine()

	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.Endpoint()}
	tel, err := otelconfig.Start(context.Background(),
		otelconfig.WithFile(filepath.Join(c.repo, "examples", "otel.yaml")),
		otelconfig.WithEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }),
		otelconfig.WithServiceName(proxy.ServiceName),
		otelconfig.WithoutGlobals(), otelconfig.WithConsole(io.Discard))
	if err != nil {
		return report.Row{}, err
	}
	defer func() {
		ctx, cancel := withTimeout(5 * time.Second)
		defer cancel()
		_ = tel.Shutdown(ctx)
	}()
	settings := proxy.DefaultSettings()
	settings.Listen = "127.0.0.1:0"
	settings.Models = []proxy.ModelSettings{{Name: "bench", APIBase: up.url + "/v1"}}
	settings.Upstream.IdleConnTimeout = time.Second
	srv, err := proxy.New(settings, tel)
	if err != nil {
		return report.Row{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return report.Row{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()
	base := "http://" + ln.Addr().String()

	flush := func() {
		ctx, cancel := withTimeout(10 * time.Second)
		defer cancel()
		for _, p := range []any{tel.TracerProvider(), tel.MeterProvider(), tel.LoggerProvider()} {
			if f, ok := p.(flusher); ok {
				_ = f.ForceFlush(ctx)
			}
		}
	}
	settle := func(limit int, within time.Duration) (int, time.Duration) {
		start := time.Now()
		n := runtime.NumGoroutine()
		for n > limit && time.Since(start) < within {
			time.Sleep(50 * time.Millisecond)
			n = runtime.NumGoroutine()
		}
		return n, time.Since(start)
	}
	// Idle is the proxy at rest after some traffic: its exporters have
	// connected to the receiver, the clients and upstream connections
	// are gone.
	if _, err := runLoad(base, 16, 500, 0); err != nil {
		return report.Row{}, err
	}
	flush()
	time.Sleep(1500 * time.Millisecond)
	idle := runtime.NumGoroutine()

	if _, err := runLoad(base, 16, 20000, 0); err != nil {
		return report.Row{}, err
	}
	peak := runtime.NumGoroutine() // load.Run has closed its client's connections
	flush()
	after, took := settle(idle, 15*time.Second)
	r := report.Row{Figure: figure, Ours: report.Count(float64(after)), Baseline: report.Count(float64(idle)) + " (idle)",
		Ratio: fmt.Sprintf("%+d", after-idle), Target: "back to the idle count", Met: report.Missed,
		Note: fmt.Sprintf("%d right after 20000 requests, back to %d within %s (upstream idle_conn_timeout 1s); %d before the proxy started, in this process that also runs the upstream, the receiver and the load generator",
			peak, after, took.Round(10*time.Millisecond), cold)}
	if after <= idle {
		r.Met = report.Met
	}
	return r, nil
}
