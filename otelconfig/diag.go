package otelconfig

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Severity says whether a Diagnostic stops a service from starting.
type Severity string

// The two severities. Warnings never stop a boot; `otelcfg validate --strict`
// treats them as errors.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Diagnostic codes. They are part of the CLI contract (JSON, SARIF): rename
// none of them.
const (
	CodeIO             = "io"              // the file cannot be read
	CodeTooLarge       = "file-too-large"  // over the configured size limit
	CodeSyntax         = "yaml-syntax"     // the YAML parser refused the file
	CodeEncoding       = "encoding"        // invalid UTF-8, NUL bytes
	CodeEmpty          = "empty"           // no document at all
	CodeMultiDoc       = "multi-document"  // more than one YAML document
	CodeDuplicateKey   = "duplicate-key"   // the same key twice in one mapping
	CodeAlias          = "alias"           // anchors/aliases over budget, or unknown
	CodeDepth          = "too-deep"        // nesting deeper than any real config
	CodeSubstitution   = "substitution"    // an invalid ${...} reference
	CodeEnvUnset       = "env-unset"       // ${VAR} without default and VAR unset
	CodeEnvValue       = "env-value"       // an OTEL_* variable with a malformed value
	CodeEnvNoEffect    = "env-no-effect"   // an OTEL_* variable that cannot apply
	CodeType           = "type"            // a value of the wrong type
	CodeRequired       = "required"        // a required field is missing
	CodeFileFormat     = "file-format"     // unsupported or missing file_format
	CodeDecode         = "decode"          // otelconf refused the model
	CodeSDK            = "sdk"             // the SDK refused to start (dry run)
	CodeUnknownKey     = "unknown-key"     // a key the format does not define
	CodeSchema         = "schema"          // any other JSON Schema violation
	CodeBounds         = "out-of-bounds"   // a number outside its range
	CodeEnum           = "enum"            // a value not in the allowed set
	CodeEndpoint       = "endpoint"        // an OTLP endpoint that cannot work
	CodeUnsupported    = "unsupported"     // valid, but the Go SDK ignores or refuses it
	CodeSecurity       = "security"        // security lint
	CodeProfile        = "service-profile" // a rule of a service profile
	CodeSettings       = "settings"        // a service settings file problem
	CodeExperimental   = "experimental"    // a /development feature
	CodeUnknownVersion = "file-format-minor"
)

