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
	"sync"
	"time"
	"unicode/utf8"

	"github.com/otelcfg/otelcfg/internal/drain"
	"github.com/otelcfg/otelcfg/internal/interceptor/portreg"
	"github.com/otelcfg/otelcfg/otelconfig"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
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
		// 0, not -1: ReverseProxy already flushes every write of an SSE
		// answer and of one without a Content-Length, so streams reach the
		// client chunk by chunk. -1 would also flush a plain JSON answer's
		// headers on their own, from a timer goroutine, before its body —
		// two writes to the socket instead of one for every request.
		FlushInterval:  0,
		BufferPool:     copyBuffers{},
		ModifyResponse: holdShortAnswer,
		ErrorHandler:   srv.proxyError,
		ErrorLog:       slog.NewLogLogger(srv.log.Handler(), slog.LevelWarn),
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
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	err := drain.Serve(ctx, hs, ln, s.settings.Timeouts.Shutdown, s.log)
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

// forward relays one request to the proxy and logs its outcome. The
// request body must arrive within read_body and stay within
// max_body_bytes; the answer is bounded by response_idle and response.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, rp *httputil.ReverseProxy) {
	start := time.Now()
	ctx := r.Context()
	span := trace.SpanFromContext(ctx)
	sanitizeRequestAttrs(span, r)
	uid := r.Header.Get(HeaderUserID)
	source := "client"
	if uid == "" {
		uid, source = s.userID, "interceptor"
	}
	// The header goes to the proxy as sent; telemetry gets UTF-8.
	span.SetAttributes(
		attribute.String("user.id", validUTF8(uid)),
		attribute.String("interceptor.user_id.source", source),
	)
	s.log.InfoContext(ctx, "Received request", "method", r.Method, "path", validUTF8(r.URL.Path), "user_id", validUTF8(uid))
	if limit := s.settings.MaxBodyBytes; r.ContentLength > limit {
		s.refuse(w, r, http.StatusRequestEntityTooLarge, "request_too_large",
			fmt.Sprintf("the request body is %d bytes, over the limit of %d", r.ContentLength, limit))
		return
	}
	s.log.InfoContext(ctx, "Forwarding to proxy", "target", redactURL(s.target))

	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	total := time.AfterFunc(s.settings.Timeouts.Response, func() { cancel(errResponseTimeout) })
	defer total.Stop()
	ex := &exchange{cancel: cancel, idle: s.settings.Timeouts.ResponseIdle, total: s.settings.Timeouts.Response}
	defer ex.stop()
	r = r.WithContext(context.WithValue(cctx, exchangeKey{}, ex))
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(s.settings.Timeouts.ReadBody))
		r.Body = &clientBody{
			ReadCloser: http.MaxBytesReader(w, r.Body, s.settings.MaxBodyBytes),
			ex:         ex,
			// Once the body is in, net/http's background read must not
			// trip over the deadline while the answer streams.
			lift: func() { _ = rc.SetReadDeadline(time.Time{}) },
		}
	}

	rec := &recorder{ResponseWriter: w, idle: s.settings.Timeouts.ResponseIdle}
	ex.rec = rec
	defer func() {
		// ReverseProxy panics with http.ErrAbortHandler when the answer
		// breaks off after its headers went out: the outcome is logged,
		// and the panic goes on to net/http, which cuts the connection —
		// the client's only sign that what it got is incomplete.
		p := recover()
		f := ex.answerFailure()
		if p != nil && f != nil && rec.unsent() {
			// A short answer broke off before any of it went out: the
			// client gets a clean 502 rather than a cut connection.
			rec.discard()
			writeError(rec, http.StatusBadGateway, "api_connection_error", f.code, f.text)
			p = nil
		}
		if p == nil {
			// Aborting, a held answer is dropped: nothing of it went out.
			rec.release()
		}
		_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		args := []any{"status", status, "duration_ms", float64(time.Since(start).Microseconds()) / 1000, "bytes", rec.bytes}
		switch {
		case f != nil:
			span.SetAttributes(semconv.ErrorTypeKey.String(f.code))
			span.SetStatus(codes.Error, f.text)
			s.log.ErrorContext(ctx, f.logMsg, append(args, "error", f.text)...)
		case rec.failed:
			s.log.WarnContext(ctx, "Request failed", args...)
		case p != nil && (ctx.Err() != nil || rec.writeErr != nil):
			// The client went away, or stopped reading for response_idle.
			s.log.InfoContext(ctx, "Client closed the request", args...)
		case p != nil:
			span.SetStatus(codes.Error, "the answer was cut off")
			s.log.ErrorContext(ctx, "Proxy answer cut off", args...)
		case status >= 500:
			s.log.WarnContext(ctx, "Proxy responded", args...)
		default:
			s.log.InfoContext(ctx, "Proxy responded", args...)
		}
		if p != nil {
			panic(p)
		}
	}()
	rp.ServeHTTP(rec, r)
}

