package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/reference"
	"github.com/berth-project/berth/registry"
)

// reqCounter counts an upstream's requests by "METHOD path".
type reqCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *reqCounter) add(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[key]++
}

func (c *reqCounter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// newUpstream starts a registry server on cfg behind httptest, its
// handler wrapped by wrap (when not nil), counting requests.
func newUpstream(t *testing.T, cfg Config, wrap func(http.Handler) http.Handler) (*testRegistry, *reqCounter) {
	t.Helper()
	cfg.Root = t.TempDir()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = s
	if wrap != nil {
		h = wrap(s)
	}
	c := &reqCounter{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.add(r.Method + " " + r.URL.Path)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		hs.Close()
		s.Close()
	})
	return &testRegistry{t: t, srv: s, hs: hs, url: hs.URL}, c
}

// fakeClock is an injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newMirrorRegistry starts a mirror of upstream (retries off, so errors
// come at once) with mc's other settings; its log goes to the returned
// buffer.
func newMirrorRegistry(t *testing.T, upstream string, mc MirrorConfig) (*testRegistry, *lockedLog) {
	t.Helper()
	mc.Upstream = upstream
	if mc.Retries == 0 {
		mc.Retries = -1
	}
	log := &lockedLog{}
	return newRegistry(t, Config{Mirror: &mc, Logger: slog.New(slog.NewTextHandler(log, nil))}), log
}

type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// pulled is an image as berth's registry client pulled it.
type pulled struct {
	desc     ocispec.Descriptor
	manifest []byte
	blobs    map[digest.Digest][]byte
}

// pull fetches manifest ref of name from the registry at base with
// berth's registry client, then its config and layers, checking their
// digests.
func pull(t *testing.T, base, name, ref string) (pulled, error) {
	t.Helper()
	host := strings.TrimPrefix(base, "http://")
	c := registry.NewClient(registry.Options{Retries: -1})
	repo, err := c.Repository(reference.Reference{Domain: host, Path: name}, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	desc, data, err := repo.Manifest(ctx, ref)
	if err != nil {
		return pulled{}, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("manifest %s: %v", ref, err)
	}
	p := pulled{desc: desc, manifest: data, blobs: map[digest.Digest][]byte{}}
	for _, b := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		rc, err := repo.OpenBlob(ctx, b, 0)
		if err != nil {
			return p, err
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return p, err
		}
		if digest.FromBytes(got) != b.Digest {
			t.Fatalf("blob %s: pulled content has digest %s", b.Digest, digest.FromBytes(got))
		}
		p.blobs[b.Digest] = got
	}
	return p, nil
}

func mustPull(t *testing.T, base, name, ref string) pulled {
	t.Helper()
	p, err := pull(t, base, name, ref)
	if err != nil {
		t.Fatalf("pull %s:%s from %s: %v", name, ref, base, err)
	}
	return p
}

func samePull(t *testing.T, what string, got, want pulled) {
	t.Helper()
	if got.desc.Digest != want.desc.Digest || !bytes.Equal(got.manifest, want.manifest) {
		t.Fatalf("%s: manifest %s, want %s", what, got.desc.Digest, want.desc.Digest)
	}
	if len(got.blobs) != len(want.blobs) {
		t.Fatalf("%s: %d blobs, want %d", what, len(got.blobs), len(want.blobs))
	}
	for d, b := range want.blobs {
		if !bytes.Equal(got.blobs[d], b) {
			t.Fatalf("%s: blob %s differs", what, d)
		}
	}
}

// pushImage pushes a fresh image (seeded) to the upstream as name:tag and
// returns its manifest digest.
func pushImage(t *testing.T, up *testRegistry, name, tag, seed string) digest.Digest {
	t.Helper()
	m := up.image(name, seed)
	up.pushManifest(name, tag, ocispec.MediaTypeImageManifest, m).expect(t, "push manifest", http.StatusCreated)
	return digest.FromBytes(m)
}

