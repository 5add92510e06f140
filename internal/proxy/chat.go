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
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil {
		reject(http.StatusBadRequest, "invalid_json", "", "the request body is not a JSON object: "+jsonProblem(err))
		return
	}
	if i := invalidUTF8At(body); i >= 0 {
		// JSON is UTF-8 (RFC 8259). Bytes that are not would reach the
		// upstream as they are, and the logs and spans garbled.
		reject(http.StatusBadRequest, "invalid_encoding", "", fmt.Sprintf("the request body is not valid UTF-8 (at byte %d)", i))
		return
	}
	var model string
	if raw, ok := req["model"]; !ok || json.Unmarshal(raw, &model) != nil || strings.TrimSpace(model) == "" {
		reject(http.StatusBadRequest, "missing_model", "model", "model is required: a non-empty string naming one of "+s.available())
		return
	}
	var messages []json.RawMessage
	if raw, ok := req["messages"]; !ok || json.Unmarshal(raw, &messages) != nil || len(messages) == 0 {
		reject(http.StatusBadRequest, "missing_messages", "messages", "messages is required: a non-empty array of messages")
		return
	}
	stream := false
	if raw, ok := req["stream"]; ok && string(raw) != "null" {
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

	modelJSON, _ := json.Marshal(up.model)
	req["model"] = modelJSON
	out, err := json.Marshal(req)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "server_error", "internal_error", "", "cannot encode the upstream request")
		return
	}

	c := &call{inst: s.inst, up: up, requestModel: model, stream: stream, route: rt, reqAttrs: requestAttrs(req), logBodies: s.settings.LogBodies}
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
	if !timer.Stop() {
		// Timed out in the instant the stream began: the timeout wins.
		s.upstreamFailed(w, r, c, cctx, context.Cause(cctx))
		return
	}
	s.relayStream(w, r, c, cctx, resp)
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
func requestAttrs(req map[string]json.RawMessage) []attribute.KeyValue {
	var out []attribute.KeyValue
	for _, k := range []string{"max_completion_tokens", "max_tokens"} {
		var n int64
		if raw, ok := req[k]; ok && json.Unmarshal(raw, &n) == nil {
			out = append(out, keyMaxTokens.Int64(n))
			break
		}
	}
	for k, key := range map[string]attribute.Key{"temperature": keyTemperature, "top_p": keyTopP} {
		var f float64
		if raw, ok := req[k]; ok && json.Unmarshal(raw, &f) == nil {
			out = append(out, key.Float64(f))
		}
	}
	return out
}

// upstreamFailed answers a call that got no response: 504 on a timeout,
// 502 when the upstream could not be reached, nothing when the client has
// gone.
func (s *Server) upstreamFailed(w http.ResponseWriter, r *http.Request, c *call, cctx context.Context, err error) {
	ctx := r.Context()
	kind := classify(cctx, err)
	c.end(kind, causeText(err))
	lctx := c.logContext(ctx)
	res := c.result()
	switch kind {
	case errTypeCanceled:
		s.log.InfoContext(lctx, "Client closed the request", "model", c.requestModel, "duration_ms", durationMS(res.duration))
	case errTypeTimeout:
		s.log.ErrorContext(lctx, "Upstream timed out", "model", c.requestModel, "upstream", c.up.host, "timeout", c.up.timeout.String(), "status", http.StatusGatewayTimeout)
		writeError(w, http.StatusGatewayTimeout, "timeout_error", "upstream_timeout", "",
			fmt.Sprintf("the upstream of model %q did not answer within %s", c.requestModel, c.up.timeout))
	default:
		s.log.ErrorContext(lctx, "Upstream request failed", "model", c.requestModel, "upstream", c.up.host, "error", causeText(err), "status", http.StatusBadGateway)
		writeError(w, http.StatusBadGateway, "api_connection_error", "upstream_unreachable", "",
			fmt.Sprintf("cannot reach the upstream of model %q (%s): %s", c.requestModel, c.up.host, causeText(err)))
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
	c.end("", "") // already ended at EOF; this covers bodies that never report it
	copyHeaders(w.Header(), resp.Header)
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
	s.logOutcome(r.Context(), c)
}

// relayStream relays Server-Sent Events as they come: each event is
// flushed to the client when its closing blank line arrives, never held
// back until the stream ends.
func (s *Server) relayStream(w http.ResponseWriter, r *http.Request, c *call, cctx context.Context, resp *http.Response) {
	ctx := r.Context()
	h := w.Header()
	copyHeaders(h, resp.Header)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // and no proxy in front should buffer either
	h.Del("Content-Length")
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	_ = rc.Flush()

	br := bufio.NewReaderSize(resp.Body, 32<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if _, werr := w.Write(line); werr != nil {
				c.end(errTypeCanceled, "the client went away")
				s.log.InfoContext(c.logContext(ctx), "Client closed the stream", "model", c.requestModel, "duration_ms", durationMS(time.Since(c.start)))
				return
			}
			if isBlankLine(line) {
				if ferr := rc.Flush(); ferr != nil {
					c.end(errTypeCanceled, "the client went away")
					return
				}
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			_ = rc.Flush()
			s.logOutcome(ctx, c)
			return
		}
		// The stream broke after the 200 went out: all that is left is
		// an error event in OpenAI's shape, and the log.
		kind := classify(cctx, err)
		c.end(kind, causeText(err))
		if kind == errTypeCanceled {
			s.log.InfoContext(c.logContext(ctx), "Client closed the stream", "model", c.requestModel, "duration_ms", durationMS(time.Since(c.start)))
			return
		}
		s.log.ErrorContext(c.logContext(ctx), "Upstream stream broke", "model", c.requestModel, "upstream", c.up.host, "error", causeText(err))
		ev, _ := json.Marshal(map[string]any{"error": apiError{Message: "the upstream stream broke: " + causeText(err), Type: "api_error", Code: "upstream_stream_error"}})
		_, _ = fmt.Fprintf(w, "data: %s\n\n", ev)
		_ = rc.Flush()
		return
	}
}

func isBlankLine(b []byte) bool {
	return len(b) == 1 && b[0] == '\n' || len(b) == 2 && b[0] == '\r' && b[1] == '\n'
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
