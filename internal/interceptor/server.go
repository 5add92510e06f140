package interceptor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/otelcfg/otelcfg/internal/interceptor/portreg"
	"github.com/otelcfg/otelcfg/otelconfig"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	nooptrace "go.opentelemetry.io/otel/trace/noop"
)

// Server forwards requests to the proxy. Build it with New; serve
// Handler() yourself or call Serve.
type Server struct {
	settings Settings
	target   *url.URL
	userID   string
	apiKey   Secret
	log      *slog.Logger
	tp       trace.TracerProvider
	prop     propagation.TextMapPropagator
	// tracing is true when spans are really recorded; the client's own
	// traceparent is then replaced by the interceptor's client span.
	tracing   bool
	transport *http.Transport
	handler   http.Handler
}

// New builds a Server from settings and running telemetry. tel may be nil
// (no telemetry, logs discarded). An empty UserID is derived from the
// project directory (SUPERMEMORY_USERNAME is applied by LoadSettings).
func New(s Settings, tel *otelconfig.Telemetry) (*Server, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	target, _ := parseTarget(s.Target)
	uid := s.UserID
	if uid == "" {
		var err error
		if uid, err = DeriveUserID(s.UserIDPrefix, s.ProjectDir); err != nil {
			return nil, err
		}
	}
	srv := &Server{settings: s, target: target, userID: uid, apiKey: s.APIKey}

	var mp metric.MeterProvider
	if tel != nil {
		srv.log, srv.tp, mp, srv.prop = tel.Logger(), tel.TracerProvider(), tel.MeterProvider(), tel.Propagator()
		srv.tracing = tel.Enabled()
		if cfg := tel.Config(); srv.tracing && cfg != nil && cfg.Model != nil && cfg.Model.Propagator == nil {
			// An otel.yaml that says nothing about propagation would get no
			// propagator at all, and every request would split into two
			// traces at the interceptor; W3C trace context is what the proxy
			// reads. A propagator the file (or OTEL_PROPAGATORS) names is
			// used as given.
			srv.prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
		}
	} else {
		srv.log = slog.New(slog.DiscardHandler)
		srv.tp, mp, srv.prop = nooptrace.NewTracerProvider(), noopmetric.NewMeterProvider(), propagation.NewCompositeTextMapPropagator()
	}

	srv.transport = &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: s.Timeouts.Connect, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   s.Timeouts.Connect,
		ResponseHeaderTimeout: s.Timeouts.ResponseHeader,
		IdleConnTimeout:       s.Timeouts.Idle,
		ExpectContinueTimeout: time.Second,
		MaxIdleConnsPerHost:   32,
		ForceAttemptHTTP2:     true,
		// Passing the client's Accept-Encoding through untouched keeps the
		// transport from decompressing (and so buffering) streams.
		DisableCompression: true,
	}
	spanName := func(_ string, r *http.Request) string { return r.Method }
	rp := &httputil.ReverseProxy{
		Rewrite: srv.rewrite,
		Transport: otelhttp.NewTransport(redactingTransport{srv.transport},
			otelhttp.WithTracerProvider(srv.tp),
			otelhttp.WithMeterProvider(mp),
			otelhttp.WithPropagators(srv.prop),
			otelhttp.WithSpanNameFormatter(spanName)),
		// Flush every write: SSE chunks must reach the client as the proxy
		// sends them.
		FlushInterval: -1,
		ErrorHandler:  srv.proxyError,
		ErrorLog:      slog.NewLogLogger(srv.log.Handler(), slog.LevelWarn),
	}

	srv.handler = otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			srv.health(w, r)
			return
		}
		srv.forward(w, r, rp)
	}), ServiceName,
		otelhttp.WithTracerProvider(srv.tp),
		otelhttp.WithMeterProvider(mp),
		otelhttp.WithPropagators(srv.prop),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if r.URL.Path == "/health" {
				return r.Method + " /health"
			}
			return r.Method
		}),
	)
	return srv, nil
}

// DeriveUserID returns "<prefix>-<name of dir>" (just the name when prefix
// is empty); dir "" is the working directory.
func DeriveUserID(prefix, dir string) (string, error) {
	abs, err := portreg.NormalizeDir(dir)
	if err != nil {
		return "", fmt.Errorf("interceptor: project directory: %w", err)
	}
	name := filepath.Base(abs)
	if name == string(filepath.Separator) || name == "." || name == "" {
		name = "root"
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, name)
	if prefix == "" {
		return name, nil
	}
	return prefix + "-" + name, nil
}

// Handler returns the instrumented HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// UserID returns the identity stamped on requests that carry none.
func (s *Server) UserID() string { return s.userID }

// Target returns the proxy URL, without a password.
func (s *Server) Target() string { return redactURL(s.target) }

// Close releases idle connections to the proxy.
func (s *Server) Close() error {
	s.transport.CloseIdleConnections()
	return nil
}

// Serve serves on ln until ctx is done, then stops accepting, lets
// in-flight requests finish for at most the shutdown timeout, cuts the
// rest, and closes idle proxy connections. It returns nil after a clean
// drain.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.settings.Timeouts.ReadHeader,
		IdleTimeout:       s.settings.Timeouts.Idle,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		s.Close()
		return err
	case <-ctx.Done():
	}
	s.log.Info("Shutting down: draining in-flight requests", "timeout", s.settings.Timeouts.Shutdown.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.settings.Timeouts.Shutdown)
	defer cancel()
	err := hs.Shutdown(sctx)
	if err != nil {
		s.log.Warn("Drain timed out: closing the remaining connections", "error", err.Error())
		_ = hs.Close()
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	s.Close()
	return err
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	s.log.DebugContext(r.Context(), "Health check")
	writeJSON(w, http.StatusOK, map[string]any{
		"status":  "ok",
		"service": ServiceName,
		"user_id": s.userID,
		"target":  redactURL(s.target),
	})
}

