package proxy

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/otelcfg/otelcfg/internal/svcconf"
	"github.com/otelcfg/otelcfg/otelconfig"
)

// Exit statuses of Main.
const (
	ExitOK     = 0
	ExitConfig = 1 // invalid settings or otel.yaml, or the proxy could not start
	ExitUsage  = 2 // bad command line
)

const usage = `Usage: proxy [flags]

The OpenAI-compatible LLM proxy (litellm-proxy): POST /v1/chat/completions
(JSON and streaming), GET /v1/models, GET /health, GET /memory-routing/info.

Settings, lowest precedence first: built-in defaults, the settings file
(--config or $PROXY_CONFIG; see examples/proxy.yaml), PROXY_* variables,
flags. Telemetry comes from otel.yaml (--otel-config, otel_config,
$OTEL_CONFIG_FILE, else console output).

Flags:
`

// Main runs the proxy and returns the exit status: 0 after a clean
// shutdown, 1 when the settings or otel.yaml are invalid (every diagnostic
// is printed, nothing listens) or the proxy cannot start, 2 for a bad
// command line. ctx ends the run (SIGINT/SIGTERM in cmd/proxy).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runMain(ctx, args, stdout, stderr, mainEnv{})
}

// mainEnv lets tests run Main in parallel: their own environment, no
// process-wide telemetry globals, and a hook called once listening.
type mainEnv struct {
	environ  []string // nil: os.Environ()
	otelOpts []otelconfig.Option
	ready    func(addr string)
}

// boolFlag is a flag.Value for a boolean setting that keeps its text, so
// that flags stay a map of strings like the other layers.
type boolFlag struct{ v *string }

func (b boolFlag) String() string {
	if b.v == nil {
		return ""
	}
	return *b.v
}
func (b boolFlag) Set(s string) error { *b.v = s; return nil }
func (b boolFlag) IsBoolFlag() bool   { return true }

func newFlagSet(out io.Writer) (*flag.FlagSet, *string, map[string]*string) {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(out)
	config := fs.String("config", "", "settings file (default $"+EnvConfig+")")
	values := map[string]*string{}
	for _, f := range Flags() {
		v := new(string)
		values[f.Key] = v
		if f.Bool {
			fs.Var(boolFlag{v}, f.Name, f.Doc)
		} else {
			fs.StringVar(v, f.Name, "", f.Doc)
		}
	}
	return fs, config, values
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer, env mainEnv) int {
	if len(args) > 0 && args[0] == "help" {
		fs, _, _ := newFlagSet(stdout)
		fmt.Fprint(stdout, usage)
		fs.PrintDefaults()
		return ExitOK
	}
	fs, configFile, values := newFlagSet(io.Discard)
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return ExitOK
	case err != nil:
		fmt.Fprintf(stderr, "proxy: %v\nrun 'proxy -h' for usage\n", err)
		return ExitUsage
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "proxy: unexpected argument %q\nrun 'proxy -h' for usage\n", fs.Arg(0))
		return ExitUsage
	}
	flags := map[string]string{}
	fs.Visit(func(fl *flag.Flag) {
		for _, f := range Flags() {
			if f.Name == fl.Name {
				flags[f.Key] = *values[f.Key]
			}
		}
	})

	environ := env.environ
	if environ == nil {
		environ = os.Environ()
	}
	envMap := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			envMap[k] = v
		}
	}
	lookup := func(k string) (string, bool) { v, ok := envMap[k]; return v, ok }

	l, err := loadSettings(*configFile, lookup, flags)
	diags := append(unknownEnv(environ), l.diags...)
	if len(diags) > 0 {
		_ = otelconfig.FormatText(stderr, diags, otelconfig.TextOptions{Sources: l.sources})
	}
	if err != nil {
		var ce *otelconfig.Error
		var re *otelconfig.ReadError
		if !errors.As(err, &ce) && !errors.As(err, &re) {
			fmt.Fprintf(stderr, "proxy: %v\n", err)
		}
		return ExitConfig
	}
	s := l.settings

	opts := []otelconfig.Option{otelconfig.WithServiceName(ServiceName), otelconfig.WithConsole(stderr), otelconfig.WithEnv(lookup)}
	if s.OtelConfig != "" {
		opts = append(opts, otelconfig.WithFile(s.OtelConfig))
	}
	opts = append(opts, env.otelOpts...)
	tel, err := otelconfig.Start(ctx, opts...)
	if err != nil {
		var ce *otelconfig.Error
		var re *otelconfig.ReadError
		switch {
		case errors.As(err, &ce):
			_ = otelconfig.FormatText(stderr, ce.Diagnostics, otelconfig.TextOptions{Sources: ce.Sources})
		case errors.As(err, &re):
			_ = otelconfig.FormatText(stderr, re.Diagnostics, otelconfig.TextOptions{})
		default:
			fmt.Fprintf(stderr, "proxy: %v\n", err)
		}
		return ExitConfig
	}
	if cfg := tel.Config(); len(cfg.Diagnostics.Warnings()) > 0 {
		_ = otelconfig.FormatText(stderr, cfg.Diagnostics.Warnings(), otelconfig.TextOptions{Sources: map[string][]byte{cfg.Name: cfg.Source}})
	}
	code := serve(ctx, s, tel, stderr, env.ready)
	// Flushing is bounded separately from the drain: a slow collector
	// cannot make a clean stop hang, and a long drain does not eat the
	// flush's time.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.Server.ShutdownTimeout)
	defer cancel()
	if err := tel.Shutdown(sctx); err != nil {
		fmt.Fprintf(stderr, "proxy: flushing telemetry: %v\n", err)
	}
	return code
}

func serve(ctx context.Context, s Settings, tel *otelconfig.Telemetry, stderr io.Writer, ready func(string)) int {
	log := tel.Logger()
	srv, err := New(s, tel)
	if err != nil {
		fmt.Fprintf(stderr, "proxy: %v\n", err)
		return ExitConfig
	}
	defer srv.Close()
	addr, _ := ListenAddr(s.Listen)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "proxy: cannot listen on %s: %v\n", addr, svcconf.UnwrapOpError(err))
		return ExitConfig
	}
	log.Info("Proxy listening", "addr", ln.Addr().String(), "models", strings.Join(srv.Models(), ","),
		"auth", s.MasterKey != "", "telemetry", tel.Enabled())
	if ready != nil {
		ready(ln.Addr().String())
	}
	switch err := srv.Serve(ctx, ln); {
	case err == nil, errors.Is(err, context.DeadlineExceeded):
		// A timed-out drain was logged by Serve; stopping was asked for.
		log.Info("Proxy stopped")
	default:
		log.Error("Proxy stopped with an error", "error", err.Error())
		return ExitConfig
	}
	return ExitOK
}
