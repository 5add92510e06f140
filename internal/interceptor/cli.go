package interceptor

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/otelcfg/otelcfg/internal/interceptor/portreg"
	"github.com/otelcfg/otelcfg/internal/svcconf"
	"github.com/otelcfg/otelcfg/otelconfig"
)

// Exit statuses of Main.
const (
	ExitOK     = 0
	ExitConfig = 1 // invalid settings or otel.yaml, or the service could not start
	ExitUsage  = 2 // bad command line
)

const usage = `Usage: interceptor [command] [flags] [DIR]

The client interceptor: point editors and CLI tools at it instead of the
LLM proxy. It adds your memory identity (x-memory-user-id) to every request
and forwards it, streamed, to the proxy.

Commands:
  run              serve (the default)
  list             list the port registry
  show [DIR]       print the port registered for DIR (default: the project directory)
  allocate [DIR]   register a port for DIR, or print the one it has
  remove [DIR]     forget DIR's port

Settings, lowest precedence first: built-in defaults, the settings file
(--config or $INTERCEPTOR_CONFIG), INTERCEPTOR_* variables, flags.
Telemetry comes from otel.yaml (--otel-config, otel_config, $OTEL_CONFIG_FILE,
else console output).

Flags:
`

// Main runs the interceptor command line and returns the exit status. ctx
// ends the run command (SIGINT/SIGTERM in cmd/interceptor).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runMain(ctx, args, stdout, stderr, mainEnv{})
}

// mainEnv lets tests run Main in parallel: their own environment, no
// process-wide telemetry globals, and a hook called once listening.
type mainEnv struct {
	environ  []string
	otelOpts []otelconfig.Option
	ready    func(addr string)
}

type command struct {
	name     string
	takesDir bool
	jsonFlag bool
	run      func(c *cli) int
}

var commands = []command{
	{name: "run", run: (*cli).run},
	{name: "list", jsonFlag: true, run: (*cli).list},
	{name: "show", takesDir: true, jsonFlag: true, run: (*cli).show},
	{name: "allocate", takesDir: true, jsonFlag: true, run: (*cli).allocate},
	{name: "remove", takesDir: true, run: (*cli).remove},
}

type cli struct {
	ctx      context.Context
	stdout   io.Writer
	stderr   io.Writer
	env      mainEnv
	settings Settings
	dir      string // positional DIR
	json     bool
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer, env mainEnv) int {
	name := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		printUsage(stdout, nil)
		return ExitOK
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == name {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "interceptor: unknown command %q; run 'interceptor help' for usage\n", name)
		return ExitUsage
	}

	fs := flag.NewFlagSet("interceptor "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configFile := fs.String("config", "", "settings file (default $"+EnvConfig+")")
	values := map[string]*string{}
	for _, f := range fields {
		if f.flag != "" {
			values[f.key] = fs.String(f.flag, "", f.doc)
		}
	}
	c := &cli{ctx: ctx, stdout: stdout, stderr: stderr, env: env}
	if cmd.jsonFlag {
		fs.BoolVar(&c.json, "json", false, "print JSON")
	}
	positional, err := parseInterleaved(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout, fs)
		return ExitOK
	case err != nil:
		fmt.Fprintf(stderr, "interceptor %s: %v\n", cmd.name, err)
		fmt.Fprintf(stderr, "run 'interceptor help' for usage\n")
		return ExitUsage
	case len(positional) > 1 || len(positional) == 1 && !cmd.takesDir:
		fmt.Fprintf(stderr, "interceptor %s: unexpected argument %q\n", cmd.name, positional[len(positional)-1])
		return ExitUsage
	case len(positional) == 1:
		c.dir = positional[0]
	}

	flags := map[string]string{}
	fs.Visit(func(fl *flag.Flag) {
		for _, f := range fields {
			if f.flag == fl.Name {
				flags[f.key] = *values[f.key]
			}
		}
	})
	loaded, err := LoadSettings(LoadOptions{File: *configFile, Environ: env.environ, Flags: flags})
	if len(loaded.Diagnostics) > 0 {
		_ = otelconfig.FormatText(stderr, loaded.Diagnostics, otelconfig.TextOptions{Sources: loaded.Sources})
	}
	if err != nil {
		var ce *otelconfig.Error
		var re *otelconfig.ReadError
		if !errors.As(err, &ce) && !errors.As(err, &re) {
			fmt.Fprintf(stderr, "interceptor: %v\n", err)
		}
		return ExitConfig
	}
	c.settings = loaded.Settings
	return cmd.run(c)
}

