package otelconfig

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseDiagnostics: every deliberate decision of the parse stage ends
// in a positioned diagnostic with a stable code.
func TestParseDiagnostics(t *testing.T) {
	tests := []struct {
		name       string
		src        string
		code       string
		line, col  int
		wantInMsg  string
		wantNoRoot bool
	}{
		{name: "duplicate key", src: "file_format: \"1.0\"\nlog_level: info\nlog_level: debug\n", code: CodeDuplicateKey, line: 3, col: 1, wantInMsg: "log_level"},
		{name: "nested duplicate", src: "file_format: \"1.0\"\nresource:\n  schema_url: a\n  schema_url: b\n", code: CodeDuplicateKey, line: 4, col: 3},
		{name: "multi document", src: "file_format: \"1.0\"\n---\nfile_format: \"1.0\"\n", code: CodeMultiDoc, line: 2, wantInMsg: "more than one"},
		{name: "syntax error", src: "file_format: \"1.0\"\nresource: [\n", code: CodeSyntax, wantNoRoot: true},
		{name: "tab indentation", src: "file_format: \"1.0\"\nresource:\n\tschema_url: x\n", code: CodeSyntax, line: 3, wantNoRoot: true, wantInMsg: "YAML syntax error"},
		{name: "empty", src: "", code: CodeEmpty, wantNoRoot: true},
		{name: "only comments", src: "# nothing\n", code: CodeEmpty, wantNoRoot: true},
		{name: "top level list", src: "- a\n- b\n", code: CodeType, line: 1, col: 1, wantNoRoot: true},
		{name: "NUL byte", src: "file_format: \"1.0\"\nx: a\x00b\n", code: CodeEncoding, line: 2, col: 5, wantNoRoot: true},
		{name: "invalid UTF-8", src: "file_format: \"1.0\"\nx: \xff\n", code: CodeEncoding, line: 2, col: 4, wantNoRoot: true},
		{name: "self alias", src: "a: &x\n  b: *x\n", code: CodeAlias, wantNoRoot: false},
		{name: "missing file_format", src: "log_level: info\n", code: CodeRequired, line: 1},
		{name: "file_format 2.0", src: "file_format: \"2.0\"\n", code: CodeFileFormat, line: 1, col: 14},
		{name: "file_format garbage", src: "file_format: latest\n", code: CodeFileFormat, line: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Load(WithBytes("bad.yaml", []byte(tt.src)), WithEnv(mapLookup(nil)))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *Error", err)
			}
			var d *Diagnostic
			for i := range cfg.Diagnostics {
				if cfg.Diagnostics[i].Code == tt.code {
					d = &cfg.Diagnostics[i]
					break
				}
			}
			if d == nil {
				t.Fatalf("diagnostics = %v, want code %s", cfg.Diagnostics, tt.code)
			}
			if d.File != "bad.yaml" {
				t.Errorf("file = %q", d.File)
			}
			if tt.line != 0 && d.Line != tt.line {
				t.Errorf("line = %d, want %d (%v)", d.Line, tt.line, d)
			}
			if tt.col != 0 && d.Column != tt.col {
				t.Errorf("column = %d, want %d (%v)", d.Column, tt.col, d)
			}
			if !strings.Contains(d.Message, tt.wantInMsg) {
				t.Errorf("message %q does not contain %q", d.Message, tt.wantInMsg)
			}
			if tt.wantNoRoot && cfg.Root != nil {
				t.Error("a document that failed to parse must have no tree")
			}
			if cfg.Model != nil {
				t.Error("no model from a file with errors")
			}
		})
	}
}

func TestNewerMinorFileFormatWarns(t *testing.T) {
	cfg, err := Load(WithBytes("f.yaml", []byte("file_format: \"1.3\"\n")), WithEnv(mapLookup(nil)))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Diagnostics) != 1 || cfg.Diagnostics[0].Code != CodeUnknownVersion || cfg.Diagnostics[0].Severity != SeverityWarning {
		t.Fatalf("diagnostics = %v", cfg.Diagnostics)
	}
}

