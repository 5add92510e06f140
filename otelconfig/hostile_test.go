package otelconfig

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/otelcfg/otelcfg/examples"
)

// allocated runs fn and returns the bytes it allocated (runtime.MemStats,
// so the bound is on memory, not on wall-clock time).
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func billionLaughs() string {
	var b strings.Builder
	b.WriteString("file_format: \"1.0\"\nl0: &l0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n")
	for i := 1; i <= 9; i++ {
		b.WriteString("l" + string(rune('0'+i)) + ": &l" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*l" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	return b.String()
}

// TestHostileFiles: every hostile file ends in a clear diagnostic with a
// stable code and position, within a stated memory bound. Not parallel:
// the memory measurement is process-wide.
func TestHostileFiles(t *testing.T) {
	const mib = 1 << 20
	if _, err := LoadSchema("otel"); err != nil { // compiled once per process: not part of any case
		t.Fatal(err)
	}
	deep := strings.Repeat("a:\n", 1) // built below
	{
		var b strings.Builder
		b.WriteString("file_format: \"1.0\"\n")
		for i := 0; i < 1500; i++ {
			b.WriteString(strings.Repeat(" ", i) + "k:\n")
		}
		deep = b.String()
	}
	tests := []struct {
		name      string
		src       string
		env       map[string]string
		code      string
		line, col int
		maxAlloc  uint64
		wantOK    bool // loads (no error): harmless input
		check     func(t *testing.T, cfg *Config)
	}{
		{name: "billion laughs", src: billionLaughs(), code: CodeAlias, maxAlloc: 64 * mib},
		{name: "nesting thousands deep (block)", src: deep, code: CodeDepth, line: 67, maxAlloc: 64 * mib},
		{name: "nesting thousands deep (flow)", src: "file_format: \"1.0\"\nx: " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + "\n", code: CodeDepth, line: 2, maxAlloc: 64 * mib},
		{name: "flow nesting past the parser limit", src: "x: " + strings.Repeat("[", 20000) + "\n", code: CodeSyntax, maxAlloc: 64 * mib},
		{name: "invalid UTF-8", src: "file_format: \"1.0\"\nlog_level: inf\xc3\x28o\n", code: CodeEncoding, line: 2, col: 15, maxAlloc: 1 * mib},
		{name: "NUL byte", src: "file_format: \"1.0\"\x00\n", code: CodeEncoding, line: 1, col: 19, maxAlloc: 1 * mib},
		{name: "UTF-16 BOM", src: "\xff\xfef\x00i\x00", code: CodeEncoding, line: 1, col: 1, maxAlloc: 1 * mib},
		{name: "UTF-8 BOM is harmless", src: "\xef\xbb\xbffile_format: \"1.0\"\n", wantOK: true, maxAlloc: 4 * mib},
		{name: "tabs for indentation", src: "file_format: \"1.0\"\nresource:\n\tschema_url: x\n", code: CodeSyntax, line: 3, maxAlloc: 1 * mib, check: func(t *testing.T, cfg *Config) {
			if !strings.Contains(cfg.Diagnostics[0].Hint, "tabs") {
				t.Errorf("hint = %q, want one about tabs", cfg.Diagnostics[0].Hint)
			}
		}},
		{name: "CRLF line ends keep positions", src: "file_format: \"1.0\"\r\nlog_level: info\r\nlog_level: warn\r\n", code: CodeDuplicateKey, line: 3, col: 1, maxAlloc: 1 * mib},
		{name: "multi-document", src: "file_format: \"1.0\"\n---\nfile_format: \"1.0\"\n", code: CodeMultiDoc, line: 2, maxAlloc: 1 * mib},
		{name: "empty file", src: "", code: CodeEmpty, maxAlloc: 1 * mib},
		{name: "env value injects structure", src: "file_format: \"1.0\"\nresource:\n  attributes:\n    - name: a\n      value: ${INJECT}\n    - name: b\n      value: ${NL}\n    - name: c\n      value: ${REF}\n    - name: d\n      value: ${DOLLARS}\n",
			env: map[string]string{"INJECT": "x: y", "NL": "one\nfile_format: \"9.9\"", "REF": "${SECRET}", "DOLLARS": "$$", "SECRET": "s3cr3t"}, wantOK: true, maxAlloc: 4 * mib,
			check: func(t *testing.T, cfg *Config) {
				for name, want := range map[string]string{"a": "x: y", "b": "one\nfile_format: \"9.9\"", "c": "${SECRET}", "d": "$$"} {
					if got := attr(cfg, name); got != want {
						t.Errorf("attribute %s = %q, want the literal %q", name, got, want)
					}
				}
				if cfg.Model.FileFormat != "1.0" {
					t.Errorf("file_format = %q", cfg.Model.FileFormat)
				}
			}},
		{name: "1 MiB environment value", src: "file_format: \"1.0\"\nresource:\n  schema_url: ${HUGE}\n", env: map[string]string{"HUGE": strings.Repeat("x", mib)}, code: CodeEnvValue, maxAlloc: 8 * mib, check: func(t *testing.T, cfg *Config) {
			if cfg.Diagnostics[0].Env != "HUGE" {
				t.Errorf("diagnostic does not name the variable: %v", cfg.Diagnostics[0])
			}
		}},
		{name: "1 MiB OTEL_ value", src: string(examples.OtelYAML), env: map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "a=" + strings.Repeat("x", mib)}, code: CodeEnvValue, maxAlloc: 8 * mib},
		{name: "malformed OTLP headers", src: string(examples.OtelYAML), env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4317", "OTEL_EXPORTER_OTLP_HEADERS": "api-key=hunter2,,=nokey"}, code: CodeEnvValue, maxAlloc: 4 * mib, check: func(t *testing.T, cfg *Config) {
			for _, d := range cfg.Diagnostics {
				if strings.Contains(d.Message+d.Hint, "hunter2") {
					t.Errorf("diagnostic leaks the header value: %v", d)
				}
			}
		}},
		{name: "sampler argument NaN", src: string(examples.OtelYAML), env: map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "NaN"}, code: CodeEnvValue, maxAlloc: 4 * mib},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg *Config
			used := allocated(func() {
				cfg, _ = Load(WithBytes("hostile.yaml", []byte(tt.src)), WithEnv(mapLookup(tt.env)))
			})
			if used > tt.maxAlloc {
				t.Errorf("allocated %d bytes, bound %d", used, tt.maxAlloc)
			}
			if tt.wantOK {
				if cfg.Diagnostics.HasErrors() {
					t.Fatalf("unexpected errors: %v", cfg.Diagnostics)
				}
			} else {
				var d *Diagnostic
				for i := range cfg.Diagnostics {
					if cfg.Diagnostics[i].Code == tt.code && cfg.Diagnostics[i].Severity == SeverityError {
						d = &cfg.Diagnostics[i]
						break
					}
				}
				if d == nil {
					t.Fatalf("diagnostics = %v, want an error %s", cfg.Diagnostics, tt.code)
				}
				if tt.line != 0 && d.Line != tt.line {
					t.Errorf("line = %d, want %d", d.Line, tt.line)
				}
				if tt.col != 0 && d.Column != tt.col {
					t.Errorf("column = %d, want %d", d.Column, tt.col)
				}
				if d.Message == "" {
					t.Error("empty message")
				}
			}
			if tt.check != nil {
				tt.check(t, cfg)
			}
		})
	}
}

