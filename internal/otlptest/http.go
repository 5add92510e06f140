package otlptest

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
)

const (
	contentTypeProtobuf = "application/x-protobuf"
	contentTypeJSON     = "application/json"
)

func (r *Receiver) serveHTTP(ln net.Listener) (stop func()) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, req *http.Request) {
		handleHTTP(r, w, req, SignalTraces,
			func() *coltracepb.ExportTraceServiceRequest { return &coltracepb.ExportTraceServiceRequest{} },
			r.storeTraces, &coltracepb.ExportTraceServiceResponse{})
	})
	mux.HandleFunc("POST /v1/metrics", func(w http.ResponseWriter, req *http.Request) {
		handleHTTP(r, w, req, SignalMetrics,
			func() *colmetricspb.ExportMetricsServiceRequest { return &colmetricspb.ExportMetricsServiceRequest{} },
			r.storeMetrics, &colmetricspb.ExportMetricsServiceResponse{})
	})
	mux.HandleFunc("POST /v1/logs", func(w http.ResponseWriter, req *http.Request) {
		handleHTTP(r, w, req, SignalLogs,
			func() *collogspb.ExportLogsServiceRequest { return &collogspb.ExportLogsServiceRequest{} },
			r.storeLogs, &collogspb.ExportLogsServiceResponse{})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/v1/traces", "/v1/metrics", "/v1/logs":
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "otlptest: OTLP/HTTP exports must use POST", http.StatusMethodNotAllowed)
			return
		}
		msg := fmt.Sprintf("otlptest: no OTLP signal at %s %s; POST to /v1/traces, /v1/metrics or /v1/logs "+
			"(a per-signal endpoint URL is used verbatim, see Receiver.SignalURL)", req.Method, req.URL.Path)
		http.Error(w, msg, http.StatusNotFound)
	})

	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	return func() {
		_ = srv.Close()
		wg.Wait()
	}
}

// handleHTTP serves one OTLP/HTTP export request for signal.
func handleHTTP[Req proto.Message](r *Receiver, w http.ResponseWriter, req *http.Request, signal string,
	newReq func() Req, store func(Req), resp proto.Message,
) {
	ct, _, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || (ct != contentTypeProtobuf && ct != contentTypeJSON) {
		writeHTTPError(w, contentTypeProtobuf, http.StatusUnsupportedMediaType, codes.InvalidArgument,
			fmt.Sprintf("otlptest: unsupported Content-Type %q (want %s or %s)",
				req.Header.Get("Content-Type"), contentTypeProtobuf, contentTypeJSON))
		return
	}

	body, err := readBody(req)
	if err != nil {
		writeHTTPError(w, ct, http.StatusBadRequest, codes.InvalidArgument, "otlptest: "+err.Error())
		return
	}
	msg := newReq()
	if ct == contentTypeJSON {
		err = unmarshalJSON(body, msg)
	} else {
		err = proto.Unmarshal(body, msg)
	}
	if err != nil {
		writeHTTPError(w, ct, http.StatusBadRequest, codes.InvalidArgument,
			fmt.Sprintf("otlptest: decode %s %s request: %v", ct, signal, err))
		return
	}

	f, err := r.begin(req.Context(), signal)
	if err != nil {
		writeHTTPError(w, ct, http.StatusServiceUnavailable, codes.Unavailable, err.Error())
		return
	}
	if f.http != 0 {
		writeHTTPError(w, ct, f.http, f.code, fmt.Sprintf("otlptest: injected failure for %s export", signal))
		return
	}
	store(msg)
	writeMessage(w, ct, http.StatusOK, resp)
}

// readBody reads the request body, decompressing it per Content-Encoding,
// limited to maxMessageSize bytes after decompression.
func readBody(req *http.Request) ([]byte, error) {
	var rd io.Reader = req.Body
	switch enc := strings.ToLower(strings.TrimSpace(req.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		defer zr.Close()
		rd = zr
	default:
		return nil, fmt.Errorf("unsupported Content-Encoding %q (want gzip or none)", enc)
	}
	b, err := io.ReadAll(io.LimitReader(rd, maxMessageSize+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if len(b) > maxMessageSize {
		return nil, fmt.Errorf("body larger than %d bytes", maxMessageSize)
	}
	return b, nil
}

// writeHTTPError answers with status and a google.rpc.Status body encoded
// like the request, as OTLP/HTTP specifies.
func writeHTTPError(w http.ResponseWriter, ct string, httpStatus int, code codes.Code, msg string) {
	writeMessage(w, ct, httpStatus, status.New(code, msg).Proto())
}

func writeMessage(w http.ResponseWriter, ct string, httpStatus int, m proto.Message) {
	var (
		b   []byte
		err error
	)
	if ct == contentTypeJSON {
		b, err = protojson.Marshal(m)
	} else {
		ct = contentTypeProtobuf
		b, err = proto.Marshal(m)
	}
	if err != nil {
		http.Error(w, "otlptest: encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(httpStatus)
	_, _ = w.Write(b)
}

// idLengths maps the OTLP/JSON id field names to their length in bytes.
var idLengths = map[string]int{
	"traceId": 16, "trace_id": 16,
	"spanId": 8, "span_id": 8,
	"parentSpanId": 8, "parent_span_id": 8,
}

// unmarshalJSON decodes an OTLP/JSON body. OTLP/JSON differs from the
// canonical protobuf JSON mapping in that trace and span ids are hex strings,
// not base64; they are rewritten before protojson decodes the body (base64
// ids are accepted too). Unknown fields are ignored, as the spec requires.
func unmarshalJSON(body []byte, m proto.Message) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after JSON value")
	}
	fixIDs(v)
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, m)
}

// fixIDs rewrites hex-encoded id fields in a decoded JSON tree to base64.
func fixIDs(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if n, ok := idLengths[k]; ok {
				if s, ok := e.(string); ok && len(s) == 2*n {
					if raw, err := hex.DecodeString(s); err == nil {
						t[k] = base64.StdEncoding.EncodeToString(raw)
						continue
					}
				}
			}
			fixIDs(e)
		}
	case []any:
		for _, e := range t {
			fixIDs(e)
		}
	}
}
