package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-project/berth/reference"
	"github.com/berth-project/berth/registry/credentials"
	"github.com/berth-project/berth/registry/hosts"
)

// Endpoint is one place a repository is reached: the registry itself or
// a mirror of it (registries configuration, package hosts).
type Endpoint = hosts.Endpoint

// Credential is a login to a registry (package credentials).
type Credential = credentials.Credential

// Options configure a Client. The zero value is usable: the registry is
// reached directly over HTTPS (plain HTTP allowed on loopback addresses),
// anonymously.
type Options struct {
	// Endpoints returns where the repository path of registry domain is
	// reached, in order; push asks for the registry itself, without
	// mirrors. nil means an empty registries configuration's: the
	// registry itself, over HTTPS, plain HTTP allowed on loopback.
	Endpoints func(domain, path string, push bool) ([]Endpoint, error)
	// Credentials returns the login for a registry ("docker.io",
	// "localhost:5000"); a zero Credential means anonymous.
	Credentials func(ctx context.Context, registry string) (Credential, error)
	// UserAgent is sent with every request.
	UserAgent string
	// Retries is how many times a transiently failing request is retried
	// (0 means 4; negative means none).
	Retries int
	// Backoff is the first retry's delay, doubled for each retry after it
	// up to 10 s (0 means 500 ms).
	Backoff time.Duration
	// OnRetry, when set, is told of each retry before its wait.
	OnRetry func(what string, attempt int, wait time.Duration, err error)
	// ChunkSize is the size of the chunks of a chunked upload: blobs
	// larger than it are pushed in chunks (each acknowledged by the
	// registry, so a broken push resumes after the last), smaller ones in
	// one request. 0 means DefaultChunkSize; negative means never chunk.
	ChunkSize int64
}

// DefaultChunkSize is the chunk size of uploads unless Options say
// otherwise.
const DefaultChunkSize = 32 << 20

// Client talks to registries. It is safe for concurrent use; it caches
// HTTP connections and tokens, so use one per berth command.
type Client struct {
	opts Options

	mu      sync.Mutex
	clients map[string]*http.Client // by host and TLS verification
	plain   map[string]bool         // insecure hosts found to speak plain HTTP
	auth    map[string]*hostAuth    // by host
}

// NewClient returns a client with opts.
func NewClient(opts Options) *Client {
	if opts.Endpoints == nil {
		opts.Endpoints = (&hosts.Config{}).Endpoints
	}
	if opts.Retries == 0 {
		opts.Retries = 4
	}
	if opts.Backoff == 0 {
		opts.Backoff = 500 * time.Millisecond
	}
	if opts.ChunkSize == 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "berth"
	}
	return &Client{opts: opts, clients: map[string]*http.Client{}, plain: map[string]bool{}, auth: map[string]*hostAuth{}}
}

// Repository is a repository of a registry, as a reference names it.
type Repository struct {
	c         *Client
	name      string // the reference's full name, for messages
	domain    string
	endpoints []Endpoint
}

// Repository returns the repository ref names, reached for pulling (push
// false: through mirrors first) or pushing.
func (c *Client) Repository(ref reference.Reference, push bool) (*Repository, error) {
	eps, err := c.opts.Endpoints(ref.Domain, ref.Path, push)
	if err != nil {
		return nil, err
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("no endpoint for %s", ref.Name())
	}
	return &Repository{c: c, name: ref.Name(), domain: ref.Domain, endpoints: eps}, nil
}

// Name is the repository's full name.
func (r *Repository) Name() string { return r.name }

