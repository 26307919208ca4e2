package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/content"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/reference"
	"github.com/berth-project/berth/registry"
	"github.com/berth-project/berth/registry/credentials"
	"github.com/berth-project/berth/registry/hosts"
)

// DefaultMirrorTTL is how long a cached tag is trusted, unless
// MirrorConfig.TTL says otherwise.
const DefaultMirrorTTL = 5 * time.Minute

// DefaultMirrorIdleTimeout is how long a blob download from the upstream
// may deliver nothing before the mirror gives up on it.
const DefaultMirrorIdleTimeout = 2 * time.Minute

// CodeUnavailable is the error code of a request the mirror could not
// answer because its upstream could not (unreachable, 5xx, bad content).
// It is not one of the distribution spec's codes; distribution uses it
// for the same purpose.
const CodeUnavailable = "UNAVAILABLE"

// MirrorConfig makes a Server a pull-through cache of one upstream
// registry, as distribution's proxy mode and docker's registry mirrors:
// manifests and blobs that are not stored are fetched from the upstream,
// verified, stored and served; pushes and deletes are refused.
type MirrorConfig struct {
	// Upstream is the upstream registry's URL: "https://registry-1.docker.io",
	// "http://127.0.0.1:5000" (plain HTTP when the URL says so).
	Upstream string
	// Username and Password log in to the upstream; without them
	// Credentials is asked.
	Username string
	Password string
	// Credentials returns the login for the upstream host (as berth's
	// credential store names it: "docker.io" for Docker Hub); nil or a
	// zero Credential means anonymous.
	Credentials func(ctx context.Context, host string) (registry.Credential, error)
	// Hosts supplies TLS settings (certs.d) for the upstream host; its
	// [[registry]] entries are not used. nil means the system's roots
	// and berth's, containers' and docker's certs.d directories.
	Hosts *hosts.Config
	// TTL is how long a cached tag's digest is served without asking
	// the upstream again (a HEAD request); DefaultMirrorTTL when 0.
	// Manifests and blobs by digest never change and are never
	// revalidated.
	TTL time.Duration
	// IdleTimeout bounds how long a blob download may stall;
	// DefaultMirrorIdleTimeout when 0.
	IdleTimeout time.Duration
	// Retries and Backoff are the registry client's (registry.Options).
	Retries int
	Backoff time.Duration
	// Now is the clock of tag freshness; time.Now when nil.
	Now func() time.Time
}

// MirrorFileConfig is the [mirror] section of the config file.
//
//	[mirror]
//	upstream = "https://registry-1.docker.io"
//	username = "me"          # optional; else berth's credential store
//	password = "secret"
//	ttl = "5m"               # how long a cached tag is trusted
type MirrorFileConfig struct {
	Upstream string   `toml:"upstream"`
	Username string   `toml:"username"`
	Password string   `toml:"password"`
	TTL      Duration `toml:"ttl"`
}

// validate checks the section's settings (the upstream URL is checked
// when the server starts).
func (fc MirrorFileConfig) validate() error {
	if fc.Upstream == "" && (fc.Username != "" || fc.Password != "" || fc.TTL != 0) {
		return errors.New("mirror: settings without an upstream")
	}
	if (fc.Username == "") != (fc.Password == "") {
		return errors.New("mirror: username and password go together")
	}
	if fc.TTL < 0 {
		return errors.New("mirror: negative ttl")
	}
	return nil
}

// serverConfig is the MirrorConfig of the section, nil without an
// upstream. Without a username the logins of berth's credential store
// (`berth login`, docker's config.json) are used.
func (fc MirrorFileConfig) serverConfig() *MirrorConfig {
	if fc.Upstream == "" {
		return nil
	}
	mc := &MirrorConfig{Upstream: fc.Upstream, Username: fc.Username, Password: fc.Password, TTL: time.Duration(fc.TTL)}
	if fc.Username == "" {
		mc.Credentials = credentials.Open(credentials.DefaultPath()).Get
	}
	return mc
}