// TestHostileFileSystem: paths that are not readable configuration files.
func TestHostileFileSystem(t *testing.T) {
	dir := t.TempDir()
	loop := filepath.Join(dir, "loop.yaml")
	if err := os.Symlink(loop, loop); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 20); err != nil { // sparse: 64 MiB
		t.Fatal(err)
	}
	f.Close()
	tests := []struct {
		name, path, code, inMsg string
		maxAlloc                uint64
	}{
		{"directory", dir, CodeIO, "directory", 1 << 20},
		{"symlink loop", loop, CodeIO, "symbolic links", 1 << 20},
		{"fifo (would block)", fifo, CodeIO, "not a regular file", 1 << 20},
		{"missing", filepath.Join(dir, "nope.yaml"), CodeIO, "no such file", 1 << 20},
		{"64 MiB file", big, CodeTooLarge, "over the limit", 16 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg *Config
			used := allocated(func() { cfg, _ = Load(WithFile(tt.path), WithEnv(mapLookup(nil))) })
			if used > tt.maxAlloc {
				t.Errorf("allocated %d bytes, bound %d (the file must not be read in full)", used, tt.maxAlloc)
			}
			if len(cfg.Diagnostics) == 0 || cfg.Diagnostics[0].Code != tt.code || !strings.Contains(cfg.Diagnostics[0].Message, tt.inMsg) {
				t.Fatalf("diagnostics = %v, want %s containing %q", cfg.Diagnostics, tt.code, tt.inMsg)
			}
		})
	}
	t.Run("unreadable", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root: file permissions do not stop root from reading")
		}
		p := filepath.Join(dir, "secret.yaml")
		if err := os.WriteFile(p, []byte("file_format: \"1.0\"\n"), 0); err != nil {
			t.Fatal(err)
		}
		cfg, _ := Load(WithFile(p))
		if cfg.Diagnostics[0].Code != CodeIO || !strings.Contains(cfg.Diagnostics[0].Hint, "permission") {
			t.Fatalf("diagnostics = %v", cfg.Diagnostics)
		}
	})
}
