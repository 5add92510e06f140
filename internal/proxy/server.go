package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/otelcfg/otelcfg/internal/drain"
	"github.com/otelcfg/otelcfg/otelconfig"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	nooptrace "go.opentelemetry.io/otel/trace/noop"
)

// Server is the proxy. Build it with New; serve Handler() yourself or
// call Serve.
type Server struct {
	settings  Settings
	models    map[string]*upstream
	names     []string
	router    *userRouter
	auth      bool
	keyHash   [sha256.Size]byte
	log       *slog.Logger
	inst      *instruments
	telemetry bool
	transport *http.Transport
	handler   http.Handler
	started   time.Time
}

// New builds a Server from settings and running telemetry. tel may be nil
// (no telemetry, logs discarded). New uses tel's providers, propagator and
// logger explicitly, never the globals, so two services can share a
// process.
func New(s Settings, tel *otelconfig.Telemetry) (*Server, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	srv := &Server{settings: s, models: map[string]*upstream{}, started: time.Now()}
	var (
		tp   trace.TracerProvider
		mp   metric.MeterProvider
		prop propagation.TextMapPropagator
	)
	if tel != nil {
		srv.log, tp, mp, prop = tel.Logger(), tel.TracerProvider(), tel.MeterProvider(), tel.Propagator()
		srv.telemetry = tel.Enabled()
		if cfg := tel.Config(); srv.telemetry && cfg != nil && cfg.Model != nil && cfg.Model.Propagator == nil {
			// An otel.yaml silent about propagation would get no
			// propagator at all: the interceptor's trace would stop here
			// and the upstream would get no traceparent. W3C trace context
			// is what both ends speak; a propagator the file (or
			// OTEL_PROPAGATORS) names is used as given.
			prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
		}
	} else {
		srv.log = slog.New(slog.DiscardHandler)
		tp, mp, prop = nooptrace.NewTracerProvider(), noopmetric.NewMeterProvider(), propagation.NewCompositeTextMapPropagator()
	}
	inst, err := newInstruments(mp)
	if err != nil {
		return nil, fmt.Errorf("proxy: metrics: %w", err)
	}
	srv.inst = inst
	if s.MasterKey != "" {
		// Comparing digests keeps the comparison constant-time whatever
		// the length of what the client sent.
		srv.auth, srv.keyHash = true, sha256.Sum256([]byte(s.MasterKey.Value()))
	}
	if srv.router, err = newUserRouter(s.UserIDMappings); err != nil {
		return nil, err
	}

	u := s.Upstream
	srv.transport = &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: u.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   u.ConnectTimeout,
		MaxIdleConns:          u.MaxIdleConns,
		MaxIdleConnsPerHost:   u.MaxIdleConnsPerHost,
		MaxConnsPerHost:       u.MaxConnsPerHost,
		IdleConnTimeout:       u.IdleConnTimeout,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		// Gzip would make the upstream buffer what should stream.
		DisableCompression: true,
	}
	client := func(base http.RoundTripper) *http.Client {
		return &http.Client{
			Transport: otelhttp.NewTransport(genaiTransport{base},
				otelhttp.WithTracerProvider(tp),
				otelhttp.WithMeterProvider(mp),
				otelhttp.WithPropagators(prop),
				otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
					if c := callFrom(r.Context()); c != nil {
						return "chat " + c.requestModel
					}
					return "HTTP " + r.Method
				})),
			// A redirect would re-send the key somewhere api_base does not
			// name: relay it to the client instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	remote, echo := client(srv.transport), client(handlerTransport{EchoHandler()})
	for _, m := range s.Models {
		up, err := newUpstream(m, u.Timeout)
		if err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
		up.client = remote
		if m.APIBase == EchoBase {
			up.client = echo
		}
		srv.models[m.Name] = up
		srv.names = append(srv.names, m.Name)
	}

	srv.handler = otelhttp.NewHandler(http.HandlerFunc(srv.serveHTTP), ServiceName,
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithMeterProvider(mp),
		otelhttp.WithPropagators(prop),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if r.Pattern != "" {
				return r.Method + " " + r.Pattern
			}
			return r.Method
		}),
	)
	return srv, nil
}

// Handler returns the instrumented HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Models returns the public model names, in table order.
func (s *Server) Models() []string { return append([]string(nil), s.names...) }

// Close releases idle upstream connections.
func (s *Server) Close() error {
	s.transport.CloseIdleConnections()
	return nil
}

// Serve serves on ln until ctx is done, then stops accepting, lets
// in-flight requests finish for at most the shutdown timeout, cuts the
// rest and closes idle upstream connections. It returns nil after a clean
// drain. Flushing telemetry is the caller's next step (Main does it).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.settings.Server.ReadHeaderTimeout,
		IdleTimeout:       s.settings.Server.IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	err := drain.Serve(ctx, hs, ln, s.settings.Server.ShutdownTimeout, s.log)
	s.Close()
	return err
}

// route is one endpoint.
type route struct {
	path    string
	methods []string
	auth    bool // the OpenAI API: needs the master key when one is set
	serve   func(*Server, http.ResponseWriter, *http.Request)
}

