package report

import (
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/otelcfg/otelcfg/bench
cpu: Intel(R) Xeon(R) Processor
BenchmarkLoad/example-2             	    3926	    305104 ns/op	  123661 B/op	    1717 allocs/op
BenchmarkLoad/example-2             	    3900	    300000 ns/op	  123661 B/op	    1717 allocs/op
BenchmarkLoad/example-2             	    3900	    310000 ns/op	  123661 B/op	    1719 allocs/op
BenchmarkSlogInfoContext-2   	  736396	      1579 ns/op	      6062 export-ns/op	     832 B/op	       2 allocs/op
BenchmarkNoProcs	  10	      7.5 ns/op
2026/11/25 21:46:43 some log line
PASS
ok  	github.com/otelcfg/otelcfg/bench	17.543s
`

func TestParseGoBench(t *testing.T) {
	got, err := ParseGoBench(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d benchmarks, want 3: %v", len(got), got)
	}
	if m, _ := got["BenchmarkLoad/example"].Median("ns/op"); m != 305104 {
		t.Errorf("median ns/op = %v, want 305104", m)
	}
	if m, _ := got["BenchmarkLoad/example"].Median("allocs/op"); m != 1717 {
		t.Errorf("median allocs/op = %v, want 1717", m)
	}
	if m, ok := got["BenchmarkSlogInfoContext"].Median("export-ns/op"); !ok || m != 6062 {
		t.Errorf("custom unit: %v %v", m, ok)
	}
	if _, ok := got["BenchmarkNoProcs"].Median("ns/op"); !ok {
		t.Error("a name without -N suffix is kept as is")
	}
	if _, ok := got["BenchmarkLoad/example"].Median("MB/s"); ok {
		t.Error("an absent unit reports no value")
	}
}

func TestRatioRow(t *testing.T) {
	r := RatioRow("x", 3, 2, Count, "≤ 1.5×", 1.5, true)
	if r.Ratio != "1.50×" || r.Met != Met {
		t.Errorf("at the limit: %+v", r)
	}
	r = RatioRow("x", 3.1, 2, Count, "≤ 1.5×", 1.5, true)
	if r.Met != Missed {
		t.Errorf("over the limit: %+v", r)
	}
	r = RatioRow("x", 8, 10, Count, "≥ 0.8×", 0.8, false)
	if r.Met != Met {
		t.Errorf("at least: %+v", r)
	}
	r = RatioRow("x", 1, 0, Count, "≤ 2×", 2, true)
	if r.Met != Noise || r.Ratio != "n/a" {
		t.Errorf("zero baseline: %+v", r)
	}
	r = RatioRow("x", 1, -3, Count, "≤ 2×", 2, true)
	if r.Met != Noise {
		t.Errorf("negative baseline: %+v", r)
	}
}

func TestWrite(t *testing.T) {
	var b strings.Builder
	rows := []Row{
		RatioRow("load", 2, 1, Count, "≤ 3×", 3, true),
		SkipRow("validate", "≤ 1.5×", "conformance files absent"),
	}
	if err := Write(&b, rows); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(lines[0], "| figure") || !strings.HasPrefix(lines[1], "| ---") {
		t.Errorf("header:\n%s", out)
	}
	if !strings.Contains(out, "- validate: conformance files absent") {
		t.Errorf("notes:\n%s", out)
	}
	// Every table line has the same width.
	for _, l := range lines[:4] {
		if len([]rune(l)) != len([]rune(lines[0])) {
			t.Errorf("ragged table:\n%s", out)
		}
	}
}
