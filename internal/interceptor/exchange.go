package interceptor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Cancellation causes of an exchange cut by the interceptor's own limits,
// as opposed to a client that went away.
var (
	errResponseTimeout = errors.New("response timeout")      // timeouts.response
	errResponseIdle    = errors.New("response idle timeout") // timeouts.response_idle
)

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

// exchange is one forwarded request. The handler creates it; the client's
// body and the proxy's answer report to it from the transport's
// goroutines, and the handler reads the outcome when it logs.
type exchange struct {
	cancel context.CancelCauseFunc
	idle   time.Duration // timeouts.response_idle
	total  time.Duration // timeouts.response

	mu        sync.Mutex
	idleTimer *time.Timer
	rec       *recorder      // the handler's; its fields are the handler goroutine's alone
	clientErr error          // why the client's body could not be read whole
	failure   *answerFailure // why the answer did not arrive whole
}

// answerFailure is an answer cut after its headers went out.
type answerFailure struct {
	code   string // error.type of the spans, code of the error event
	text   string // for the client, the span status and the log
	logMsg string
}

func (ex *exchange) clientFailed(err error) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.clientErr == nil {
		ex.clientErr = err
	}
}

func (ex *exchange) clientFailure() error {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return ex.clientErr
}

func (ex *exchange) answerFailure() *answerFailure {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return ex.failure
}

// stop ends the idle watch when the handler is done.
func (ex *exchange) stop() {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.idleTimer != nil {
		ex.idleTimer.Stop()
	}
}

// touch restarts the idle watch: the proxy has sent something.
func (ex *exchange) touch() {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.idleTimer != nil {
		ex.idleTimer.Reset(ex.idle)
	}
}

// watch wraps the proxy's answer. From now on the exchange is cut when the
// proxy sends nothing for response_idle (response bounds it in all).
func (ex *exchange) watch(ctx context.Context, resp *http.Response) io.ReadCloser {
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.Body // ReverseProxy needs the connection itself
	}
	ex.mu.Lock()
	ex.idleTimer = time.AfterFunc(ex.idle, func() { ex.cancel(errResponseIdle) })
	ex.mu.Unlock()
	return &answerBody{
		ReadCloser: resp.Body,
		ctx:        ctx,
		ex:         ex,
		span:       trace.SpanFromContext(ctx),
		sse:        isEventStream(resp.Header) && resp.ContentLength < 0,
	}
}

// failed records why the answer broke off; nil means the client went away
// (nothing to tell anybody).
func (ex *exchange) failed(ctx context.Context, err error) *answerFailure {
	var f *answerFailure
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errResponseIdle):
		f = &answerFailure{"proxy_response_idle", fmt.Sprintf("the proxy sent nothing for %s", ex.idle), "Proxy answer stalled"}
	case errors.Is(cause, errResponseTimeout):
		f = &answerFailure{"proxy_response_timeout", fmt.Sprintf("the answer ran longer than %s", ex.total), "Proxy answer timed out"}
	case ctx.Err() != nil:
		return nil
	default:
		f = &answerFailure{"proxy_response_broken", "the proxy's answer broke off: " + err.Error(), "Proxy answer broke off"}
	}
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.failure == nil {
		ex.failure = f
	}
	return ex.failure
}

// clientBody is a request body on its way to the proxy: it stops at
// max_body_bytes, lifts the read deadline once the body is in, and keeps
// the reason it failed for the answer.
type clientBody struct {
	io.ReadCloser
	ex   *exchange
	lift func()
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.lift()
	case err != nil:
		b.ex.clientFailed(err)
	}
	return n, err
}

// answerBody is the proxy's answer on its way to the client. It restarts
// the idle watch on every read, and when the answer breaks off (or is cut)
// it puts the error on the client span while that is still open. A stream
// of Server-Sent Events that breaks between two events then ends with an
// error event in OpenAI's shape, cleanly; any other answer passes the
// error on, and ReverseProxy cuts the client's connection — for an answer
// whose headers are out, the only honest way to say it is incomplete.
type answerBody struct {
	io.ReadCloser
	ctx  context.Context
	ex   *exchange
	span trace.Span
	sse  bool
	last []byte // the last bytes given, to tell an event boundary
	tail []byte // the error event still to give
	done bool
}

func (b *answerBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if b.tail != nil {
		n := copy(p, b.tail)
		b.tail = b.tail[n:]
		if len(b.tail) == 0 {
			b.done = true
			return n, io.EOF
		}
		return n, nil
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.ex.touch()
		b.last = append(b.last, p[:n]...)
		b.last = b.last[max(0, len(b.last)-4):]
	}
	if err == nil || err == io.EOF {
		return n, err
	}
	f := b.ex.failed(b.ctx, err)
	if f == nil {
		return n, err
	}
	b.span.SetAttributes(semconv.ErrorTypeKey.String(f.code))
	b.span.SetStatus(codes.Error, f.text)
	if b.sse && b.atBoundary() {
		ev, _ := json.Marshal(map[string]any{"error": map[string]any{"message": f.text, "type": "api_error", "code": f.code}})
		b.tail = fmt.Appendf(nil, "data: %s\n\n", ev)
		return n, nil
	}
	return n, err
}

// atBoundary reports whether what was given so far ends between events.
func (b *answerBody) atBoundary() bool {
	return len(b.last) == 0 || bytes.HasSuffix(b.last, []byte("\n\n")) || bytes.HasSuffix(b.last, []byte("\r\n\r\n"))
}

func isEventStream(h http.Header) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(h.Get("Content-Type"))), "text/event-stream")
}