// mirror is a Server's pull-through state.
type mirror struct {
	upstream string // the URL, for messages
	host     string // host[:port]
	insecure bool   // plain HTTP
	client   *registry.Client
	hosts    *hosts.Config
	ttl      time.Duration
	idle     time.Duration
	now      func() time.Time
	log      *slog.Logger
	flight   flight // by "blob "+digest, "tag "+name+":"+tag, "manifest "+name+"@"+digest
}

// flight runs one fetch per key at a time: the first request for a key
// leads (fetches, in its own request), later ones wait for its result.
type flight struct {
	mu    sync.Mutex
	calls map[string]*call
}

type call struct {
	done chan struct{}
	val  any
	err  error
}

// join returns the call of key and whether the caller leads it; a leader
// must end it with finish.
func (f *flight) join(key string) (*call, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.calls[key]; ok {
		return c, false
	}
	if f.calls == nil {
		f.calls = map[string]*call{}
	}
	c := &call{done: make(chan struct{})}
	f.calls[key] = c
	return c, true
}

func (f *flight) finish(key string, c *call, val any, err error) {
	f.mu.Lock()
	delete(f.calls, key)
	f.mu.Unlock()
	c.val, c.err = val, err
	close(c.done)
}

// do runs fn as the leader of key, or waits for the leader's result (or
// the end of ctx).
func (f *flight) do(ctx context.Context, key string, fn func() (any, error)) (any, error) {
	c, lead := f.join(key)
	if lead {
		var val any
		err := errors.New("mirror fetch panicked")
		defer func() { f.finish(key, c, val, err) }()
		val, err = fn()
		return val, err
	}
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// mirrorIngestPrefix begins the content-store ingest refs of the mirror's
// downloads.
const mirrorIngestPrefix = "registry-mirror-"

func newMirror(cfg MirrorConfig, log *slog.Logger) (*mirror, error) {
	u, err := url.Parse(cfg.Upstream)
	if err != nil {
		return nil, fmt.Errorf("mirror upstream %q: %w", cfg.Upstream, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("mirror upstream %q: want an http:// or https:// URL with a host", cfg.Upstream)
	}
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("mirror upstream %q: want a registry's base URL, without path, query or login", cfg.Upstream)
	}
	m := &mirror{
		upstream: u.Scheme + "://" + u.Host,
		host:     u.Host,
		insecure: u.Scheme == "http",
		hosts:    cfg.Hosts,
		ttl:      cfg.TTL,
		idle:     cfg.IdleTimeout,
		now:      cfg.Now,
		log:      log,
	}
	if m.hosts == nil {
		m.hosts = &hosts.Config{CertsDirs: hosts.DefaultCertsDirs()}
	} else {
		m.hosts = &hosts.Config{CertsDirs: m.hosts.CertsDirs} // certificates only
	}
	if m.ttl <= 0 {
		m.ttl = DefaultMirrorTTL
	}
	if m.idle <= 0 {
		m.idle = DefaultMirrorIdleTimeout
	}
	if m.now == nil {
		m.now = time.Now
	}
	creds := cfg.Credentials
	if cfg.Username != "" || cfg.Password != "" {
		login := registry.Credential{Username: cfg.Username, Password: cfg.Password}
		creds = func(context.Context, string) (registry.Credential, error) { return login, nil }
	}
	if creds == nil {
		creds = func(context.Context, string) (registry.Credential, error) { return registry.Credential{}, nil }
	}
	m.client = registry.NewClient(registry.Options{
		Endpoints:   m.endpoints,
		Credentials: creds,
		UserAgent:   "berth-registry-mirror",
		Retries:     cfg.Retries,
		Backoff:     cfg.Backoff,
		OnRetry: func(what string, attempt int, wait time.Duration, err error) {
			log.Warn("mirror: retrying upstream request", "upstream", m.upstream, "request", what, "attempt", attempt, "wait", wait, "err", err)
		},
	})
	return m, nil
}

// endpoints is the registry client's endpoint resolver: the upstream for
// every repository ("docker.io" is reached at registry-1.docker.io), its
// path kept as the client gave it.
func (m *mirror) endpoints(_, path string, _ bool) ([]registry.Endpoint, error) {
	eps, err := m.hosts.Endpoints(m.host, path, false)
	if err != nil {
		return nil, err
	}
	ep := eps[len(eps)-1]
	ep.Path, ep.Mirror = path, false
	if m.insecure {
		ep.Insecure = true
	}
	return []registry.Endpoint{ep}, nil
}

func (m *mirror) repo(name string) (*registry.Repository, error) {
	return m.client.Repository(reference.Reference{Domain: m.host, Path: name}, false)
}

// refuseWrite is the answer to every push and delete.
func (m *mirror) refuseWrite() error {
	return errorf(http.StatusMethodNotAllowed, CodeUnsupported,
		"this registry is a pull-through cache of "+m.upstream+": pushes and deletes are not accepted",
		map[string]string{"upstream": m.upstream})
}

// upstreamError maps an error of the upstream to the spec's error the
// client gets: unknown becomes the given 404, a refused login 401, too
// many requests 429, anything else (unreachable, 5xx, content that does
// not match its digest) 502 or 503 naming the upstream.
func (m *mirror) upstreamError(err error, unknown *regError) error {
	var re *regError
	if errors.As(err, &re) {
		return re
	}
	detail := map[string]string{"upstream": m.upstream}
	var uf *upstreamFailure
	if !errors.As(err, &uf) && !errors.Is(err, content.ErrMismatch) {
		if errors.Is(err, content.ErrLocked) {
			return errorf(http.StatusServiceUnavailable, CodeUnavailable, "another process is fetching this content from "+m.upstream+"; try again", detail)
		}
		return err // the local store's: 500, logged
	}
	var rerr *registry.Error
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return unknown
	case errors.Is(err, registry.ErrUnauthorized):
		return errorf(http.StatusUnauthorized, CodeUnauthorized,
			"the upstream "+m.upstream+" refused the mirror's credentials: "+err.Error(), detail)
	case errors.As(err, &rerr) && rerr.Status == http.StatusTooManyRequests:
		return errorf(http.StatusTooManyRequests, CodeTooManyRequests, "the upstream "+m.upstream+" limits requests: "+err.Error(), detail)
	case errors.Is(err, image.ErrDigestMismatch), errors.Is(err, content.ErrMismatch):
		return errorf(http.StatusBadGateway, CodeUnavailable,
			"the upstream "+m.upstream+" sent content that does not match its digest: "+err.Error(), detail)
	case errors.As(err, &rerr):
		return errorf(http.StatusBadGateway, CodeUnavailable, "the upstream "+m.upstream+" failed: "+err.Error(), detail)
	}
	return errorf(http.StatusServiceUnavailable, CodeUnavailable, "the upstream "+m.upstream+" is unreachable: "+err.Error(), detail)
}

