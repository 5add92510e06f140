package otelconfig

import (
	"os"
	"strings"
	"testing"

	"github.com/otelcfg/otelcfg/examples"
	yaml "go.yaml.in/yaml/v3"
)

func loadWithEnv(t *testing.T, src []byte, env map[string]string, opts ...Option) (*Config, error) {
	t.Helper()
	return Load(append([]Option{WithBytes("otel.yaml", src), WithEnv(mapLookup(env))}, opts...)...)
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// at returns the scalar value at a JSON pointer, or "<absent>".
func at(cfg *Config, pointer string) string {
	n := Lookup(cfg.Root, pointer)
	if n == nil {
		return "<absent>"
	}
	if n.Kind != yaml.ScalarNode {
		out, _ := yaml.Marshal(n)
		return strings.TrimSpace(string(out))
	}
	return n.Value
}

func attr(cfg *Config, name string) string {
	attrs := Lookup(cfg.Root, "/resource/attributes")
	if attrs == nil {
		return "<absent>"
	}
	for _, a := range attrs.Content {
		if mapGet(a, "name").Value == name {
			return mapGet(a, "value").Value
		}
	}
	return "<absent>"
}

// TestOverlay has one case per family of the DESIGN.md overlay table,
// applied to the example configuration.
func TestOverlay(t *testing.T) {
	type check struct{ pointer, want string }
	tests := []struct {
		name   string
		src    []byte
		env    map[string]string
		checks []check
		attrs  map[string]string
		// origin: a pointer whose origin must be the named variable
		origin [2]string
	}{
		{
			name:   "no env: every signal to the console",
			env:    map[string]string{},
			checks: []check{{"/tracer_provider/processors/0/batch/exporter/console", ""}, {"/meter_provider/readers/0/periodic/exporter/console", ""}, {"/logger_provider/processors/0/batch/exporter/console", ""}},
		},
		{
			name: "endpoint switches every signal to OTLP/gRPC",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4317"},
			checks: []check{
				{"/tracer_provider/processors/0/batch/exporter/otlp_grpc/endpoint", "http://localhost:4317"},
				{"/meter_provider/readers/0/periodic/exporter/otlp_grpc/endpoint", "http://localhost:4317"},
				{"/logger_provider/processors/0/batch/exporter/otlp_grpc/endpoint", "http://localhost:4317"},
				{"/tracer_provider/processors/0/batch/exporter/console", "<absent>"},
				{"/tracer_provider/processors/0/batch/schedule_delay", "1000"},
			},
			origin: [2]string{"/logger_provider/processors/0/batch/exporter/otlp_grpc/endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT"},
		},
		{
			name: "http/protobuf appends the signal path",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4318/", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
			checks: []check{
				{"/tracer_provider/processors/0/batch/exporter/otlp_http/endpoint", "http://localhost:4318/v1/traces"},
				{"/meter_provider/readers/0/periodic/exporter/otlp_http/endpoint", "http://localhost:4318/v1/metrics"},
				{"/logger_provider/processors/0/batch/exporter/otlp_http/endpoint", "http://localhost:4318/v1/logs"},
			},
		},
		{
			name: "signal endpoint used as given, others keep the console",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:4318/custom", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/json"},
			checks: []check{
				{"/logger_provider/processors/0/batch/exporter/otlp_http/endpoint", "http://logs:4318/custom"},
				{"/logger_provider/processors/0/batch/exporter/otlp_http/encoding", "json"},
				{"/tracer_provider/processors/0/batch/exporter/console", ""},
			},
		},
		{
			name: "protocol converts a file's exporter, keeping its settings",
			src:  readTestdataNoT("mixed.yaml"),
			env:  map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
			checks: []check{
				{"/tracer_provider/processors/0/batch/exporter/otlp_grpc/endpoint", "http://collector.internal:4318/v1/traces"},
				{"/tracer_provider/processors/0/batch/exporter/otlp_grpc/headers/0/name", "api-key"},
				{"/tracer_provider/processors/1/simple/exporter/console", ""},
			},
		},
		{
			name: "mixed console+otlp: only the otlp endpoint changes",
			src:  readTestdataNoT("mixed.yaml"),
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otlp.example.com"},
			checks: []check{
				{"/tracer_provider/processors/0/batch/exporter/otlp_http/endpoint", "https://otlp.example.com/v1/traces"},
				{"/tracer_provider/processors/1/simple/exporter/console", ""},
			},
		},
		{
			name: "headers, compression, timeout, tls",
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT":                       "http://localhost:4317",
				"OTEL_EXPORTER_OTLP_HEADERS":                        "authorization=Bearer%20abc,x-team=obs",
				"OTEL_EXPORTER_OTLP_TRACES_HEADERS":                 "x-team=traces",
				"OTEL_EXPORTER_OTLP_COMPRESSION":                    "gzip",
				"OTEL_EXPORTER_OTLP_TIMEOUT":                        "2500",
				"OTEL_EXPORTER_OTLP_INSECURE":                       "true",
				"OTEL_EXPORTER_OTLP_CERTIFICATE":                    "/etc/ca.pem",
				"OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY":             "/etc/key.pem",
				"OTEL_EXPORTER_OTLP_LOGS_COMPRESSION":               "none",
				"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta",
			},
			checks: []check{
				{"/logger_provider/processors/0/batch/exporter/otlp_grpc/headers/0/value", "Bearer abc"},
				{"/logger_provider/processors/0/batch/exporter/otlp_grpc/headers/1/value", "obs"},
				{"/tracer_provider/processors/0/batch/exporter/otlp_grpc/headers/0/value", "traces"},
				{"/tracer_provider/processors/0/batch/exporter/otlp_grpc/compression", "gzip"},
				{"/logger_provider/processors/0/batch/exporter/otlp_grpc/compression", "none"},
				{"/meter_provider/readers/0/periodic/exporter/otlp_grpc/timeout", "2500"},
				{"/meter_provider/readers/0/periodic/exporter/otlp_grpc/tls/insecure", "true"},
				{"/meter_provider/readers/0/periodic/exporter/otlp_grpc/tls/ca_file", "/etc/ca.pem"},
				{"/meter_provider/readers/0/periodic/exporter/otlp_grpc/tls/key_file", "/etc/key.pem"},
				{"/tracer_provider/processors/0/batch/exporter/otlp_grpc/tls/key_file", "<absent>"},
				{"/meter_provider/readers/0/periodic/exporter/otlp_grpc/temporality_preference", "delta"},
			},
		},
		{
			name:   "exporter selection: none removes, otlp replaces",
			env:    map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "otlp,console", "OTEL_METRICS_EXPORTER": "otlp"},
			checks: []check{{"/tracer_provider", "<absent>"}, {"/logger_provider/processors/0/batch/exporter/otlp_grpc/endpoint", "http://localhost:4317"}, {"/logger_provider/processors/1/batch/exporter/console", ""}, {"/logger_provider/processors/1/batch/max_queue_size", "2048"}, {"/meter_provider/readers/0/periodic/interval", "10000"}, {"/meter_provider/readers/0/periodic/exporter/otlp_grpc/endpoint", "http://localhost:4317"}},
		},
		{
			name:   "general: disabled and log level",
			env:    map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_LOG_LEVEL": "debug"},
			checks: []check{{"/disabled", "true"}, {"/log_level", "debug"}},
			origin: [2]string{"/disabled", "OTEL_SDK_DISABLED"},
		},
		{
			name:   "resource: service name wins over resource attributes",
			env:    map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.name=ra,deployment.environment.name=prod%20eu,service.namespace=ns", "OTEL_SERVICE_NAME": "svc"},
			attrs:  map[string]string{"service.name": "svc", "deployment.environment.name": "prod eu", "service.namespace": "ns"},
			origin: [2]string{"/resource/attributes/0/value", "OTEL_RESOURCE_ATTRIBUTES"},
		},
		{
			name:   "propagation",
			env:    map[string]string{"OTEL_PROPAGATORS": "tracecontext, b3multi,xray"},
			checks: []check{{"/propagator/composite_list", "tracecontext,b3multi,xray"}, {"/propagator/composite", "<absent>"}},
		},
		{
			name:   "sampler with argument",
			env:    map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
			checks: []check{{"/tracer_provider/sampler/parent_based/root/trace_id_ratio_based/ratio", "0.25"}},
		},
		{
			name:   "sampler argument alone sets the file's ratio sampler",
			src:    readTestdataNoT("mixed.yaml"),
			env:    map[string]string{"OTEL_TRACES_SAMPLER_ARG": "0.1"},
			checks: []check{{"/tracer_provider/sampler/parent_based/root/trace_id_ratio_based/ratio", "0.1"}},
		},
		{
			name: "batch processors and periodic readers",
			env:  map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_BSP_MAX_QUEUE_SIZE": "4096", "OTEL_BLRP_EXPORT_TIMEOUT": "3000", "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "64", "OTEL_METRIC_EXPORT_INTERVAL": "1500", "OTEL_METRIC_EXPORT_TIMEOUT": "700"},
			checks: []check{
				{"/tracer_provider/processors/0/batch/schedule_delay", "200"},
				{"/tracer_provider/processors/0/batch/max_queue_size", "4096"},
				{"/logger_provider/processors/0/batch/export_timeout", "3000"},
				{"/logger_provider/processors/0/batch/max_export_batch_size", "64"},
				{"/meter_provider/readers/0/periodic/interval", "1500"},
				{"/meter_provider/readers/0/periodic/timeout", "700"},
			},
			origin: [2]string{"/tracer_provider/processors/0/batch/schedule_delay", "OTEL_BSP_SCHEDULE_DELAY"},
		},
		{
			name: "limits",
			env:  map[string]string{"OTEL_ATTRIBUTE_COUNT_LIMIT": "64", "OTEL_SPAN_EVENT_COUNT_LIMIT": "10", "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT": "5", "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT": "1024"},
			checks: []check{
				{"/attribute_limits/attribute_count_limit", "64"},
				{"/tracer_provider/limits/event_count_limit", "10"},
				{"/tracer_provider/limits/link_attribute_count_limit", "5"},
				{"/logger_provider/limits/attribute_value_length_limit", "1024"},
			},
		},
		{
			name:   "exemplar filter",
			env:    map[string]string{"OTEL_METRICS_EXEMPLAR_FILTER": "always_off"},
			checks: []check{{"/meter_provider/exemplar_filter", "always_off"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := tt.src
			if src == nil {
				src = examples.OtelYAML
			}
			cfg, err := loadWithEnv(t, src, tt.env)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			for _, c := range tt.checks {
				if got := at(cfg, c.pointer); got != c.want {
					t.Errorf("%s = %q, want %q", c.pointer, got, c.want)
				}
			}
			for k, v := range tt.attrs {
				if got := attr(cfg, k); got != v {
					t.Errorf("attribute %s = %q, want %q", k, got, v)
				}
			}
			if tt.origin[0] != "" {
				o := cfg.OriginOf(Lookup(cfg.Root, tt.origin[0]))
				if o.Kind != OriginEnv || len(o.Vars) != 1 || o.Vars[0] != tt.origin[1] {
					t.Errorf("origin of %s = %+v, want %s", tt.origin[0], o, tt.origin[1])
				}
			}
		})
	}
}

