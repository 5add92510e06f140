package otelconfig

import (
	"go.opentelemetry.io/contrib/otelconf"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// limitExtras applies the limits otelconf v0.27.0 reads into its model but
// does not act on: the global attribute_limits (the fallback of both
// providers' attribute limits) and the event and link limits of
// tracer_provider.limits. It returns the model to hand to otelconf, without
// tracer_provider.limits (applied here in full instead of in part), and the
// SDK options that carry the limits.
func limitExtras(m otelconf.OpenTelemetryConfiguration) (otelconf.OpenTelemetryConfiguration, []sdktrace.TracerProviderOption, []sdklog.LoggerProviderOption) {
	var globalCount, globalLength *int
	if a := m.AttributeLimits; a != nil {
		globalCount, globalLength = a.AttributeCountLimit, a.AttributeValueLengthLimit
	}
	var tpOpts []sdktrace.TracerProviderOption
	if m.TracerProvider != nil {
		l := sdktrace.NewSpanLimits() // SDK defaults
		set := false
		apply := func(dst *int, vals ...*int) {
			for _, v := range vals {
				if v != nil {
					*dst, set = *v, true
					return
				}
			}
		}
		var tl otelconf.SpanLimits
		if m.TracerProvider.Limits != nil {
			tl = *m.TracerProvider.Limits
		}
		apply(&l.AttributeCountLimit, tl.AttributeCountLimit, globalCount)
		apply(&l.AttributeValueLengthLimit, tl.AttributeValueLengthLimit, globalLength)
		apply(&l.EventCountLimit, tl.EventCountLimit)
		apply(&l.LinkCountLimit, tl.LinkCountLimit)
		apply(&l.AttributePerEventCountLimit, tl.EventAttributeCountLimit)
		apply(&l.AttributePerLinkCountLimit, tl.LinkAttributeCountLimit)
		if set {
			tpOpts = append(tpOpts, sdktrace.WithRawSpanLimits(l))
		}
		tp := *m.TracerProvider
		tp.Limits = nil
		m.TracerProvider = &tp
	}
	var lpOpts []sdklog.LoggerProviderOption
	if m.LoggerProvider != nil {
		// otelconf applies logger_provider.limits after these options, so
		// the provider's own values win over the global fallback.
		if globalCount != nil {
			lpOpts = append(lpOpts, sdklog.WithAttributeCountLimit(*globalCount))
		}
		if globalLength != nil {
			lpOpts = append(lpOpts, sdklog.WithAttributeValueLengthLimit(*globalLength))
		}
	}
	return m, tpOpts, lpOpts
}
