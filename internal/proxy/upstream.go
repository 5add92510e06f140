package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// upstream is one model of the table, ready to call.
type upstream struct {
	name      string // public name
	model     string // upstream model id
	modelJSON []byte // model as a JSON string, spliced into requests
	endpoint  *url.URL
	host      string // for logs: host[:port], or builtin:echo
	provider  string
	addr      string // server.address
	port      int    // server.port; 0 when implied by the scheme
	apiKey    Secret
	headers   http.Header
	timeout   time.Duration
	client    *http.Client
}

// echoEndpoint is where requests to builtin:echo go; handlerTransport
// answers them in-process, so the host is never resolved.
var echoEndpoint = &url.URL{Scheme: "http", Host: "echo.builtin", Path: "/v1/chat/completions"}

func newUpstream(m ModelSettings, def time.Duration) (*upstream, error) {
	base, err := parseAPIBase(m.APIBase)
	if err != nil {
		return nil, fmt.Errorf("model %q: api_base: %w", m.Name, err)
	}
	u := &upstream{name: m.Name, model: m.UpstreamModel(), apiKey: m.APIKey, timeout: m.Timeout, headers: http.Header{}}
	u.modelJSON, _ = json.Marshal(u.model)
	if u.timeout <= 0 {
		u.timeout = def
	}
	for k, v := range m.ExtraHeaders {
		u.headers.Set(k, v)
	}
	if base == nil {
		u.endpoint, u.host, u.provider, u.addr = echoEndpoint, EchoBase, providerEcho, echoEndpoint.Host
		return u, nil
	}
	ep := *base
	ep.Path = strings.TrimRight(base.Path, "/") + "/chat/completions"
	ep.RawPath = ""
	u.endpoint = &ep
	u.host = base.Host
	u.addr = base.Hostname()
	u.provider = providerFor(u.addr)
	if p := base.Port(); p != "" {
		u.port, _ = strconv.Atoi(p)
	}
	return u, nil
}

// Kinds of upstream failure: the error.type of spans and metrics.
const (
	errTypeTimeout    = "timeout"
	errTypeCanceled   = "canceled"
	errTypeConnection = "connection_error"
	errTypeRead       = "response_read_error"
	errTypeTooLarge   = "response_too_large"
	errTypeInvalid    = "invalid_response"
)

// Cancellation causes of a call cut by the proxy's own limits, as opposed
// to a client that went away.
var (
	errUpstreamTimeout = errors.New("upstream timeout")    // upstream.timeout: 504
	errStreamTimeout   = errors.New("stream timeout")      // upstream.stream_timeout
	errStreamIdle      = errors.New("stream idle timeout") // upstream.stream_idle_timeout
)

func isTimeoutCause(err error) bool {
	return errors.Is(err, errUpstreamTimeout) || errors.Is(err, errStreamTimeout) || errors.Is(err, errStreamIdle)
}

// classify tells a timeout, a cancelled request, a broken or invalid
// response and a failed connection apart.
func classify(ctx context.Context, err error) string {
	var (
		ne net.Error
		ue *upstreamError
	)
	switch {
	case isTimeoutCause(context.Cause(ctx)):
		return errTypeTimeout
	case ctx.Err() != nil:
		return errTypeCanceled
	case errors.As(err, &ue):
		return ue.kind
	case errors.As(err, &ne) && ne.Timeout():
		return errTypeTimeout
	}
	return errTypeConnection
}

// isDialError tells an upstream that could not be reached from one that
// was reached and broke the exchange.
func isDialError(err error) bool {
	var (
		oe *net.OpError
		de *net.DNSError
	)
	return errors.As(err, &de) || errors.As(err, &oe) && oe.Op == "dial"
}

// upstreamError is a failed upstream round trip. Its ErrorType is what
// otelhttp puts into error.type.
type upstreamError struct {
	kind string
	err  error
}

func (e *upstreamError) Error() string     { return e.err.Error() }
func (e *upstreamError) Unwrap() error     { return e.err }
func (e *upstreamError) ErrorType() string { return e.kind }