// Pulls by tag and by digest through the mirror get the upstream's
// content, which is stored: with the upstream gone the same pulls are
// answered from the cache, and tags/list and the catalog show it.
func TestMirrorPullThrough(t *testing.T) {
	up, cnt := newUpstream(t, Config{}, nil)
	d1 := pushImage(t, up, "library/img", "v1", "one")
	d2 := pushImage(t, up, "library/img", "v2", "two")
	want1 := mustPull(t, up.url, "library/img", "v1")
	want2 := mustPull(t, up.url, "library/img", "v2")

	cfgGets := "GET /v2/library/img/blobs/" + want1.manifestConfig(t).String()
	before := cnt.get(cfgGets)
	mir, _ := newMirrorRegistry(t, up.url, MirrorConfig{})
	samePull(t, "by tag", mustPull(t, mir.url, "library/img", "v1"), want1)
	samePull(t, "by digest", mustPull(t, mir.url, "library/img", d2.String()), want2)

	st := mir.srv.store
	if d, err := st.resolveTag("library/img", "v1"); err != nil || d != d1 {
		t.Fatalf("cached tag v1: %s, %v; want %s", d, err, d1)
	}
	for _, p := range []pulled{want1, want2} {
		if _, err := st.manifestType("library/img", p.desc.Digest); err != nil {
			t.Fatalf("manifest %s not cached: %v", p.desc.Digest, err)
		}
		for d := range p.blobs {
			if !st.hasBlob("library/img", d) {
				t.Fatalf("blob %s not cached", d)
			}
		}
	}
	// One GET per object upstream.
	if n := cnt.get(cfgGets) - before; n != 1 {
		t.Errorf("upstream saw %d GETs of the config blob, want 1", n)
	}
	// tags/list shows the cached tags only (v2 was pulled by digest).
	r := mir.do("GET", "/v2/library/img/tags/list", nil)
	r.expect(t, "tags/list", http.StatusOK)
	var tl struct{ Tags []string }
	json.Unmarshal(r.Body, &tl)
	if strings.Join(tl.Tags, ",") != "v1" {
		t.Errorf("tags/list of the mirror: %q, want [v1]", tl.Tags)
	}
	r = mir.do("GET", "/v2/_catalog", nil)
	r.expect(t, "catalog", http.StatusOK)
	if !strings.Contains(string(r.Body), `"library/img"`) {
		t.Errorf("catalog: %s", r.Body)
	}

	// The upstream goes away: the cache answers (the tag is fresh).
	up.hs.Close()
	samePull(t, "by tag from the cache", mustPull(t, mir.url, "library/img", "v1"), want1)
	samePull(t, "by digest from the cache", mustPull(t, mir.url, "library/img", d2.String()), want2)
	// Ranges of a cached blob are served.
	cfg := want1.manifestConfig(t)
	r = mir.do("GET", "/v2/library/img/blobs/"+cfg.String(), nil, "Range", "bytes=2-5")
	r.expect(t, "range of a cached blob", http.StatusPartialContent)
	if !bytes.Equal(r.Body, want1.blobs[cfg][2:6]) {
		t.Errorf("range: %q", r.Body)
	}
}

func (p pulled) manifestConfig(t *testing.T) digest.Digest {
	var m ocispec.Manifest
	if err := json.Unmarshal(p.manifest, &m); err != nil {
		t.Fatal(err)
	}
	return m.Config.Digest
}

