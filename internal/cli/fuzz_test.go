package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/otelcfg/otelcfg/examples"
)

// FuzzValidateOutput runs `otelcfg validate --format json -` on arbitrary
// file bytes. The output must always be one valid JSON report, and every
// diagnostic's position must lie inside the file: line ≤ the number of
// lines, column ≤ the length of that line (in characters) + 1.
func FuzzValidateOutput(f *testing.F) {
	for _, glob := range []string{"testdata/*.yaml", "../../otelconfig/testdata/*.yaml", "../../examples/*.yaml"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add(examples.OtelYAML)
	f.Add([]byte("file_format: \"1.0\"\r\nresource:\r\n\tattributes: []\r\n"))
	f.Add([]byte("\xef\xbb\xbffile_format: \"1.0\"\nx: \xff\n"))
	f.Add([]byte("file_format: \"1.0\"\rtracer_provider: {processors: [\n"))
	f.Add([]byte("a: &a [*a, *a]\nb: *b\n"))
	f.Add([]byte("file_format: \"1.0\"\nlog_level: ${NOPE}\nx: ${BAD\n"))
	f.Add([]byte("file_format: \"1.0\"\n---\nfile_format: \"1.0\"\n"))
	f.Add([]byte("  \"\n"))
	// Line breaks only YAML 1.1 knows (NEL, LS, PS).
	f.Add([]byte("file_format: \"1.0\"\nx: a\u2028b: ${\ny: c\u0085d: [\nz: \u2029e\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, src []byte) {
		var out, errb bytes.Buffer
		code := Run(context.Background(), []string{"validate", "--format", "json", "-"}, bytes.NewReader(src), &out, &errb,
			WithEnviron([]string{"HOME=/nonexistent"}), WithColor(false))
		if code != ExitOK && code != ExitInvalid {
			t.Fatalf("exit %d for file content: stdout %s stderr %s", code, out.String(), errb.String())
		}
		if !json.Valid(out.Bytes()) {
			t.Fatalf("output is not valid JSON:\n%s", out.String())
		}
		var rep struct {
			Files []struct {
				File        string `json:"file"`
				Valid       *bool  `json:"valid"`
				Diagnostics []struct {
					Severity, Code, Message string
					Line, Column            int
				} `json:"diagnostics"`
			} `json:"files"`
		}
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("output does not decode as a report: %v\n%s", err, out.String())
		}
		if len(rep.Files) != 1 || rep.Files[0].Valid == nil {
			t.Fatalf("want one file with a verdict, got:\n%s", out.String())
		}
		if *rep.Files[0].Valid != (code == ExitOK) {
			t.Fatalf("valid=%v but exit %d", *rep.Files[0].Valid, code)
		}
		lines := lineLengths(src)
		for _, d := range rep.Files[0].Diagnostics {
			if d.Severity != "error" && d.Severity != "warning" || d.Code == "" || d.Message == "" {
				t.Errorf("incomplete diagnostic: %+v", d)
			}
			if d.Line < 0 || d.Column < 0 || d.Line > len(lines) {
				t.Errorf("diagnostic outside the file (%d lines): %+v", len(lines), d)
				continue
			}
			if d.Line == 0 {
				if d.Column != 0 {
					t.Errorf("column without a line: %+v", d)
				}
				continue
			}
			if max := lines[d.Line-1] + 1; d.Column > max {
				t.Errorf("column %d past the end of line %d (%d characters): %+v", d.Column, d.Line, max-1, d)
			}
		}
	})
}

// lineLengths returns the length in characters of each line of src, with
// the line ends YAML knows (\n, \r\n, a lone \r); text after the last line
// end, even empty, is a line too (where an editor's cursor is at the end).
func lineLengths(src []byte) []int {
	var out []int
	start := 0
	for i := 0; i < len(src); i++ {
		switch src[i] {
		case '\n':
			out = append(out, utf8.RuneCount(src[start:i]))
			start = i + 1
		case '\r':
			out = append(out, utf8.RuneCount(src[start:i]))
			if i+1 < len(src) && src[i+1] == '\n' {
				i++
			}
			start = i + 1
		}
	}
	return append(out, utf8.RuneCount(src[start:]))
}
