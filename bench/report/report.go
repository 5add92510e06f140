// Package report parses `go test -bench` output and prints the
// performance table: figure | ours | baseline | ratio | target | met?.
package report

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/otelcfg/otelcfg/bench/load"
)

// Bench is every run of one benchmark: unit ("ns/op", "allocs/op",
// "B/op", custom units) → one value per run.
type Bench map[string][]float64

// Median returns the median of unit over the runs, and whether there were
// any.
func (b Bench) Median(unit string) (float64, bool) {
	v := b[unit]
	return load.Median(v), len(v) > 0
}

// ParseGoBench reads `go test -bench` output and groups the result lines
// by benchmark name, without the -GOMAXPROCS suffix
// ("BenchmarkLoad/example-2" → "BenchmarkLoad/example"). Other lines are
// ignored.
func ParseGoBench(r io.Reader) (map[string]Bench, error) {
	out := map[string]Bench{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// name, iterations, then value/unit pairs.
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			continue
		}
		name := trimProcs(f[0])
		b := out[name]
		if b == nil {
			b = Bench{}
			out[name] = b
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			b[f[i+1]] = append(b[f[i+1]], v)
		}
	}
	return out, sc.Err()
}

// trimProcs drops the "-N" GOMAXPROCS suffix of a benchmark name.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}

// Verdict of a row.
const (
	Met     = "yes"
	Missed  = "NO"
	Skipped = "skipped"
	Noise   = "n/a (noise)"
	Info    = "—"
)

// Row is one line of the table.
type Row struct {
	Figure   string
	Ours     string
	Baseline string
	Ratio    string
	Target   string
	Met      string
	// Note explains a skipped row or qualifies the figure; printed under
	// the table.
	Note string
}

// RatioRow builds a row whose verdict is ours/baseline compared with
// limit: at most limit when atMost, else at least limit. format prints the
// two values.
func RatioRow(figure string, ours, baseline float64, format func(float64) string, target string, limit float64, atMost bool) Row {
	r := Row{Figure: figure, Ours: format(ours), Baseline: format(baseline), Target: target}
	if baseline <= 0 || math.IsNaN(ours) || math.IsNaN(baseline) {
		// A difference of percentiles (added latency) can come out at or
		// below zero when the machine is noisy: no ratio to judge.
		r.Ratio, r.Met = "n/a", Noise
		return r
	}
	ratio := ours / baseline
	r.Ratio = fmt.Sprintf("%.2f×", ratio)
	ok := ratio <= limit
	if !atMost {
		ok = ratio >= limit
	}
	r.Met = Missed
	if ok {
		r.Met = Met
	}
	return r
}

// SkipRow is a row that could not be measured, with the reason.
func SkipRow(figure, target, why string) Row {
	return Row{Figure: figure, Ours: "—", Baseline: "—", Ratio: "—", Target: target, Met: Skipped, Note: why}
}

// Write prints rows as a Markdown table (readable as plain text too), then
// the notes.
func Write(w io.Writer, rows []Row) error {
	head := Row{Figure: "figure", Ours: "ours", Baseline: "baseline", Ratio: "ratio", Target: "target", Met: "met?"}
	cols := func(r Row) []string { return []string{r.Figure, r.Ours, r.Baseline, r.Ratio, r.Target, r.Met} }
	width := make([]int, 6)
	for _, r := range append([]Row{head}, rows...) {
		for i, c := range cols(r) {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	line := func(cells []string) string {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cells {
			b.WriteString(" " + c + strings.Repeat(" ", width[i]-len([]rune(c))) + " |")
		}
		return b.String() + "\n"
	}
	var b strings.Builder
	b.WriteString(line(cols(head)))
	sep := make([]string, 6)
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	b.WriteString(line(sep))
	for _, r := range rows {
		b.WriteString(line(cols(r)))
	}
	n := 0
	for _, r := range rows {
		if r.Note != "" {
			if n == 0 {
				b.WriteString("\n")
			}
			n++
			fmt.Fprintf(&b, "- %s: %s\n", r.Figure, r.Note)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Formats for the table's values.
func Nanos(v float64) string  { return fmt.Sprintf("%.0f ns/op", v) }
func Allocs(v float64) string { return fmt.Sprintf("%.0f allocs/op", v) }
func Micros(v float64) string { return fmt.Sprintf("%.0f µs", v) }
func Millis(v float64) string { return fmt.Sprintf("%.1f ms", v) }
func PerSec(v float64) string { return fmt.Sprintf("%.0f req/s", v) }
func MiB(v float64) string    { return fmt.Sprintf("%.1f MiB", v) }
func Count(v float64) string  { return fmt.Sprintf("%.0f", v) }
