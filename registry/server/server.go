package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-project/berth/content"
)

// Server is the registry's HTTP handler: the OCI distribution spec's /v2/
// endpoints, /metrics and, when configured, /token.
type Server struct {
	cfg     Config
	store   *repoStore
	log     *slog.Logger
	metrics *metrics
	mirror  *mirror // pull-through cache mode; nil otherwise

	mu      sync.Mutex
	uploads map[string]*upload // open upload sessions, by id

	stop      chan struct{} // closed by Close: stops the idle reaper
	reaper    sync.WaitGroup
	closeOnce sync.Once
}

// New opens the storage under cfg.Root (creating it) and returns the
// server. Upload sessions left by an earlier server on the same root are
// continued on their next request.
func New(cfg Config) (*Server, error) {
	if cfg.Root == "" {
		return nil, errors.New("registry server: no storage root")
	}
	if cfg.MaxManifestSize <= 0 {
		cfg.MaxManifestSize = DefaultMaxManifestSize
	}
	if cfg.BodyIdleTimeout <= 0 {
		cfg.BodyIdleTimeout = DefaultBodyIdleTimeout
	}
	if cfg.UploadIdleRelease <= 0 {
		cfg.UploadIdleRelease = DefaultUploadIdleRelease
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	st, err := openRepoStore(cfg.Root, cfg.Sync)
	if err != nil {
		return nil, fmt.Errorf("registry server: %w", err)
	}
	s := &Server{cfg: cfg, store: st, log: cfg.Logger, metrics: newMetrics(), uploads: map[string]*upload{}, stop: make(chan struct{})}
	if cfg.Mirror != nil {
		if s.mirror, err = newMirror(*cfg.Mirror, cfg.Logger); err != nil {
			return nil, fmt.Errorf("registry server: %w", err)
		}
	}
	s.reaper.Add(1)
	go s.releaseIdle()
	return s, nil
}

// releaseIdle closes the writers of upload sessions that saw no request
// for UploadIdleRelease, so abandoned uploads hold no file or lock.
func (s *Server) releaseIdle() {
	defer s.reaper.Done()
	t := time.NewTicker(max(s.cfg.UploadIdleRelease/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		idle := make(map[string]*upload)
		for id, u := range s.uploads {
			idle[id] = u
		}
		s.mu.Unlock()
		for id, u := range idle {
			if !u.mu.TryLock() {
				continue // a request is using it
			}
			if !u.gone && time.Since(u.used) >= s.cfg.UploadIdleRelease {
				if u.w != nil {
					if err := u.w.Close(); err != nil {
						s.log.Warn("release idle upload", "upload", id, "err", err)
					}
					u.w = nil
				}
				s.dropUpload(id, u)
			}
			u.mu.Unlock()
		}
	}
}

// Close releases the upload sessions the server holds open; their bytes
// stay on disk, so a new Server on the same root continues them. Call it
// after the HTTP server has shut down.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { close(s.stop) })
	s.reaper.Wait()
	s.mu.Lock()
	open := s.uploads
	s.uploads = map[string]*upload{}
	s.mu.Unlock()
	var errs []error
	for _, u := range open {
		u.mu.Lock()
		if u.w != nil {
			errs = append(errs, u.w.Close())
			u.w = nil
		}
		u.gone = true
		u.mu.Unlock()
	}
	return errors.Join(errs...)
}

// ServeHTTP serves one request, with an access log line and metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	var body *bodyReader
	if r.Body != nil && r.Body != http.NoBody {
		body = &bodyReader{r: r.Body, rc: http.NewResponseController(w), idle: s.cfg.BodyIdleTimeout}
		r.Body = body
	}
	kind := s.serve(sw, r)
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	var in int64
	if body != nil {
		in = body.n.Load()
	}
	d := time.Since(start)
	s.metrics.observe(r.Method, kind, sw.status, in, sw.bytes, d)
	if s.log.Enabled(r.Context(), slog.LevelInfo) {
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", sw.status),
			slog.Int64("bytes_in", in), slog.Int64("bytes", sw.bytes), slog.Duration("duration", d),
			slog.String("remote", r.RemoteAddr), slog.String("user_agent", r.UserAgent()))
	}
}

