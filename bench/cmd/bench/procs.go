package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/otelcfg/otelcfg/bench/load"
	"github.com/otelcfg/otelcfg/bench/report"
)

// cleanEnv is this process's environment without the variables that
// would change what a service or the CLI does (OTEL_*, the services'
// own), plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "OTEL_") || strings.HasPrefix(k, "PROXY_") || strings.HasPrefix(k, "INTERCEPTOR_") ||
			k == "SUPERMEMORY_USERNAME" || k == "LITELLM_MASTER_KEY" || k == "LITELLM_API_KEY" || k == "GODEBUG" || k == "GOGC" || k == "GOMEMLIMIT" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// proc is a server process under test.
type proc struct {
	name string
	cmd  *exec.Cmd
	addr string
	done chan struct{}
	err  error
}

// startProc starts a server and waits until addr accepts a TCP
// connection. Its output goes to /dev/null: a service's console is part of
// its cost, and a file would fill the disk under load. When it does not
// come up, it is run once more with its output captured, for the error.
func startProc(name, addr string, env []string, path string, args ...string) (*proc, error) {
	p := &proc{name: name, addr: addr, done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = env
	if dir := os.Getenv("BENCH_PROC_LOGS"); dir != "" {
		// Debugging the harness: keep each server's output.
		f, err := os.Create(filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".log"))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		p.cmd.Stdout, p.cmd.Stderr = f, f
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	if _, err := waitListening(addr, p.done, 20*time.Second); err != nil {
		p.stop()
		return nil, fmt.Errorf("%s did not listen on %s: %v%s", name, addr, err, diagnose(env, path, args))
	}
	return p, nil
}

func diagnose(env []string, path string, args []string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run()
	b := out.Bytes()
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return fmt.Sprintf("\n$ %s %s\n%s", path, strings.Join(args, " "), b)
}

// waitListening polls addr until it accepts a connection, the process
// ends, or the timeout passes; it returns when the connection succeeded.
func waitListening(addr string, done <-chan struct{}, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			t := time.Now()
			c.Close()
			return t, nil
		}
		select {
		case <-done:
			return time.Time{}, errors.New("the process exited")
		default:
		}
		if time.Now().After(deadline) {
			return time.Time{}, err
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// stop sends SIGTERM and waits for a clean exit, then kills.
func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// rssMiB reads VmRSS of a process from /proc.
func rssMiB(pid int) (float64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v) // "12345 kB"
			kb, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				return 0, err
			}
			return kb / 1024, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}

// cpuSeconds is the user+system CPU time a process has used, from
// /proc/PID/stat (in clock ticks of 1/100 s).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields start after
	// the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc/PID/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc/PID/stat")
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("unexpected /proc/PID/stat")
	}
	return (utime + stime) / 100, nil
}

// timeRun is the wall time of one run of a command that must exit 0.
func timeRun(env []string, path string, args ...string) (time.Duration, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = env
	var errb bytes.Buffer
	cmd.Stderr = &errb
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s: %v\n%s", filepath.Base(path), err, errb.Bytes())
	}
	return d, nil
}

// conformanceFiles lists the official example files, or says why not.
func (c *config) conformanceFiles() ([]string, string) {
	files, _ := filepath.Glob(filepath.Join(c.conformance, "*.yaml"))
	if len(files) == 0 {
		return nil, "the conformance files are absent (" + c.conformance + ")"
	}
	return files, ""
}

// validate times `otelcfg validate` on the three conformance files
// against the baseline program doing only otelconf.ParseYAML on them,
// alternating the two.
func (c *config) validate() ([]report.Row, error) {
	const figure = "`otelcfg validate` on the 3 conformance files, whole process"
	files, why := c.conformanceFiles()
	if files == nil {
		return []report.Row{report.SkipRow(figure, "≤ 1.5×", why)}, nil
	}
	env := cleanEnv()
	validateArgs := append([]string{"validate"}, files...)
	var ours, base []float64
	for i := range c.procRuns + 1 {
		d1, err := timeRun(env, filepath.Join(c.bin, "otelcfg"), validateArgs...)
		if err != nil {
			return nil, err
		}
		d2, err := timeRun(env, filepath.Join(c.bin, "bench-parseyaml"), files...)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			continue // the first run of each reads the binary from disk
		}
		ours = append(ours, ms(d1))
		base = append(base, ms(d2))
	}
	r := report.RatioRow(figure, load.Median(ours), load.Median(base), report.Millis, "≤ 1.5×", 1.5, true)
	r.Note = fmt.Sprintf("median of %d runs each; the baseline is bench/cmd/parseyaml (otelconf.ParseYAML only)", c.procRuns)
	return []report.Row{r}, nil
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// startup times the proxy from exec to the first accepted TCP connection,
// with the example otel.yaml (its console exporters) and with
// OTEL_SDK_DISABLED=true, alternating.
func (c *config) startup() ([]report.Row, error) {
	settings, err := c.writeProxySettings("startup", "builtin:echo", 90*time.Second)
	if err != nil {
		return nil, err
	}
	once := func(extra ...string) (time.Duration, error) {
		addr, err := freeAddr()
		if err != nil {
			return 0, err
		}
		cmd := exec.Command(filepath.Join(c.bin, "proxy"), "--config", settings, "--listen", addr)
		cmd.Env = cleanEnv(extra...)
		done := make(chan struct{})
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		go func() { _ = cmd.Wait(); close(done) }()
		t, err := waitListening(addr, done, 20*time.Second)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if err != nil {
			return 0, fmt.Errorf("proxy did not listen: %v%s", err, diagnose(cmd.Env, cmd.Path, cmd.Args[1:]))
		}
		return t.Sub(start), nil
	}
	var ours, base []float64
	for i := range c.procRuns + 1 {
		d1, err := once()
		if err != nil {
			return nil, err
		}
		d2, err := once("OTEL_SDK_DISABLED=true")
		if err != nil {
			return nil, err
		}
		if i == 0 {
			continue
		}
		ours = append(ours, ms(d1))
		base = append(base, ms(d2))
	}
	r := report.RatioRow("proxy start → listening, example otel.yaml", load.Median(ours), load.Median(base), report.Millis, "≤ 1.5×", 1.5, true)
	r.Baseline += " (SDK disabled)"
	r.Note = fmt.Sprintf("median of %d runs each, from exec to the first accepted TCP connection", c.procRuns)
	return []report.Row{r}, nil
}

// writeProxySettings writes a proxy settings file with one model, "bench",
// served by apiBase, booting telemetry from examples/otel.yaml.
func (c *config) writeProxySettings(name, apiBase string, upstreamIdle time.Duration) (string, error) {
	path := filepath.Join(c.out, "proxy-"+name+".yaml")
	body := fmt.Sprintf(`# written by bench/cmd/bench
listen: 127.0.0.1:0
otel_config: %s
models:
  - name: bench
    api_base: %s
upstream:
  idle_conn_timeout: %s
`, strconv.Quote(filepath.Join(c.repo, "examples", "otel.yaml")), strconv.Quote(apiBase), upstreamIdle)
	return path, os.WriteFile(path, []byte(body), 0o644)
}
