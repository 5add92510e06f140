package main

import (
	"errors"
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

// The test binary doubles as the interceptor binary: with runMainEnv set it
// runs main() with the arguments that follow "--", so the tests see real
// exit statuses and real signal handling.
const runMainEnv = "INTERCEPTOR_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if proctest.RunMain(runMainEnv, main) {
		return
	}
	goleak.VerifyTestMain(m)
}

func command(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(os.Environ(),
		runMainEnv+"=1",
		"OTEL_SDK_DISABLED=true", // console logs only: no exporter output to parse around
		"INTERCEPTOR_PORT_REGISTRY="+filepath.Join(t.TempDir(), "ports.json"),
	)
	return cmd
}

func TestExitStatus(t *testing.T) {
	t.Parallel()
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("listen: nowhere\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"help", []string{"help"}, 0},
		{"unknown command", []string{"bogus"}, 2},
		{"unknown flag", []string{"--bogus"}, 2},
		{"invalid settings", []string{"--config", bad}, 1},
		{"list", []string{"list"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := command(t, tt.args...).CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.want {
				t.Errorf("exit status %d, want %d\n%s", code, tt.want, out)
			}
		})
	}
}

var listeningRE = regexp.MustCompile(`msg="Interceptor listening" addr=(\S+)`)

// TestSIGTERMDrains sends SIGTERM while a request is in flight: the
// request still completes, and the process exits 0.
func TestSIGTERMDrains(t *testing.T) {
	t.Parallel()
	inFlight := make(chan struct{}, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight <- struct{}{}
		time.Sleep(300 * time.Millisecond)
		_, _ = io.WriteString(w, "drained")
	}))
	defer upstream.Close()

	cmd := command(t, "run", "--listen", "127.0.0.1:0", "--target", upstream.URL)
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
		resp, err := client.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader("{}"))
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
	if r := <-res; r.err != nil || r.body != "drained" {
		t.Errorf("in-flight request: %q, %v", r.body, r.err)
	}
	tail := <-rest
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v\n%s%s", err, log, tail)
	}
	if !strings.Contains(tail, "Interceptor stopped") {
		t.Errorf("no clean stop in the log:\n%s", tail)
	}
}