// A cached tag is trusted for the TTL, then revalidated with a HEAD (a
// GET only when it changed); when the upstream is down after the TTL the
// stale answer is served with a warning.
func TestMirrorTagTTL(t *testing.T) {
	up, cnt := newUpstream(t, Config{}, nil)
	d1 := pushImage(t, up, "team/app", "latest", "one")
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	mir, log := newMirrorRegistry(t, up.url, MirrorConfig{TTL: 5 * time.Minute, Now: clock.Now})
	head := "HEAD /v2/team/app/manifests/latest"
	get := "GET /v2/team/app/manifests/latest"

	digestOf := func(what string) digest.Digest {
		t.Helper()
		r := mir.do("GET", "/v2/team/app/manifests/latest", nil, "Accept", ocispec.MediaTypeImageManifest)
		r.expect(t, what, http.StatusOK)
		if got := digest.FromBytes(r.Body); got.String() != r.Header.Get("Docker-Content-Digest") {
			t.Fatalf("%s: body %s, Docker-Content-Digest %s", what, got, r.Header.Get("Docker-Content-Digest"))
		}
		return digest.FromBytes(r.Body)
	}
	if d := digestOf("first pull"); d != d1 {
		t.Fatalf("first pull: %s, want %s", d, d1)
	}
	if cnt.get(get) != 1 {
		t.Fatalf("upstream GETs of the tag: %d, want 1", cnt.get(get))
	}

	d2 := pushImage(t, up, "team/app", "latest", "two")
	clock.Advance(4 * time.Minute)
	if d := digestOf("within the TTL"); d != d1 {
		t.Fatalf("within the TTL: %s, want the cached %s", d, d1)
	}
	if cnt.get(head)+cnt.get(get) != 1 {
		t.Fatalf("within the TTL the upstream was asked: %d HEAD, %d GET", cnt.get(head), cnt.get(get))
	}
	clock.Advance(2 * time.Minute)
	if d := digestOf("after the TTL"); d != d2 {
		t.Fatalf("after the TTL: %s, want the new %s", d, d2)
	}
	if cnt.get(head) != 1 || cnt.get(get) != 2 {
		t.Fatalf("after the TTL: %d HEAD, %d GET; want 1 and 2", cnt.get(head), cnt.get(get))
	}
	// Unchanged after another TTL: a HEAD, no GET.
	clock.Advance(6 * time.Minute)
	if d := digestOf("revalidated"); d != d2 {
		t.Fatalf("revalidated: %s, want %s", d, d2)
	}
	if cnt.get(head) != 2 || cnt.get(get) != 2 {
		t.Fatalf("revalidation: %d HEAD, %d GET; want 2 and 2", cnt.get(head), cnt.get(get))
	}
	// Digests are never revalidated.
	mir.do("GET", "/v2/team/app/manifests/"+d1.String(), nil).expect(t, "by digest", http.StatusOK)
	clock.Advance(time.Hour)
	mir.do("GET", "/v2/team/app/manifests/"+d1.String(), nil).expect(t, "by digest later", http.StatusOK)
	if n := cnt.get("HEAD /v2/team/app/manifests/" + d1.String()); n != 0 {
		t.Fatalf("a digest was revalidated %d times", n)
	}

	// Upstream down, TTL over: the stale tag, with a warning.
	up.hs.Close()
	if d := digestOf("stale"); d != d2 {
		t.Fatalf("stale: %s, want %s", d, d2)
	}
	if !strings.Contains(log.String(), "serving the cached tag") {
		t.Fatalf("no warning about the stale tag in the log:\n%s", log)
	}
}

// Concurrent requests for one missing blob fetch it from the upstream
// once; every client gets the whole blob.
func TestMirrorConcurrentBlob(t *testing.T) {
	slow := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
				time.Sleep(300 * time.Millisecond) // the other requests arrive meanwhile
			}
			h.ServeHTTP(w, r)
		})
	}
	up, cnt := newUpstream(t, Config{}, slow)
	big := make([]byte, 3<<20+12345)
	rand.Read(big)
	d := up.pushBlob("test/big", big)
	mir, _ := newMirrorRegistry(t, up.url, MirrorConfig{})

	const clients = 6
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(mir.url + "/v2/test/big/blobs/" + d.String())
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				errs <- err
				return
			}
			if resp.StatusCode != http.StatusOK || !bytes.Equal(b, big) {
				errs <- errors.New("status " + resp.Status + ", or content differs")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := cnt.get("GET /v2/test/big/blobs/" + d.String()); n != 1 {
		t.Fatalf("the upstream served the blob %d times, want 1", n)
	}
	if !mir.srv.store.hasBlob("test/big", d) {
		t.Fatal("blob not cached")
	}
}

