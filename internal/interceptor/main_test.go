package interceptor

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otelcfg/otelcfg/internal/interceptor/portreg"
	"github.com/otelcfg/otelcfg/otelconfig"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
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

// quietOpts keep Main's telemetry in-process and silent.
func quietOpts() []otelconfig.Option {
	return []otelconfig.Option{otelconfig.WithBytes("otel.yaml", []byte(quietOtel)), otelconfig.WithoutGlobals()}
}

func TestMainExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badSettings := write("bad.yaml", "target: http://127.0.0.1:8764\nuser_idd: x\n")
	badOtel := write("otel.yaml", "file_format: \"1.0\"\ntracer_provder: {}\n")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() }) // the subtests run after this function returns
	registry := filepath.Join(dir, "reg.json")

	tests := []struct {
		name       string
		args       []string
		env        []string
		otel       []otelconfig.Option // nil: quiet in-memory config
		want       int
		wantStdout string
		wantStderr []string
	}{
		{name: "help", args: []string{"help"}, want: ExitOK, wantStdout: "Usage: interceptor"},
		{name: "-h", args: []string{"-h"}, want: ExitOK, wantStdout: "-listen"},
		{name: "list -h", args: []string{"list", "-h"}, want: ExitOK, wantStdout: "-json"},
		{name: "unknown command", args: []string{"serve"}, want: ExitUsage, wantStderr: []string{`unknown command "serve"`}},
		{name: "unknown flag", args: []string{"--nope"}, want: ExitUsage, wantStderr: []string{"flag provided but not defined: -nope"}},
		{name: "flag without value", args: []string{"run", "--listen"}, want: ExitUsage, wantStderr: []string{"flag needs an argument"}},
		{name: "run takes no DIR", args: []string{"run", "somewhere"}, want: ExitUsage, wantStderr: []string{`unexpected argument "somewhere"`}},
		{name: "list takes no DIR", args: []string{"list", "somewhere"}, want: ExitUsage},
		{name: "show takes one DIR", args: []string{"show", "a", "b"}, want: ExitUsage},
		{name: "missing settings file", args: []string{"--config", filepath.Join(dir, "nope.yaml")}, want: ExitConfig,
			wantStderr: []string{"cannot read settings file", "[io]"}},
		{name: "invalid settings file", args: []string{"--config", badSettings}, want: ExitConfig,
			wantStderr: []string{badSettings + ":2:1: error: unknown key \"user_idd\"", "    2 | user_idd: x", `did you mean "user_id"?`}},
		{name: "invalid settings from the environment", env: []string{"INTERCEPTOR_TARGET=ftp://x"}, want: ExitConfig,
			wantStderr: []string{"$INTERCEPTOR_TARGET: error"}},
		{name: "invalid flag value", args: []string{"--listen", "nowhere"}, want: ExitConfig, wantStderr: []string{"invalid value for --listen"}},
		{name: "invalid otel.yaml", args: []string{"--otel-config", badOtel, "--listen", "127.0.0.1:0"}, otel: []otelconfig.Option{otelconfig.WithoutGlobals()},
			want: ExitConfig, wantStderr: []string{badOtel + ":2:1: error", "tracer_provder"}},
		{name: "missing otel.yaml", args: []string{"--otel-config", filepath.Join(dir, "none.yaml"), "--listen", "127.0.0.1:0"}, otel: []otelconfig.Option{otelconfig.WithoutGlobals()},
			want: ExitConfig, wantStderr: []string{"none.yaml"}},
		{name: "busy listen address", args: []string{"--listen", busy.Addr().String()}, want: ExitConfig,
			wantStderr: []string{"cannot listen on " + busy.Addr().String()}},
		{name: "show unregistered", args: []string{"show", dir, "--port-registry", registry}, want: ExitConfig, wantStderr: []string{"no port registered for"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr syncBuffer
			otel := tt.otel
			if otel == nil {
				otel = quietOpts()
			}
			listened := false
			env := mainEnv{environ: append([]string{}, tt.env...), otelOpts: otel, ready: func(string) { listened = true }}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got := runMain(ctx, tt.args, &stdout, &stderr, env)
			if got != tt.want {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", got, tt.want, stdout.String(), stderr.String())
			}
			if listened {
				t.Error("listened although the configuration is invalid")
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantStdout, stdout.String())
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}

// startMain runs `interceptor run` in the background and returns its
// address and a stop function that returns the exit status.
func startMain(t *testing.T, args []string, environ []string, otel []otelconfig.Option) (addr string, stderr *syncBuffer, stop func() int) {
	t.Helper()
	stderr = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	code := make(chan int, 1)
	go func() {
		code <- runMain(ctx, args, io.Discard, stderr, mainEnv{environ: environ, otelOpts: otel, ready: func(a string) { ready <- a }})
	}()
	select {
	case addr = <-ready:
	case c := <-code:
		cancel()
		t.Fatalf("Main exited with %d before listening:\n%s", c, stderr.String())
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatalf("Main did not start listening:\n%s", stderr.String())
	}
	var once sync.Once
	var result int
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case result = <-code:
			case <-time.After(20 * time.Second):
				t.Fatal("Main did not return after its context ended")
			}
		})
		return result
	}
	t.Cleanup(func() { stop() })
	return addr, stderr, stop
}