// upstreamFailure marks an error of a request to the upstream (rather
// than of the local store).
type upstreamFailure struct{ err error }

func (u *upstreamFailure) Error() string { return u.err.Error() }
func (u *upstreamFailure) Unwrap() error { return u.err }

// fromUpstream marks err, when not nil, as the upstream's.
func fromUpstream(err error) error {
	if err == nil {
		return nil
	}
	return &upstreamFailure{err}
}

// staleOK reports whether a cached answer may stand in for the upstream's
// after err: not when the upstream says the content is gone.
func staleOK(err error) bool {
	return !errors.Is(err, registry.ErrNotFound)
}

func (s *Server) tagPath(name, tag string) string {
	return filepath.Join(s.store.tagsDir(name), tag)
}

// tagFresh reports whether a cached tag was fetched or revalidated within
// the TTL: the tag file's modification time records when (by the
// mirror's clock).
func (s *Server) tagFresh(name, tag string) bool {
	fi, err := os.Stat(s.tagPath(name, tag))
	if err != nil {
		return false
	}
	return s.mirror.now().Sub(fi.ModTime()) < s.mirror.ttl
}

func (s *Server) touchTag(name, tag string) error {
	now := s.mirror.now()
	return os.Chtimes(s.tagPath(name, tag), now, now)
}