type callKey struct{}

func withCall(ctx context.Context, c *call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

func callFrom(ctx context.Context) *call {
	c, _ := ctx.Value(callKey{}).(*call)
	return c
}

// call is one chat completion sent upstream. The handler creates it; the
// transport, running inside otelhttp's client span, attaches that span and
// watches the response body, so the GenAI attributes (usage included, for
// streams too) land on the span before it ends, and the GenAI metrics are
// recorded once the response is complete.
type call struct {
	inst         *instruments
	up           *upstream
	requestModel string
	stream       bool
	route        Route
	reqAttrs     []attribute.KeyValue
	logBodies    bool
	start        time.Time

	mu        sync.Mutex
	span      trace.Span
	spanCtx   context.Context
	status    int
	respModel string
	respID    string
	reasons   []string
	haveUsage bool
	input     int64
	output    int64
	content   []byte // completion text, only with log_bodies, bounded
	done      bool
	errType   string
	duration  time.Duration
}

// began runs in the transport, inside the client span.
func (c *call) began(ctx context.Context, span trace.Span, r *http.Request) {
	c.mu.Lock()
	c.span, c.spanCtx = span, ctx
	c.mu.Unlock()
	attrs := append([]attribute.KeyValue{
		operationChat,
		keyProviderName.String(c.up.provider),
		keyRequestModel.String(c.requestModel),
		AttrUpstreamModel.String(c.up.model),
		keyUserID.String(c.route.UserID),
		AttrUserIDSource.String(c.route.Source),
	}, c.reqAttrs...)
	if r.URL.RawQuery != "" {
		// Some APIs take keys in the query (?key=...): the span's url.full
		// keeps the names only.
		u := *r.URL
		u.RawQuery = redactQuery(u.RawQuery)
		attrs = append(attrs, attribute.String("url.full", u.String()))
	}
	span.SetAttributes(attrs...)
}

// logContext is the context for records about the upstream call: the
// client span's when it exists, so they point at that span.
func (c *call) logContext(fallback context.Context) context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.span != nil {
		return trace.ContextWithSpan(fallback, c.span)
	}
	return fallback
}

// finished reports whether a finish_reason has been seen.
func (c *call) finished() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.reasons) > 0
}

func (c *call) setStatus(code int) {
	c.mu.Lock()
	c.status = code
	c.mu.Unlock()
}

// chunk is what the proxy reads of a completion or a stream chunk.
type chunk struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Choices []struct {
		FinishReason *string `json:"finish_reason"`
		Delta        struct {
			Content *string `json:"content"`
		} `json:"delta"`
		Message struct {
			Content *string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
}

func (c *call) observe(data []byte) {
	var ch chunk
	if json.Unmarshal(data, &ch) != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch.ID != "" {
		c.respID = ch.ID
	}
	if ch.Model != "" {
		c.respModel = ch.Model
	}
	for _, choice := range ch.Choices {
		if r := choice.FinishReason; r != nil && *r != "" && !slices.Contains(c.reasons, *r) {
			c.reasons = append(c.reasons, *r)
		}
		if c.logBodies {
			for _, s := range []*string{choice.Delta.Content, choice.Message.Content} {
				if s != nil && len(c.content) < LogBodyLimit {
					c.content = append(c.content, *s...)
				}
			}
		}
	}
	if ch.Usage != nil {
		c.haveUsage, c.input, c.output = true, ch.Usage.PromptTokens, ch.Usage.CompletionTokens
	}
}

// end completes the call once: the span gets the response attributes and
// the outcome, and the GenAI metrics are recorded. errType "" is success
// (an upstream error status still counts as an error, typed by the
// status). desc must hold no secret: it becomes the span status.
func (c *call) end(errType, desc string) {
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		return
	}
	c.done = true
	c.duration = time.Since(c.start)
	if errType == "" && c.status >= 400 {
		errType, desc = strconv.Itoa(c.status), http.StatusText(c.status)
	}
	c.errType = errType
	span, ctx := c.span, c.spanCtx
	var spanAttrs []attribute.KeyValue
	if c.respModel != "" {
		spanAttrs = append(spanAttrs, keyResponseModel.String(c.respModel))
	}
	if c.respID != "" {
		spanAttrs = append(spanAttrs, keyResponseID.String(c.respID))
	}
	if len(c.reasons) > 0 {
		spanAttrs = append(spanAttrs, keyFinishReasons.StringSlice(c.reasons))
	}
	haveUsage, input, output := c.haveUsage, c.input, c.output
	if haveUsage {
		spanAttrs = append(spanAttrs, keyInputTokens.Int64(input), keyOutputTokens.Int64(output))
	}
	sets := c.inst.attrSets(metricKey{up: c.up, requestModel: c.requestModel, responseModel: c.respModel, errType: errType})
	dur := c.duration
	c.mu.Unlock()

	if ctx == nil {
		ctx = context.Background()
	}
	if span != nil {
		span.SetAttributes(spanAttrs...)
		if errType != "" {
			span.SetAttributes(keyErrorType.String(errType))
			span.SetStatus(codes.Error, desc)
		}
	}
	c.inst.duration.Record(ctx, dur.Seconds(), sets.duration)
	if haveUsage {
		c.inst.tokens.Record(ctx, input, sets.input)
		c.inst.tokens.Record(ctx, output, sets.output)
	}
}