// parseInterleaved lets DIR come before or after flags
// (`show ./app --json` as well as `show --json ./app`).
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, usage)
	if fs == nil {
		fs = flag.NewFlagSet("interceptor", flag.ContinueOnError)
		fs.String("config", "", "settings file (default $"+EnvConfig+")")
		for _, f := range fields {
			if f.flag != "" {
				fs.String(f.flag, "", f.doc)
			}
		}
		fs.Bool("json", false, "print JSON (list, show, allocate)")
	}
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// projectDir is DIR, else project_dir, else the working directory.
func (c *cli) projectDir() string {
	if c.dir != "" {
		return c.dir
	}
	return c.settings.ProjectDir
}

func (c *cli) registry() (*portreg.Registry, bool) {
	r, err := c.settings.Registry()
	if err != nil {
		fmt.Fprintf(c.stderr, "interceptor: %v\n", err)
		return nil, false
	}
	return r, true
}

func (c *cli) reportRecovery(res portreg.Result) {
	if rec := res.Recovered; rec != nil {
		fmt.Fprintf(c.stderr, "interceptor: warning: the port registry was corrupt (%s); it was moved to %s and rebuilt\n", rec.Reason, rec.Backup)
	}
}

type entryJSON struct {
	Dir         string    `json:"dir"`
	Port        int       `json:"port"`
	AllocatedAt time.Time `json:"allocated_at"`
}

func (c *cli) list() int {
	r, ok := c.registry()
	if !ok {
		return ExitConfig
	}
	entries, res, err := r.List()
	c.reportRecovery(res)
	if err != nil {
		fmt.Fprintf(c.stderr, "interceptor: %v\n", err)
		return ExitConfig
	}
	if c.json {
		out := make([]entryJSON, len(entries))
		for i, e := range entries {
			out[i] = entryJSON(e)
		}
		return c.printJSON(map[string]any{"registry": r.Path, "entries": out})
	}
	if len(entries) == 0 {
		fmt.Fprintf(c.stdout, "no ports registered in %s\n", r.Path)
		return ExitOK
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PORT\tDIRECTORY\tALLOCATED")
	for _, e := range entries {
		fmt.Fprintf(tw, "%d\t%s\t%s\n", e.Port, e.Dir, e.AllocatedAt.Format(time.RFC3339))
	}
	_ = tw.Flush()
	return ExitOK
}

func (c *cli) show() int {
	r, ok := c.registry()
	if !ok {
		return ExitConfig
	}
	e, found, res, err := r.Lookup(c.projectDir())
	c.reportRecovery(res)
	if err != nil {
		fmt.Fprintf(c.stderr, "interceptor: %v\n", err)
		return ExitConfig
	}
	if !found {
		dir, _ := portreg.NormalizeDir(c.projectDir())
		fmt.Fprintf(c.stderr, "interceptor: no port registered for %s (run 'interceptor allocate')\n", dir)
		return ExitConfig
	}
	return c.printEntry(e)
}

func (c *cli) allocate() int {
	r, ok := c.registry()
	if !ok {
		return ExitConfig
	}
	e, res, err := r.Allocate(c.projectDir())
	c.reportRecovery(res)
	if err != nil {
		fmt.Fprintf(c.stderr, "interceptor: %v\n", err)
		return ExitConfig
	}
	return c.printEntry(e)
}

func (c *cli) remove() int {
	r, ok := c.registry()
	if !ok {
		return ExitConfig
	}
	e, found, res, err := r.Remove(c.projectDir())
	c.reportRecovery(res)
	if err != nil {
		fmt.Fprintf(c.stderr, "interceptor: %v\n", err)
		return ExitConfig
	}
	if !found {
		dir, _ := portreg.NormalizeDir(c.projectDir())
		fmt.Fprintf(c.stdout, "no port was registered for %s\n", dir)
		return ExitOK
	}
	fmt.Fprintf(c.stdout, "removed port %d of %s\n", e.Port, e.Dir)
	return ExitOK
}

func (c *cli) printEntry(e portreg.Entry) int {
	if c.json {
		return c.printJSON(entryJSON(e))
	}
	fmt.Fprintln(c.stdout, e.Port)
	return ExitOK
}

func (c *cli) printJSON(v any) int {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(c.stderr, "interceptor: %v\n", err)
		return ExitConfig
	}
	return ExitOK
}