// mirrorManifest serves GET and HEAD of a manifest in mirror mode.
func (s *Server) mirrorManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	unknown := errorf(http.StatusNotFound, CodeManifestUnknown, "manifest unknown to the upstream "+s.mirror.upstream,
		map[string]string{"reference": rt.Ref, "upstream": s.mirror.upstream})
	var d digest.Digest
	if strings.Contains(rt.Ref, ":") {
		d = digest.Digest(rt.Ref)
		if _, err := s.store.manifestType(rt.Name, d); errors.Is(err, content.ErrNotFound) {
			_, err := s.mirror.flight.do(r.Context(), "manifest "+rt.Name+"@"+rt.Ref, func() (any, error) {
				return s.fetchManifest(rt.Name, rt.Ref)
			})
			if err != nil {
				return s.mirror.upstreamError(err, unknown)
			}
		} else if err != nil {
			return err
		}
	} else {
		cached, err := s.store.resolveTag(rt.Name, rt.Ref)
		if err != nil && !errors.Is(err, content.ErrNotFound) {
			return err
		}
		if cached != "" {
			if _, err := s.store.manifestType(rt.Name, cached); err != nil {
				cached = "" // the manifest is gone: fetch it again
			}
		}
		d = cached
		if cached == "" || !s.tagFresh(rt.Name, rt.Ref) {
			val, ferr := s.mirror.flight.do(r.Context(), "tag "+rt.Name+":"+rt.Ref, func() (any, error) {
				return s.refreshTag(rt.Name, rt.Ref, cached)
			})
			switch {
			case ferr == nil:
				d = val.(digest.Digest)
			case cached != "" && staleOK(ferr) && r.Context().Err() == nil:
				s.log.Warn("mirror: upstream failed, serving the cached tag", "repository", rt.Name, "tag", rt.Ref,
					"digest", cached, "upstream", s.mirror.upstream, "err", ferr)
			default:
				if errors.Is(ferr, registry.ErrNotFound) && cached != "" {
					// Gone upstream: the cache forgets it too.
					if err := s.store.deleteTag(rt.Name, rt.Ref); err != nil && !errors.Is(err, content.ErrNotFound) {
						s.log.Warn("mirror: removing a tag gone upstream", "repository", rt.Name, "tag", rt.Ref, "err", err)
					}
				}
				return s.mirror.upstreamError(ferr, unknown)
			}
		}
	}
	mt, err := s.store.manifestType(rt.Name, d)
	if err != nil {
		return notFound(err, unknown)
	}
	return s.serveFile(w, r, d, mt, unknown)
}

// refreshTag asks the upstream what tag names: a HEAD when a digest is
// cached (the manifest is fetched only when it changed), else a GET. It
// stores what it fetched and records the time in the tag file.
func (s *Server) refreshTag(name, tag string, cached digest.Digest) (digest.Digest, error) {
	if cached != "" {
		repo, err := s.mirror.repo(name)
		if err != nil {
			return "", err
		}
		desc, err := repo.Head(context.Background(), tag)
		if err != nil {
			return "", fromUpstream(err)
		}
		if desc.Digest == cached {
			if err := s.touchTag(name, tag); err != nil {
				return "", err
			}
			return cached, nil
		}
		s.log.Info("mirror: tag changed upstream", "repository", name, "tag", tag, "cached", cached, "upstream", desc.Digest)
	}
	d, err := s.fetchManifest(name, tag)
	if err != nil {
		return "", err
	}
	if err := s.store.putTag(name, tag, d); err != nil {
		return "", err
	}
	if err := s.touchTag(name, tag); err != nil {
		return "", err
	}
	return d, nil
}

