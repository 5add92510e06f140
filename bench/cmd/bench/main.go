// Command bench runs every figure of the performance table (issue 7) and
// prints one table: figure | ours | baseline | ratio | target | met?.
// `make bench` builds the binaries it needs and runs it; see BENCHMARKS.md.
//
// Every figure is a ratio against a baseline measured in the same run on
// the same machine; timings are medians of several runs, interleaved with
// their baseline's so that drift on the machine hits both alike. The
// servers it loads are processes on loopback (bin/proxy, bin/interceptor,
// bin/bench-bareproxy); the upstream (the proxy's builtin echo served over
// HTTP) and the OTLP receiver run in this process.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/otelcfg/otelcfg/bench/report"
)

type config struct {
	bin         string // bin/ with proxy, interceptor, otelcfg, bench-parseyaml, bench-bareproxy
	repo        string // repository root
	conformance string // directory of the official example files
	out         string // raw outputs (go test -bench text, logs)
	count       int    // -count of the micro benchmarks
	rounds      int    // rounds of each HTTP figure
	procRuns    int    // runs of each process timing
	rssRequests int    // requests before the RSS reading
	only        string // comma-separated sections to run (default all)
	w           io.Writer
}

func main() {
	var c config
	flag.StringVar(&c.bin, "bin", "bin", "directory of the built binaries")
	flag.StringVar(&c.repo, "repo", ".", "repository root")
	flag.StringVar(&c.conformance, "conformance", "", "directory of the official example files (default ../shared/conformance/upstream-v1.0 from the repository root)")
	flag.StringVar(&c.out, "out", "", "directory for raw outputs (default a temporary directory)")
	flag.IntVar(&c.count, "count", 5, "-count of the micro benchmarks")
	flag.IntVar(&c.rounds, "rounds", 5, "rounds of each HTTP figure (median reported)")
	flag.IntVar(&c.procRuns, "runs", 11, "runs of each process timing (median reported)")
	flag.IntVar(&c.rssRequests, "rss-requests", 100_000, "requests sent before reading the proxy's RSS")
	flag.StringVar(&c.only, "only", "", "run only these sections: micro,validate,startup,latency,throughput,memory; or breakdown (CPU per request of the proxy with each part of its telemetry off, not part of the table)")
	flag.Parse()
	c.w = os.Stdout
	if err := run(&c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func (c *config) want(section string) bool {
	if c.only == "" {
		// The breakdown explains the table; it is not one of its figures.
		return section != "breakdown"
	}
	for _, s := range strings.Split(c.only, ",") {
		if strings.TrimSpace(s) == section {
			return true
		}
	}
	return false
}

func run(c *config) error {
	var err error
	if c.repo, err = filepath.Abs(c.repo); err != nil {
		return err
	}
	if c.bin, err = filepath.Abs(c.bin); err != nil {
		return err
	}
	if c.conformance == "" {
		c.conformance = filepath.Join(c.repo, "..", "shared", "conformance", "upstream-v1.0")
	}
	if c.out == "" {
		if c.out, err = os.MkdirTemp("", "otelcfg-bench-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	for _, b := range []string{"proxy", "interceptor", "otelcfg", "bench-parseyaml", "bench-bareproxy"} {
		if _, err := os.Stat(filepath.Join(c.bin, b)); err != nil {
			return fmt.Errorf("%v (run `make bench`, which builds it)", err)
		}
	}

	start := time.Now()
	fmt.Fprintln(c.w, machine(c.repo))
	fmt.Fprintf(c.w, "raw outputs: %s\n\n", c.out)

	var rows []report.Row
	failed := false
	// A section that fails becomes a row saying so; the others still run,
	// and the table is printed.
	section := func(name string, f func() ([]report.Row, error)) {
		if !c.want(name) {
			return
		}
		t := time.Now()
		fmt.Fprintf(os.Stderr, "bench: %s...\n", name)
		rs, err := f()
		if err != nil {
			failed = true
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", name, err)
			rows = append(rows, report.Row{Figure: name, Ours: "—", Baseline: "—", Ratio: "—", Target: "—", Met: "error", Note: firstLine(err.Error())})
			return
		}
		fmt.Fprintf(os.Stderr, "bench: %s done in %s\n", name, time.Since(t).Round(time.Second))
		rows = append(rows, rs...)
	}
	for _, s := range []struct {
		name string
		f    func() ([]report.Row, error)
	}{
		{"micro", c.micro},
		{"validate", c.validate},
		{"startup", c.startup},
		{"latency", c.latency},
		{"throughput", c.throughput},
		{"memory", c.memory},
		{"breakdown", c.breakdown},
	} {
		section(s.name, s.f)
	}
	if err := report.Write(c.w, rows); err != nil {
		return err
	}
	fmt.Fprintf(c.w, "\nload average after the run: %s; total %s\n", loadAvg(), time.Since(start).Round(time.Second))
	if failed {
		return fmt.Errorf("some figures could not be measured (see above)")
	}
	return nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// machine describes where the figures come from.
func machine(repo string) string {
	cpu := "unknown cpu"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	rev := "unknown"
	if out, err := exec.Command("git", "-C", repo, "rev-parse", "--short", "HEAD").Output(); err == nil {
		rev = strings.TrimSpace(string(out))
		if out, err := exec.Command("git", "-C", repo, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
			rev += " (+ uncommitted changes)"
		}
	}
	return fmt.Sprintf("machine: %s, %d cores (GOMAXPROCS %d), %s %s/%s, commit %s, %s; load average before: %s",
		cpu, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH, rev,
		time.Now().UTC().Format("2006-01-02 15:04 MST"), loadAvg())
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// withTimeout is a context for one step, bounded so that a stuck server
// cannot hang `make bench`.
func withTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
