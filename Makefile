# otelcfg — every target needs only Go (and make).
GO      ?= go
BIN     := bin
FUZZTIME ?= 30s

.PHONY: all build collector demo demo-collector test vet fmt fuzz e2e bench clean

all: build

build:
	$(GO) build -o $(BIN)/otelcfg ./cmd/validate
	$(GO) build -o $(BIN)/proxy ./cmd/proxy
	$(GO) build -o $(BIN)/interceptor ./cmd/interceptor
	$(GO) build -o $(BIN)/demo ./cmd/demo

# The offline demo: no network, no API key, nothing but Go. Builds
# everything, validates the examples, runs proxy and interceptor, sends a
# chat and a streaming chat, shows the logs and the traces as waterfalls.
demo: build
	$(BIN)/demo --bin $(BIN)

# A real OpenTelemetry Collector built from upstream modules (own go.mod).
collector:
	cd e2e/collector && $(GO) build -o ../../$(BIN)/otelcol-e2e .

# The same demo through the real Collector; the waterfall is read from its
# file exporter output.
demo-collector: build collector
	$(BIN)/demo --bin $(BIN) --collector $(BIN)/otelcol-e2e

# Every unit and integration test (real SDK, real OTLP over loopback),
# with the race detector, plus vet and gofmt.
test: vet fmt
	$(GO) test -race -count=1 ./...

vet:
	$(GO) vet ./...

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Each fuzz target for FUZZTIME; crashers land in testdata/fuzz.
fuzz:
	$(GO) test ./otelconfig -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME)
	$(GO) test ./otelconfig -run '^$$' -fuzz '^FuzzSubstitute$$' -fuzztime $(FUZZTIME)
	$(GO) test ./otelconfig -run '^$$' -fuzz '^FuzzOverlay$$' -fuzztime $(FUZZTIME)
	$(GO) test ./otelconfig -run '^$$' -fuzz '^FuzzSchemaAgrees$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/yamlschema -run '^$$' -fuzz '^FuzzCompile$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/proxy -run '^$$' -fuzz '^FuzzParseTopLevel$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/cli -run '^$$' -fuzz '^FuzzValidateOutput$$' -fuzztime $(FUZZTIME)

# End to end: the services as real processes against a real OpenTelemetry
# Collector built from upstream modules (e2e/collector, its own go.mod).
e2e:
	$(GO) test -tags e2e -count=1 -timeout 30m ./e2e/

# The performance table (issue 7, BENCHMARKS.md): the micro benchmarks and
# the HTTP and process figures, each against its baseline, printed as one
# table. Not run by CI; about 5 minutes on 2 cores, best on a quiet
# machine. BENCH_FLAGS passes options on, e.g. BENCH_FLAGS='-only micro'.
BENCH_FLAGS ?=
bench: build
	$(GO) build -o $(BIN)/bench-parseyaml ./bench/cmd/parseyaml
	$(GO) build -o $(BIN)/bench-bareproxy ./bench/cmd/bareproxy
	$(GO) build -o $(BIN)/bench ./bench/cmd/bench
	$(BIN)/bench -bin $(BIN) $(BENCH_FLAGS)

clean:
	rm -rf $(BIN)
