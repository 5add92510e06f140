package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// relayedHeaders are the upstream response headers a client gets.
var relayedHeaders = []string{"Content-Type", "Retry-After", "X-Request-Id", "Openai-Processing-Ms"}

// chat serves POST /v1/chat/completions.
func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	span := trace.SpanFromContext(ctx)
	reject := func(status int, code, param, msg string) {
		s.log.WarnContext(ctx, "Rejected request", "method", r.Method, "path", r.URL.Path, "status", status, "code", code, "reason", msg)
		writeError(w, status, "invalid_request_error", code, param, msg)
	}

	body, status, msg := s.readBody(w, r)
	if status != 0 {
		code := "invalid_body"
		switch status {
		case http.StatusRequestEntityTooLarge:
			code = "request_too_large"
		case http.StatusRequestTimeout:
			code = "request_timeout"
		}
		abandonBody(w)
		reject(status, code, "", msg)
		return
	}
	// The body is split into its top-level members without decoding them:
	// the upstream gets it byte for byte as sent, but for the model.
	req, ok := parseTopLevel(body)
	if !ok {
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(body, &probe); err != nil {
			reject(http.StatusBadRequest, "invalid_json", "", "the request body is not a JSON object: "+jsonProblem(err))
			return
		}
		// null: an object with no members, so no model.
	}
	if req.hasDuplicates() {
		// A key sent twice would be read one way here (the last) and
		// maybe another way upstream (the first): the upstream gets the
		// request as encoding/json reads it, each key once.
		var m map[string]json.RawMessage
		_ = json.Unmarshal(body, &m)
		norm, _ := json.Marshal(m)
		req, _ = parseTopLevel(norm)
	}
	if i := invalidUTF8At(body); i >= 0 {
		// JSON is UTF-8 (RFC 8259). Bytes that are not would reach the
		// upstream as they are, and the logs and spans garbled.
		reject(http.StatusBadRequest, "invalid_encoding", "", fmt.Sprintf("the request body is not valid UTF-8 (at byte %d)", i))
		return
	}
	var model string
	if raw, ok := req.get("model"); !ok || json.Unmarshal(raw, &model) != nil || strings.TrimSpace(model) == "" {
		reject(http.StatusBadRequest, "missing_model", "model", "model is required: a non-empty string naming one of "+s.available())
		return
	}
	if raw, ok := req.get("messages"); !ok || !nonEmptyArray(raw) {
		reject(http.StatusBadRequest, "missing_messages", "messages", "messages is required: a non-empty array of messages")
		return
	}
	stream := false
	if raw, ok := req.get("stream"); ok && string(raw) != "null" {
		if json.Unmarshal(raw, &stream) != nil {
			reject(http.StatusBadRequest, "invalid_stream", "stream", "stream must be true or false")
			return
		}
	}
	rt := s.router.route(r.Header)
	if rt.Source == SourceCustomHeader && len(rt.UserID) > maxClientUserIDBytes {
		reject(http.StatusBadRequest, "invalid_user_id", "", fmt.Sprintf("%s is longer than %d bytes", rt.Header, maxClientUserIDBytes))
		return
	}
	if rt.Source == SourceCustomHeader && !utf8.ValidString(rt.UserID) {
		reject(http.StatusBadRequest, "invalid_user_id", "", fmt.Sprintf("%s is not valid UTF-8", rt.Header))
		return
	}
	span.SetAttributes(keyRequestModel.String(model), keyUserID.String(rt.UserID), AttrUserIDSource.String(rt.Source))
	up := s.models[model]
	if up == nil {
		s.log.WarnContext(ctx, "Unknown model", "model", model, "user_id", rt.UserID)
		writeError(w, http.StatusNotFound, "invalid_request_error", "model_not_found", "model",
			fmt.Sprintf("model %q is not configured; available models: %s", model, s.available()))
		return
	}

	logArgs := []any{"method", r.Method, "path", r.URL.Path, "model", model, "user_id", rt.UserID, "user_id_source", rt.Source, "stream", stream}
	if s.settings.LogBodies {
		logArgs = append(logArgs, "body", truncateBody(body))
	}
	s.log.InfoContext(ctx, "Received request", logArgs...)

	out := req.replace("model", up.modelJSON)

	c := &call{inst: s.inst, up: up, requestModel: model, stream: stream, route: rt, reqAttrs: requestAttrs(&req), logBodies: s.settings.LogBodies}
	// The call's own context: cancelled with errUpstreamTimeout when the
	// upstream takes too long, and with the client's request when the
	// client goes away (which so cancels the upstream request too).
	cctx, cancel := context.WithCancelCause(withCall(ctx, c))
	defer cancel(nil)
	timer := time.AfterFunc(up.timeout, func() { cancel(errUpstreamTimeout) })
	defer timer.Stop()

	ureq, err := http.NewRequestWithContext(cctx, http.MethodPost, up.endpoint.String(), bytes.NewReader(out))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "server_error", "internal_error", "", "cannot build the upstream request")
		return
	}
	for k, vs := range up.headers {
		ureq.Header[k] = vs
	}
	ureq.Header.Set("Content-Type", "application/json")
	if stream {
		ureq.Header.Set("Accept", "text/event-stream")
	} else {
		ureq.Header.Set("Accept", "application/json")
	}
	if up.apiKey != "" {
		ureq.Header.Set("Authorization", "Bearer "+up.apiKey.Value())
	}
	ureq.Header.Set(HeaderUpstreamUserID, rt.UserID)

	s.log.InfoContext(ctx, "Forwarding to upstream", "model", model, "upstream_model", up.model, "upstream", up.host, "user_id", rt.UserID)
	c.start = time.Now()
	resp, err := up.client.Do(ureq)
	if err != nil {
		s.upstreamFailed(w, r, c, cctx, err)
		return
	}
	defer func() {
		// On every path that stops early the call ends here, with its
		// reason, before Close would end the span without it.
		c.end(errTypeCanceled, "the client went away")
		resp.Body.Close()
	}()

	if resp.StatusCode >= 400 || !isEventStream(resp.Header) {
		s.relayBuffered(w, r, c, cctx, timer, resp)
		return
	}
	s.relayStream(w, r, c, cctx, cancel, timer, resp)
}