// httpClient returns the HTTP client of an endpoint's host, one per host
// and TLS setting, so that connections are reused.
func (c *Client) httpClient(ep Endpoint) *http.Client {
	key := ep.Host
	if ep.Insecure {
		key += "|insecure"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if hc, ok := c.clients[key]; ok {
		return hc
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if ep.TLS != nil {
		tr.TLSClientConfig = ep.TLS
	} else if ep.Insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	tr.MaxIdleConnsPerHost = 16
	tr.ResponseHeaderTimeout = 60 * time.Second
	hc := &http.Client{Transport: tr}
	c.clients[key] = hc
	return hc
}

func (c *Client) scheme(ep Endpoint) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.plain[ep.Host] {
		return "http"
	}
	return "https"
}

// request is one registry request, re-buildable for retries.
type request struct {
	method string
	// path is under /v2/<repository>/ ("manifests/latest"), or from the
	// root when it starts with "/" ("/v2/", asking for no scope); url
	// replaces it with a full URL (upload locations).
	path  string
	url   *url.URL
	query url.Values
	hdr   http.Header
	// body returns a fresh body and its length; nil for none.
	body func() (io.ReadCloser, int64, error)
	// push asks for push access; from adds pull access to another
	// repository (cross-repository mounts).
	push bool
	from string
	// noRetry turns off retries of transient failures (the caller
	// resumes by itself).
	noRetry bool
}

func (r *Repository) url(ep Endpoint, req *request) *url.URL {
	if req.url != nil {
		return req.url
	}
	path := "/v2/" + ep.Path + "/" + req.path
	if strings.HasPrefix(req.path, "/") {
		path = req.path // from the root: "/v2/"
	}
	u := &url.URL{Scheme: r.c.scheme(ep), Host: ep.Host, Path: path}
	if req.query != nil {
		u.RawQuery = req.query.Encode()
	}
	return u
}

// do sends req to endpoint ep, authenticating as the registry asks and
// retrying transient failures. Statuses other than 401 are the caller's
// to check.
func (r *Repository) do(ctx context.Context, ep Endpoint, req *request) (*http.Response, error) {
	c := r.c
	hc := c.httpClient(ep)
	var scopes []string
	if !strings.HasPrefix(req.path, "/") {
		scopes = append(scopes, scope(ep.Path, req.push))
	}
	if req.from != "" {
		scopes = append(scopes, scope(req.from, false))
	}
	authTried := false
	for attempt := 0; ; attempt++ {
		u := r.url(ep, req)
		hreq, err := http.NewRequestWithContext(ctx, req.method, u.String(), nil)
		if err != nil {
			return nil, err
		}
		for k, v := range req.hdr {
			hreq.Header[k] = v
		}
		hreq.Header.Set("User-Agent", c.opts.UserAgent)
		if req.body != nil {
			body, n, err := req.body()
			if err != nil {
				return nil, err
			}
			hreq.Body, hreq.ContentLength = body, n
			if n == 0 {
				hreq.Body = http.NoBody
			}
		}
		if err := c.authorize(ctx, ep, hreq, scopes); err != nil {
			closeBody(hreq)
			return nil, err
		}
		sentAuth := hreq.Header.Get("Authorization") != ""
		resp, err := hc.Do(hreq)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if ep.Insecure && u.Scheme == "https" && req.url == nil && httpsFailed(err) {
				c.mu.Lock()
				c.plain[ep.Host] = true
				c.mu.Unlock()
				attempt--
				continue
			}
			if !req.noRetry && transient(err) && attempt < c.opts.Retries {
				if err := c.wait(ctx, req.method+" "+redact(u.String()), attempt, 0, err); err != nil {
					return nil, err
				}
				continue
			}
			return nil, fmt.Errorf("%s %s: %w", req.method, redact(u.String()), unwrapURLError(err))
		}
		if resp.StatusCode == http.StatusUnauthorized && authTried {
			// The login the registry asked for was sent and refused.
			if err := c.refused(ep); err != nil {
				drain(resp)
				return nil, fmt.Errorf("%s %s: %w", req.method, redact(u.String()), err)
			}
		}
		if resp.StatusCode == http.StatusUnauthorized && !authTried {
			authTried = true
			ch := resp.Header.Values("WWW-Authenticate")
			drain(resp)
			if err := c.challenge(ctx, ep, ch, scopes, sentAuth); err != nil {
				return nil, fmt.Errorf("%s %s: %w", req.method, redact(u.String()), err)
			}
			attempt--
			continue
		}
		if !req.noRetry && retryStatus(resp.StatusCode) && attempt < c.opts.Retries {
			after := retryAfter(resp.Header.Get("Retry-After"))
			err := newError(resp)
			if err := c.wait(ctx, req.method+" "+redact(u.String()), attempt, after, err); err != nil {
				return nil, err
			}
			continue
		}
		return resp, nil
	}
}

// wait sleeps before retry attempt+1: after when the registry said so
// (capped at a minute), else the backoff.
func (c *Client) wait(ctx context.Context, what string, attempt int, after time.Duration, cause error) error {
	d := after
	if d <= 0 {
		d = c.opts.Backoff << attempt
		if d > 10*time.Second || d <= 0 {
			d = 10 * time.Second
		}
		d += time.Duration(rand.Int64N(int64(d)/4 + 1))
	}
	d = min(d, time.Minute)
	if c.opts.OnRetry != nil {
		c.opts.OnRetry(what, attempt+1, d, cause)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func scope(path string, push bool) string {
	if push {
		return "repository:" + path + ":pull,push"
	}
	return "repository:" + path + ":pull"
}

func closeBody(r *http.Request) {
	if r.Body != nil {
		r.Body.Close()
	}
}

// drain reads a little of a response body, so its connection can be
// reused, and closes it.
func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// retryStatus reports whether a status is worth retrying.
func retryStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

// transient reports whether a transport error may go away on retry: a
// reset or cut connection, a timeout; not a refused connection, an
// unknown host or a TLS failure, which a retry would only delay.
func transient(err error) bool {
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.As(err, &dnsErr), errors.As(err, &certErr),
		errors.Is(err, context.Canceled):
		return false
	}
	var ne net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || (errors.As(err, &ne) && ne.Timeout())
}

// httpsFailed reports whether an HTTPS request failed because the server
// does not speak TLS.
func httpsFailed(err error) bool {
	var rh tls.RecordHeaderError
	return errors.As(err, &rh) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") ||
		strings.Contains(err.Error(), "first record does not look like a TLS handshake")
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Domain is the registry the repository's reference names.
func (r *Repository) Domain() string { return r.domain }

// Ping checks that registry (as a user names it: "docker.io",
// "localhost:5000") answers the distribution API, logging in with the
// client's credentials if it asks: the check of "berth login".
func (c *Client) Ping(ctx context.Context, registry string) error {
	eps, err := c.opts.Endpoints(registry, "ping", true)
	if err != nil {
		return err
	}
	r := &Repository{c: c, name: registry, domain: registry, endpoints: eps}
	ep := r.primary()
	resp, err := r.do(ctx, ep, &request{method: http.MethodGet, path: "/v2/"})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return newError(resp)
	}
	drain(resp)
	return nil
}
