package proxy

import (
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
)

// TestMetricSetsAreBounded: the cached attribute sets are right for every
// key, and an upstream naming a new response model in every answer does
// not grow the cache past its bound.
func TestMetricSetsAreBounded(t *testing.T) {
	in, err := newInstruments(noopmetric.NewMeterProvider())
	if err != nil {
		t.Fatal(err)
	}
	up := &upstream{provider: "openai", addr: "api.example", port: 8443}
	for i := range maxMetricSets + 500 {
		resp := fmt.Sprintf("model-%d", i)
		for range 2 { // built, then (below the bound) from the cache
			sets := in.attrSets(metricKey{up: up, requestModel: "gpt", responseModel: resp, errType: "504"})
			got := metric.NewRecordConfig([]metric.RecordOption{sets.output.(metric.RecordOption)}).Attributes()
			want := map[attribute.Key]string{
				"gen_ai.response.model": resp, "gen_ai.request.model": "gpt", "error.type": "504",
				"gen_ai.token.type": "output", "server.address": "api.example", "gen_ai.provider.name": "openai",
			}
			for k, v := range want {
				if val, ok := got.Value(k); !ok || val.AsString() != v {
					t.Fatalf("key %d: %s = %v, want %q", i, k, val.Emit(), v)
				}
			}
			if val, _ := got.Value("server.port"); val.AsInt64() != 8443 {
				t.Fatalf("server.port = %v", val.Emit())
			}
		}
	}
	if n := in.setsLen.Load(); n != maxMetricSets {
		t.Errorf("%d cached sets, want the bound %d", n, maxMetricSets)
	}
}