// serve dispatches a request and returns its route kind.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) routeKind {
	switch r.URL.Path {
	case "/metrics":
		s.metrics.handler().ServeHTTP(w, r)
		return "metrics"
	case "/token":
		if s.cfg.TokenHandler != nil {
			s.cfg.TokenHandler.ServeHTTP(w, r)
			return "token"
		}
	}
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	rt, rerr := parseRoute(r.URL.Path)
	if rt.Kind == routeUnknown {
		writeError(w, errorf(http.StatusNotFound, CodeUnsupported, "no such endpoint", map[string]string{"path": r.URL.Path}))
		return rt.Kind
	}
	if rerr != nil {
		writeError(w, rerr)
		return rt.Kind
	}
	h, access, write := s.handlerFor(rt, r)
	if h == nil {
		w.Header().Set("Allow", allowed(rt.Kind))
		writeError(w, errorf(http.StatusMethodNotAllowed, CodeUnsupported, "method "+r.Method+" not supported here", nil))
		return rt.Kind
	}
	if s.cfg.Authorizer != nil {
		if err := s.cfg.Authorizer.Authorize(r, access); err != nil {
			var ae *AuthError
			if !errors.As(err, &ae) {
				err = &AuthError{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: err.Error()}
			}
			writeError(w, err)
			return rt.Kind
		}
	}
	if write && s.mirror != nil {
		writeError(w, s.mirror.refuseWrite())
		return rt.Kind
	}
	if write && s.cfg.ReadOnly {
		writeError(w, errorf(http.StatusMethodNotAllowed, CodeUnsupported, "the registry is read-only", nil))
		return rt.Kind
	}
	if err := h(w, r, rt); err != nil {
		var re *regError
		if !errors.As(err, &re) {
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		writeError(w, err)
	}
	return rt.Kind
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, rt route) error

func repoAccess(name string, actions ...string) []Access {
	return []Access{{Type: "repository", Name: name, Actions: actions}}
}

// handlerFor returns the handler of a request, the scope it needs and
// whether it writes; a nil handler for a method the route does not have.
func (s *Server) handlerFor(rt route, r *http.Request) (handlerFunc, []Access, bool) {
	m := r.Method
	pull := repoAccess(rt.Name, "pull")
	push := repoAccess(rt.Name, "pull", "push")
	del := repoAccess(rt.Name, "delete")
	switch rt.Kind {
	case routeBase:
		if m == http.MethodGet || m == http.MethodHead {
			return s.base, nil, false
		}
	case routeCatalog:
		if m == http.MethodGet {
			return s.catalog, []Access{{Type: "registry", Name: "catalog", Actions: []string{"*"}}}, false
		}
	case routeManifest:
		switch m {
		case http.MethodGet, http.MethodHead:
			return s.getManifest, pull, false
		case http.MethodPut:
			return s.putManifest, push, true
		case http.MethodDelete:
			return s.deleteManifest, del, true
		}
	case routeBlob:
		switch m {
		case http.MethodGet, http.MethodHead:
			return s.getBlob, pull, false
		case http.MethodDelete:
			return s.deleteBlob, del, true
		}
	case routeUploads:
		if m == http.MethodPost {
			return s.startUpload, push, true
		}
	case routeUpload:
		switch m {
		case http.MethodGet:
			return s.uploadStatus, push, false
		case http.MethodPatch:
			return s.patchUpload, push, true
		case http.MethodPut:
			return s.finishUpload, push, true
		case http.MethodDelete:
			return s.cancelUpload, push, true
		}
	case routeTags:
		if m == http.MethodGet {
			return s.listTags, pull, false
		}
	case routeReferrers:
		if m == http.MethodGet {
			return s.getReferrers, pull, false
		}
	}
	return nil, nil, false
}

func allowed(k routeKind) string {
	switch k {
	case routeManifest:
		return "GET, HEAD, PUT, DELETE"
	case routeBlob:
		return "GET, HEAD, DELETE"
	case routeUploads:
		return "POST"
	case routeUpload:
		return "GET, PATCH, PUT, DELETE"
	case routeBase:
		return "GET, HEAD"
	}
	return "GET"
}

func (s *Server) base(w http.ResponseWriter, r *http.Request, _ route) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		io.WriteString(w, "{}")
	}
	return nil
}

// notFound maps content.ErrNotFound to the given spec error.
func notFound(err error, re *regError) error {
	if errors.Is(err, content.ErrNotFound) {
		return re
	}
	return err
}

// statusWriter records a response's status and body size. It keeps the
// underlying writer's io.ReaderFrom so that files are sent with sendfile.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
	}
	w.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush flushes the underlying writer.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// bodyReader counts a request body's bytes and gives each read at most
// idle time, so a client that stops sending (slowloris) is cut off.
type bodyReader struct {
	r    io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
	n    atomic.Int64
}

func (b *bodyReader) Read(p []byte) (int, error) {
	b.rc.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.r.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *bodyReader) Close() error { return b.r.Close() }
