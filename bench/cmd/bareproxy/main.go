// Command bareproxy is the baseline hop of the HTTP figures: a bare
// httputil.ReverseProxy on loopback, no telemetry, with the same upstream
// connection pool as the proxy's defaults (32 idle connections per host),
// so that the comparison is about what a hop does, not about pool sizes.
//
// With --otel it is the floor of the instrumentation DESIGN.md asks for:
// the same hop wrapped in otelhttp (server and client spans, HTTP
// metrics) with the providers otelconfig.Start builds from
// examples/otel.yaml and the OTEL_* environment, and nothing else — no
// logs, no request parsing. The difference between the two is what that
// telemetry costs any hop, however lean its own code.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/otelcfg/otelcfg/examples"
	"github.com/otelcfg/otelcfg/otelconfig"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	target := flag.String("target", "", "base URL to forward to")
	flush := flag.Duration("flush-interval", 0, "httputil.ReverseProxy.FlushInterval")
	withOtel := flag.Bool("otel", false, "wrap the hop in otelhttp with otelconfig.Start(examples/otel.yaml + OTEL_* environment)")
	flag.Parse()
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		fmt.Fprintln(os.Stderr, "bareproxy: --target must be a URL")
		os.Exit(2)
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        100,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.SetXForwarded() },
		Transport:     tr,
		FlushInterval: *flush,
	}
	var handler http.Handler = rp
	if *withOtel {
		tel, err := otelconfig.Start(context.Background(),
			otelconfig.WithBytes("otel.yaml", examples.OtelYAML),
			otelconfig.WithServiceName("bench-bareproxy"),
			otelconfig.WithConsole(nil))
		if err != nil {
			fmt.Fprintln(os.Stderr, "bareproxy:", err)
			os.Exit(1)
		}
		defer tel.Shutdown(context.Background())
		rp.Transport = otelhttp.NewTransport(tr)
		handler = otelhttp.NewHandler(rp, "hop")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bareproxy:", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); _ = hs.Close() }()
	_ = hs.Serve(ln)
}
