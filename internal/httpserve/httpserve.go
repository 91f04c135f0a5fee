// Package httpserve runs an http.Server for as long as a context lives:
// the web server, the UDF admin API and every component's /metrics share
// that lifecycle, written once here.
package httpserve

import (
	"context"
	"net"
	"net/http"
	"time"
)

// Serve serves srv on ln until ctx ends or serving fails, then shuts srv
// down, giving requests in flight up to grace to finish before closing
// their connections. It returns the serve error, or nil once ctx ended.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		_ = srv.Close()
	}
	return err
}