// forward relays one request to the proxy and logs its outcome.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, rp *httputil.ReverseProxy) {
	start := time.Now()
	ctx := r.Context()
	uid := r.Header.Get(HeaderUserID)
	source := "client"
	if uid == "" {
		uid, source = s.userID, "interceptor"
	}
	trace.SpanFromContext(ctx).SetAttributes(
		attribute.String("user.id", uid),
		attribute.String("interceptor.user_id.source", source),
	)
	s.log.InfoContext(ctx, "Received request", "method", r.Method, "path", r.URL.Path, "user_id", uid)
	s.log.InfoContext(ctx, "Forwarding to proxy", "target", redactURL(s.target))

	rec := &recorder{ResponseWriter: w}
	defer func() {
		level, msg := slog.LevelInfo, "Proxy responded"
		switch {
		case rec.failed:
			level, msg = slog.LevelWarn, "Request failed"
		case rec.status >= 500:
			level = slog.LevelWarn
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		s.log.Log(ctx, level, msg, "status", status, "duration_ms", float64(time.Since(start).Microseconds())/1000, "bytes", rec.bytes)
	}()
	rp.ServeHTTP(rec, r)
}

// rewrite builds the outgoing request: the proxy's URL joined with the
// client's path and query, the identity and source headers, and the
// authentication gap filled.
func (s *Server) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(s.target)
	pr.SetXForwarded()
	h := pr.Out.Header
	if h.Get(HeaderUserID) == "" {
		h.Set(HeaderUserID, s.userID)
	}
	h.Set(HeaderSource, SourceValue)
	if s.apiKey != "" && !hasCredentials(pr.In.Header) {
		h.Set("Authorization", "Bearer "+s.apiKey.Value())
	}
	if s.tracing {
		// The interceptor's client span becomes the parent upstream; a
		// stale traceparent from the client must not survive beside it.
		for _, k := range []string{"Traceparent", "Tracestate"} {
			h.Del(k)
		}
	}
}

// hasCredentials reports whether the client authenticates itself: OpenAI
// style (Authorization), Anthropic style (x-api-key) or Azure style
// (api-key). The interceptor then adds nothing.
func hasCredentials(h http.Header) bool {
	for _, k := range []string{"Authorization", "X-Api-Key", "Api-Key"} {
		if strings.TrimSpace(h.Get(k)) != "" {
			return true
		}
	}
	return false
}

// proxyError answers when the proxy cannot be reached or fails before its
// response headers: 502 (504 on a timeout) in OpenAI's error shape.
func (s *Server) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	rec, _ := w.(*recorder)
	if rec != nil {
		rec.failed = true
	}
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err // the url.Error repeats the URL, query string included
	}
	if ctx.Err() != nil {
		// The client went away; nobody is left to answer.
		s.log.InfoContext(ctx, "Client closed the request", "error", cause.Error())
		if rec != nil {
			rec.status = 499
		}
		return
	}
	status, code := http.StatusBadGateway, "proxy_unreachable"
	msg := fmt.Sprintf("the interceptor could not reach the proxy at %s: %v", redactURL(s.target), cause)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		status, code = http.StatusGatewayTimeout, "proxy_timeout"
		msg = fmt.Sprintf("the proxy at %s did not answer in time: %v", redactURL(s.target), cause)
	}
	span := trace.SpanFromContext(ctx)
	span.RecordError(errors.New(msg))
	span.SetAttributes(semconv.ErrorTypeKey.String(code))
	s.log.ErrorContext(ctx, "Proxy request failed", "error", cause.Error(), "target", redactURL(s.target), "status", status)
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"message": msg,
		"type":    "api_connection_error",
		"code":    code,
	}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// recorder notes the status and size of a response for the outcome log.
// Unwrap lets http.ResponseController reach the real writer's Flush and
// Hijack, which streaming and protocol upgrades need.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	failed bool
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// redactingTransport runs inside otelhttp's client span: it replaces the
// span's url.full with one whose secret-looking query values are redacted
// (some APIs take ?key=...), then sends the request unchanged.
type redactingTransport struct{ rt http.RoundTripper }

func (t redactingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.RawQuery != "" {
		u := *r.URL
		u.User = nil
		u.RawQuery = redactQuery(u.RawQuery)
		trace.SpanFromContext(r.Context()).SetAttributes(semconv.URLFull(u.String()))
	}
	return t.rt.RoundTrip(r)
}

var secretParams = []string{"key", "token", "secret", "password", "passwd", "sig", "signature", "auth", "credential"}

func redactQuery(raw string) string {
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		name, _, hasValue := strings.Cut(p, "=")
		if !hasValue {
			continue
		}
		lname := strings.ToLower(name)
		if un, err := url.QueryUnescape(name); err == nil {
			lname = strings.ToLower(un)
		}
		for _, s := range secretParams {
			if strings.Contains(lname, s) {
				parts[i] = name + "=REDACTED"
				break
			}
		}
	}
	return strings.Join(parts, "&")
}