// fetchManifest fetches manifest ref (tag or digest) of repository name
// from the upstream (the registry client checks its digest), validates
// it and stores it in the repository. It does not touch tags.
func (s *Server) fetchManifest(name, ref string) (digest.Digest, error) {
	repo, err := s.mirror.repo(name)
	if err != nil {
		return "", err
	}
	ctx := context.Background()
	desc, data, err := repo.Manifest(ctx, ref)
	if err != nil {
		return "", fromUpstream(err)
	}
	if int64(len(data)) > s.cfg.MaxManifestSize {
		return "", errorf(http.StatusBadGateway, CodeUnavailable,
			fmt.Sprintf("the upstream's manifest %s is larger than %d bytes", ref, s.cfg.MaxManifestSize),
			map[string]string{"upstream": s.mirror.upstream})
	}
	m, rerr := parseManifest(data, desc.MediaType)
	if rerr != nil {
		return "", errorf(http.StatusBadGateway, CodeUnavailable,
			"the upstream's manifest "+ref+" cannot be served: "+rerr.Message, map[string]string{"upstream": s.mirror.upstream})
	}
	d := desc.Digest
	if err := s.store.content.Ingest(ctx, mirrorIngestPrefix+d.String(), bytes.NewReader(data), d, int64(len(data))); err != nil {
		return "", err
	}
	var referrer *ocispec.Descriptor
	var subject digest.Digest
	if m.Subject != nil {
		subject = m.Subject.Digest
		referrer = &ocispec.Descriptor{MediaType: m.MediaType, ArtifactType: m.ArtifactType, Digest: d, Size: int64(len(data)), Annotations: m.Annotations}
	}
	if err := s.store.putManifest(name, d, m.MediaType, referrer, subject); err != nil {
		return "", err
	}
	s.log.Info("mirror: cached manifest", "repository", name, "reference", ref, "digest", d, "upstream", s.mirror.upstream)
	return d, nil
}

// mirrorBlob serves GET and HEAD of a blob in mirror mode.
func (s *Server) mirrorBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	m := s.mirror
	d := digest.Digest(rt.Ref)
	unknown := errorf(http.StatusNotFound, CodeBlobUnknown, "blob unknown to the upstream "+m.upstream,
		map[string]string{"digest": rt.Ref, "upstream": m.upstream})
	for range 2 {
		if s.store.hasBlob(rt.Name, d) {
			return s.serveFile(w, r, d, "application/octet-stream", unknown)
		}
		if exists(s.store.blobPath(d)) {
			// Stored for another repository: this one gets it if
			// the upstream says it has it.
			return s.linkCached(w, r, rt, d, unknown)
		}
		if r.Method == http.MethodHead {
			repo, err := m.repo(rt.Name)
			if err != nil {
				return err
			}
			desc, err := repo.StatBlob(r.Context(), d)
			if err != nil {
				return m.upstreamError(fromUpstream(err), unknown)
			}
			h := w.Header()
			h.Set("Docker-Content-Digest", d.String())
			h.Set("Content-Type", "application/octet-stream")
			h.Set("ETag", `"`+d.String()+`"`)
			if desc.Size > 0 {
				h.Set("Content-Length", strconv.FormatInt(desc.Size, 10))
			}
			w.WriteHeader(http.StatusOK)
			return nil
		}
		// A request with a Range waits for the whole blob; the
		// first of the others gets it as it arrives.
		var sink *blobSink
		if r.Header.Get("Range") == "" {
			sink = &blobSink{w: w, d: d}
		}
		_, err := m.flight.do(r.Context(), "blob "+d.String(), func() (any, error) {
			return nil, s.fetchBlob(rt.Name, d, sink)
		})
		if sink != nil && sink.started {
			if err != nil {
				// The client has (nearly) all the bytes: only a cut
				// connection tells it they are bad.
				s.log.Warn("mirror: blob download failed while streaming it; cutting the connection",
					"repository", rt.Name, "digest", d, "upstream", m.upstream, "err", err)
				panic(http.ErrAbortHandler)
			}
			return nil
		}
		if err != nil {
			return m.upstreamError(err, unknown)
		}
		// Fetched by another request (perhaps for another repository),
		// or not streamed: serve it from the store.
	}
	return s.serveFile(w, r, d, "application/octet-stream", unknown)
}

// linkCached links a stored blob into a repository that asks for it,
// after the upstream confirms that the repository has it (or cannot be
// asked: then the cache answers).
func (s *Server) linkCached(w http.ResponseWriter, r *http.Request, rt route, d digest.Digest, unknown *regError) error {
	repo, err := s.mirror.repo(rt.Name)
	if err != nil {
		return err
	}
	if _, err := repo.StatBlob(r.Context(), d); err != nil {
		if !staleOK(err) || errors.Is(err, registry.ErrUnauthorized) {
			return s.mirror.upstreamError(fromUpstream(err), unknown)
		}
		s.log.Warn("mirror: upstream failed, serving a cached blob", "repository", rt.Name, "digest", d,
			"upstream", s.mirror.upstream, "err", err)
	}
	if err := s.store.linkBlob(rt.Name, d); err != nil {
		return err
	}
	return s.serveFile(w, r, d, "application/octet-stream", unknown)
}

