package otelconfig

// builtinCheckers are the validate stage of the pipeline: they run in
// every Load, so a service refuses at boot exactly what `otelcfg validate`
// reports.
func builtinCheckers(o *options) []Checker {
	if o.skipChecks {
		return nil
	}
	cs := []Checker{SchemaChecker("otel"), CheckerFunc(lint)}
	if o.profile != "" {
		cs = append(cs, ProfileChecker(o.profile))
	}
	return cs
}

// WithProfile adds the rules of a service profile ("interceptor" or
// "proxy") to validation.
func WithProfile(name string) Option { return func(o *options) { o.profile = name } }

// WithoutChecks skips the schema, lint and profile passes (decode-time
// checks of otelconf still apply). For benchmarks that isolate a stage.
func WithoutChecks() Option { return func(o *options) { o.skipChecks = true } }