// readBody reads the request body within max_body_bytes and the read
// timeout (set by serveHTTP), and checks it against Content-Length. A
// non-zero status is the answer to send; the body is then unread, in part
// or whole. A body over the limit is never read past it.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, string) {
	limit := s.settings.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is %d bytes, over the limit of %d", r.ContentLength, limit)
	}
	// One byte more than Content-Length shows a body longer than declared.
	readLimit := limit
	if r.ContentLength >= 0 {
		readLimit = min(limit, r.ContentLength+1)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, readLimit))
	var (
		mbe *http.MaxBytesError
		ne  net.Error
	)
	switch {
	case errors.As(err, &mbe) && r.ContentLength >= 0 && r.ContentLength < limit:
		return nil, http.StatusBadRequest, fmt.Sprintf("the request body is longer than its Content-Length of %d bytes", r.ContentLength)
	case errors.As(err, &mbe):
		return nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is over the limit of %d bytes", limit)
	case errors.As(err, &ne) && ne.Timeout():
		return nil, http.StatusRequestTimeout, fmt.Sprintf("the request body did not arrive within %s", s.settings.Server.ReadTimeout)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, http.StatusBadRequest, fmt.Sprintf("the request body ended before its Content-Length of %d bytes", r.ContentLength)
	case errors.As(err, &ne):
		// The text of a net.OpError names both ends of the connection.
		return nil, http.StatusBadRequest, "the connection failed while the request body was read"
	case err != nil:
		return nil, http.StatusBadRequest, "cannot read the request body: " + err.Error()
	case r.ContentLength >= 0 && int64(len(body)) != r.ContentLength:
		return nil, http.StatusBadRequest, fmt.Sprintf("the request body is %d bytes, but its Content-Length says %d", len(body), r.ContentLength)
	}
	// The body is in: a stream answering it must not be cut by the read
	// deadline (net/http's background read would cancel the request).
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	return body, 0, ""
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

// invalidUTF8At returns the offset of the first byte of b that is not
// part of valid UTF-8, or -1.
func invalidUTF8At(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%v (at byte %d)", se, se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "found a JSON " + te.Value
	}
	return err.Error()
}

func (s *Server) available() string {
	if len(s.names) == 0 {
		return "(none configured)"
	}
	return strings.Join(s.names, ", ")
}

// requestAttrs are the GenAI request parameters worth a span attribute.
func requestAttrs(req *topLevel) []attribute.KeyValue {
	var out []attribute.KeyValue
	for _, k := range []string{"max_completion_tokens", "max_tokens"} {
		var n int64
		if raw, ok := req.get(k); ok && json.Unmarshal(raw, &n) == nil {
			out = append(out, keyMaxTokens.Int64(n))
			break
		}
	}
	for _, p := range []struct {
		name string
		key  attribute.Key
	}{{"temperature", keyTemperature}, {"top_p", keyTopP}} {
		var f float64
		if raw, ok := req.get(p.name); ok && json.Unmarshal(raw, &f) == nil {
			out = append(out, p.key.Float64(f))
		}
	}
	return out
}