// blobSink is the response of the request that downloads a blob: the
// bytes go to it as they arrive, except the last ones, which wait for the
// digest's verification.
type blobSink struct {
	w       http.ResponseWriter
	d       digest.Digest
	started bool  // headers sent
	failed  error // the client went away: its bytes are dropped
}

func (b *blobSink) start(size int64) {
	h := b.w.Header()
	h.Set("Docker-Content-Digest", b.d.String())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+b.d.String()+`"`)
	if size > 0 {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	b.w.WriteHeader(http.StatusOK)
	b.started = true
}

func (b *blobSink) write(p []byte) {
	if b == nil || b.failed != nil || len(p) == 0 {
		return
	}
	if _, err := b.w.Write(p); err != nil {
		b.failed = err
	}
}

// fetchBlob downloads blob d of repository name from the upstream into
// the content store, teeing it into sink (when not nil), and links it
// into the repository once its digest verified. The download goes on
// when sink's client goes away (other requests may be waiting for it);
// it stops when the upstream stalls for the idle timeout. A download
// that breaks keeps its ingest, and the next one resumes it.
func (s *Server) fetchBlob(name string, d digest.Digest, sink *blobSink) (err error) {
	m := s.mirror
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	idle := time.AfterFunc(m.idle, cancel)
	defer idle.Stop()

	repo, err := m.repo(name)
	if err != nil {
		return err
	}
	desc, err := repo.StatBlob(ctx, d)
	if err != nil {
		return fromUpstream(err)
	}
	ref := mirrorIngestPrefix + d.String()
	cw, err := s.store.content.Writer(ref, d, desc.Size)
	if errors.Is(err, content.ErrAlreadyExists) {
		return s.store.linkBlob(name, d)
	}
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			cw.Close() // keeps the ingest for a resume; no-op after a failed Commit
		}
	}()
	start := time.Now()
	off := cw.Offset()
	body, err := repo.OpenBlob(ctx, desc, off)
	if err != nil {
		return fromUpstream(err)
	}
	defer body.Close()
	idle.Reset(m.idle)
	if sink != nil {
		sink.start(desc.Size)
		if off > 0 {
			// An earlier download's bytes, then the rest.
			if _, err := io.Copy(sinkWriter{sink}, cw.Written()); err != nil {
				return err
			}
		}
	}
	// Two buffers: one being read, one (the previous read) waiting to go
	// to the client, so that the last bytes go only after Commit.
	cur, pending := make([]byte, 256<<10), make([]byte, 256<<10)
	var npending int
	for {
		n, rerr := body.Read(cur)
		if n > 0 {
			idle.Reset(m.idle)
			if _, err := cw.Write(cur[:n]); err != nil {
				if errors.Is(err, content.ErrMismatch) {
					cw.Close()
					s.store.content.Abort(ref)
				}
				return err
			}
			sink.write(pending[:npending])
			idle.Reset(m.idle) // a slow client is not a stalled upstream
			cur, pending, npending = pending, cur, n
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if ctx.Err() != nil && !errors.Is(rerr, context.Canceled) {
				rerr = fmt.Errorf("%w (no data for %s)", rerr, m.idle)
			} else if ctx.Err() != nil {
				rerr = fmt.Errorf("blob %s: the upstream sent nothing for %s", d, m.idle)
			}
			return fromUpstream(rerr)
		}
	}
	if err := cw.Commit(); err != nil {
		committed = true // Commit removed the ingest (mismatch) or keeps it (I/O)
		return err
	}
	committed = true
	if err := s.store.linkBlob(name, d); err != nil {
		return err
	}
	sink.write(pending[:npending])
	s.log.Info("mirror: cached blob", "repository", name, "digest", d, "size", cw.Offset(),
		"duration", time.Since(start), "upstream", m.upstream)
	return nil
}

// sinkWriter adapts a blobSink to io.Writer (it never fails: a client
// that went away only stops receiving).
type sinkWriter struct{ b *blobSink }

func (s sinkWriter) Write(p []byte) (int, error) {
	s.b.write(p)
	return len(p), nil
}
