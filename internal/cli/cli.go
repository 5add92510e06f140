// Package cli implements the otelcfg command: validate, print, schema and
// env. It is a thin layer over otelconfig: every check, every value and
// every origin comes from the library's stages, so that the CLI reports
// exactly what a service would see at boot.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Exit statuses: part of the contract scripts and CI rely on.
const (
	ExitOK      = 0 // every file valid (warnings allowed unless --strict)
	ExitInvalid = 1 // some file has an error (or a warning with --strict)
	ExitUsage   = 2 // bad command line, or a file that cannot be read
)

// Option changes how Run sees its surroundings; tests use them so they can
// run in parallel without touching the process environment.
type Option func(*env)

// WithEnviron replaces os.Environ (KEY=VALUE pairs) for substitution, the
// OTEL_* overlay, OTEL_CONFIG_FILE, NO_COLOR and `otelcfg env`.
func WithEnviron(environ []string) Option {
	return func(e *env) {
		m := make(map[string]string, len(environ))
		for _, kv := range environ {
			if k, v, ok := strings.Cut(kv, "="); ok {
				m[k] = v
			}
		}
		e.lookup = func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
}

// WithColor forces colour on or off instead of detecting a terminal.
func WithColor(on bool) Option {
	return func(e *env) { e.color = &on }
}

type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	lookup         func(string) (string, bool)
	color          *bool
}

// colorOK reports whether text output may use ANSI colour: only on a
// terminal, and never when NO_COLOR is set (https://no-color.org) or the
// terminal is dumb.
func (e *env) colorOK() bool {
	if e.color != nil {
		return *e.color
	}
	if v, ok := e.lookup("NO_COLOR"); ok && v != "" {
		return false
	}
	if v, _ := e.lookup("TERM"); v == "dumb" {
		return false
	}
	f, ok := e.stdout.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

type command struct {
	name, synopsis string
	run            func(ctx context.Context, e *env, args []string) int
}

var commands []command

func init() {
	// Assigned here, not in the declaration, because usage() reads the
	// table and the commands call usage().
	commands = []command{
		{"validate", "check configuration files and report every problem", runValidate},
		{"print", "print the effective configuration (secrets redacted)", runPrint},
		{"schema", "print an embedded JSON Schema (for editors)", runSchema},
		{"env", "list the OTEL_* variables the overlay understands", runEnv},
	}
}

// Run runs the otelcfg command line args (without the program name) and
// returns the exit status.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, opts ...Option) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	// One view of the environment for the whole run: files are checked
	// concurrently, and a dry run hides OTEL_CONFIG_FILE from the process
	// environment while it builds the SDK.
	WithEnviron(os.Environ())(e)
	for _, o := range opts {
		o(e)
	}
	if len(args) == 0 {
		usage(stderr)
		return ExitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && name == "help" {
			// `otelcfg help validate` is `otelcfg validate --help`.
			return Run(ctx, []string{args[1], "--help"}, stdin, stdout, stderr, opts...)
		}
		usage(stdout)
		return ExitOK
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(ctx, e, args[1:])
		}
	}
	fmt.Fprintf(stderr, "otelcfg: unknown command %q\n\n", name)
	usage(stderr)
	return ExitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "otelcfg checks and explains OpenTelemetry configuration files (otel.yaml, file_format 1.0).")
	fmt.Fprintln(w, "\nUsage:\n  otelcfg <command> [flags] [arguments]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.synopsis)
	}
	fmt.Fprintln(w, "\nRun 'otelcfg <command> --help' for a command's flags.")
	fmt.Fprintln(w, "Exit status: 0 valid, 1 invalid, 2 usage or I/O error.")
}

// newFlagSet returns a flag set whose errors and help Run prints itself,
// so that help goes to stdout (exit 0) and mistakes to stderr (exit 2).
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("otelcfg "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseArgs parses flags anywhere on the command line (`validate a.yaml
// --format json` works as well as the usual order); everything after "--"
// is an argument. It returns the arguments, or an exit status when Run
// must stop (help printed, or a usage error).
func parseArgs(e *env, fs *flag.FlagSet, synopsis, help string, args []string) ([]string, int, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				writeHelp(e.stdout, fs, synopsis, help)
				return nil, ExitOK, false
			}
			fmt.Fprintf(e.stderr, "%s: %v\n", fs.Name(), err)
			fmt.Fprintf(e.stderr, "usage: %s\nRun '%s --help' for details.\n", synopsis, fs.Name())
			return nil, ExitUsage, false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, 0, true
		}
		if i := len(args) - len(rest) - 1; i >= 0 && args[i] == "--" {
			return append(pos, rest...), 0, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func writeHelp(w io.Writer, fs *flag.FlagSet, synopsis, help string) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", synopsis, strings.TrimSpace(help))
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	if b.Len() > 0 {
		fmt.Fprintf(w, "\nFlags:\n%s", b.String())
	}
}

// usageError reports a bad argument and returns ExitUsage.
func usageError(e *env, cmd, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "otelcfg %s: %s\n", cmd, fmt.Sprintf(format, args...))
	return ExitUsage
}

// enumFlag is a string flag restricted to a set of values, so that a typo
// is a usage error (exit 2) at parse time, with the allowed values.
type enumFlag struct {
	value   string
	allowed []string
}

func (f *enumFlag) String() string { return f.value }

func (f *enumFlag) Set(s string) error {
	for _, a := range f.allowed {
		if s == a {
			f.value = s
			return nil
		}
	}
	return fmt.Errorf("must be one of %s", strings.Join(f.allowed, ", "))
}