// upstreamFailed answers a call that got no usable response, before
// anything was sent to the client: 504 on a timeout, 502 when the upstream
// could not be reached, broke off or answered with something that is not
// an answer, nothing when the client has gone.
func (s *Server) upstreamFailed(w http.ResponseWriter, r *http.Request, c *call, cctx context.Context, err error) {
	ctx := r.Context()
	kind := classify(cctx, err)
	c.end(kind, causeText(err))
	lctx := c.logContext(ctx)
	res := c.result()
	fail := func(msg, typ, code, text string) {
		s.log.ErrorContext(lctx, msg, "model", c.requestModel, "upstream", c.up.host, "error", causeText(err), "status", http.StatusBadGateway)
		writeError(w, http.StatusBadGateway, typ, code, "", text)
	}
	switch {
	case kind == errTypeCanceled:
		s.log.InfoContext(lctx, "Client closed the request", "model", c.requestModel, "duration_ms", durationMS(res.duration))
	case kind == errTypeTimeout:
		s.log.ErrorContext(lctx, "Upstream timed out", "model", c.requestModel, "upstream", c.up.host, "timeout", c.up.timeout.String(), "status", http.StatusGatewayTimeout)
		writeError(w, http.StatusGatewayTimeout, "timeout_error", "upstream_timeout", "",
			fmt.Sprintf("the upstream of model %q did not answer within %s", c.requestModel, c.up.timeout))
	case kind == errTypeInvalid:
		fail("Upstream sent an invalid response", "api_error", "upstream_invalid_response",
			fmt.Sprintf("the upstream of model %q (%s) sent an invalid response: %s", c.requestModel, c.up.host, causeText(err)))
	case kind == errTypeRead:
		fail("Upstream response broke off", "api_error", "upstream_response_broken",
			fmt.Sprintf("the response of the upstream of model %q (%s) broke off: %s", c.requestModel, c.up.host, causeText(err)))
	case isDialError(err):
		fail("Upstream request failed", "api_connection_error", "upstream_unreachable",
			fmt.Sprintf("cannot reach the upstream of model %q (%s): %s", c.requestModel, c.up.host, causeText(err)))
	default:
		// Reached, but no HTTP answer came back: closed early, or bytes
		// that are not HTTP.
		fail("Upstream request failed", "api_connection_error", "upstream_bad_response",
			fmt.Sprintf("the upstream of model %q (%s) did not answer properly: %s", c.requestModel, c.up.host, causeText(err)))
	}
}

// causeText is an error without the url.Error wrapper, whose text repeats
// the URL (and so a query string that may carry a key).
func causeText(err error) string {
	var ue *upstreamError
	if errors.As(err, &ue) {
		return ue.err.Error()
	}
	return err.Error()
}

// relayBuffered relays a JSON answer, or an upstream error with its status
// and body. A completion is read whole before the client gets anything, so
// that a timeout while reading it is still a clean 504.
func (s *Server) relayBuffered(w http.ResponseWriter, r *http.Request, c *call, cctx context.Context, timer *time.Timer, resp *http.Response) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	timer.Stop()
	if err != nil {
		s.upstreamFailed(w, r, c, cctx, err)
		return
	}
	if len(body) > maxResponseBytes {
		c.end(errTypeTooLarge, "the upstream response is too large")
		s.log.ErrorContext(c.logContext(r.Context()), "Upstream response too large", "model", c.requestModel, "limit_bytes", maxResponseBytes, "status", http.StatusBadGateway)
		writeError(w, http.StatusBadGateway, "api_error", "upstream_response_too_large", "",
			fmt.Sprintf("the upstream's response is over %d bytes", maxResponseBytes))
		return
	}
	if !isJSONObject(body) {
		if resp.StatusCode < 400 {
			// The observer has refused it already, unless it was too
			// large for the observer to hold.
			s.upstreamFailed(w, r, c, cctx, &upstreamError{kind: errTypeInvalid, err: errors.New("the response is not a JSON object")})
			return
		}
		// An error page (a load balancer's HTML, an empty 503): the status
		// and its headers are relayed, the body in OpenAI's shape.
		c.end("", "")
		copyHeaders(w.Header(), resp.Header)
		writeError(w, resp.StatusCode, "api_error", "upstream_error", "",
			fmt.Sprintf("the upstream of model %q (%s) answered %d %s", c.requestModel, c.up.host, resp.StatusCode, http.StatusText(resp.StatusCode)))
		s.logOutcome(r.Context(), c)
		return
	}
	c.end("", "") // already ended at EOF; this covers bodies that never report it
	copyHeaders(w.Header(), resp.Header)
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
	// The answer is whole: send it now, so that the outcome log, the end
	// of the server span and the HTTP metrics happen after the client has
	// it rather than before.
	_ = http.NewResponseController(w).Flush()
	s.logOutcome(r.Context(), c)
}