// result is what the handler logs once the call has ended.
type result struct {
	status        int
	duration      time.Duration
	respModel     string
	haveUsage     bool
	input, output int64
	errType       string
	content       string
}

func (c *call) result() result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return result{status: c.status, duration: c.duration, respModel: c.respModel, haveUsage: c.haveUsage,
		input: c.input, output: c.output, errType: c.errType, content: string(c.content)}
}

// genaiTransport runs inside otelhttp's client span (and after it has
// injected traceparent): it labels the span with the GenAI attributes and
// watches the response.
type genaiTransport struct{ base http.RoundTripper }

func (t genaiTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c := callFrom(r.Context())
	if c == nil {
		return t.base.RoundTrip(r)
	}
	c.began(r.Context(), trace.SpanFromContext(r.Context()), r)
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		kind := classify(r.Context(), err)
		c.end(kind, err.Error())
		return nil, &upstreamError{kind: kind, err: err}
	}
	c.setStatus(resp.StatusCode)
	if resp.StatusCode < 400 {
		resp.Body = &observer{ctx: r.Context(), c: c, body: resp.Body, sse: isEventStream(resp.Header)}
	} else {
		resp.Body = &observer{ctx: r.Context(), c: c, body: resp.Body, ignore: true}
	}
	return resp, nil
}

func isEventStream(h http.Header) bool {
	ct := strings.ToLower(h.Get("Content-Type"))
	return strings.HasPrefix(strings.TrimSpace(ct), "text/event-stream")
}

// Bounds of what the observer keeps to parse.
const (
	maxObservedLine = 1 << 20
	maxObservedJSON = 4 << 20
)

// observer sees the response body as the handler reads it. It sits below
// otelhttp's body wrapper, which ends the client span when the body hits
// EOF: so it completes the call (attributes, metrics) just before passing
// EOF up — or, when the body that ended is not a valid answer (not a JSON
// object; a stream cut off before [DONE]), passes an error up instead, so
// the span and the handler learn it while the span is still open.
type observer struct {
	ctx      context.Context
	c        *call
	body     io.ReadCloser
	sse      bool
	ignore   bool // an error response: relayed, not parsed
	line     []byte
	skipping bool
	buf      []byte
	overflow bool

	// The event being read, and what the stream has shown so far.
	pending  bool   // a line of an event has come since the last blank line
	data     []byte // the event's data lines, joined
	hasData  bool
	dataOver bool   // the data was too long to keep
	done     bool   // data: [DONE] has come
	problem  string // the first thing that makes the stream invalid
}

