package demo

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/otelcfg/otelcfg/internal/otlptest"
)

// CollectorConfig is the configuration the demo and the e2e suite give
// the Collector: OTLP gRPC and HTTP receivers on the given loopback
// addresses, one OTLP/JSON file per signal in dir (appended to, so a
// restarted Collector keeps what it wrote), and no self-telemetry listener.
func CollectorConfig(grpcAddr, httpAddr, dir string) string {
	return fmt.Sprintf(collectorConfig, grpcAddr, httpAddr, dir)
}

const collectorConfig = `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
      http:
        endpoint: %s
exporters:
  file/traces:
    path: %[3]s/traces.jsonl
    format: json
    flush_interval: 50ms
    append: true
  file/metrics:
    path: %[3]s/metrics.jsonl
    format: json
    flush_interval: 50ms
    append: true
  file/logs:
    path: %[3]s/logs.jsonl
    format: json
    flush_interval: 50ms
    append: true
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file/traces]
    metrics:
      receivers: [otlp]
      exporters: [file/metrics]
    logs:
      receivers: [otlp]
      exporters: [file/logs]
`

type collector struct {
	cmd      *exec.Cmd
	dir      string
	endpoint string
	exited   chan struct{}
}

func startCollector(bin, tmp string, logw io.Writer) (*collector, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(tmp, "collector")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(CollectorConfig(addr, httpAddr, dir)), 0o600); err != nil {
		return nil, err
	}
	c := &collector{dir: dir, endpoint: "http://" + addr, exited: make(chan struct{})}
	c.cmd = exec.Command(bin, "--config", "file:"+cfg)
	c.cmd.Stdout, c.cmd.Stderr = logw, logw
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the collector: %w", err)
	}
	go func() { _ = c.cmd.Wait(); close(c.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			conn.Close()
			return c, nil
		}
		select {
		case <-c.exited:
			return nil, fmt.Errorf("the collector exited at start")
		case <-time.After(50 * time.Millisecond):
		}
	}
	c.stop()
	return nil, fmt.Errorf("the collector does not listen on %s", addr)
}

// stop ends the Collector gracefully so its file exporters flush.
func (c *collector) stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

func (c *collector) read() (*otlptest.Receiver, error) { return ReadCollectorOutput(c.dir) }

// ReadCollectorOutput reads the files a Collector configured by
// CollectorConfig wrote into dir; a missing file is an empty signal.
func ReadCollectorOutput(dir string) (*otlptest.Receiver, error) {
	var data [3][]byte
	for i, name := range []string{"traces.jsonl", "metrics.jsonl", "logs.jsonl"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		data[i] = b
	}
	return otlptest.FromJSONLines(data[0], data[1], data[2])
}