func TestMainRunServesAndShutsDown(t *testing.T) {
	t.Parallel()
	up := &recordingUpstream{}
	upstream := httptest.NewServer(up)
	defer upstream.Close()
	spans := keptSpans{tracetest.NewInMemoryExporter()}
	otel := append(quietOpts(), otelconfig.WithTracerProviderOptions(sdktrace.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(spans))))
	project := filepath.Join(t.TempDir(), "shop")
	if err := os.Mkdir(project, 0o755); err != nil {
		t.Fatal(err)
	}
	addr, stderr, stop := startMain(t, []string{"run", "--listen", "127.0.0.1:0", "--target", upstream.URL, "--project-dir", project},
		[]string{"INTERCEPTOR_API_KEY=sk-main-test"}, otel)

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if h["user_id"] != "pycharm-shop" || h["target"] != upstream.URL {
		t.Errorf("health = %v", h)
	}
	resp, err = client.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := up.last(t).Header.Get("Authorization"); got != "Bearer sk-main-test" {
		t.Errorf("Authorization = %q", got)
	}
	client.CloseIdleConnections()

	if code := stop(); code != ExitOK {
		t.Fatalf("exit %d after shutdown:\n%s", code, stderr.String())
	}
	if len(spans.GetSpans()) < 3 {
		t.Errorf("telemetry not flushed at shutdown: %d spans", len(spans.GetSpans()))
	}
	for _, w := range []string{"Interceptor listening", "Received request", "Shutting down", "Interceptor stopped"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("console lacks %q:\n%s", w, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "sk-main-test") {
		t.Errorf("the console shows the key:\n%s", stderr.String())
	}
	if _, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
		t.Error("still listening after Main returned")
	}
}

// TestMainRunListensOnTheRegistryPort starts without --listen: the port
// comes from the registry, and a second start for the same project gets
// the same port (and fails to listen, since the first still runs).
func TestMainRunListensOnTheRegistryPort(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	registry := filepath.Join(dir, "reg.json")
	project := filepath.Join(dir, "proj")
	if err := os.Mkdir(project, 0o755); err != nil {
		t.Fatal(err)
	}
	// A private range so that parallel tests cannot collide.
	lo := freePortBlock(t)
	env := []string{
		"INTERCEPTOR_PORT_REGISTRY=" + registry,
		"INTERCEPTOR_PORT_REGISTRY_MIN_PORT=" + strconv.Itoa(lo),
		"INTERCEPTOR_PORT_REGISTRY_MAX_PORT=" + strconv.Itoa(lo+4),
		"INTERCEPTOR_PROJECT_DIR=" + project,
	}
	addr, _, stop := startMain(t, []string{"run"}, env, quietOpts())
	r := &portreg.Registry{Path: registry}
	e, ok, _, err := r.Lookup(project)
	if err != nil || !ok {
		t.Fatalf("project not registered: %v", err)
	}
	if want := net.JoinHostPort("127.0.0.1", strconv.Itoa(e.Port)); addr != want {
		t.Errorf("listening on %s, registry says %s", addr, want)
	}

	var stderr syncBuffer
	code := runMain(context.Background(), []string{"run"}, io.Discard, &stderr, mainEnv{environ: env, otelOpts: quietOpts()})
	if code != ExitConfig || !strings.Contains(stderr.String(), "already running") {
		t.Errorf("second start: exit %d\n%s", code, stderr.String())
	}
	if c := stop(); c != ExitOK {
		t.Errorf("exit %d", c)
	}
}