// An upstream that sends bytes that do not match the digest: the client
// of the mirror gets an error (a cut connection, or 502 when it waited),
// and nothing is stored.
func TestMirrorCorruptBlob(t *testing.T) {
	var bad digest.Digest
	var mu sync.Mutex
	liar := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			target := bad
			mu.Unlock()
			if r.Method == http.MethodGet && target != "" && strings.HasSuffix(r.URL.Path, "/blobs/"+target.String()) {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				b := rec.Body.Bytes()
				b[len(b)-1] ^= 0xff // same size, other bytes
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.Code)
				w.Write(b)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	up, _ := newUpstream(t, Config{}, liar)
	data := make([]byte, 600<<10)
	rand.Read(data)
	d := up.pushBlob("test/liar", data)
	mu.Lock()
	bad = d
	mu.Unlock()
	mir, log := newMirrorRegistry(t, up.url, MirrorConfig{})

	resp, err := http.Get(mir.url + "/v2/test/liar/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatalf("the client read %d bytes (status %d) of a corrupted blob without an error", len(got), resp.StatusCode)
	}
	if bytes.Equal(got, data) {
		t.Fatal("the client got content for a blob that failed verification")
	}
	if !strings.Contains(log.String(), "cutting the connection") {
		t.Errorf("log lacks the cut:\n%s", log)
	}
	// A client that waits for the whole blob (a Range request) gets 502.
	r := mir.do("GET", "/v2/test/liar/blobs/"+d.String(), nil, "Range", "bytes=0-9")
	r.expect(t, "range of a corrupted blob", http.StatusBadGateway, CodeUnavailable)
	if !strings.Contains(string(r.Body), "does not match its digest") || !strings.Contains(string(r.Body), up.url) {
		t.Errorf("502 body: %s", r.Body)
	}
	// Nothing stored, no ingest left.
	st := mir.srv.store
	if exists(st.blobPath(d)) || st.hasBlob("test/liar", d) {
		t.Fatal("the corrupted blob was stored")
	}
	ingests, err := st.content.ListIngests()
	if err != nil {
		t.Fatal(err)
	}
	if len(ingests) != 0 {
		t.Fatalf("ingests left: %+v", ingests)
	}
	// The upstream mends: the blob is fetched.
	mu.Lock()
	bad = ""
	mu.Unlock()
	r = mir.do("GET", "/v2/test/liar/blobs/"+d.String(), nil)
	r.expect(t, "blob after the upstream mended", http.StatusOK)
	if !bytes.Equal(r.Body, data) {
		t.Fatal("blob content differs")
	}
}

// A manifest whose bytes do not match the digest asked for is refused.
func TestMirrorCorruptManifest(t *testing.T) {
	liar := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/sha256:") {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				b := bytes.Replace(rec.Body.Bytes(), []byte(`"schemaVersion":2`), []byte(`"schemaVersion":2 `), 1)
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.Header().Del("Content-Length")
				w.WriteHeader(rec.Code)
				w.Write(b)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	up, _ := newUpstream(t, Config{}, liar)
	d := pushImage(t, up, "test/m", "v1", "m")
	mir, _ := newMirrorRegistry(t, up.url, MirrorConfig{})
	r := mir.do("GET", "/v2/test/m/manifests/"+d.String(), nil)
	r.expect(t, "corrupted manifest", http.StatusBadGateway, CodeUnavailable)
	if _, err := mir.srv.store.manifestType("test/m", d); err == nil || exists(mir.srv.store.blobPath(d)) {
		t.Fatal("the corrupted manifest was stored")
	}
}

// Upstream 404s are the spec's unknown errors; an unreachable or failing
// upstream is a 503 or 502 naming it.
func TestMirrorUpstreamErrors(t *testing.T) {
	failing := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/v2/broken/") {
				http.Error(w, "disk on fire", http.StatusInternalServerError)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	up, _ := newUpstream(t, Config{}, failing)
	mir, _ := newMirrorRegistry(t, up.url, MirrorConfig{})
	missing := digest.FromString("missing")
	mir.do("GET", "/v2/test/none/manifests/latest", nil).expect(t, "unknown tag", http.StatusNotFound, CodeManifestUnknown)
	mir.do("GET", "/v2/test/none/manifests/"+missing.String(), nil).expect(t, "unknown manifest", http.StatusNotFound, CodeManifestUnknown)
	mir.do("GET", "/v2/test/none/blobs/"+missing.String(), nil).expect(t, "unknown blob", http.StatusNotFound, CodeBlobUnknown)
	mir.do("HEAD", "/v2/test/none/blobs/"+missing.String(), nil).expect(t, "unknown blob (HEAD)", http.StatusNotFound)
	r := mir.do("GET", "/v2/broken/x/manifests/latest", nil)
	r.expect(t, "upstream 500", http.StatusBadGateway, CodeUnavailable)
	if !strings.Contains(string(r.Body), up.url) {
		t.Errorf("502 body does not name the upstream: %s", r.Body)
	}

	// Nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := "http://" + ln.Addr().String()
	ln.Close()
	down, _ := newMirrorRegistry(t, gone, MirrorConfig{})
	for _, path := range []string{"/v2/test/x/manifests/latest", "/v2/test/x/blobs/" + missing.String()} {
		r := down.do("GET", path, nil)
		r.expect(t, "unreachable upstream", http.StatusServiceUnavailable, CodeUnavailable)
		if !strings.Contains(string(r.Body), gone) || !strings.Contains(string(r.Body), "unreachable") {
			t.Errorf("503 body: %s", r.Body)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("503 Content-Type %q", ct)
		}
	}
}

