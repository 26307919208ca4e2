package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Timeouts of the HTTP server. Request bodies have no overall deadline
// (a large upload may take long) but each read is bounded by
// Config.BodyIdleTimeout.
const (
	ReadHeaderTimeout = 10 * time.Second
	IdleTimeout       = 2 * time.Minute
	MaxHeaderBytes    = 64 << 10
	// DefaultShutdownTimeout is how long Serve lets in-flight requests
	// finish after its context is cancelled.
	DefaultShutdownTimeout = 30 * time.Second
)

// ServeOptions configure Serve.
type ServeOptions struct {
	// TLSCert and TLSKey, both set, make the server speak HTTPS.
	TLSCert, TLSKey string
	// ShutdownTimeout bounds the graceful shutdown; DefaultShutdownTimeout
	// when 0.
	ShutdownTimeout time.Duration
}

// NewHTTPServer returns an http.Server for h with timeouts against slow
// clients (slowloris): a bounded header read, idle keep-alives closed.
func NewHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

// Serve serves s on ln until ctx is cancelled, then shuts down
// gracefully: it stops accepting, lets in-flight requests (uploads among
// them) finish for up to opts.ShutdownTimeout, closes what remains and
// releases s's upload sessions, which stay resumable on disk.
func Serve(ctx context.Context, s *Server, ln net.Listener, opts ServeOptions) error {
	hs := NewHTTPServer(s)
	hs.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelWarn) // TLS handshake and connection errors
	errc := make(chan error, 1)
	go func() {
		var err error
		if opts.TLSCert != "" || opts.TLSKey != "" {
			err = hs.ServeTLS(ln, opts.TLSCert, opts.TLSKey)
		} else {
			err = hs.Serve(ln)
		}
		errc <- err
	}()
	var err error
	select {
	case err = <-errc:
		// Failed to serve (bad certificate, closed listener).
	case <-ctx.Done():
		timeout := opts.ShutdownTimeout
		if timeout <= 0 {
			timeout = DefaultShutdownTimeout
		}
		sctx, cancel := context.WithTimeout(context.Background(), timeout)
		err = hs.Shutdown(sctx)
		cancel()
		if err != nil {
			s.log.Warn("graceful shutdown timed out; closing open connections", "timeout", timeout)
			hs.Close()
			err = fmt.Errorf("shutdown: %w", err)
		}
		if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}