// keptSpans keeps its spans when Main shuts telemetry down (the in-memory
// exporter forgets them on Shutdown).
type keptSpans struct{ *tracetest.InMemoryExporter }

func (keptSpans) Shutdown(context.Context) error { return nil }

// freePortBlock returns the first of five consecutive ports that are free
// right now.
func freePortBlock(t *testing.T) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ok := p+4 <= 65535
		for i := 0; ok && i < 5; i++ {
			ok = portreg.PortFree(p + i)
		}
		if ok {
			return p
		}
	}
	t.Skip("no block of free ports")
	return 0
}

func TestMainRegistryCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	registry := filepath.Join(dir, "cfg", "ports.json")
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := mainEnv{environ: []string{"INTERCEPTOR_PORT_REGISTRY=" + registry, "INTERCEPTOR_PROJECT_DIR=" + a}}
	run := func(args ...string) (int, string, string) {
		var stdout, stderr syncBuffer
		code := runMain(context.Background(), args, &stdout, &stderr, env)
		return code, stdout.String(), stderr.String()
	}

	code, out, errOut := run("list")
	if code != ExitOK || !strings.Contains(out, "no ports registered") {
		t.Fatalf("list on an empty registry: %d %q %q", code, out, errOut)
	}
	code, out, _ = run("allocate") // the project directory from the environment
	portA, err := strconv.Atoi(strings.TrimSpace(out))
	if code != ExitOK || err != nil || portA < portreg.DefaultMinPort || portA > portreg.DefaultMaxPort {
		t.Fatalf("allocate: %d %q", code, out)
	}
	if code, out, _ = run("allocate", a); code != ExitOK || strings.TrimSpace(out) != strconv.Itoa(portA) {
		t.Errorf("allocate again: %d %q, want the same port %d", code, out, portA)
	}
	code, out, _ = run("allocate", "--json", b)
	var eb struct {
		Dir  string `json:"dir"`
		Port int    `json:"port"`
	}
	if code != ExitOK || json.Unmarshal([]byte(out), &eb) != nil || eb.Port == portA || eb.Dir != b {
		t.Errorf("allocate --json b: %d %q", code, out)
	}
	if code, out, _ = run("show", b); code != ExitOK || strings.TrimSpace(out) != strconv.Itoa(eb.Port) {
		t.Errorf("show b: %d %q", code, out)
	}
	code, out, _ = run("list")
	if code != ExitOK || !strings.Contains(out, "PORT") || !strings.Contains(out, a) || !strings.Contains(out, b) {
		t.Errorf("list: %d\n%s", code, out)
	}
	code, out, _ = run("list", "--json")
	var l struct {
		Registry string `json:"registry"`
		Entries  []struct {
			Dir string `json:"dir"`
		} `json:"entries"`
	}
	if code != ExitOK || json.Unmarshal([]byte(out), &l) != nil || len(l.Entries) != 2 || l.Registry != registry {
		t.Errorf("list --json: %d %s", code, out)
	}
	if code, out, _ = run("remove", b); code != ExitOK || !strings.Contains(out, "removed port "+strconv.Itoa(eb.Port)) {
		t.Errorf("remove b: %d %q", code, out)
	}
	if code, out, _ = run("remove", b); code != ExitOK || !strings.Contains(out, "no port was registered") {
		t.Errorf("remove b again: %d %q", code, out)
	}
	if code, _, errOut = run("show", b); code != ExitConfig || !strings.Contains(errOut, "no port registered") {
		t.Errorf("show removed: %d %q", code, errOut)
	}

	// A corrupt registry is reported, backed up and rebuilt.
	if err := os.WriteFile(registry, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run("allocate", a)
	if code != ExitOK || !strings.Contains(errOut, "was corrupt") || !strings.Contains(errOut, ".corrupt-") {
		t.Errorf("allocate on a corrupt registry: %d %q %q", code, out, errOut)
	}
	if strings.TrimSpace(out) != strconv.Itoa(portA) {
		t.Logf("after the rebuild a got %s (was %d): its first candidate was busy", strings.TrimSpace(out), portA)
	}
}