var routes = []route{
	{"/v1/chat/completions", []string{http.MethodPost}, true, (*Server).chat},
	{"/chat/completions", []string{http.MethodPost}, true, (*Server).chat},
	{"/v1/models", []string{http.MethodGet, http.MethodHead}, true, (*Server).listModels},
	{"/models", []string{http.MethodGet, http.MethodHead}, true, (*Server).listModels},
	{"/health", []string{http.MethodGet, http.MethodHead}, false, (*Server).health},
	{"/memory-routing/info", []string{http.MethodGet, http.MethodHead}, false, (*Server).routingInfo},
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 {
		// The body must arrive within read_timeout, whether a handler
		// reads it or net/http drains it after an early answer (401, 404):
		// a client that stalls in its body is cut, not waited for.
		// readBody lifts the deadline once the body is in, so that a
		// stream being answered is not cut by it.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.settings.Server.ReadTimeout))
	}
	sanitizeRequestAttrs(trace.SpanFromContext(r.Context()), r)
	var rt *route
	for i := range routes {
		if routes[i].path == r.URL.Path {
			rt = &routes[i]
		}
	}
	if rt == nil {
		writeError(w, http.StatusNotFound, "invalid_request_error", "not_found", "",
			fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
		return
	}
	// Route known: otelhttp names the span and labels its metrics with it.
	r.Pattern = rt.path
	trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("http.route", rt.path))
	allowed := false
	for _, m := range rt.methods {
		allowed = allowed || m == r.Method
	}
	if !allowed {
		w.Header().Set("Allow", strings.Join(rt.methods, ", "))
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", "",
			fmt.Sprintf("%s %s is not supported; use %s", r.Method, rt.path, strings.Join(rt.methods, " or ")))
		return
	}
	if rt.auth && !s.authorized(r) {
		s.log.WarnContext(r.Context(), "Unauthorized request", "method", r.Method, "path", rt.path,
			"reason", authFailure(r))
		w.Header().Set("WWW-Authenticate", `Bearer realm="litellm-proxy"`)
		writeError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "",
			"a valid master key is required: send Authorization: Bearer <key>")
		return
	}
	rt.serve(s, w, r)
}

// sanitizeRequestAttrs replaces the span attributes otelhttp copied from
// the request as sent (user agent, X-Forwarded-For, decoded path) when they
// are not UTF-8: OTLP cannot encode such a string, and one would fail the
// export of a whole batch. The request itself is left as it is.
func sanitizeRequestAttrs(span trace.Span, r *http.Request) {
	if !span.IsRecording() {
		return
	}
	var fix []attribute.KeyValue
	if ua := r.UserAgent(); !utf8.ValidString(ua) {
		fix = append(fix, semconv.UserAgentOriginal(validUTF8(ua)))
	}
	if xff, _, _ := strings.Cut(r.Header.Get("X-Forwarded-For"), ","); !utf8.ValidString(xff) {
		fix = append(fix, semconv.ClientAddress(validUTF8(xff)))
	}
	if !utf8.ValidString(r.URL.Path) {
		fix = append(fix, semconv.URLPath(validUTF8(r.URL.Path)))
	}
	span.SetAttributes(fix...)
}

// validUTF8 replaces each run of bytes that is not UTF-8 with U+FFFD.
func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// authorized checks "Authorization: Bearer <master key>" in constant time.
func (s *Server) authorized(r *http.Request) bool {
	if !s.auth {
		return true
	}
	tok, ok := bearer(r.Header.Get("Authorization"))
	sum := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(sum[:], s.keyHash[:]) == 1 && ok
}

func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// authFailure says why a request was refused, without the credential.
func authFailure(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "no Authorization header"
	}
	if _, ok := bearer(h); !ok {
		return "Authorization is not a Bearer token"
	}
	return "wrong key"
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	s.log.DebugContext(r.Context(), "Health check")
	writeJSON(w, http.StatusOK, map[string]any{
		"status":            "healthy",
		"service":           ServiceName,
		"models_configured": len(s.names),
		"models":            s.Models(),
		"telemetry_enabled": s.telemetry,
	})
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	data := make([]map[string]any, 0, len(s.names))
	for _, n := range s.names {
		data = append(data, map[string]any{"id": n, "object": "model", "created": s.started.Unix(), "owned_by": s.models[n].provider})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// routingInfo tells which memory user id a request with these headers
// gets, and why.
func (s *Server) routingInfo(w http.ResponseWriter, r *http.Request) {
	rt := s.router.route(r.Header)
	patterns := make([]HeaderPattern, len(s.router.patterns))
	for i, p := range s.router.patterns {
		patterns[i] = p.HeaderPattern
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"user_id":         rt.UserID,
		"source":          rt.Source,
		"matched":         rt,
		"upstream_header": strings.ToLower(HeaderUpstreamUserID),
		"custom_header":   s.router.customHeader,
		"header_patterns": patterns,
		"default_user_id": s.router.defaultID,
	})
}

// apiError is OpenAI's error shape.
type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

func writeError(w http.ResponseWriter, status int, typ, code, param, msg string) {
	e := apiError{Message: msg, Type: typ, Code: code}
	if param != "" {
		e.Param = &param
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"message":"cannot encode the response","type":"server_error","param":null,"code":"internal_error"}}`)
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