// basicAuth is an Authorizer of one login, once on.
type basicAuth struct {
	user, pass string
	on         atomic.Bool
}

func (a *basicAuth) Authorize(r *http.Request, _ []Access) error {
	if !a.on.Load() {
		return nil
	}
	if u, p, ok := r.BasicAuth(); ok && u == a.user && p == a.pass {
		return nil
	}
	return &AuthError{Status: http.StatusUnauthorized, Challenge: `Basic realm="upstream"`, Message: "login required"}
}

// The mirror logs in to an upstream with basic auth; a refused login is a
// 401 that says so.
func TestMirrorUpstreamBasicAuth(t *testing.T) {
	auth := &basicAuth{user: "mirror", pass: "s3cret"}
	up, _ := newUpstream(t, Config{Authorizer: auth}, nil)
	pushImage(t, up, "private/app", "v1", "secret")
	want := mustPull(t, up.url, "private/app", "v1")
	auth.on.Store(true)
	if _, err := pull(t, up.url, "private/app", "v1"); !errors.Is(err, registry.ErrUnauthorized) {
		t.Fatalf("anonymous pull from the upstream: %v, want unauthorized", err)
	}

	mir, _ := newMirrorRegistry(t, up.url, MirrorConfig{Username: "mirror", Password: "s3cret"})
	samePull(t, "through an authenticated mirror", mustPull(t, mir.url, "private/app", "v1"), want)

	for _, mc := range []MirrorConfig{{Username: "mirror", Password: "wrong"}, {}} {
		bad, _ := newMirrorRegistry(t, up.url, mc)
		r := bad.do("GET", "/v2/private/app/manifests/v1", nil)
		r.expect(t, "refused login "+mc.Password, http.StatusUnauthorized, CodeUnauthorized)
		if !strings.Contains(string(r.Body), "refused the mirror's credentials") {
			t.Errorf("401 body: %s", r.Body)
		}
	}
	// The credential store's function is asked when there is no username.
	var asked string
	viaStore, _ := newMirrorRegistry(t, up.url, MirrorConfig{Credentials: func(_ context.Context, host string) (registry.Credential, error) {
		asked = host
		return registry.Credential{Username: "mirror", Password: "s3cret"}, nil
	}})
	samePull(t, "with the credential store's login", mustPull(t, viaStore.url, "private/app", "v1"), want)
	if asked != strings.TrimPrefix(up.url, "http://") {
		t.Errorf("credentials asked for %q", asked)
	}
}

// Pushes and deletes are refused with 405 UNSUPPORTED.
func TestMirrorRefusesWrites(t *testing.T) {
	up, _ := newUpstream(t, Config{}, nil)
	d := pushImage(t, up, "test/app", "v1", "w")
	mir, _ := newMirrorRegistry(t, up.url, MirrorConfig{})
	mir.do("GET", "/v2/test/app/manifests/v1", nil).expect(t, "pull", http.StatusOK)
	for _, req := range [][2]string{
		{"POST", "/v2/test/app/blobs/uploads/"},
		{"PUT", "/v2/test/app/manifests/v2"},
		{"DELETE", "/v2/test/app/manifests/" + d.String()},
		{"DELETE", "/v2/test/app/blobs/" + d.String()},
	} {
		r := mir.do(req[0], req[1], []byte("{}"))
		r.expect(t, req[0]+" "+req[1], http.StatusMethodNotAllowed, CodeUnsupported)
		if !strings.Contains(string(r.Body), "pull-through cache") {
			t.Errorf("%s %s: %s", req[0], req[1], r.Body)
		}
	}
	if _, err := mir.srv.store.manifestType("test/app", d); err != nil {
		t.Fatal("a refused DELETE removed the manifest")
	}
}