func readTestdataNoT(name string) []byte {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		panic(err)
	}
	return b
}

// TestOverlayMalformed: a bad value is a diagnostic that names the
// variable, never a panic or a silent default, and is not applied.
func TestOverlayMalformed(t *testing.T) {
	tests := []struct {
		env      map[string]string
		variable string
		notIn    string // a string that must not appear in the message
		severity Severity
	}{
		{map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "soon"}, "OTEL_BSP_SCHEDULE_DELAY", "", SeverityError},
		{map[string]string{"OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "OTEL_BSP_MAX_QUEUE_SIZE", "", SeverityError},
		{map[string]string{"OTEL_SDK_DISABLED": "yes"}, "OTEL_SDK_DISABLED", "", SeverityError},
		{map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER", "", SeverityError},
		{map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "NaN"}, "OTEL_TRACES_SAMPLER_ARG", "", SeverityError},
		{map[string]string{"OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG", "", SeverityError},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4317"}, "OTEL_EXPORTER_OTLP_ENDPOINT", "", SeverityError},
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}, "OTEL_EXPORTER_OTLP_PROTOCOL", "", SeverityError},
		{map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer s3cr3t-token,broken"}, "OTEL_EXPORTER_OTLP_HEADERS", "s3cr3t", SeverityError},
		{map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "=s3cr3t-token"}, "OTEL_EXPORTER_OTLP_HEADERS", "s3cr3t", SeverityError},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "zstd"}, "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "", SeverityError},
		{map[string]string{"OTEL_PROPAGATORS": "tracecontext,w3c"}, "OTEL_PROPAGATORS", "", SeverityError},
		{map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER", "", SeverityError},
		{map[string]string{"OTEL_LOG_LEVEL": "loud"}, "OTEL_LOG_LEVEL", "", SeverityError},
		{map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "novalue"}, "OTEL_RESOURCE_ATTRIBUTES", "", SeverityError},
		{map[string]string{"OTEL_SPAN_LINK_COUNT_LIMIT": "-1"}, "OTEL_SPAN_LINK_COUNT_LIMIT", "", SeverityError},
		{map[string]string{"OTEL_TRACES_SAMPLER_ARG": "0.5"}, "OTEL_TRACES_SAMPLER_ARG", "", SeverityWarning},
	}
	for _, tt := range tests {
		t.Run(tt.variable+"="+tt.env[tt.variable], func(t *testing.T) {
			t.Parallel()
			cfg, err := loadWithEnv(t, examples.OtelYAML, tt.env)
			if (err != nil) != (tt.severity == SeverityError) {
				t.Fatalf("err = %v", err)
			}
			var found *Diagnostic
			for i, d := range cfg.Diagnostics {
				if d.Env == tt.variable {
					found = &cfg.Diagnostics[i]
				}
			}
			if found == nil || found.Severity != tt.severity || !strings.Contains(found.Message, tt.variable) {
				t.Fatalf("diagnostics = %v, want a %s naming %s", cfg.Diagnostics, tt.severity, tt.variable)
			}
			if tt.notIn != "" && (strings.Contains(found.Message, tt.notIn) || strings.Contains(found.Hint, tt.notIn)) {
				t.Errorf("diagnostic leaks the secret value: %v", found)
			}
			if found.Severity == SeverityError && cfg.Model != nil {
				t.Error("a config with errors must have no model")
			}
		})
	}
}

