// Package waterfall renders one trace as text: each span on a line with its
// service, its name indented under its parent, and a bar whose position and
// length are proportional to its start and duration; each log record
// written inside a span is printed under it.
package waterfall

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/otelcfg/otelcfg/internal/otlptest"
)

// Options controls Render.
type Options struct {
	// Width is the number of columns of the bar (default 40).
	Width int
}

// TraceIDs returns the trace ids found in spans, in the order their
// earliest span started.
func TraceIDs(spans []otlptest.Span) []string {
	first := map[string]time.Time{}
	for _, s := range spans {
		if t, ok := first[s.TraceID]; !ok || s.StartTime.Before(t) {
			first[s.TraceID] = s.StartTime
		}
	}
	ids := make([]string, 0, len(first))
	for id := range first {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return first[ids[i]].Before(first[ids[j]]) })
	return ids
}

// Render writes the waterfall of trace id.
func Render(w io.Writer, traceID string, spans []otlptest.Span, logs []otlptest.LogRecord, opt Options) error {
	if opt.Width <= 0 {
		opt.Width = 40
	}
	var ts []otlptest.Span
	for _, s := range spans {
		if s.TraceID == traceID {
			ts = append(ts, s)
		}
	}
	if len(ts) == 0 {
		_, err := fmt.Fprintf(w, "trace %s: no spans\n", traceID)
		return err
	}
	start, end := ts[0].StartTime, ts[0].EndTime
	ids := map[string]bool{}
	for _, s := range ts {
		ids[s.SpanID] = true
		if s.StartTime.Before(start) {
			start = s.StartTime
		}
		if s.EndTime.After(end) {
			end = s.EndTime
		}
	}
	total := end.Sub(start)
	if total <= 0 {
		total = time.Nanosecond
	}
	children := map[string][]otlptest.Span{}
	var roots []otlptest.Span
	for _, s := range ts {
		if s.ParentSpanID == "" || !ids[s.ParentSpanID] {
			roots = append(roots, s)
		} else {
			children[s.ParentSpanID] = append(children[s.ParentSpanID], s)
		}
	}
	byStart := func(ss []otlptest.Span) {
		sort.SliceStable(ss, func(i, j int) bool { return ss[i].StartTime.Before(ss[j].StartTime) })
	}
	byStart(roots)
	spanLogs := map[string][]otlptest.LogRecord{}
	for _, l := range logs {
		if l.TraceID == traceID {
			spanLogs[l.SpanID] = append(spanLogs[l.SpanID], l)
		}
	}

	type line struct {
		svc, name, bar, dur string
		logs                []otlptest.LogRecord
		depth               int
	}
	var lines []line
	var visit func(s otlptest.Span, depth int)
	visit = func(s otlptest.Span, depth int) {
		off := int(float64(s.StartTime.Sub(start)) / float64(total) * float64(opt.Width))
		n := int(float64(s.EndTime.Sub(s.StartTime))/float64(total)*float64(opt.Width) + 0.5)
		off = min(max(off, 0), opt.Width-1)
		n = min(max(n, 1), opt.Width-off)
		bar := strings.Repeat(" ", off) + strings.Repeat("█", n) + strings.Repeat(" ", opt.Width-off-n)
		ls := spanLogs[s.SpanID]
		sort.SliceStable(ls, func(i, j int) bool { return ls[i].Time.Before(ls[j].Time) })
		lines = append(lines, line{svc: s.Resource["service.name"], name: strings.Repeat("  ", depth) + s.Name, bar: bar, dur: formatDuration(s.EndTime.Sub(s.StartTime)), logs: ls, depth: depth})
		kids := children[s.SpanID]
		byStart(kids)
		for _, k := range kids {
			visit(k, depth+1)
		}
	}
	for _, r := range roots {
		visit(r, 0)
	}
	svcW, nameW := len("service"), len("span")
	for _, l := range lines {
		svcW = max(svcW, len(l.svc))
		nameW = max(nameW, len([]rune(l.name)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "trace %s  (%d spans, %s)\n", traceID, len(ts), formatDuration(total))
	fmt.Fprintf(&b, "  %-*s  %-*s  |%s| %s\n", svcW, "service", nameW, "span", strings.Repeat(" ", opt.Width), "duration")
	for _, l := range lines {
		fmt.Fprintf(&b, "  %-*s  %s%s  |%s| %8s\n", svcW, l.svc, l.name, strings.Repeat(" ", nameW-len([]rune(l.name))), l.bar, l.dur)
		for _, lg := range l.logs {
			fmt.Fprintf(&b, "  %-*s  %s  · %s %s%s\n", svcW, "", strings.Repeat("  ", l.depth+1), lg.SeverityText, lg.Body, formatAttrs(lg.Attributes))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func formatAttrs(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, m[k])
	}
	return b.String()
}

func formatDuration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
}