// refuse answers a request the interceptor does not forward, leaving its
// body unread.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	abandonBody(w)
	s.log.WarnContext(r.Context(), "Rejected request", "method", r.Method, "path", validUTF8(r.URL.Path), "status", status, "code", code, "reason", msg)
	writeError(w, status, "invalid_request_error", code, msg)
}

// abandonBody gives up on the rest of a request body: the connection
// closes after the answer. net/http would otherwise drain up to 256 KiB of
// it to reuse the connection — whatever Connection says, when it closes
// the body — so the read deadline is moved to now, which ends that drain
// at its first read.
func abandonBody(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

// sanitizeRequestAttrs replaces the span attributes otelhttp copied from
// the request as sent (user agent, X-Forwarded-For, decoded path) when they
// are not UTF-8: OTLP cannot encode such a string, and one would fail the
// export of a whole batch. The request is forwarded unchanged.
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

// proxyError answers when no answer came from the proxy: the client's
// body failed (408, 413, 400), or the proxy could not be reached (502),
// did not answer in time (504) or did not answer properly (502), in
// OpenAI's error shape.
func (s *Server) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	rec, _ := w.(*recorder)
	if rec != nil {
		rec.failed = true
	}
	if ex := exchangeFrom(ctx); ex != nil {
		if cerr := ex.clientFailure(); cerr != nil {
			s.clientBodyFailed(w, r, cerr)
			return
		}
	}
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err // the url.Error repeats the URL, query string included
	}
	timedOut := errors.Is(context.Cause(ctx), errResponseTimeout)
	if ctx.Err() != nil && !timedOut {
		// The client went away; nobody is left to answer.
		s.log.InfoContext(ctx, "Client closed the request", "error", cause.Error())
		if rec != nil {
			rec.status = 499
		}
		return
	}
	status, code := http.StatusBadGateway, "proxy_bad_response"
	msg := fmt.Sprintf("the proxy at %s did not answer properly: %v", redactURL(s.target), cause)
	var ne net.Error
	switch {
	case timedOut:
		status, code = http.StatusGatewayTimeout, "proxy_timeout"
		msg = fmt.Sprintf("the proxy at %s did not answer within %s", redactURL(s.target), s.settings.Timeouts.Response)
	case isDialError(err):
		code = "proxy_unreachable"
		msg = fmt.Sprintf("the interceptor could not reach the proxy at %s: %v", redactURL(s.target), cause)
	case errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded):
		status, code = http.StatusGatewayTimeout, "proxy_timeout"
		msg = fmt.Sprintf("the proxy at %s did not answer in time: %v", redactURL(s.target), cause)
	}
	span := trace.SpanFromContext(ctx)
	span.RecordError(errors.New(msg))
	span.SetAttributes(semconv.ErrorTypeKey.String(code))
	s.log.ErrorContext(ctx, "Proxy request failed", "error", cause.Error(), "target", redactURL(s.target), "status", status)
	writeError(w, status, "api_connection_error", code, msg)
}

