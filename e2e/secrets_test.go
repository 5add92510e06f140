//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otelcfg/otelcfg/internal/otlptest"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// plantedSecret is a credential planted in one place of the setup. Each
// ends in a token of letters that are not hex digits, so no trace or span
// id can contain it by chance; a leak of the token alone (a truncated
// secret) counts as a leak too.
type plantedSecret struct {
	what, value string
}

func (s plantedSecret) token() string { return s.value[strings.LastIndex(s.value, "-")+1:] }

var (
	secMaster    = plantedSecret{"proxy master key", "sk-master-PLANTED-qzvmkw"}
	secUpstream  = plantedSecret{"upstream api key (models[].api_key)", "sk-upstream-PLANTED-wrtxqy"}
	secIcKey     = plantedSecret{"interceptor api_key", "sk-interceptor-PLANTED-ghjknp"}
	secHdrEnv    = plantedSecret{"exporter header from ${ENV} in otel.yaml", "hdr-env-PLANTED-xvuzsq"}
	secHdrLit    = plantedSecret{"exporter header written literally in otel.yaml", "hdr-literal-PLANTED-mnpqrz"}
	secHdrOtel   = plantedSecret{"exporter header in OTEL_EXPORTER_OTLP_HEADERS", "hdr-otel-PLANTED-kyvwts"}
	secClient    = plantedSecret{"a client's wrong Authorization", "sk-client-PLANTED-jzqxvw"}
	allSecrets   = []plantedSecret{secMaster, secUpstream, secIcKey, secHdrEnv, secHdrLit, secHdrOtel, secClient}
	exporterHdrs = []plantedSecret{secHdrEnv, secHdrLit, secHdrOtel}
)

// secretsEnv is the environment every process of TestSecrets gets.
func secretsEnv() []string {
	return []string{
		"LITELLM_MASTER_KEY=" + secMaster.value,
		"UPSTREAM_KEY=" + secUpstream.value,
		"LITELLM_API_KEY=" + secIcKey.value,
		"OTLP_HEADER_SECRET=" + secHdrEnv.value,
		"OTEL_EXPORTER_OTLP_HEADERS=x-otel-env-token=" + secHdrOtel.value,
		// Debug records too: whatever a service logs at any level must be
		// clean.
		"OTEL_LOG_LEVEL=debug",
		"OTEL_METRIC_EXPORT_INTERVAL=500",
		"OTEL_BSP_SCHEDULE_DELAY=200",
		"OTEL_BLRP_SCHEDULE_DELAY=200",
		"PROXY_SERVER_SHUTDOWN_TIMEOUT=5s",
		"INTERCEPTOR_TIMEOUTS_SHUTDOWN=5s",
	}
}

// secretsOtelYAML sends every signal over OTLP/HTTP to endpoint with two
// headers, one from a variable and one written literally (the security
// lint warns about that one), and to the console too, so that what an
// exporter prints is checked as well.
func secretsOtelYAML(endpoint string) string {
	exp := func(signal string) string {
		return fmt.Sprintf(`otlp_http:
            endpoint: %s/v1/%s
            headers:
              - name: x-api-key
                value: ${OTLP_HEADER_SECRET}
              - name: x-literal-token
                value: %s`, endpoint, signal, secHdrLit.value)
	}
	return fmt.Sprintf(`file_format: "1.0"
propagator:
  composite: [{tracecontext: }, {baggage: }]
tracer_provider:
  processors:
    - batch:
        exporter:
          %s
    - simple:
        exporter:
          console:
meter_provider:
  readers:
    - periodic:
        exporter:
          %s
logger_provider:
  processors:
    - batch:
        exporter:
          %s
    - simple:
        exporter:
          console:
`, exp("traces"), exp("metrics"), exp("logs"))
}

// wireRecorder fronts an OTLP/HTTP receiver and keeps the headers of every
// export request: the exporter headers belong there, and only there.
type wireRecorder struct {
	*httptest.Server
	mu      sync.Mutex
	headers []http.Header
}

func newWireRecorder(t *testing.T, rec *otlptest.Receiver) *wireRecorder {
	target, err := url.Parse(rec.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	w := &wireRecorder{}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		w.headers = append(w.headers, r.Header.Clone())
		w.mu.Unlock()
		rp.ServeHTTP(rw, r)
	}))
	t.Cleanup(w.Close)
	return w
}

func (w *wireRecorder) text() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for _, h := range w.headers {
		_ = h.Write(&b)
	}
	return b.String()
}

