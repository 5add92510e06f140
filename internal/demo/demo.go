// Package demo runs the offline demo end to end: it validates the example
// configurations with the otelcfg CLI, starts the proxy (builtin:echo
// upstream) and the interceptor as real processes, sends a chat completion
// and a streaming one through the interceptor, then shows each service's
// log lines with their trace_id and every request's trace as a text
// waterfall with its log records under their spans.
//
// Telemetry goes over real OTLP/gRPC to an in-process receiver, or, with
// --collector, to a real OpenTelemetry Collector whose file output the
// waterfall is read from. Nothing leaves the machine.
package demo

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/otelcfg/otelcfg/internal/cli"
	"github.com/otelcfg/otelcfg/internal/otlptest"
	"github.com/otelcfg/otelcfg/internal/waterfall"
)

// Main runs the demo and returns the process exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binDir := fs.String("bin", "bin", "directory holding the proxy and interceptor binaries")
	collectorBin := fs.String("collector", "", "path of an OpenTelemetry Collector binary (e2e/collector); empty: an in-process OTLP receiver")
	examples := fs.String("examples", "examples", "directory of otel.yaml, proxy.yaml and interceptor.yaml")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	d := &run{out: stdout, errw: stderr, bin: *binDir, examples: *examples}
	if err := d.main(ctx, *collectorBin); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	return 0
}

type run struct {
	out, errw     io.Writer
	bin, examples string
	tmp           string
}

func (d *run) step(format string, args ...any) {
	fmt.Fprintf(d.out, "\n== "+format+"\n", args...)
}

func (d *run) main(ctx context.Context, collectorBin string) error {
	tmp, err := os.MkdirTemp("", "otelcfg-demo-")
	if err != nil {
		return err
	}
	d.tmp = tmp
	defer os.RemoveAll(tmp)

	otelYAML := filepath.Join(d.examples, "otel.yaml")
	d.step("1. otelcfg validate: the example configurations, as each service will load them")
	for _, svc := range []string{"proxy", "interceptor"} {
		args := []string{"validate", "--service", svc, otelYAML, filepath.Join(d.examples, svc+".yaml")}
		fmt.Fprintf(d.out, "$ otelcfg %s\n", strings.Join(args, " "))
		if code := cli.Run(ctx, args, nil, d.out, d.out); code != 0 {
			return fmt.Errorf("otelcfg validate --service %s failed (exit %d)", svc, code)
		}
	}

	var endpoint string
	var collect func() (*otlptest.Receiver, error)
	if collectorBin == "" {
		rcv, err := otlptest.Start(otlptest.ProtocolGRPC)
		if err != nil {
			return err
		}
		defer rcv.Close()
		endpoint = rcv.Endpoint()
		collect = func() (*otlptest.Receiver, error) { return rcv, nil }
		d.step("2. an OTLP/gRPC receiver listens on %s", endpoint)
	} else {
		col, err := startCollector(collectorBin, tmp, d.errw)
		if err != nil {
			return err
		}
		defer col.stop()
		endpoint = col.endpoint
		collect = func() (*otlptest.Receiver, error) { col.stop(); return col.read() }
		d.step("2. an OpenTelemetry Collector (%s) listens on %s", collectorBin, endpoint)
	}

	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + endpoint}
	fmt.Fprintf(d.out, "services start with the unchanged %s and only %s\n", otelYAML, env[0])
	proxyAddr, err := freeAddr()
	if err != nil {
		return err
	}
	proxy, err := d.start("proxy", env, "--config", filepath.Join(d.examples, "proxy.yaml"), "--otel-config", otelYAML, "--listen", proxyAddr)
	if err != nil {
		return err
	}
	defer proxy.kill()
	icAddr, err := freeAddr()
	if err != nil {
		return err
	}
	ic, err := d.start("interceptor", append(env, "INTERCEPTOR_PORT_REGISTRY="+filepath.Join(tmp, "ports.json")),
		"run", "--config", filepath.Join(d.examples, "interceptor.yaml"), "--otel-config", otelYAML, "--listen", icAddr, "--target", "http://"+proxyAddr)
	if err != nil {
		return err
	}
	defer ic.kill()
	d.step("3. proxy on %s, interceptor on %s", proxyAddr, icAddr)

	d.step("4. one chat completion and one streaming completion through the interceptor")
	for _, stream := range []bool{false, true} {
		status, body, err := chat(ctx, "http://"+icAddr, stream)
		if err != nil {
			return err
		}
		fmt.Fprintf(d.out, "POST /v1/chat/completions stream=%v -> %d\n%s\n", stream, status, indent(body))
		if status != http.StatusOK {
			return fmt.Errorf("request failed with status %d", status)
		}
	}

	d.step("5. graceful shutdown: both services drain, flush their telemetry and exit")
	for _, p := range []*process{ic, proxy} {
		code, err := p.terminate(15 * time.Second)
		if err != nil {
			return err
		}
		fmt.Fprintf(d.out, "%s exited with status %d\n", p.name, code)
	}

	d.step("6. the services' log lines (console), each with the trace_id of its request")
	for _, p := range []*process{ic, proxy} {
		for _, l := range p.lines() {
			fmt.Fprintf(d.out, "[%-11s] %s\n", p.name, l)
		}
	}

	rcv, err := collect()
	if err != nil {
		return err
	}
	spans, logs := rcv.Spans(), rcv.Logs()
	d.step("7. what the telemetry backend received: %d spans, %d log records, %d metrics", len(spans), len(logs), len(rcv.Metrics()))
	ids := waterfall.TraceIDs(spans)
	if len(ids) == 0 {
		return errors.New("no trace arrived")
	}
	for _, id := range ids {
		if err := waterfall.Render(d.out, id, spans, logs, waterfall.Options{Width: 40}); err != nil {
			return err
		}
		fmt.Fprintln(d.out)
	}
	return nil
}

func indent(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 600 {
		s = s[:600] + " …"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func chat(ctx context.Context, base string, stream bool) (int, string, error) {
	body := fmt.Sprintf(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello from the otelcfg demo"}],"stream":%v}`, stream)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "otelcfg-demo/1.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// process is one service binary running under the demo.
type process struct {
	name   string
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
}

func (d *run) start(name string, env []string, args ...string) (*process, error) {
	p := &process{name: name, out: &lockedBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(d.bin, name), args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (run `make build` first): %w", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	addr := args[len(args)-1]
	for i, a := range args {
		if a == "--listen" && i+1 < len(args) {
			addr = args[i+1]
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited at start:\n%s", name, p.out.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return p, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.kill()
	return nil, fmt.Errorf("%s does not listen on %s:\n%s", name, addr, p.out.String())
}

func (p *process) terminate(timeout time.Duration) (int, error) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode(), nil
	case <-time.After(timeout):
		p.kill()
		return -1, fmt.Errorf("%s did not stop within %s", p.name, timeout)
	}
}

func (p *process) kill() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// lines returns the human-readable log lines the process wrote.
func (p *process) lines() []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(p.out.String()))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "time=") {
			out = append(out, l)
		}
	}
	return out
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
