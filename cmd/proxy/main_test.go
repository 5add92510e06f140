package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otelcfg/otelcfg/internal/proctest"
	"go.uber.org/goleak"
)

// The test binary doubles as the proxy binary: with runMainEnv set it runs
// main() with the arguments that follow "--", so the tests see real exit
// statuses and real signal handling.
// Its name stays outside PROXY_*, which the proxy itself reads.
const runMainEnv = "OTELCFG_TEST_RUN_PROXY_MAIN"

func TestMain(m *testing.M) {
	if proctest.RunMain(runMainEnv, main) {
		return
	}
	goleak.VerifyTestMain(m)
}

func command(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = []string{
		runMainEnv + "=1",
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"OTEL_SDK_DISABLED=true", // console logs only: no exporter output to parse around
	}
	return cmd
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExitStatus(t *testing.T) {
	t.Parallel()
	badSettings := writeFile(t, "proxy.yaml", "models:\n  - name: m\n    api_base: builtin:echo\nuser_id_mappings:\n  header_patterns:\n    - {header: user-agent, pattern: \"(\", user_id: x}\n")
	badOtel := writeFile(t, "otel.yaml", "file_format: \"1.0\"\ntracer_provder: {}\n")
	tests := []struct {
		name string
		args []string
		want int
		out  string
	}{
		{"help", []string{"-h"}, 0, "Usage: proxy"},
		{"unknown flag", []string{"--bogus"}, 2, "flag provided but not defined"},
		{"invalid settings", []string{"--config", badSettings, "--listen", "127.0.0.1:0"}, 1, ":6:"},
		{"invalid otel.yaml", []string{"--otel-config", badOtel, "--listen", "127.0.0.1:0"}, 1, badOtel + ":2:1: error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := command(t, tt.args...)
			if tt.name == "invalid otel.yaml" {
				cmd.Env = cmd.Env[:len(cmd.Env)-1] // the file must be read
			}
			out, err := cmd.CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.want || !strings.Contains(string(out), tt.out) {
				t.Errorf("exit status %d, want %d; output lacks %q?\n%s", code, tt.want, tt.out, out)
			}
		})
	}
}

var listeningRE = regexp.MustCompile(`msg="Proxy listening" addr=(\S+)`)

// TestSIGTERMDrains sends SIGTERM while a request is in flight: the
// request still completes, and the process exits 0.
func TestSIGTERMDrains(t *testing.T) {
	t.Parallel()
	inFlight := make(chan struct{}, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight <- struct{}{}
		time.Sleep(300 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"drained"},"finish_reason":"stop"}]}`)
	}))
	defer upstream.Close()
	settings := writeFile(t, "proxy.yaml", "models:\n  - name: m\n    api_base: "+upstream.URL+"/v1\n")

	cmd := command(t, "--config", settings, "--listen", "127.0.0.1:0")
	addr, log, rest := proctest.Listening(t, cmd, listeningRE)
	defer cmd.Process.Kill()

	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := client.Post("http://"+addr+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"x"}]}`))
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{string(b), err}
	}()
	<-inFlight
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.err != nil || !strings.Contains(r.body, "drained") {
		t.Errorf("in-flight request: %q, %v", r.body, r.err)
	}
	tail := <-rest
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v\n%s%s", err, log, tail)
	}
	if !strings.Contains(tail, "Proxy stopped") {
		t.Errorf("no clean stop in the log:\n%s", tail)
	}
}
