package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/otelcfg/otelcfg/bench/report"
)

// microPattern selects the benchmarks of ./bench behind the table.
const microPattern = `^(BenchmarkLoad|BenchmarkParseYAML|BenchmarkSlogInfoContext|BenchmarkSlogInfoContextConsole|BenchmarkSlogInfoContextStalled|BenchmarkSlogJSONDiscard)$`

// micro runs the micro benchmarks: the test binary of ./bench is built
// once (go test -c) and run count times with -test.benchmem
// -test.count=1, so that every benchmark and its baseline alternate
// across rounds instead of running back to back, and drift on the machine
// hits both alike. The output, concatenated, is what go test -count would
// print (benchstat reads it); it is kept in the out directory.
func (c *config) micro() ([]report.Row, error) {
	raw := filepath.Join(c.out, "micro.txt")
	bin := filepath.Join(c.out, "bench.test")
	build := exec.Command("go", "test", "-c", "-o", bin, "./bench/")
	build.Dir = c.repo
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("go test -c: %w", err)
	}
	f, err := os.Create(raw)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	for i := range c.count {
		fmt.Fprintf(os.Stderr, "bench: micro round %d/%d\n", i+1, c.count)
		cmd := exec.Command(bin, "-test.run", "^$", "-test.bench", microPattern, "-test.benchmem",
			"-test.count", "1", "-test.timeout", "10m")
		// The test binary runs in its package directory, as go test does
		// (the conformance files are found relative to it).
		cmd.Dir = filepath.Join(c.repo, "bench")
		cmd.Env = cleanEnv()
		cmd.Stdout = f
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%s: %w (output in %s)", bin, err, raw)
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	res, err := report.ParseGoBench(f)
	if err != nil {
		return nil, err
	}
	get := func(name, unit string) (float64, bool) {
		b, ok := res[name]
		if !ok {
			return 0, false
		}
		return b.Median(unit)
	}

	var rows []report.Row
	for _, in := range []struct{ sub, label string }{
		{"example", "examples/otel.yaml"},
		{"conformance", "otel-sdk-migration-config.yaml"},
	} {
		ns, ok := get("BenchmarkLoad/"+in.sub, "ns/op")
		base, okb := get("BenchmarkParseYAML/"+in.sub, "ns/op")
		if !ok || !okb {
			why := "no result; see " + raw
			if in.sub == "conformance" {
				why = "the conformance files are absent (" + c.conformance + ")"
			}
			rows = append(rows, report.SkipRow("load+validate "+in.label+", time", "≤ 3×", why),
				report.SkipRow("load+validate "+in.label+", allocs", "≤ 3×", why))
			continue
		}
		rows = append(rows, report.RatioRow("load+validate "+in.label+", time", ns, base, report.Nanos, "≤ 3×", 3, true))
		a, _ := get("BenchmarkLoad/"+in.sub, "allocs/op")
		ab, _ := get("BenchmarkParseYAML/"+in.sub, "allocs/op")
		rows = append(rows, report.RatioRow("load+validate "+in.label+", allocs", a, ab, report.Allocs, "≤ 3×", 3, true))
	}

	ns, ok := get("BenchmarkSlogInfoContext", "ns/op")
	base, okb := get("BenchmarkSlogJSONDiscard", "ns/op")
	if !ok || !okb {
		return append(rows, report.SkipRow("slog.InfoContext → OTLP", "≤ 2×", "no result; see "+raw)), nil
	}
	r := report.RatioRow("slog.InfoContext (3 attrs, in a span) → bridge → batch → OTLP, time", ns, base, report.Nanos, "≤ 2×", 2, true)
	if exp, ok := get("BenchmarkSlogInfoContext", "export-ns/op"); ok {
		r.Note = fmt.Sprintf("the caller's cost; exporting each record to the receiver costs another %.0f ns off the caller's goroutine (batched, ForceFlush timed apart)", exp)
	}
	rows = append(rows, r)
	allocs, _ := get("BenchmarkSlogInfoContext", "allocs/op")
	ballocs, _ := get("BenchmarkSlogJSONDiscard", "allocs/op")
	ar := report.Row{Figure: "slog.InfoContext → OTLP, allocs", Ours: report.Allocs(allocs), Baseline: report.Allocs(ballocs),
		Ratio: "—", Target: "≤ 2 allocs/op", Met: report.Missed}
	if allocs <= 2 {
		ar.Met = report.Met
	}
	rows = append(rows, ar)

	if cons, ok := get("BenchmarkSlogInfoContextConsole", "ns/op"); ok {
		cr := report.RatioRow("slog.InfoContext → OTLP and the console (the services' setup), time", cons, base, report.Nanos, "— (informational)", 0, true)
		ca, _ := get("BenchmarkSlogInfoContextConsole", "allocs/op")
		cr.Met = report.Info
		cr.Note = fmt.Sprintf("%.0f allocs/op; the console writes the human-readable line (to io.Discard here) besides the bridge", ca)
		rows = append(rows, cr)
	}

	stalled, ok := get("BenchmarkSlogInfoContextStalled", "ns/op")
	dropped, _ := get("BenchmarkSlogInfoContextStalled", "dropped/op")
	if ok {
		sr := report.RatioRow("slog.InfoContext while every export hangs (full queue)", stalled, ns, report.Nanos, "never blocks (≤ 2× the live call), drops counted", 2, true)
		sr.Baseline += " (live)"
		if dropped <= 0 {
			sr.Met = report.Missed
		}
		sr.Note = fmt.Sprintf("the SDK reported %.0f%% of the calls' records dropped while the receiver held each export for 200 ms", dropped*100)
		rows = append(rows, sr)
	}
	return rows, nil
}
