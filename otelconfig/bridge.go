package otelconfig

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
)

// bridgeHandler is the otelslog bridge with a shortcut for the most common
// record: no group or attributes added to the logger, and at most a few
// attributes of scalar kinds. For those it builds the OpenTelemetry record
// itself, on the stack, exactly as otelslog would (otelslog collects the
// attributes in a buffer it allocates on every call); every other record,
// and every handler derived by WithAttrs or WithGroup, is otelslog's.
type bridgeHandler struct {
	otel   slog.Handler // *otelslog.Handler
	logger log.Logger   // the logger otelslog emits to
}

func newBridgeHandler(lp log.LoggerProvider) slog.Handler {
	return &bridgeHandler{
		otel:   otelslog.NewHandler(ScopeName, otelslog.WithLoggerProvider(lp)),
		logger: lp.Logger(ScopeName),
	}
}

// shortcutAttrs is the largest attribute count the shortcut handles: the
// log API record's inline array. Beyond it the record would grow a slice
// one attribute at a time, which costs more than otelslog's one buffer.
const shortcutAttrs = 5

// sevOffset is otelslog's mapping of slog levels to OpenTelemetry
// severities.
const sevOffset = slog.Level(log.SeverityDebug) - slog.LevelDebug

func (h *bridgeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.otel.Enabled(ctx, l)
}

func (h *bridgeHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.NumAttrs() > shortcutAttrs {
		return h.otel.Handle(ctx, r)
	}
	var rec log.Record
	ok := true
	r.Attrs(func(a slog.Attr) bool {
		var v attribute.Value
		if v, ok = scalarValue(a); ok {
			rec.AddAttributes(attribute.KeyValue{Key: attribute.Key(a.Key), Value: v})
		}
		return ok
	})
	if !ok {
		return h.otel.Handle(ctx, r)
	}
	rec.SetTimestamp(r.Time)
	rec.SetBody(attribute.StringValue(r.Message))
	rec.SetSeverity(log.Severity(r.Level + sevOffset))
	rec.SetSeverityText(r.Level.String())
	h.logger.Emit(ctx, rec)
	return nil
}

// scalarValue converts a's value as otelslog does, for the kinds that
// convert to one value by themselves; false for the others (KindAny, whose
// errors otelslog moves to the record's error, groups, LogValuers). A
// scalar with an empty key is kept as otelslog keeps it, for the SDK to
// drop.
func scalarValue(a slog.Attr) (attribute.Value, bool) {
	v := a.Value
	switch v.Kind() {
	case slog.KindString:
		return attribute.StringValue(v.String()), true
	case slog.KindInt64:
		return attribute.Int64Value(v.Int64()), true
	case slog.KindBool:
		return attribute.BoolValue(v.Bool()), true
	case slog.KindFloat64:
		return attribute.Float64Value(v.Float64()), true
	case slog.KindDuration:
		return attribute.Int64Value(v.Duration().Nanoseconds()), true
	case slog.KindTime:
		return attribute.Int64Value(v.Time().UnixNano()), true
	case slog.KindUint64:
		const maxInt64 = ^uint64(0) >> 1
		if u := v.Uint64(); u <= maxInt64 {
			return attribute.Int64Value(int64(u)), true
		}
		return attribute.Float64Value(float64(v.Uint64())), true
	}
	return attribute.Value{}, false
}

func (h *bridgeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.otel.WithAttrs(as)
}

func (h *bridgeHandler) WithGroup(name string) slog.Handler {
	return h.otel.WithGroup(name)
}