// relayStream relays Server-Sent Events as they come: each event is
// flushed to the client when its closing blank line arrives, never held
// back until the stream ends. The 200 goes out with the first event, once
// it is known to be one: an upstream that sends no valid event within
// upstream.timeout gets the client a clean 504 or 502. From then on the
// stream is bounded by stream_idle_timeout (between reads, upstream and
// client side) and stream_timeout (in all), and a stream that breaks, is
// cut or turns invalid ends with an error event in OpenAI's shape instead
// of [DONE].
func (s *Server) relayStream(w http.ResponseWriter, r *http.Request, c *call, cctx context.Context, cancel context.CancelCauseFunc, timer *time.Timer, resp *http.Response) {
	ctx := r.Context()
	limits := s.settings.Upstream
	body := &readNotifier{r: resp.Body}
	br := bufio.NewReaderSize(body, 32<<10)

	ev, err := readEvent(br)
	if !timer.Stop() {
		// upstream.timeout ran out before the first event: it wins.
		s.upstreamFailed(w, r, c, cctx, context.Cause(cctx))
		return
	}
	if err == nil {
		err = ev.problem()
	}
	if errors.Is(err, io.EOF) {
		err = &upstreamError{kind: errTypeInvalid, err: errors.New("the stream ended before its first event")}
	}
	if err != nil {
		s.upstreamFailed(w, r, c, cctx, err)
		return
	}

	h := w.Header()
	copyHeaders(h, resp.Header)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // and no proxy in front should buffer either
	h.Del("Content-Length")
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	idle := time.AfterFunc(limits.StreamIdleTimeout, func() { cancel(errStreamIdle) })
	defer idle.Stop()
	total := time.AfterFunc(time.Until(c.start.Add(limits.StreamTimeout)), func() { cancel(errStreamTimeout) })
	defer total.Stop()
	body.onData = func() { idle.Reset(limits.StreamIdleTimeout) }

	for {
		if err := writeEvent(w, rc, ev.raw, limits.StreamIdleTimeout); err != nil {
			c.end(errTypeCanceled, "the client went away")
			msg, level := "Client closed the stream", slog.LevelInfo
			if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
				msg, level = "Client stopped reading the stream", slog.LevelWarn
			}
			s.log.Log(c.logContext(ctx), level, msg, "model", c.requestModel, "duration_ms", durationMS(time.Since(c.start)))
			return
		}
		ev, err = readEvent(br)
		if err == nil {
			err = ev.problem()
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF):
			// The observer lets EOF through only for a complete stream;
			// what came after the last blank line (data: [DONE]) still
			// goes out, as an event.
			if len(bytes.TrimSpace(ev.raw)) > 0 {
				_ = writeEvent(w, rc, append(ev.raw, "\n\n"[trailingNewlines(ev.raw):]...), limits.StreamIdleTimeout)
			}
			s.logOutcome(ctx, c)
			return
		}
		s.streamFailed(w, rc, c, cctx, err)
		return
	}
}

// streamFailed ends a stream that broke, was cut or turned invalid after
// the 200 went out: all that is left is an error event in OpenAI's shape,
// the span's status and the log.
func (s *Server) streamFailed(w http.ResponseWriter, rc *http.ResponseController, c *call, cctx context.Context, err error) {
	kind := classify(cctx, err)
	c.end(kind, causeText(err))
	lctx := c.logContext(cctx)
	limits := s.settings.Upstream
	var msg, code, text string
	switch cause := context.Cause(cctx); {
	case kind == errTypeCanceled:
		s.log.InfoContext(lctx, "Client closed the stream", "model", c.requestModel, "duration_ms", durationMS(time.Since(c.start)))
		return
	case errors.Is(cause, errStreamIdle):
		msg, code = "Upstream stream stalled", "upstream_stream_idle"
		text = fmt.Sprintf("the upstream of model %q sent nothing for %s", c.requestModel, limits.StreamIdleTimeout)
	case errors.Is(cause, errStreamTimeout):
		msg, code = "Upstream stream timed out", "upstream_stream_timeout"
		text = fmt.Sprintf("the stream of model %q ran longer than %s", c.requestModel, limits.StreamTimeout)
	case kind == errTypeInvalid:
		msg, code = "Upstream sent an invalid stream", "upstream_invalid_response"
		text = "the upstream sent an invalid stream: " + causeText(err)
	default:
		msg, code = "Upstream stream broke", "upstream_stream_error"
		text = "the upstream stream broke: " + causeText(err)
	}
	s.log.ErrorContext(lctx, msg, "model", c.requestModel, "upstream", c.up.host, "error", causeText(err), "duration_ms", durationMS(time.Since(c.start)))
	ev, _ := json.Marshal(map[string]any{"error": apiError{Message: text, Type: "api_error", Code: code}})
	_ = writeEvent(w, rc, fmt.Appendf(nil, "data: %s\n\n", ev), limits.StreamIdleTimeout)
}