// receivedText is everything the receiver stored, as protobuf JSON: every
// resource, span (name, attributes, events, status), log record (body,
// attributes) and metric data point attribute.
func receivedText(t *testing.T, rec *otlptest.Receiver) string {
	t.Helper()
	var b strings.Builder
	add := func(m proto.Message) {
		j, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	for _, r := range rec.TraceRequests() {
		add(r)
	}
	for _, r := range rec.LogRequests() {
		add(r)
	}
	for _, r := range rec.MetricRequests() {
		add(r)
	}
	return b.String()
}

// leakChecker collects named texts and reports every planted secret found
// in any of them, except where a secret belongs.
type leakChecker struct {
	t     *testing.T
	texts map[string]string
}

func (c *leakChecker) add(where, text string) {
	if _, dup := c.texts[where]; dup {
		where += fmt.Sprintf(" (%d)", len(c.texts))
	}
	c.texts[where] = text
}

func (c *leakChecker) check(allowed map[string][]plantedSecret) {
	c.t.Helper()
	var wheres []string
	for w := range c.texts {
		wheres = append(wheres, w)
	}
	sort.Strings(wheres)
	for _, w := range wheres {
		text := c.texts[w]
		for _, s := range allSecrets {
			if containsSecret(allowed[w], s) {
				continue
			}
			if strings.Contains(text, s.token()) {
				c.t.Errorf("the %s leaks into %s:\n%s", s.what, w, around(text, s.token()))
			}
		}
	}
}

func containsSecret(list []plantedSecret, s plantedSecret) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// around returns the text around the first occurrence of token.
func around(text, token string) string {
	i := strings.Index(text, token)
	start, end := max(0, i-300), min(len(text), i+len(token)+300)
	return "\t…" + strings.ReplaceAll(text[start:end], "\n", "\n\t") + "…"
}

// TestSecrets plants a distinct secret in every place one lives (master
// key, upstream key, interceptor key, exporter headers from the file — by
// ${VAR} and literally — and from OTEL_EXPORTER_OTLP_HEADERS, a client's
// Authorization), runs both services and the CLI through their normal and
// error paths, and checks that no secret appears in any output, exported
// span, log record or metric, or answer — while the exporter headers do
// reach the receiver and the upstream key the upstream.
func TestSecrets(t *testing.T) {
	rec := otlptest.NewHTTP(t)
	wire := newWireRecorder(t, rec)
	up := newFakeUpstream(t)
	dir := t.TempDir()
	otelYAML := writeFile(t, dir, "otel.yaml", secretsOtelYAML(wire.URL))
	downPort := freePort(t) // nothing listens there: the upstream is down
	proxyYAML := writeFile(t, dir, "proxy.yaml", fmt.Sprintf(`master_key: ${LITELLM_MASTER_KEY}
models:
  - name: echo-model
    api_base: builtin:echo
  - name: upstream-model
    api_base: %s/v1
    model: upstream-1
    api_key: ${UPSTREAM_KEY}
  - name: down-model
    api_base: http://127.0.0.1:%d/v1
    api_key: ${UPSTREAM_KEY}
`, up.URL, downPort))
	icYAML := writeFile(t, dir, "interceptor.yaml", "user_id: e2e-user\napi_key: ${LITELLM_API_KEY}\n")
	env := secretsEnv()
	lc := &leakChecker{t: t, texts: map[string]string{}}

	proxyAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	proxy := startService(t, "proxy", bins.proxy, proxyAddr, env, "--config", proxyYAML, "--otel-config", otelYAML, "--listen", proxyAddr)
	icAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ic := startService(t, "interceptor", bins.interceptor, icAddr, append(env, "INTERCEPTOR_PORT_REGISTRY_PATH="+filepath.Join(dir, "ports.json")),
		"run", "--config", icYAML, "--otel-config", otelYAML, "--listen", icAddr, "--target", "http://"+proxyAddr)

	type call struct {
		name, base, method, path, auth, model string
		stream                                bool
		want                                  int
	}
	icURL, proxyURL := "http://"+icAddr, "http://"+proxyAddr
	bearer := func(s plantedSecret) string { return "Bearer " + s.value }
	calls := []call{
		{"chat via interceptor", icURL, "POST", "/v1/chat/completions", bearer(secMaster), "echo-model", false, 200},
		{"stream via interceptor", icURL, "POST", "/v1/chat/completions", bearer(secMaster), "echo-model", true, 200},
		{"upstream chat", icURL, "POST", "/v1/chat/completions", bearer(secMaster), "upstream-model", false, 200},
		{"upstream stream", icURL, "POST", "/v1/chat/completions", bearer(secMaster), "upstream-model", true, 200},
		{"chat to the proxy", proxyURL, "POST", "/v1/chat/completions", bearer(secMaster), "upstream-model", false, 200},
		{"models", proxyURL, "GET", "/v1/models", bearer(secMaster), "", false, 200},
		{"routing info", proxyURL, "GET", "/memory-routing/info", bearer(secMaster), "", false, 200},
		// The interceptor adds its api_key to a request without
		// credentials; the proxy wants the master key: 401.
		{"interceptor key refused", icURL, "POST", "/v1/chat/completions", "", "echo-model", false, 401},
		{"wrong key", proxyURL, "POST", "/v1/chat/completions", bearer(secClient), "echo-model", false, 401},
		{"wrong key via interceptor", icURL, "POST", "/v1/chat/completions", bearer(secClient), "echo-model", true, 401},
		{"key without scheme", proxyURL, "POST", "/v1/chat/completions", secClient.value, "echo-model", false, 401},
		{"basic auth", proxyURL, "GET", "/v1/models", "Basic " + secClient.value, "", false, 401},
		{"unknown model", icURL, "POST", "/v1/chat/completions", bearer(secMaster), "no-such-model", false, 404},
		{"upstream down", icURL, "POST", "/v1/chat/completions", bearer(secMaster), "down-model", false, 502},
		{"upstream down, stream", proxyURL, "POST", "/v1/chat/completions", bearer(secMaster), "down-model", true, 502},
	}
	for _, c := range calls {
		var body io.Reader
		if c.method == "POST" {
			body = strings.NewReader(fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hello"}],"stream":%v}`, c.model, c.stream))
		}
		req, _ := http.NewRequestWithContext(context.Background(), c.method, c.base+c.path, body)
		req.Header.Set("Content-Type", "application/json")
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: status %d, want %d: %s", c.name, resp.StatusCode, c.want, b)
		}
		var hb strings.Builder
		_ = resp.Header.Write(&hb)
		lc.add("the answer to "+c.name, hb.String()+"\n"+string(b))
	}

	// Everything exported so far arrives within a few schedule delays;
	// the metrics (every 500ms) carry the error requests' attributes too.
	rec.WaitFor(t, 20*time.Second, func(r *otlptest.Receiver) bool {
		logs := r.Logs()
		seen := map[string]bool{}
		for _, l := range logs {
			seen[svc(l.Resource)] = true
		}
		return seen["litellm-proxy"] && seen["litellm-interceptor"] && r.Requests(otlptest.SignalMetrics) >= 4 && len(r.Spans()) >= 20
	})
	// A clean stop flushes the rest.
	for _, s := range []*service{ic, proxy} {
		if code := s.terminate(15 * time.Second); code != 0 {
			t.Errorf("%s exited %d:\n%s", s.name, code, s.out.String())
		}
	}
	lc.add("proxy stdout+stderr", proxy.out.String())
	lc.add("interceptor stdout+stderr", ic.out.String())
	lc.add("what the OTLP receiver stored", receivedText(t, rec))
	lc.add("export request headers", wire.text())
	up.mu.Lock()
	var uh strings.Builder
	for _, h := range up.headers {
		_ = h.Write(&uh)
	}
	up.mu.Unlock()
	lc.add("upstream request headers", uh.String())

	// Where they belong: the exporter headers on the wire to the
	// receiver, the upstream key on the wire to the upstream.
	for _, s := range exporterHdrs {
		if !strings.Contains(wire.text(), s.value) {
			t.Errorf("the %s never reached the receiver; its requests' headers:\n%s", s.what, wire.text())
		}
	}
	if !strings.Contains(uh.String(), "Bearer "+secUpstream.value) {
		t.Errorf("the upstream never got its key; headers:\n%s", uh.String())
	}
	if !strings.Contains(receivedText(t, rec), "Received request") {
		t.Errorf("the receiver has no log records to check")
	}

	// Services that refuse to start print diagnostics: with a broken
	// otel.yaml, a broken settings file holding a literal key, and the
	// interceptor's likewise.
	badOtel := writeFile(t, dir, "bad-otel.yaml", strings.Replace(secretsOtelYAML(wire.URL), "            headers:", "            compresion: gzip\n            headers:", 1)+"bogus: 1\n")
	badProxy := writeFile(t, dir, "bad-proxy.yaml", fmt.Sprintf(`master_key: %s
listen: not-an-address
models:
  - name: m
    api_base: builtin:echo
    api_key: %s
    extra_headers:
      x-upstream-token: "%s\u0001"
`, secMaster.value, secUpstream.value, secUpstream.value))
	badIC := writeFile(t, dir, "bad-interceptor.yaml", fmt.Sprintf("api_key: %s\ntarget: not a url\nbogus: 1\n", secIcKey.value))
	// A malformed OTEL_EXPORTER_OTLP_HEADERS (a bad %-escape after the
	// secret) is refused too.
	badHeaders := append(slices.Clone(env), "OTEL_EXPORTER_OTLP_HEADERS=x-otel-env-token="+secHdrOtel.value+"%zz,"+secHdrOtel.value)
	refuse := []struct {
		name string
		bin  string
		env  []string
		args []string
	}{
		{"proxy, bad otel.yaml", bins.proxy, env, []string{"--config", proxyYAML, "--otel-config", badOtel, "--listen", "127.0.0.1:0"}},
		{"proxy, malformed OTEL_EXPORTER_OTLP_HEADERS", bins.proxy, badHeaders, []string{"--config", proxyYAML, "--otel-config", otelYAML, "--listen", "127.0.0.1:0"}},
		{"interceptor, malformed OTEL_EXPORTER_OTLP_HEADERS", bins.interceptor, badHeaders, []string{"run", "--config", icYAML, "--otel-config", otelYAML, "--listen", "127.0.0.1:0", "--target", proxyURL}},
		{"proxy, bad settings", bins.proxy, env, []string{"--config", badProxy, "--otel-config", otelYAML}},
		{"interceptor, bad otel.yaml", bins.interceptor, env, []string{"run", "--config", icYAML, "--otel-config", badOtel, "--listen", "127.0.0.1:0", "--target", proxyURL}},
		{"interceptor, bad settings", bins.interceptor, env, []string{"run", "--config", badIC, "--otel-config", otelYAML, "--listen", "127.0.0.1:0"}},
	}
	for _, r := range refuse {
		out, code := runBin(t, r.bin, r.env, r.args...)
		if code != 1 {
			t.Errorf("%s: exit %d, want 1:\n%s", r.name, code, out)
		}
		if !strings.Contains(out, "error") {
			t.Errorf("%s: no diagnostics:\n%s", r.name, out)
		}
		lc.add(r.name, out)
	}

	// The CLI, on every file and in every format.
	var cli [][]string
	for _, f := range []string{otelYAML, badOtel, proxyYAML, badProxy, icYAML, badIC} {
		for _, format := range []string{"text", "json", "sarif", "github"} {
			cli = append(cli, []string{"validate", "--format", format, f})
		}
		cli = append(cli, []string{"validate", "--strict", "--service", "proxy", f})
	}
	for _, f := range []string{otelYAML, badOtel} {
		cli = append(cli,
			[]string{"print", f}, []string{"print", "--format", "json", f},
			[]string{"print", "--explain", f}, []string{"print", "--explain", "--format", "json", f},
			[]string{"print", "--no-env", "--explain", f})
	}
	cli = append(cli, []string{"env"}, []string{"env", "--format", "json"})
	for _, args := range cli {
		out, code := runBin(t, bins.otelcfg, env, args...)
		if code == 2 {
			t.Errorf("otelcfg %s: exit 2:\n%s", strings.Join(args, " "), out)
		}
		lc.add("otelcfg "+strings.Join(args, " "), out)
	}
	for _, args := range [][]string{{"validate", otelYAML}, {"validate", "--format", "json", otelYAML}, {"print", "--explain", otelYAML}, {"env"}} {
		out, _ := runBin(t, bins.otelcfg, badHeaders, args...)
		lc.add("otelcfg "+strings.Join(args, " ")+", malformed OTEL_EXPORTER_OTLP_HEADERS", out)
	}

	lc.check(map[string][]plantedSecret{
		"export request headers":   exporterHdrs,
		"upstream request headers": {secUpstream},
	})
}

// runBin runs a binary to its end with the given environment and returns
// its combined output and exit status.
func runBin(t *testing.T, bin string, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v did not end: %s", bin, args, out.String())
	}
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("%s: %v", bin, err)
	}
	return out.String(), cmd.ProcessState.ExitCode()
}
