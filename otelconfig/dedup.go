package otelconfig

import (
	"context"
	"reflect"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/log/embedded"
	sdklog "go.opentelemetry.io/otel/sdk/log"
)

// The SDK de-duplicates a record's attributes while it copies them in, one
// AddAttributes call per attribute, each building and clearing pooled maps:
// about a quarter of a slog call. Almost no record has a duplicate key, so
// otelconfig builds the SDK provider with WithAllowKeyDuplication and puts
// dedupProvider in front of it: every Emit checks for duplicates without
// allocating and, only when there are some, hands the SDK a record already
// reduced to what the SDK's own de-duplication would have kept. Exporters
// see the same records either way; differential tests hold the two side by
// side.

// dedupProvider is the log.LoggerProvider otelconfig exposes (and installs
// as the global one) over an SDK provider built with
// WithAllowKeyDuplication.
type dedupProvider struct {
	embedded.LoggerProvider

	sdk *sdklog.LoggerProvider
	// limit is the SDK provider's attribute count limit (negative: none);
	// it decides which duplicates the SDK would have counted as dropped.
	limit int
}

// Logger returns the SDK's logger for name behind a de-duplicating one.
func (p *dedupProvider) Logger(name string, opts ...log.LoggerOption) log.Logger {
	if set := log.NewLoggerConfig(opts...).InstrumentationAttributes(); set.Len() > 0 {
		// The scope's attributes are a Set (unique at the top level); the
		// SDK would only de-duplicate the keys of map values inside it.
		kvs := set.ToSlice()
		if dupInKeyValues(kvs) {
			for i := range kvs {
				kvs[i].Value = dedupIfDup(kvs[i].Value)
			}
			// A later attribute option wins over earlier ones per key.
			opts = append(opts[:len(opts):len(opts)], log.WithInstrumentationAttributes(kvs...))
		}
	}
	return &dedupLogger{inner: p.sdk.Logger(name, opts...), limit: p.limit}
}

// ForceFlush flushes the SDK provider.
func (p *dedupProvider) ForceFlush(ctx context.Context) error { return p.sdk.ForceFlush(ctx) }

// Shutdown shuts the SDK provider down.
func (p *dedupProvider) Shutdown(ctx context.Context) error { return p.sdk.Shutdown(ctx) }

type dedupLogger struct {
	embedded.Logger

	inner log.Logger
	limit int
}

func (l *dedupLogger) Enabled(ctx context.Context, param log.EnabledParameters) bool {
	return l.inner.Enabled(ctx, param)
}

func (l *dedupLogger) Emit(ctx context.Context, r log.Record) {
	if recordHasDup(&r) {
		r = dedupRecord(&r, l.limit)
	}
	l.inner.Emit(ctx, r)
}

// smallRecord is the attribute count up to which duplicates are found by
// comparing keys pairwise in an array on the stack.
const smallRecord = 16

// recordHasDup reports whether the SDK's de-duplication would change r: a
// repeated top-level key, or a repeated key in a map value (at any depth)
// of an attribute or of the body. Attributes with an empty key are not
// counted: the SDK drops them before de-duplicating.
func recordHasDup(r *log.Record) bool {
	if composite(r.Body()) && dupInValue(r.Body()) {
		return true
	}
	n := r.AttributesLen()
	if n < 2 {
		dup := false
		r.WalkAttributes(func(kv attribute.KeyValue) bool {
			dup = composite(kv.Value) && dupInValue(kv.Value)
			return !dup
		})
		return dup
	}
	if n > smallRecord {
		seen := make(map[attribute.Key]struct{}, n)
		dup := false
		r.WalkAttributes(func(kv attribute.KeyValue) bool {
			if composite(kv.Value) && dupInValue(kv.Value) {
				dup = true
				return false
			}
			if kv.Key == "" {
				return true
			}
			if _, ok := seen[kv.Key]; ok {
				dup = true
				return false
			}
			seen[kv.Key] = struct{}{}
			return true
		})
		return dup
	}
	var keys [smallRecord]attribute.Key
	k := 0
	dup := false
	r.WalkAttributes(func(kv attribute.KeyValue) bool {
		if composite(kv.Value) && dupInValue(kv.Value) {
			dup = true
			return false
		}
		if kv.Key == "" {
			return true
		}
		for _, seen := range keys[:k] {
			if seen == kv.Key {
				dup = true
				return false
			}
		}
		keys[k] = kv.Key
		k++
		return true
	})
	return dup
}