// Garbage collection keeps the cached images and removes cached blobs no
// cached manifest references.
func TestMirrorGC(t *testing.T) {
	up, _ := newUpstream(t, Config{}, nil)
	pushImage(t, up, "test/app", "v1", "gc")
	loose := up.pushBlob("test/app", []byte("a blob no manifest names"))
	mir, _ := newMirrorRegistry(t, up.url, MirrorConfig{})
	want := mustPull(t, mir.url, "test/app", "v1")
	mir.do("GET", "/v2/test/app/blobs/"+loose.String(), nil).expect(t, "loose blob", http.StatusOK)

	res, err := GC(context.Background(), mir.srv.cfg.Root, GCOptions{GracePeriod: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Blobs) != 1 || res.Blobs[0] != loose {
		t.Fatalf("gc deleted %v, want only %s", res.Blobs, loose)
	}
	up.hs.Close()
	samePull(t, "after gc", mustPull(t, mir.url, "test/app", "v1"), want)
}

func TestMirrorConfigFile(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "r.toml")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fc, err := LoadConfigFile(write("[mirror]\nupstream = \"https://registry-1.docker.io\"\nusername = \"u\"\npassword = \"p\"\nttl = \"90s\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	mc := fc.ServerConfig().Mirror
	if mc == nil || mc.Upstream != "https://registry-1.docker.io" || mc.Username != "u" || mc.Password != "p" || mc.TTL != 90*time.Second {
		t.Fatalf("mirror config %+v", mc)
	}
	if fc, err := LoadConfigFile(write("addr = \"127.0.0.1:5000\"\n")); err != nil || fc.ServerConfig().Mirror != nil {
		t.Fatalf("no [mirror]: %v, %+v", err, fc.ServerConfig().Mirror)
	}
	for _, bad := range []string{
		"[mirror]\nupstream = \"https://x\"\nusername = \"u\"\n",
		"[mirror]\nttl = \"1m\"\n",
		"[mirror]\nupstream = \"https://x\"\nttl = \"-1m\"\n",
		"[mirror]\nupstream = \"https://x\"\nttls = \"1m\"\n",
	} {
		if _, err := LoadConfigFile(write(bad)); err == nil {
			t.Errorf("config %q accepted", bad)
		}
	}
	for _, bad := range []string{"ftp://x", "registry-1.docker.io", "https://x/v2/", "https://u:p@x"} {
		if _, err := New(Config{Root: t.TempDir(), Mirror: &MirrorConfig{Upstream: bad}}); err == nil {
			t.Errorf("upstream %q accepted", bad)
		}
	}
}

// cutOnce wraps an upstream so that the first GET of blob d sends only
// half of it and then breaks the connection; it records the Range
// headers of the GETs of d.
type cutOnce struct {
	mu     sync.Mutex
	d      digest.Digest
	cut    bool
	ranges []string
	delay  time.Duration // between the pieces of a GET of d
}

func (c *cutOnce) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		target, cut := c.d, c.cut
		if r.Method == http.MethodGet && target != "" && strings.HasSuffix(r.URL.Path, "/blobs/"+target.String()) {
			c.ranges = append(c.ranges, r.Header.Get("Range"))
			c.cut = true
		} else {
			target = ""
		}
		c.mu.Unlock()
		if target == "" {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		b := rec.Body.Bytes()
		if !cut {
			w.Write(b[:len(b)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		for len(b) > 0 {
			n := min(len(b), 64<<10)
			w.Write(b[:n])
			w.(http.Flusher).Flush()
			b = b[n:]
			time.Sleep(c.delay)
		}
	})
}

// A download the upstream breaks keeps its bytes: the next request
// resumes it with a Range request and its client still gets the whole
// blob, from its start.
func TestMirrorResumesBrokenDownload(t *testing.T) {
	cut := &cutOnce{}
	up, _ := newUpstream(t, Config{}, cut.wrap)
	data := make([]byte, 1<<20+777)
	rand.Read(data)
	d := up.pushBlob("test/resume", data)
	cut.mu.Lock()
	cut.d = d
	cut.mu.Unlock()
	mir, _ := newMirrorRegistry(t, up.url, MirrorConfig{})

	resp, err := http.Get(mir.url + "/v2/test/resume/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatal("the first download broke upstream, yet its client read no error")
	}
	if exists(mir.srv.store.blobPath(d)) {
		t.Fatal("a broken download was committed")
	}
	r := mir.do("GET", "/v2/test/resume/blobs/"+d.String(), nil)
	r.expect(t, "second download", http.StatusOK)
	if !bytes.Equal(r.Body, data) {
		t.Fatalf("second download: %d bytes, content differs", len(r.Body))
	}
	cut.mu.Lock()
	defer cut.mu.Unlock()
	if len(cut.ranges) != 2 || cut.ranges[0] != "" || !strings.HasPrefix(cut.ranges[1], "bytes=") || cut.ranges[1] == "bytes=0-" {
		t.Fatalf("upstream GETs had Range %q; want none, then a resume", cut.ranges)
	}
}

// A client that leaves in the middle of a download does not stop it: the
// blob is stored, and the next client gets it from the store.
func TestMirrorClientLeaves(t *testing.T) {
	slow := &cutOnce{cut: true, delay: 30 * time.Millisecond} // never cuts; slow pieces
	up, cnt := newUpstream(t, Config{}, slow.wrap)
	data := make([]byte, 2<<20)
	rand.Read(data)
	d := up.pushBlob("test/leave", data)
	slow.mu.Lock()
	slow.d = d
	slow.mu.Unlock()
	mir, _ := newMirrorRegistry(t, up.url, MirrorConfig{})

	resp, err := http.Get(mir.url + "/v2/test/leave/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // gone, 1000 bytes in
	deadline := time.Now().Add(20 * time.Second)
	for !mir.srv.store.hasBlob("test/leave", d) {
		if time.Now().After(deadline) {
			t.Fatal("the download stopped when its client left")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := mir.do("GET", "/v2/test/leave/blobs/"+d.String(), nil)
	r.expect(t, "from the store", http.StatusOK)
	if !bytes.Equal(r.Body, data) {
		t.Fatal("content differs")
	}
	if n := cnt.get("GET /v2/test/leave/blobs/" + d.String()); n != 1 {
		t.Fatalf("upstream GETs: %d, want 1", n)
	}
}

// The upstream's endpoint: docker.io is reached at registry-1.docker.io,
// names are kept as given, http:// is plain HTTP.
func TestMirrorEndpoints(t *testing.T) {
	for _, c := range []struct {
		upstream, path, host, wantPath string
		insecure                       bool
	}{
		{"https://registry-1.docker.io", "library/busybox", "registry-1.docker.io", "library/busybox", false},
		{"https://docker.io/", "busybox", "registry-1.docker.io", "busybox", false},
		{"http://mirror.example:5000", "team/app", "mirror.example:5000", "team/app", true},
		{"https://quay.io", "org/app", "quay.io", "org/app", false},
	} {
		m, err := newMirror(MirrorConfig{Upstream: c.upstream}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("%s: %v", c.upstream, err)
		}
		eps, err := m.endpoints("ignored", c.path, false)
		if err != nil {
			t.Fatalf("%s: %v", c.upstream, err)
		}
		if len(eps) != 1 || eps[0].Host != c.host || eps[0].Path != c.wantPath || eps[0].Insecure != c.insecure || eps[0].Mirror {
			t.Errorf("%s %s: endpoints %+v", c.upstream, c.path, eps)
		}
	}
}

// GC removes the ingest of a download that broke and was never resumed.
func TestMirrorGCAbandonedDownload(t *testing.T) {
	cut := &cutOnce{}
	up, _ := newUpstream(t, Config{}, cut.wrap)
	data := make([]byte, 1<<20)
	rand.Read(data)
	d := up.pushBlob("test/abandon", data)
	cut.mu.Lock()
	cut.d = d
	cut.mu.Unlock()
	mir, _ := newMirrorRegistry(t, up.url, MirrorConfig{})
	resp, err := http.Get(mir.url + "/v2/test/abandon/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	ingests, err := mir.srv.store.content.ListIngests()
	if err != nil || len(ingests) != 1 || ingests[0].Ref != mirrorIngestPrefix+d.String() || ingests[0].Offset == 0 {
		t.Fatalf("ingests after a broken download: %+v, %v", ingests, err)
	}
	if _, err := GC(context.Background(), mir.srv.cfg.Root, GCOptions{UploadMaxAge: time.Nanosecond}); err != nil {
		t.Fatal(err)
	}
	if ingests, err := mir.srv.store.content.ListIngests(); err != nil || len(ingests) != 0 {
		t.Fatalf("ingests after gc: %+v, %v", ingests, err)
	}
}