func (o *observer) Read(p []byte) (int, error) {
	n, err := o.body.Read(p)
	if n > 0 && !o.ignore {
		o.feed(p[:n])
	}
	switch {
	case err == io.EOF:
		problem := ""
		if !o.ignore {
			if o.sse {
				cut := len(o.line) > 0 || o.skipping || o.pending
				if len(o.line) > 0 || o.skipping {
					o.endLine()
				}
				if o.pending {
					o.endEvent()
				}
				problem = o.streamEndProblem(cut)
			} else if !o.overflow {
				// Past maxObservedJSON the handler checks the body itself.
				if isJSONObject(o.buf) {
					o.c.observe(o.buf)
				} else {
					problem = "the response is not a JSON object"
				}
			}
		}
		if problem != "" {
			kind := errTypeInvalid
			if o.ctx.Err() != nil {
				// Cut short because the call was cancelled (an in-process
				// upstream ends its body cleanly then): not the upstream's
				// fault.
				kind = classify(o.ctx, io.ErrUnexpectedEOF)
			}
			o.c.end(kind, problem)
			return n, &upstreamError{kind: kind, err: errors.New(problem)}
		}
		o.c.end("", "")
	case err != nil:
		kind := classify(o.ctx, err)
		if kind == errTypeConnection {
			kind = errTypeRead
		}
		o.c.end(kind, err.Error())
		// otelhttp types the span's error by this error: keep the kind.
		err = &upstreamError{kind: kind, err: err}
	}
	return n, err
}

// Close before EOF means the reader gave up; the handler normally ends
// the call with the reason first.
func (o *observer) Close() error {
	o.c.end(errTypeCanceled, "response not read to its end")
	return o.body.Close()
}

func (o *observer) feed(p []byte) {
	if !o.sse {
		if o.overflow {
			return
		}
		if len(o.buf)+len(p) > maxObservedJSON {
			o.overflow, o.buf = true, nil
			return
		}
		o.buf = append(o.buf, p...)
		return
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			o.appendLine(p)
			return
		}
		o.appendLine(p[:i])
		o.endLine()
		p = p[i+1:]
	}
}

func (o *observer) appendLine(b []byte) {
	if o.skipping {
		return
	}
	if len(o.line)+len(b) > maxObservedLine {
		o.skipping, o.line = true, o.line[:0]
		return
	}
	o.line = append(o.line, b...)
}

func (o *observer) endLine() {
	line := bytes.TrimRight(o.line, "\r")
	switch {
	case o.skipping:
		// Over maxObservedLine: part of an event, not checked.
		o.pending, o.dataOver = true, true
	case len(line) == 0:
		o.endEvent()
	default:
		o.pending = true
		name, value, ok := sseField(line)
		switch {
		case !ok:
			o.fail("a line that is not a Server-Sent Events field")
		case name != "data":
		case len(o.data)+len(value) > maxObservedLine:
			o.dataOver, o.data = true, o.data[:0]
		case !o.dataOver:
			if o.hasData {
				o.data = append(o.data, '\n')
			}
			o.data = append(o.data, value...)
		}
		o.hasData = o.hasData || name == "data"
	}
	o.line, o.skipping = o.line[:0], false
}

// endEvent checks and observes the event that a blank line (or the end of
// the stream) has just ended.
func (o *observer) endEvent() {
	if o.hasData && !o.dataOver {
		d := bytes.TrimSpace(o.data)
		switch p := dataProblem(d); {
		case p != "":
			o.fail(p)
		case string(d) == "[DONE]":
			o.done = true
		default:
			o.c.observe(d)
		}
	}
	o.pending, o.hasData, o.dataOver, o.data = false, false, false, o.data[:0]
}

func (o *observer) fail(problem string) {
	if o.problem == "" {
		o.problem = problem
	}
}