func TestAliasBombIsBounded(t *testing.T) {
	// Nine levels of ten-fold aliases would be 10^9 nodes expanded.
	var b strings.Builder
	b.WriteString("file_format: \"1.0\"\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	d := Parse("bomb.yaml", []byte(b.String()), Limits{})
	if len(d.Diagnostics) == 0 || d.Diagnostics[0].Code != CodeAlias {
		t.Fatalf("diagnostics = %v, want an alias diagnostic", d.Diagnostics)
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	cfg, err := Load(WithBytes("anchors.yaml", readTestdata(t, "anchors.yaml")), WithEnv(mapLookup(map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "900"})))
	if err != nil {
		t.Fatal(err)
	}
	if got := at(cfg, "/logger_provider/processors/0/batch/schedule_delay"); got != "250" {
		t.Errorf("explicit key beats merged: %s", got)
	}
	if got := at(cfg, "/logger_provider/processors/0/batch/max_queue_size"); got != "100" {
		t.Errorf("merged key: %s", got)
	}
	// The overlay changed the span processor only: aliases are copies.
	if got := at(cfg, "/tracer_provider/processors/0/batch/schedule_delay"); got != "900" {
		t.Errorf("span processor: %s", got)
	}
	if got := at(cfg, "/logger_provider/processors/0/batch/exporter/console"); got != "" {
		t.Errorf("exporter from the anchor: %s", got)
	}
}

func TestFileSources(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "otel.yaml")
	if err := os.WriteFile(good, []byte("file_format: \"1.0\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("file_format: \"1.0\"\n"+strings.Repeat("# padding\n", 200)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("OTEL_CONFIG_FILE", func(t *testing.T) {
		cfg, err := Load(WithEnv(mapLookup(map[string]string{"OTEL_CONFIG_FILE": good})))
		if err != nil || cfg.Name != good {
			t.Fatalf("cfg.Name = %q, err = %v", cfg.Name, err)
		}
	})
	t.Run("explicit file wins over OTEL_CONFIG_FILE", func(t *testing.T) {
		cfg, _ := Load(WithFile(good), WithEnv(mapLookup(map[string]string{"OTEL_CONFIG_FILE": "/nonexistent"})))
		if cfg.Name != good {
			t.Fatalf("cfg.Name = %q", cfg.Name)
		}
	})
	t.Run("builtin default", func(t *testing.T) {
		cfg, err := Load(WithEnv(mapLookup(nil)))
		if err != nil || cfg.Name != BuiltinName || cfg.Model == nil {
			t.Fatalf("cfg.Name = %q, err = %v", cfg.Name, err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		cfg, err := Load(WithFile(filepath.Join(dir, "nope.yaml")))
		var re *ReadError
		if !errors.As(err, &re) || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v", err)
		}
		if len(cfg.Diagnostics) != 1 || cfg.Diagnostics[0].Code != CodeIO || cfg.Diagnostics[0].Hint == "" {
			t.Fatalf("diagnostics = %v", cfg.Diagnostics)
		}
	})
	t.Run("directory", func(t *testing.T) {
		cfg, err := Load(WithFile(dir))
		if err == nil || cfg.Diagnostics[0].Code != CodeIO || !strings.Contains(cfg.Diagnostics[0].Message, "directory") {
			t.Fatalf("err = %v, diagnostics = %v", err, cfg.Diagnostics)
		}
	})
	t.Run("size limit", func(t *testing.T) {
		cfg, err := Load(WithFile(big), WithLimits(Limits{MaxFileSize: 100}))
		if err == nil || cfg.Diagnostics[0].Code != CodeTooLarge {
			t.Fatalf("err = %v, diagnostics = %v", err, cfg.Diagnostics)
		}
	})
}

func TestDecodeTypeErrorIsPositioned(t *testing.T) {
	src := "file_format: \"1.0\"\ntracer_provider:\n  processors:\n    - batch:\n        schedule_delay: soon\n        exporter:\n          console:\n"
	cfg, err := Load(WithBytes("t.yaml", []byte(src)), WithEnv(mapLookup(nil)))
	if err == nil {
		t.Fatal("want an error")
	}
	d := cfg.Diagnostics[0]
	if d.Code != CodeType || d.Line != 5 || d.Column != 25 || d.Path != "/tracer_provider/processors/0/batch/schedule_delay" {
		t.Fatalf("diagnostic = %+v", d)
	}
}

func TestFormatText(t *testing.T) {
	src := []byte("file_format: \"1.0\"\nlog_level: info\nlog_level: debug\n")
	cfg, _ := Load(WithBytes("otel.yaml", src), WithEnv(mapLookup(nil)))
	var b strings.Builder
	if err := FormatText(&b, cfg.Diagnostics, TextOptions{Sources: map[string][]byte{"otel.yaml": src}}); err != nil {
		t.Fatal(err)
	}
	want := "otel.yaml:3:1: error: duplicate key \"log_level\" [duplicate-key]\n" +
		"    3 | log_level: debug\n" +
		"      | ^\n" +
		"      = at /log_level\n" +
		"      = hint: first defined at line 2; YAML keeps only one of them, so remove or merge the other\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}