// clientBodyFailed answers a request whose body could not be read whole.
func (s *Server) clientBodyFailed(w http.ResponseWriter, r *http.Request, err error) {
	var (
		mbe *http.MaxBytesError
		ne  net.Error
	)
	switch {
	case errors.As(err, &mbe):
		s.refuse(w, r, http.StatusRequestEntityTooLarge, "request_too_large",
			fmt.Sprintf("the request body is over the limit of %d bytes", s.settings.MaxBodyBytes))
	case errors.As(err, &ne) && ne.Timeout():
		s.refuse(w, r, http.StatusRequestTimeout, "request_timeout",
			fmt.Sprintf("the request body did not arrive within %s", s.settings.Timeouts.ReadBody))
	default:
		// The text of a net.OpError names both ends of the connection.
		s.refuse(w, r, http.StatusBadRequest, "invalid_body", "the request body could not be read")
	}
}

// isDialError tells a proxy that could not be reached from one that was
// reached and broke the exchange.
func isDialError(err error) bool {
	var (
		oe *net.OpError
		de *net.DNSError
	)
	return errors.As(err, &de) || errors.As(err, &oe) && oe.Op == "dial"
}

func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"message": msg,
		"type":    typ,
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
//
// A short answer of known length (see holdShortAnswer) is held until it is
// whole and then written at once: one write to the socket per answer, and
// an answer that breaks off before its end can still become a clean 502.
type recorder struct {
	http.ResponseWriter
	status   int
	bytes    int64
	failed   bool
	idle     time.Duration // each write must be taken within this; 0: no bound
	writeErr error         // the first write to the client that failed

	hold     bool   // holding the answer: nothing has gone to the client yet
	heldCode int    // its status, when WriteHeader was called
	held     []byte // its body so far
}

// copyBuffers lends ReverseProxy the buffers it copies answers through:
// without a pool it allocates 32 KiB for every request, most of the
// interceptor's garbage.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte { return *copyBufferPool.Get().(*[]byte) }

func (copyBuffers) Put(b []byte) {
	if cap(b) == 32<<10 {
		b = b[:cap(b)]
		copyBufferPool.Put(&b)
	}
}

// maxHeldAnswer is the largest answer held whole; larger ones, streams
// and answers without a Content-Length go through write by write.
const maxHeldAnswer = 64 << 10

// holdShortAnswer is the ReverseProxy's ModifyResponse: it tells the
// request's recorder to hold a short answer of known length.
func holdShortAnswer(resp *http.Response) error {
	ex := exchangeFrom(resp.Request.Context())
	if ex == nil || ex.rec == nil || resp.ContentLength < 0 || resp.ContentLength > maxHeldAnswer ||
		isEventStream(resp.Header) || resp.StatusCode == http.StatusSwitchingProtocols {
		return nil
	}
	ex.rec.hold = true
	ex.rec.held = make([]byte, 0, resp.ContentLength)
	return nil
}

// unsent reports whether the answer is being held and so nothing of it
// has reached the client.
func (r *recorder) unsent() bool { return r.hold }

// discard drops a held answer and the headers copied for it.
func (r *recorder) discard() {
	r.hold, r.heldCode, r.held, r.status, r.bytes = false, 0, nil, 0, 0
	clear(r.ResponseWriter.Header())
}

// release writes a held answer out.
func (r *recorder) release() {
	if !r.hold {
		return
	}
	r.hold = false
	if r.heldCode != 0 {
		r.ResponseWriter.WriteHeader(r.heldCode)
	}
	if len(r.held) > 0 {
		_, _ = r.Write(r.held)
	}
	r.held = nil
	// Sent now, the answer reaches the client before the outcome log and
	// the end of the server span, not after them.
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	if r.hold && code >= 200 {
		r.heldCode = code
		return
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.hold {
		r.held = append(r.held, b...)
		return len(b), nil
	}
	if r.idle > 0 {
		// A client that reads nothing for response_idle is cut: the
		// handler never waits on it for ever.
		_ = http.NewResponseController(r.ResponseWriter).SetWriteDeadline(time.Now().Add(r.idle))
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	if err != nil && r.writeErr == nil {
		r.writeErr = err
	}
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
	resp, err := t.rt.RoundTrip(r)
	if ex := exchangeFrom(r.Context()); err == nil && ex != nil {
		// Below otelhttp's body wrapper: the answer's failures reach the
		// client span before it ends.
		resp.Body = ex.watch(r.Context(), resp)
	}
	return resp, err
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