func composite(v attribute.Value) bool {
	t := v.Type()
	return t == attribute.MAP || t == attribute.SLICE
}

// dupInValue reports whether a map inside v repeats a key.
func dupInValue(v attribute.Value) bool {
	if dup, known := dupInFlat(v); known {
		return dup
	}
	switch v.Type() {
	case attribute.MAP:
		// AsMap is sorted by key: a repeated key is adjacent.
		kvs := v.AsMap()
		for i, kv := range kvs {
			if i > 0 && kv.Key == kvs[i-1].Key {
				return true
			}
		}
		return dupInKeyValues(kvs)
	case attribute.SLICE:
		for _, e := range v.AsSlice() {
			if composite(e) && dupInValue(e) {
				return true
			}
		}
	}
	return false
}

// dupInKeyValues reports whether a map inside one of the values repeats a
// key.
func dupInKeyValues(kvs []attribute.KeyValue) bool {
	for _, kv := range kvs {
		if composite(kv.Value) && dupInValue(kv.Value) {
			return true
		}
	}
	return false
}

// dedupValue returns v with every map in it reduced to one entry per key,
// the last one given (the SDK's rule: attribute.MapValue keeps entries with
// equal keys in the order given).
func dedupValue(v attribute.Value) attribute.Value {
	switch v.Type() {
	case attribute.MAP:
		kvs := v.AsMap()
		out := kvs[:0] // AsMap returns a copy
		for i, kv := range kvs {
			if i+1 < len(kvs) && kvs[i+1].Key == kv.Key {
				continue
			}
			kv.Value = dedupValue(kv.Value)
			out = append(out, kv)
		}
		return attribute.MapValue(out...)
	case attribute.SLICE:
		vs := v.AsSlice()
		for i := range vs {
			vs[i] = dedupValue(vs[i])
		}
		return attribute.SliceValue(vs...)
	}
	return v
}

// attribute.Value keeps the entries of a map (sorted by key) or a slice in
// an array behind its unexported field "slice", and AsMap and AsSlice copy
// them into a new slice on every call: for a record from a slog group that
// copy would be the one allocation the check makes. dupInFlat reads the
// array in place instead, through reflect (read-only, no unsafe), for the
// common case of a map or slice of scalars; for nested ones, or if a later
// attribute.Value is built differently, it leaves the answer to the copies.
var (
	valueType                       = reflect.TypeFor[attribute.Value]()
	keyValueType                    = reflect.TypeFor[attribute.KeyValue]()
	valueTypeField, valueTypeOK     = fieldIndex(valueType, "vtype", reflect.Int)
	valueStorageField, valueStoreOK = fieldIndex(valueType, "slice", reflect.Interface)
	// flatReadable: attribute.Value is built as dupInFlat expects.
	flatReadable = valueTypeOK && valueStoreOK && keyValueType.NumField() == 2 &&
		keyValueType.Field(0).Name == "Key" && keyValueType.Field(1).Name == "Value"
)

func fieldIndex(t reflect.Type, name string, kind reflect.Kind) (int, bool) {
	f, ok := t.FieldByName(name)
	if !ok || len(f.Index) != 1 || f.Type.Kind() != kind {
		return 0, false
	}
	return f.Index[0], true
}

// dupInFlat reports whether v, a map or slice whose entries are all
// scalars, repeats a key; known is false when it cannot tell without a
// copy.
func dupInFlat(v attribute.Value) (dup, known bool) {
	if !flatReadable {
		return false, false
	}
	arr := reflect.ValueOf(&v).Elem().Field(valueStorageField).Elem()
	if arr.Kind() != reflect.Array {
		return false, false
	}
	scalar := func(v reflect.Value) bool {
		t := attribute.Type(v.Field(valueTypeField).Int())
		return t != attribute.MAP && t != attribute.SLICE
	}
	switch {
	case v.Type() == attribute.MAP && arr.Type().Elem() == keyValueType:
		for i := range arr.Len() {
			kv := arr.Index(i)
			if !scalar(kv.Field(1)) {
				return false, false
			}
			if i > 0 && kv.Field(0).String() == arr.Index(i-1).Field(0).String() {
				return true, true
			}
		}
		return false, true
	case v.Type() == attribute.SLICE && arr.Type().Elem() == valueType:
		for i := range arr.Len() {
			if !scalar(arr.Index(i)) {
				return false, false
			}
		}
		return false, true
	}
	return false, false
}