// Diagnostic is one problem found in a configuration, from any stage of the
// pipeline. Line and Column are 1-based; zero means "no position" (for
// example a value that came from an environment variable).
type Diagnostic struct {
	Severity Severity `json:"severity"`
	Code     string   `json:"code"`
	File     string   `json:"file,omitempty"`
	Line     int      `json:"line,omitempty"`
	Column   int      `json:"column,omitempty"`
	// Path is a JSON pointer (RFC 6901) into the document.
	Path string `json:"path"`
	// Env names the environment variable the problem came from, if any.
	Env     string `json:"env,omitempty"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

// Position renders file:line:col, or the variable when there is no position.
func (d Diagnostic) Position() string {
	var b strings.Builder
	switch {
	case d.Env != "" && d.Line == 0:
		b.WriteString("$" + d.Env)
	case d.File != "":
		b.WriteString(d.File)
	default:
		b.WriteString("<config>")
	}
	if d.Line > 0 {
		fmt.Fprintf(&b, ":%d", d.Line)
		if d.Column > 0 {
			fmt.Fprintf(&b, ":%d", d.Column)
		}
	}
	return b.String()
}

func (d Diagnostic) String() string {
	s := fmt.Sprintf("%s: %s: %s [%s]", d.Position(), d.Severity, d.Message, d.Code)
	if d.Path != "" {
		s += " at " + d.Path
	}
	return s
}

// Diagnostics is every problem found in one load, in file order.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Errors returns only the error diagnostics.
func (ds Diagnostics) Errors() Diagnostics { return ds.filter(SeverityError) }

// Warnings returns only the warnings.
func (ds Diagnostics) Warnings() Diagnostics { return ds.filter(SeverityWarning) }

func (ds Diagnostics) filter(s Severity) Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == s {
			out = append(out, d)
		}
	}
	return out
}

// Sort orders diagnostics by file, position, then code, keeping
// position-less (environment) diagnostics first.
func (ds Diagnostics) Sort() {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		return a.Code < b.Code
	})
}

// Error is the error Load and Start return when a configuration has error
// diagnostics. It carries every diagnostic (warnings included) so that a
// caller can print all of them.
type Error struct {
	Diagnostics Diagnostics
	// Sources maps a file name to its bytes, for printing source lines.
	Sources map[string][]byte
}

func (e *Error) Error() string {
	errs := e.Diagnostics.Errors()
	switch len(errs) {
	case 0:
		return "otelconfig: invalid configuration"
	case 1:
		return "otelconfig: " + errs[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "otelconfig: %d errors:", len(errs))
	for _, d := range errs {
		b.WriteString("\n  " + d.String())
	}
	return b.String()
}

// TextOptions controls FormatText.
type TextOptions struct {
	Color bool
	// Sources maps file names to contents so the offending line and a caret
	// can be shown under each diagnostic.
	Sources map[string][]byte
}

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[1;31m"
	ansiYellow = "\x1b[1;33m"
	ansiCyan   = "\x1b[36m"
)

// FormatText writes diagnostics the way a compiler does:
//
//	otel.yaml:12:9: error: unknown key "compresion" [unknown-key]
//	   12 |         compresion: gzip
//	      |         ^
//	      = hint: did you mean "compression"?
func FormatText(w io.Writer, ds Diagnostics, opt TextOptions) error {
	var b bytes.Buffer
	paint := func(code, s string) string {
		if !opt.Color {
			return s
		}
		return code + s + ansiReset
	}
	for _, d := range ds {
		sev := string(d.Severity)
		if d.Severity == SeverityError {
			sev = paint(ansiRed, sev)
		} else {
			sev = paint(ansiYellow, sev)
		}
		fmt.Fprintf(&b, "%s: %s: %s [%s]\n", paint(ansiBold, d.Position()), sev, paint(ansiBold, d.Message), d.Code)
		line, ok := sourceLine(opt.Sources[d.File], d.Line)
		if ok && secretPath(d.Path) {
			// The line holds a secret (a literal key is what the
			// security lint reports): show where, never what.
			line, ok = redactFrom(line, d.Column)
		}
		if ok && d.Line > 0 {
			num := fmt.Sprintf("%5d", d.Line)
			fmt.Fprintf(&b, "%s | %s\n", paint(ansiCyan, num), line)
			if d.Column > 0 {
				fmt.Fprintf(&b, "%s | %s%s\n", strings.Repeat(" ", len(num)), caretPad(line, d.Column), paint(ansiRed, "^"))
			}
		}
		if d.Path != "" {
			fmt.Fprintf(&b, "%s = at %s\n", strings.Repeat(" ", 5), d.Path)
		}
		if d.Hint != "" {
			fmt.Fprintf(&b, "%s = hint: %s\n", strings.Repeat(" ", 5), d.Hint)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// caretPad returns the whitespace that puts a caret under column col (in
// runes), keeping tabs so the caret lines up in a terminal.
func caretPad(line string, col int) string {
	var b strings.Builder
	i := 1
	for _, r := range line {
		if i >= col {
			break
		}
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
		i++
	}
	for ; i < col; i++ {
		b.WriteByte(' ')
	}
	return b.String()
}

// redactFrom replaces a source line from column col (in runes) on with
// [REDACTED]; without a column nothing of the line can be shown.
func redactFrom(line string, col int) (string, bool) {
	if col <= 0 {
		return "", false
	}
	r := []rune(line)
	if col-1 < len(r) {
		r = r[:col-1]
	}
	return string(r) + Redacted, true
}

// sourceLine returns line n (1-based) of src without its line ending, with
// control characters made visible so a terminal is never confused.
func sourceLine(src []byte, n int) (string, bool) {
	if n <= 0 || len(src) == 0 {
		return "", false
	}
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(src, '\n')
		if j < 0 {
			return "", false
		}
		src = src[j+1:]
	}
	if j := bytes.IndexByte(src, '\n'); j >= 0 {
		src = src[:j]
	}
	src = bytes.TrimSuffix(src, []byte("\r"))
	const max = 200
	s := strings.ToValidUTF8(string(src), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return '\uFFFD'
		}
		return r
	}, s)
	if len([]rune(s)) > max {
		s = string([]rune(s)[:max]) + "…"
	}
	return s, true
}
