package proxy

import (
	"slices"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// ScopeName is the instrumentation scope of the proxy's own spans and
// metrics (otelhttp reports under its own scope).
const ScopeName = "github.com/otelcfg/otelcfg/internal/proxy"

// Attributes of the proxy's own, outside the semantic conventions.
const (
	// AttrUserIDSource says how the memory user id (user.id) was chosen.
	AttrUserIDSource = attribute.Key("proxy.user_id.source")
	// AttrUpstreamModel is the model id sent upstream; gen_ai.request.model
	// is the public name the client asked for.
	AttrUpstreamModel = attribute.Key("proxy.upstream.model")
)

// The GenAI semantic-convention keys used here (semconv v1.37.0, the
// newest Go semconv package that defines the gen_ai namespace).
var (
	keyOperationName  = semconv.GenAIOperationNameKey
	keyProviderName   = semconv.GenAIProviderNameKey
	keyRequestModel   = semconv.GenAIRequestModelKey
	keyResponseModel  = semconv.GenAIResponseModelKey
	keyResponseID     = semconv.GenAIResponseIDKey
	keyFinishReasons  = semconv.GenAIResponseFinishReasonsKey
	keyInputTokens    = semconv.GenAIUsageInputTokensKey
	keyOutputTokens   = semconv.GenAIUsageOutputTokensKey
	keyTokenType      = semconv.GenAITokenTypeKey
	keyMaxTokens      = semconv.GenAIRequestMaxTokensKey
	keyTemperature    = semconv.GenAIRequestTemperatureKey
	keyTopP           = semconv.GenAIRequestTopPKey
	keyServerAddress  = semconv.ServerAddressKey
	keyServerPort     = semconv.ServerPortKey
	keyErrorType      = semconv.ErrorTypeKey
	keyUserID         = semconv.UserIDKey
	operationChat     = keyOperationName.String("chat")
	tokenTypeInput    = keyTokenType.String("input")
	tokenTypeOutput   = keyTokenType.String("output")
	durationBuckets   = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	tokenUsageBuckets = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
)

// instruments are the GenAI client metrics, with the bucket boundaries the
// semantic conventions advise.
type instruments struct {
	duration metric.Float64Histogram
	tokens   metric.Int64Histogram

	sets    sync.Map     // metricKey → *metricSets
	setsLen atomic.Int64 // entries in sets
}

// metricKey is what the GenAI metrics' attributes of a call depend on.
type metricKey struct {
	up                          *upstream
	requestModel, responseModel string
	errType                     string
}

// metricSets are the attribute sets of one metricKey, built once: sorting
// and hashing them again for every call was a measurable part of a
// request's cost.
type metricSets struct {
	duration, input, output metric.MeasurementOption
}

// maxMetricSets bounds the cache: the response model comes from the
// upstream, and an upstream that names a new one in every answer must not
// grow the proxy's memory. Past the bound the sets are built per call.
const maxMetricSets = 1024

func (in *instruments) attrSets(k metricKey) *metricSets {
	if v, ok := in.sets.Load(k); ok {
		return v.(*metricSets)
	}
	common := []attribute.KeyValue{
		operationChat,
		keyProviderName.String(k.up.provider),
		keyRequestModel.String(k.requestModel),
		keyServerAddress.String(k.up.addr),
	}
	if k.up.port != 0 {
		common = append(common, keyServerPort.Int(k.up.port))
	}
	if k.responseModel != "" {
		common = append(common, keyResponseModel.String(k.responseModel))
	}
	if k.errType != "" {
		common = append(common, keyErrorType.String(k.errType))
	}
	with := func(extra ...attribute.KeyValue) metric.MeasurementOption {
		return metric.WithAttributeSet(attribute.NewSet(slices.Concat(common, extra)...))
	}
	ms := &metricSets{duration: with(), input: with(tokenTypeInput), output: with(tokenTypeOutput)}
	if in.setsLen.Load() < maxMetricSets {
		if _, loaded := in.sets.LoadOrStore(k, ms); !loaded {
			in.setsLen.Add(1)
		}
	}
	return ms
}

func newInstruments(mp metric.MeterProvider) (*instruments, error) {
	m := mp.Meter(ScopeName)
	d, err := m.Float64Histogram("gen_ai.client.operation.duration",
		metric.WithUnit("s"),
		metric.WithDescription("GenAI operation duration."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	if err != nil {
		return nil, err
	}
	t, err := m.Int64Histogram("gen_ai.client.token.usage",
		metric.WithUnit("{token}"),
		metric.WithDescription("Number of input and output tokens used."),
		metric.WithExplicitBucketBoundaries(tokenUsageBuckets...))
	if err != nil {
		return nil, err
	}
	return &instruments{duration: d, tokens: t}, nil
}

// providerByHost names the GenAI provider of well-known API hosts
// (gen_ai.provider.name); any other OpenAI-compatible upstream is
// "openai_compatible", and the offline echo is "otelcfg.echo".
var providerByHost = map[string]string{
	"api.openai.com":                    "openai",
	"api.anthropic.com":                 "anthropic",
	"generativelanguage.googleapis.com": "gcp.gemini",
	"api.groq.com":                      "groq",
	"api.deepseek.com":                  "deepseek",
	"api.mistral.ai":                    "mistral_ai",
	"api.x.ai":                          "x_ai",
	"api.perplexity.ai":                 "perplexity",
	"api.cohere.ai":                     "cohere",
	"api.cohere.com":                    "cohere",
}

const (
	providerEcho    = "otelcfg.echo"
	providerGeneric = "openai_compatible"
)

func providerFor(host string) string {
	if p, ok := providerByHost[host]; ok {
		return p
	}
	switch {
	case hasSuffix(host, ".openai.azure.com"):
		return "azure.ai.openai"
	case hasSuffix(host, ".services.ai.azure.com"), hasSuffix(host, ".inference.ai.azure.com"):
		return "azure.ai.inference"
	}
	return providerGeneric
}

func hasSuffix(s, suffix string) bool {
	return len(s) > len(suffix) && s[len(s)-len(suffix):] == suffix
}
