// Package drain is the graceful stop the services (the proxy and the
// interceptor) share: serve until the context is done, then let in-flight
// requests finish for a bounded time and cut the rest.
package drain

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Serve serves hs on ln until ctx is done, then stops accepting, lets
// in-flight requests finish for at most timeout and closes the remaining
// connections. It returns nil after a clean drain, the Shutdown error
// (context.DeadlineExceeded) when the drain timed out, or the error that
// stopped serving first. The drain is logged on log.
func Serve(ctx context.Context, hs *http.Server, ln net.Listener, timeout time.Duration, log *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("Shutting down: draining in-flight requests", "timeout", timeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if err != nil {
		log.Warn("Drain timed out: closing the remaining connections", "error", err.Error())
		_ = hs.Close()
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
