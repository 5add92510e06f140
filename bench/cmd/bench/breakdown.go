package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/otelcfg/otelcfg/bench/load"
	"github.com/otelcfg/otelcfg/bench/report"
	"github.com/otelcfg/otelcfg/internal/otlptest"
)

// breakdown is not part of the table: it explains it. It runs bin/proxy
// with one part of its telemetry switched off at a time (standard OTEL_*
// variables only) next to a bare hop, and reports the CPU each process
// used per request, so that the cost of each part is the difference
// between two rows. Run it with -only breakdown.
func (c *config) breakdown() ([]report.Row, error) {
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
	settings, err := c.writeProxySettings("breakdown", up.url+"/v1", 90*time.Second)
	if err != nil {
		return nil, err
	}
	ep := "OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.Endpoint()
	variants := []struct {
		name string
		env  []string
		bare []string // bench-bareproxy with these flags instead of bin/proxy
	}{
		{"bare httputil.ReverseProxy hop", nil, []string{}},
		{"bare hop in otelhttp, telemetry on (OTLP): the instrumentation's floor", []string{ep}, []string{"--otel"}},
		{"proxy, OTEL_SDK_DISABLED=true (console logs only)", []string{"OTEL_SDK_DISABLED=true"}, nil},
		{"proxy, OTEL_SDK_DISABLED=true, OTEL_LOG_LEVEL=warn (no logs)", []string{"OTEL_SDK_DISABLED=true", "OTEL_LOG_LEVEL=warn"}, nil},
		{"proxy, telemetry on (OTLP)", []string{ep}, nil},
		{"proxy, telemetry on, OTEL_TRACES_EXPORTER=none", []string{ep, "OTEL_TRACES_EXPORTER=none"}, nil},
		{"proxy, telemetry on, OTEL_LOGS_EXPORTER=none", []string{ep, "OTEL_LOGS_EXPORTER=none"}, nil},
		{"proxy, telemetry on, OTEL_METRICS_EXPORTER=none", []string{ep, "OTEL_METRICS_EXPORTER=none"}, nil},
	}
	procs := make([]*proc, len(variants))
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	for i, v := range variants {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		if v.bare != nil {
			args := append([]string{"--listen", addr, "--target", up.url}, v.bare...)
			procs[i], err = startProc("bare hop", addr, cleanEnv(v.env...), filepath.Join(c.bin, "bench-bareproxy"), args...)
		} else {
			procs[i], err = startProc("proxy", addr, cleanEnv(v.env...), filepath.Join(c.bin, "proxy"), "--config", settings, "--listen", addr)
		}
		if err != nil {
			return nil, err
		}
	}
	const conc, requests, warmup = 16, 16000, 1600
	cpu := make([]float64, len(variants))
	rps := make([][]float64, len(variants))
	for round := range c.rounds {
		for j := range variants {
			i := (j + round) % len(variants)
			p := procs[i]
			before, err := cpuSeconds(p.cmd.Process.Pid)
			if err != nil {
				return nil, err
			}
			r, err := runLoad("http://"+p.addr, conc, requests, warmup)
			if err != nil {
				return nil, err
			}
			time.Sleep(1200 * time.Millisecond) // this run's batches are exported
			after, err := cpuSeconds(p.cmd.Process.Pid)
			if err != nil {
				return nil, err
			}
			cpu[i] += after - before
			rps[i] = append(rps[i], r.RPS())
		}
	}
	var rows []report.Row
	base := cpu[0] / float64(c.rounds*(requests+warmup)) * 1e6
	for i, v := range variants {
		per := cpu[i] / float64(c.rounds*(requests+warmup)) * 1e6
		rows = append(rows, report.Row{Figure: v.name, Ours: fmt.Sprintf("%.0f µs CPU/req", per),
			Baseline: fmt.Sprintf("%.0f µs CPU/req", base), Ratio: fmt.Sprintf("%.2f×", per/base),
			Target: fmt.Sprintf("%.0f req/s", load.Median(rps[i])), Met: report.Info})
	}
	return rows, nil
}