// streamEndProblem says what is wrong with a stream that has just ended;
// cut is whether it ended inside an event. A stream is complete with
// [DONE], or — some OpenAI-compatible servers leave [DONE] out — after a
// finish_reason.
func (o *observer) streamEndProblem(cut bool) string {
	switch {
	case o.problem != "":
		return o.problem
	case o.done:
		return ""
	case cut:
		return "the stream ended in the middle of an event"
	case !o.c.finished():
		return "the stream ended before data: [DONE]"
	}
	return ""
}

// sseField splits a line of a Server-Sent Event into its field's name
// and value; ok is false for a line that is neither a comment (name "")
// nor a field an OpenAI stream uses.
func sseField(line []byte) (name string, value []byte, ok bool) {
	n, v, _ := bytes.Cut(line, []byte(":"))
	v = bytes.TrimPrefix(v, []byte(" "))
	switch string(n) {
	case "", "data", "event", "id", "retry":
		return string(n), v, true
	}
	return string(n), v, false
}

// dataProblem says what is wrong with the data of an event of an OpenAI
// stream, which is a JSON object or [DONE]. The data is never quoted: it
// may be completion text.
func dataProblem(d []byte) string {
	d = bytes.TrimSpace(d)
	if string(d) == "[DONE]" || isJSONObject(d) {
		return ""
	}
	return "an event whose data is not a JSON object"
}

// isJSONObject reports whether b is one JSON object.
func isJSONObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '{' && json.Valid(b)
}

// handlerTransport serves requests with an in-process handler (the echo
// upstream), streaming: the response is returned as soon as the handler
// writes its header, and its body is a pipe the handler writes into. It
// stands where a network transport would, so an in-process upstream gets
// the same spans, metrics and error handling as a remote one.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := r.Context().Err(); err != nil {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, err
	}
	pr, pw := io.Pipe()
	w := &pipeResponseWriter{header: http.Header{}, pw: pw, ready: make(chan struct{})}
	go func() {
		defer func() {
			w.commit(http.StatusOK)
			// A handler that stopped because the call was cancelled ends
			// the body with that error, as a broken connection would; a
			// clean EOF would pass for a complete answer.
			pw.CloseWithError(r.Context().Err())
			if r.Body != nil {
				r.Body.Close()
			}
		}()
		t.h.ServeHTTP(w, r)
	}()
	select {
	case <-w.ready:
	case <-r.Context().Done():
		pr.CloseWithError(r.Context().Err())
		return nil, r.Context().Err()
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.sent,
		Body:          pr,
		ContentLength: -1,
		Request:       r,
	}, nil
}

// pipeResponseWriter is the ResponseWriter of handlerTransport.
type pipeResponseWriter struct {
	header http.Header
	sent   http.Header
	status int
	pw     *io.PipeWriter
	once   sync.Once
	ready  chan struct{}
}

func (w *pipeResponseWriter) Header() http.Header { return w.header }

func (w *pipeResponseWriter) commit(code int) {
	w.once.Do(func() {
		w.status, w.sent = code, w.header.Clone()
		close(w.ready)
	})
}

func (w *pipeResponseWriter) WriteHeader(code int) { w.commit(code) }

func (w *pipeResponseWriter) Write(p []byte) (int, error) {
	w.commit(http.StatusOK)
	return w.pw.Write(p)
}

// Flush has nothing to do: the pipe hands every write to the reader.
func (w *pipeResponseWriter) Flush() { w.commit(http.StatusOK) }

var secretParams = []string{"key", "token", "secret", "password", "passwd", "sig", "signature", "auth", "credential"}

// redactQuery replaces the value of every secret-looking query parameter.
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

// logger helpers

func durationMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// truncateBody is b cut to LogBodyLimit bytes, at the start of a
// character so that the excerpt stays UTF-8.
func truncateBody(b []byte) string {
	if len(b) <= LogBodyLimit {
		return validUTF8(string(b))
	}
	cut := LogBodyLimit
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return validUTF8(string(b[:cut])) + "…(truncated)"
}
