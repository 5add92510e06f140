//go:build e2e

// Package e2e runs the interceptor and the proxy as real processes built
// from cmd/, pointed only by OTEL_* variables at a real OpenTelemetry
// Collector (built from upstream modules in e2e/collector), and checks
// what the Collector wrote.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/otelcfg/otelcfg/internal/demo"
	"github.com/otelcfg/otelcfg/internal/otlptest"
)

var bins struct {
	dir                                    string
	proxy, interceptor, otelcfg, collector string
}

// repoRoot is the module root (this package lives in e2e/).
var repoRoot = func() string { d, _ := filepath.Abs(".."); return d }()

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "otelcfg-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.dir = dir
	bins.proxy = filepath.Join(dir, "proxy")
	bins.interceptor = filepath.Join(dir, "interceptor")
	bins.otelcfg = filepath.Join(dir, "otelcfg")
	bins.collector = os.Getenv("OTELCOL_E2E_BIN")
	builds := [][]string{
		{"build", "-o", bins.proxy, "./cmd/proxy"},
		{"build", "-o", bins.interceptor, "./cmd/interceptor"},
		{"build", "-o", bins.otelcfg, "./cmd/validate"},
	}
	for _, b := range builds {
		cmd := exec.Command("go", b...)
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go %s: %v\n%s", strings.Join(b, " "), err, out)
			os.Exit(1)
		}
	}
	if bins.collector == "" {
		bins.collector = filepath.Join(dir, "otelcol-e2e")
		cmd := exec.Command("go", "build", "-o", bins.collector, ".")
		cmd.Dir = filepath.Join(repoRoot, "e2e", "collector")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building the collector: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitListening(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s after %s", addr, timeout)
}

// ---- the Collector ----

type collector struct {
	t                  testing.TB
	grpcPort, httpPort int
	out, config        string
	cmd                *exec.Cmd
	log                *syncBuffer
}

// newCollector prepares a Collector on free loopback ports; start runs it.
func newCollector(t testing.TB) *collector {
	c := &collector{t: t, grpcPort: freePort(t), httpPort: freePort(t), out: t.TempDir(), log: &syncBuffer{}}
	c.config = filepath.Join(c.out, "collector.yaml")
	if err := os.WriteFile(c.config, []byte(demo.CollectorConfig(fmt.Sprintf("127.0.0.1:%d", c.grpcPort), fmt.Sprintf("127.0.0.1:%d", c.httpPort), c.out)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)
	return c
}

func (c *collector) start() {
	c.t.Helper()
	c.cmd = exec.Command(bins.collector, "--config", "file:"+c.config)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	for _, p := range []int{c.grpcPort, c.httpPort} {
		if err := waitListening(fmt.Sprintf("127.0.0.1:%d", p), 30*time.Second); err != nil {
			c.t.Fatalf("collector: %v\n%s", err, c.log.String())
		}
	}
}

// stop ends the Collector gracefully, so its file exporters flush.
func (c *collector) stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
	c.cmd = nil
}

// kill ends the Collector at once, as a crash would.
func (c *collector) kill() {
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
	c.cmd = nil
}

func (c *collector) grpcEndpoint() string { return fmt.Sprintf("http://127.0.0.1:%d", c.grpcPort) }
func (c *collector) httpEndpoint() string { return fmt.Sprintf("http://127.0.0.1:%d", c.httpPort) }

// ---- what the Collector wrote (OTLP/JSON lines) ----

// received reads the Collector's file exporter output.
func (c *collector) received() *otlptest.Receiver {
	c.t.Helper()
	r, err := demo.ReadCollectorOutput(c.out)
	if err != nil {
		c.t.Fatalf("collector output: %v", err)
	}
	return r
}

func (c *collector) spans() []otlptest.Span     { return c.received().Spans() }
func (c *collector) logs() []otlptest.LogRecord { return c.received().Logs() }
func (c *collector) metrics() []otlptest.Metric { return c.received().Metrics() }

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

// ---- the services ----

type service struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	addr   string
	out    *syncBuffer
	exited chan struct{}
	err    error
}

// startService runs a service binary with exactly the given environment
// (plus PATH and HOME) and waits until it listens on addr.
func startService(t testing.TB, name, bin, addr string, env []string, args ...string) *service {
	t.Helper()
	s := &service{t: t, name: name, addr: addr, out: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Dir = repoRoot
	s.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() { s.terminate(10 * time.Second) })
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			t.Fatalf("%s exited before listening: %v\n%s", name, s.err, s.out.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return s
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s does not listen on %s:\n%s", name, addr, s.out.String())
	return nil
}

// terminate sends SIGTERM and waits; it returns the exit code, or -1 when
// the process had to be killed.
func (s *service) terminate(timeout time.Duration) int {
	if s.cmd.ProcessState != nil {
		return s.cmd.ProcessState.ExitCode()
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return s.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return -1
	}
}

// stack is a proxy and an interceptor in front of it, configured by the
// example otel.yaml and the given OTEL_* variables only.
type stack struct {
	proxy, interceptor *service
	proxyURL, url      string
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func startStack(t testing.TB, upstream string, otelEnv ...string) *stack {
	t.Helper()
	dir := t.TempDir()
	models := "  - name: echo-model\n    api_base: builtin:echo\n    model: echo-1\n"
	if upstream != "" {
		models += "  - name: upstream-model\n    api_base: " + upstream + "\n    model: upstream-1\n    api_key: ${UPSTREAM_KEY}\n"
	}
	proxyCfg := writeFile(t, dir, "proxy.yaml", "models:\n"+models)
	proxyAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	otelYAML := filepath.Join(repoRoot, "examples", "otel.yaml")
	env := append([]string{"UPSTREAM_KEY=sk-e2e-upstream-key"}, otelEnv...)
	st := &stack{proxyURL: "http://" + proxyAddr}
	st.proxy = startService(t, "proxy", bins.proxy, proxyAddr, env, "--config", proxyCfg, "--otel-config", otelYAML, "--listen", proxyAddr)
	icAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	icCfg := writeFile(t, dir, "interceptor.yaml", "user_id: e2e-user\n")
	st.interceptor = startService(t, "interceptor", bins.interceptor, icAddr, append(env, "INTERCEPTOR_PORT_REGISTRY="+filepath.Join(dir, "ports.json")),
		"run", "--config", icCfg, "--otel-config", otelYAML, "--listen", icAddr, "--target", st.proxyURL)
	st.url = "http://" + icAddr
	return st
}

// chat sends one chat completion through the interceptor and returns the
// status and body.
func chat(t testing.TB, base, model string, stream bool) (int, string) {
	t.Helper()
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hello e2e"}],"stream":%v}`, model, stream)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("chat: %v", err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
