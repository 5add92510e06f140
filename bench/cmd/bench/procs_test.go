package main

import (
	"os"
	"strings"
	"testing"
)

func TestCleanEnv(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://elsewhere:4317")
	t.Setenv("PROXY_LISTEN", ":1")
	t.Setenv("GOGC", "off")
	env := cleanEnv("OTEL_SDK_DISABLED=true")
	for _, kv := range env {
		if strings.HasPrefix(kv, "OTEL_EXPORTER") || strings.HasPrefix(kv, "PROXY_") || strings.HasPrefix(kv, "GOGC=") {
			t.Errorf("%s leaked into a child's environment", kv)
		}
	}
	if env[len(env)-1] != "OTEL_SDK_DISABLED=true" {
		t.Errorf("extra variables are not appended: %v", env[len(env)-1])
	}
}

func TestProcReadings(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if v, err := cpuSeconds(os.Getpid()); err != nil || v < 0 {
		t.Errorf("cpuSeconds: %v, %v", v, err)
	}
	if v, err := rssMiB(os.Getpid()); err != nil || v <= 0 {
		t.Errorf("rssMiB: %v, %v", v, err)
	}
	if _, err := cpuSeconds(-1); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

func TestFreeAddr(t *testing.T) {
	a, err := freeAddr()
	if err != nil || !strings.HasPrefix(a, "127.0.0.1:") {
		t.Errorf("%q %v", a, err)
	}
}
