package cli

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/otelcfg/otelcfg/otelconfig"
)

const validateSynopsis = "otelcfg validate [--service interceptor|proxy] [--format text|json|sarif|github] [--strict] [--no-env] FILE..."

const validateHelp = `
Checks each FILE (an otel.yaml, or a service's settings file, recognised by
its content) with the same stages a service runs at boot, builds the SDK
without exporting (a dry run), and reports every problem at once.

By default the current environment is applied as a service boot would:
${VAR} substitution and the OTEL_* overlay. --no-env checks the file as
written. With no FILE, $OTEL_CONFIG_FILE is checked. "-" reads standard
input.

Exit status: 0 every file valid (warnings allowed unless --strict),
1 some file invalid, 2 usage error or a file that cannot be read.`

// fileResult is one file's verdict, shared by every output format.
type fileResult struct {
	*loaded
	valid bool
}

func runValidate(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("validate")
	service := &enumFlag{allowed: []string{"interceptor", "proxy"}}
	format := &enumFlag{value: "text", allowed: []string{"text", "json", "sarif", "github"}}
	fs.Var(service, "service", "also apply the `profile` rules of a service: interceptor or proxy")
	fs.Var(format, "format", "output `format`: text, json, sarif or github")
	strict := fs.Bool("strict", false, "treat warnings as errors (exit 1)")
	noEnv := fs.Bool("no-env", false, "validate the file as written: no OTEL_* overlay; ${VAR} takes its default or null")
	files, code, ok := parseArgs(e, fs, validateSynopsis, validateHelp, args)
	if !ok {
		return code
	}
	if len(files) == 0 {
		if p, set := e.lookup("OTEL_CONFIG_FILE"); set && strings.TrimSpace(p) != "" && !*noEnv {
			files = []string{strings.TrimSpace(p)}
		} else {
			return usageError(e, "validate", "no FILE given (and OTEL_CONFIG_FILE is not set)\nusage: %s", validateSynopsis)
		}
	}

	lo := loadOptions{noEnv: *noEnv, profile: service.value, dryRun: true}
	loads := make([]*loaded, len(files))
	each(len(files), !slices.Contains(files, "-"), func(i int) { loads[i] = e.load(ctx, files[i], lo) })
	results := make([]fileResult, 0, len(files))
	status := ExitOK
	for _, l := range loads {
		r := fileResult{loaded: l, valid: !l.diags.HasErrors() && !(*strict && len(l.diags.Warnings()) > 0)}
		results = append(results, r)
		switch {
		case l.ioErr:
			status = ExitUsage
		case !r.valid && status == ExitOK:
			status = ExitInvalid
		}
	}

	var err error
	switch format.value {
	case "json":
		err = writeJSON(e.stdout, results)
	case "sarif":
		err = writeSARIF(e.stdout, results)
	case "github":
		err = writeGitHub(e.stdout, results)
	default:
		for _, r := range results {
			if err = otelconfig.FormatText(e.stdout, r.diags, otelconfig.TextOptions{
				Color:   e.colorOK(),
				Sources: map[string][]byte{r.name: r.src},
			}); err != nil {
				break
			}
		}
		fmt.Fprintln(e.stderr, summary(results, *strict))
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "otelcfg validate: writing output: %v\n", err)
		return ExitUsage
	}
	return status
}

// each calls fn(0) … fn(n-1), on up to GOMAXPROCS goroutines when
// concurrent. Files are independent, and on two cores checking three
// files at once takes about 1 ms less than one after the other (the dry
// runs themselves are serialised by otelconfig); callers keep the results
// in order, so the output does not depend on which file finished first.
func each(n int, concurrent bool, fn func(i int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
	if !concurrent || workers < 2 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	work := func() {
		for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
			fn(i)
		}
	}
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}

// summary is the one-line verdict for humans, e.g.
// "2 files: 1 valid, 1 with 3 errors, 1 warning".
func summary(results []fileResult, strict bool) string {
	var valid, bad, errs, warns int
	for _, r := range results {
		if r.valid {
			valid++
		} else {
			bad++
		}
		errs += len(r.diags.Errors())
		warns += len(r.diags.Warnings())
	}
	s := plural(len(results), "file") + ": "
	switch {
	case len(results) == 1 && valid == 1:
		s += "valid"
	case len(results) == 1:
		s += "invalid"
	default:
		s += fmt.Sprintf("%d valid", valid)
	}
	if bad > 0 && len(results) > 1 {
		s += fmt.Sprintf(", %d with %s", bad, plural(errs, "error"))
	} else if errs > 0 {
		s += ", " + plural(errs, "error")
	}
	if warns > 0 {
		s += ", " + plural(warns, "warning")
		if strict {
			s += " (--strict: warnings fail)"
		}
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