// TestPrecedence: built-in default < file < env < explicit option.
func TestPrecedence(t *testing.T) {
	withName := []byte("file_format: \"1.0\"\nresource:\n  attributes:\n    - name: service.name\n      value: from-file\n")
	tests := []struct {
		name string
		src  []byte
		env  map[string]string
		opts []Option
		want string
		kind OriginKind
	}{
		{"default only", examples.OtelYAML, nil, []Option{WithServiceName("litellm-proxy")}, "litellm-proxy", OriginDefault},
		{"file beats default", withName, nil, []Option{WithServiceName("litellm-proxy")}, "from-file", OriginFile},
		{"attributes env beats file", withName, map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-ra"}, []Option{WithServiceName("litellm-proxy")}, "from-ra", OriginEnv},
		{"service name env beats file", withName, map[string]string{"OTEL_SERVICE_NAME": "from-env"}, []Option{WithServiceName("litellm-proxy")}, "from-env", OriginEnv},
		{"env beats default", examples.OtelYAML, map[string]string{"OTEL_SERVICE_NAME": "from-env"}, []Option{WithServiceName("litellm-proxy")}, "from-env", OriginEnv},
		{"option beats env", withName, map[string]string{"OTEL_SERVICE_NAME": "from-env"}, []Option{WithServiceName("litellm-proxy"), WithServiceNameOverride("forced")}, "forced", OriginOption},
		{"no overlay: file stays", withName, map[string]string{"OTEL_SERVICE_NAME": "from-env"}, []Option{WithoutOverlay()}, "from-file", OriginFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := loadWithEnv(t, tt.src, tt.env, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ServiceName != tt.want {
				t.Errorf("service.name = %q, want %q", cfg.ServiceName, tt.want)
			}
			attrs := Lookup(cfg.Root, "/resource/attributes")
			for _, a := range attrs.Content {
				if mapGet(a, "name").Value == "service.name" {
					if o := cfg.OriginOf(mapGet(a, "value")); o.Kind != tt.kind {
						t.Errorf("origin = %+v, want kind %s", o, tt.kind)
					}
				}
			}
		})
	}
}

func TestAttributesList(t *testing.T) {
	src := []byte("file_format: \"1.0\"\nresource:\n  attributes:\n    - name: a\n      value: from-attributes\n  attributes_list: a=from-list,b=x%2Cy\n")
	cfg, err := loadWithEnv(t, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if attr(cfg, "a") != "from-attributes" || attr(cfg, "b") != "x,y" {
		t.Errorf("a=%q b=%q: attributes win over attributes_list, which is percent-decoded", attr(cfg, "a"), attr(cfg, "b"))
	}
	if cfg.Model == nil || len(cfg.Model.Resource.Attributes) != 2 {
		t.Fatalf("model resource = %+v", cfg.Model.Resource)
	}
}

func TestEnvTableIsComplete(t *testing.T) {
	names := map[string]bool{}
	for _, v := range EnvVars() {
		if names[v.Name] {
			t.Errorf("%s appears twice", v.Name)
		}
		names[v.Name] = true
		if v.Effect == "" || v.Family == "" {
			t.Errorf("%s has no effect or family text", v.Name)
		}
	}
	// Every variable named in DESIGN.md's table.
	for _, n := range []string{
		"OTEL_CONFIG_FILE", "OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_LOG_LEVEL",
		"OTEL_PROPAGATORS", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER",
		"OTEL_LOGS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
		"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS",
		"OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_CERTIFICATE",
		"OTEL_EXPORTER_OTLP_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
		"OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
		"OTEL_BLRP_SCHEDULE_DELAY", "OTEL_BLRP_EXPORT_TIMEOUT", "OTEL_BLRP_MAX_QUEUE_SIZE", "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
		"OTEL_METRIC_EXPORT_INTERVAL", "OTEL_METRIC_EXPORT_TIMEOUT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT",
		"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_SPAN_EVENT_COUNT_LIMIT", "OTEL_SPAN_LINK_COUNT_LIMIT",
		"OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
		"OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", "OTEL_METRICS_EXEMPLAR_FILTER",
	} {
		if !names[n] {
			t.Errorf("%s is missing from the overlay table", n)
		}
	}
}
