package otlptest

import (
	"context"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // accept gzip-compressed exports
	"google.golang.org/grpc/status"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
)

// maxMessageSize bounds a single request (gRPC message or decompressed HTTP
// body). It is larger than the exporters' defaults so load tests with big
// batches are not refused.
const maxMessageSize = 64 << 20

func (r *Receiver) serveGRPC(ln net.Listener) (stop func()) {
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(maxMessageSize))
	coltracepb.RegisterTraceServiceServer(srv, traceService{r: r})
	colmetricspb.RegisterMetricsServiceServer(srv, metricsService{r: r})
	collogspb.RegisterLogsServiceServer(srv, logsService{r: r})

	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	return func() {
		srv.Stop()
		wg.Wait()
	}
}

// grpcBegin runs the fault injection for a gRPC export and converts its
// outcome into a gRPC error.
func (r *Receiver) grpcBegin(ctx context.Context, signal string) error {
	f, err := r.begin(ctx, signal)
	if err != nil {
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		return status.Error(codes.Unavailable, err.Error())
	}
	if f.code != codes.OK {
		return status.Errorf(f.code, "otlptest: injected failure for %s export", signal)
	}
	return nil
}

type traceService struct {
	coltracepb.UnimplementedTraceServiceServer
	r *Receiver
}

func (s traceService) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	if err := s.r.grpcBegin(ctx, SignalTraces); err != nil {
		return nil, err
	}
	s.r.storeTraces(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

type metricsService struct {
	colmetricspb.UnimplementedMetricsServiceServer
	r *Receiver
}

func (s metricsService) Export(ctx context.Context, req *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	if err := s.r.grpcBegin(ctx, SignalMetrics); err != nil {
		return nil, err
	}
	s.r.storeMetrics(req)
	return &colmetricspb.ExportMetricsServiceResponse{}, nil
}

type logsService struct {
	collogspb.UnimplementedLogsServiceServer
	r *Receiver
}

func (s logsService) Export(ctx context.Context, req *collogspb.ExportLogsServiceRequest) (*collogspb.ExportLogsServiceResponse, error) {
	if err := s.r.grpcBegin(ctx, SignalLogs); err != nil {
		return nil, err
	}
	s.r.storeLogs(req)
	return &collogspb.ExportLogsServiceResponse{}, nil
}