// dedupIfDup is dedupValue for the values that need it, v itself for the
// others.
func dedupIfDup(v attribute.Value) attribute.Value {
	if composite(v) && dupInValue(v) {
		return dedupValue(v)
	}
	return v
}

// dedupRecord returns r as the SDK's de-duplication leaves it for a
// provider whose attribute count limit is limit: one attribute per key, at
// the place of the key's first occurrence with the value of its last, and
// maps de-duplicated. Under the limit the SDK keeps the first limit keys
// and counts every later occurrence of any other key as dropped, however
// often that key repeats; the occurrences it would drop are appended after
// the kept attributes, where the SDK (now not de-duplicating) drops and
// counts each of them in the same way.
func dedupRecord(r *log.Record, limit int) log.Record {
	var out log.Record
	out.SetEventName(r.EventName())
	out.SetTimestamp(r.Timestamp())
	out.SetObservedTimestamp(r.ObservedTimestamp())
	out.SetSeverity(r.Severity())
	out.SetSeverityText(r.SeverityText())
	out.SetBody(dedupIfDup(r.Body()))
	out.SetErr(r.Err())

	n := r.AttributesLen()
	kept := make([]attribute.KeyValue, 0, n)
	var dropped []attribute.KeyValue
	var index map[attribute.Key]int
	if n > smallRecord {
		index = make(map[attribute.Key]int, n)
	}
	find := func(k attribute.Key) (int, bool) {
		if index != nil {
			i, ok := index[k]
			return i, ok
		}
		for i := range kept {
			if kept[i].Key == k {
				return i, true
			}
		}
		return 0, false
	}
	r.WalkAttributes(func(kv attribute.KeyValue) bool {
		switch i, ok := find(kv.Key); {
		case kv.Key == "":
			// Dropped by the SDK either way, and not counted.
		case ok:
			kept[i].Value = kv.Value
		case limit < 0 || len(kept) < limit:
			if index != nil {
				index[kv.Key] = len(kept)
			}
			kept = append(kept, kv)
		default:
			dropped = append(dropped, kv)
		}
		return true
	})
	for i := range kept {
		kept[i].Value = dedupIfDup(kept[i].Value)
	}
	out.AddAttributes(kept...)
	out.AddAttributes(dropped...)
	return out
}

// sdkLimitField and sdkAllowDupField are the fields of sdklog.LoggerProvider
// (v1.47.0) that hold the resolved attribute count limit and whether key
// duplication is allowed. The SDK resolves the limit from its options (the
// last one wins), OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT and its default,
// some of those options coming from callers as opaque values, and exposes
// the result nowhere else. Only reading them, and only at Start; if a
// future SDK renames them, otelconfig keeps the SDK's own de-duplication.
const (
	sdkLimitField    = "attributeCountLimit"
	sdkAllowDupField = "allowDupKeys"
)

// sdkFieldsReadable reports whether sdklog.LoggerProvider has both fields
// with the expected kinds.
func sdkFieldsReadable() bool {
	t := reflect.TypeFor[sdklog.LoggerProvider]()
	l, ok1 := t.FieldByName(sdkLimitField)
	d, ok2 := t.FieldByName(sdkAllowDupField)
	return ok1 && ok2 && l.Type.Kind() == reflect.Int && d.Type.Kind() == reflect.Bool
}

func sdkCountLimit(lp *sdklog.LoggerProvider) int {
	return int(reflect.ValueOf(lp).Elem().FieldByName(sdkLimitField).Int())
}

func sdkAllowsDup(lp *sdklog.LoggerProvider) bool {
	return reflect.ValueOf(lp).Elem().FieldByName(sdkAllowDupField).Bool()
}