// run boots telemetry, picks the listen address and serves until ctx ends.
func (c *cli) run() int {
	s := c.settings
	opts := []otelconfig.Option{otelconfig.WithServiceName(ServiceName), otelconfig.WithConsole(c.stderr)}
	if c.env.environ != nil {
		opts = append(opts, otelconfig.WithEnviron(c.env.environ))
	}
	if s.OtelConfig != "" {
		opts = append(opts, otelconfig.WithFile(s.OtelConfig))
	}
	opts = append(opts, c.env.otelOpts...)
	tel, err := otelconfig.Start(c.ctx, opts...)
	if err != nil {
		var ce *otelconfig.Error
		var re *otelconfig.ReadError
		switch {
		case errors.As(err, &ce):
			_ = otelconfig.FormatText(c.stderr, ce.Diagnostics, otelconfig.TextOptions{Sources: ce.Sources})
		case errors.As(err, &re):
			_ = otelconfig.FormatText(c.stderr, re.Diagnostics, otelconfig.TextOptions{})
		default:
			fmt.Fprintf(c.stderr, "interceptor: %v\n", err)
		}
		return ExitConfig
	}
	if w := tel.Config().Diagnostics.Warnings(); len(w) > 0 {
		_ = otelconfig.FormatText(c.stderr, w, otelconfig.TextOptions{Sources: map[string][]byte{tel.Config().Name: tel.Config().Source}})
	}
	code := c.serve(s, tel)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), s.Timeouts.Shutdown)
	defer cancel()
	if err := tel.Shutdown(sctx); err != nil {
		fmt.Fprintf(c.stderr, "interceptor: flushing telemetry: %v\n", err)
	}
	return code
}

func (c *cli) serve(s Settings, tel *otelconfig.Telemetry) int {
	log := tel.Logger()
	srv, err := New(s, tel)
	if err != nil {
		fmt.Fprintf(c.stderr, "interceptor: %v\n", err)
		return ExitConfig
	}
	defer srv.Close()

	addr, hint := "", ""
	if s.Listen != "" {
		addr, _ = ListenAddr(s.Listen)
	} else {
		r, ok := c.registry()
		if !ok {
			return ExitConfig
		}
		e, res, err := r.Allocate(s.ProjectDir)
		if rec := res.Recovered; rec != nil {
			log.Warn("The port registry was corrupt; it was backed up and rebuilt", "backup", rec.Backup, "reason", rec.Reason)
		}
		if err != nil {
			fmt.Fprintf(c.stderr, "interceptor: %v\n", err)
			return ExitConfig
		}
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(e.Port))
		hint = fmt.Sprintf(" (port %d is registered to %s; is its interceptor already running? See 'interceptor list'; --listen or %s override the port)", e.Port, e.Dir, EnvPort)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(c.stderr, "interceptor: cannot listen on %s: %v%s\n", addr, svcconf.UnwrapOpError(err), hint)
		return ExitConfig
	}
	log.Info("Interceptor listening", "addr", ln.Addr().String(), "target", srv.Target(), "user_id", srv.UserID())
	if c.env.ready != nil {
		c.env.ready(ln.Addr().String())
	}
	switch err := srv.Serve(c.ctx, ln); {
	case err == nil:
		log.Info("Interceptor stopped")
	case errors.Is(err, context.DeadlineExceeded):
		// Serve already logged the cut connections; stopping was asked for.
		log.Info("Interceptor stopped")
	default:
		log.Error("Interceptor stopped with an error", "error", err.Error())
		return ExitConfig
	}
	return ExitOK
}