// writeEvent sends one event and flushes it. A client that reads nothing
// for the idle timeout is cut: the handler never waits on it for ever.
func writeEvent(w http.ResponseWriter, rc *http.ResponseController, ev []byte, idle time.Duration) error {
	_ = rc.SetWriteDeadline(time.Now().Add(idle))
	if _, err := w.Write(ev); err != nil {
		return err
	}
	return rc.Flush()
}

func trailingNewlines(b []byte) int {
	switch {
	case bytes.HasSuffix(b, []byte("\n\n")):
		return 2
	case bytes.HasSuffix(b, []byte("\n")):
		return 1
	}
	return 0
}

// maxEventBytes bounds one Server-Sent Event, held until its blank line.
const maxEventBytes = 4 << 20

// sseEvent is one Server-Sent Event as read: its bytes as they came, to
// relay, and what the proxy checks of it.
type sseEvent struct {
	raw     []byte
	data    []byte
	hasData bool
	bad     string
}

// readEvent reads the lines of one event, through its blank line.
func readEvent(br *bufio.Reader) (sseEvent, error) {
	var ev sseEvent
	start := 0 // of the current line in raw
	for {
		chunk, err := br.ReadSlice('\n')
		if len(ev.raw)+len(chunk) > maxEventBytes {
			return ev, &upstreamError{kind: errTypeInvalid, err: fmt.Errorf("an event is over %d bytes", maxEventBytes)}
		}
		ev.raw = append(ev.raw, chunk...)
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err != nil:
			return ev, err
		}
		line := bytes.TrimRight(ev.raw[start:], "\r\n")
		start = len(ev.raw)
		if len(line) == 0 {
			return ev, nil
		}
		ev.field(line)
	}
}

func (ev *sseEvent) field(line []byte) {
	name, value, ok := sseField(line)
	switch {
	case !ok:
		if ev.bad == "" {
			ev.bad = "a line that is not a Server-Sent Events field"
		}
	case name == "data":
		if ev.hasData {
			ev.data = append(ev.data, '\n')
		}
		ev.data = append(ev.data, value...)
		ev.hasData = true
	}
}

// problem says why the event cannot be relayed.
func (ev *sseEvent) problem() error {
	p := ev.bad
	if p == "" && ev.hasData {
		p = dataProblem(ev.data)
	}
	if p == "" {
		return nil
	}
	return &upstreamError{kind: errTypeInvalid, err: errors.New(p)}
}

// readNotifier calls onData after every read that returned data.
type readNotifier struct {
	r      io.Reader
	onData func()
}

func (n *readNotifier) Read(p []byte) (int, error) {
	k, err := n.r.Read(p)
	if k > 0 && n.onData != nil {
		n.onData()
	}
	return k, err
}

func copyHeaders(dst, src http.Header) {
	for _, k := range relayedHeaders {
		if v := src.Values(k); len(v) > 0 {
			dst[k] = append([]string(nil), v...)
		}
	}
	for k, v := range src {
		if strings.HasPrefix(k, "X-Ratelimit-") {
			dst[k] = append([]string(nil), v...)
		}
	}
}

// logOutcome writes "Upstream responded" once the call has ended.
func (s *Server) logOutcome(ctx context.Context, c *call) {
	res := c.result()
	level := slog.LevelInfo
	if res.status >= 400 {
		level = slog.LevelWarn
	}
	args := []any{"model", c.requestModel, "status", res.status, "duration_ms", durationMS(res.duration), "stream", c.stream}
	if res.respModel != "" {
		args = append(args, "response_model", res.respModel)
	}
	if res.haveUsage {
		args = append(args, "input_tokens", res.input, "output_tokens", res.output)
	}
	if s.settings.LogBodies && res.content != "" {
		args = append(args, "completion", truncateBody([]byte(res.content)))
	}
	s.log.Log(c.logContext(ctx), level, "Upstream responded", args...)
}
