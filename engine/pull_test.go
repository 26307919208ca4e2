package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/internal/testimage"
	"github.com/berth-project/berth/internal/testregistry"
	"github.com/berth-project/berth/reference"
	"github.com/berth-project/berth/registry"
	"github.com/berth-project/berth/registry/credentials"
	"github.com/berth-project/berth/registry/hosts"
)

// pullImagesDir holds the busybox and layered test layouts, built once for
// every pull test (TestMain removes it).
var pullImages struct {
	once sync.Once
	dir  string
	err  error
}

// pullTestImages returns a directory with the busybox and layered layouts
// and layered.expect.
func pullTestImages(t *testing.T) string {
	t.Helper()
	pullImages.once.Do(func() {
		pullImages.dir, pullImages.err = os.MkdirTemp("", "berth-pull-images-")
		if pullImages.err == nil {
			pullImages.err = testimage.Make(pullImages.dir, "busybox", "layered")
		}
	})
	if pullImages.err != nil {
		t.Fatal(pullImages.err)
	}
	return pullImages.dir
}

// removePullTestImages is called by TestMain after the tests.
func removePullTestImages() {
	if pullImages.dir != "" {
		os.RemoveAll(pullImages.dir)
	}
}

// seededRegistry starts a registry with opts holding busybox:latest and
// layered:latest.
func seededRegistry(t *testing.T, opts testregistry.Options) (*testregistry.Registry, string) {
	t.Helper()
	images := pullTestImages(t)
	r := testregistry.Start(t, opts)
	r.Seed(t, filepath.Join(images, "busybox"), "busybox:latest")
	r.Seed(t, filepath.Join(images, "layered"), "layered:latest")
	return r, images
}

// quickClient is a client for loopback registries with short retry waits.
func quickClient(opts registry.Options) *registry.Client {
	if opts.Backoff == 0 {
		opts.Backoff = 20 * time.Millisecond
	}
	return registry.NewClient(opts)
}

func pullRef(ctx context.Context, s *Store, c *registry.Client, name string) (Pulled, error) {
	ref, err := reference.Parse(name)
	if err != nil {
		return Pulled{}, err
	}
	repo, err := c.Repository(ref, false)
	if err != nil {
		return Pulled{}, err
	}
	return s.Pull(ctx, repo, ref, PullOptions{})
}

func mustPull(t *testing.T, s *Store, c *registry.Client, name string) Pulled {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := pullRef(ctx, s, c, name)
	if err != nil {
		t.Fatalf("pull %s: %v", name, err)
	}
	return p
}

// blobGets returns the blob GETs among a proxy's requests, for digest d
// only when it is set.
func blobGets(reqs []string, d digest.Digest) []string {
	var out []string
	for _, r := range reqs {
		if strings.HasPrefix(r, "GET ") && strings.Contains(r, "/blobs/sha256:") &&
			(d == "" || strings.Contains(r, "/blobs/"+d.String())) {
			out = append(out, r)
		}
	}
	return out
}

// imageNames lists the names of the image records in the store.
func imageNames(t *testing.T, s *Store) []string {
	t.Helper()
	recs, err := s.DB().ListImages(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Name)
	}
	return out
}

// checkNoDamage runs a system check and fails on anything but garbage.
func checkNoDamage(t *testing.T, s *Store, what string) {
	t.Helper()
	rep, err := s.Check(context.Background(), false)
	if err != nil {
		t.Fatalf("%s: Check: %v", what, err)
	}
	if left := rep.Remaining(); len(left) != 0 {
		t.Errorf("%s: system check finds damage: %v", what, left)
	}
}

// TestPullPlain pulls busybox and layered by tag from a plain registry,
// through a proxy that counts the requests, then again (up to date, no
// blob fetched), then layered by digest into a fresh store.
func TestPullPlain(t *testing.T) {
	r, images := seededRegistry(t, testregistry.Options{})
	proxy := testregistry.StartProxy(t, r.Host, testregistry.ProxyRule{})
	busybox := readLayout(t, filepath.Join(images, "busybox"))
	layered := readLayout(t, filepath.Join(images, "layered"))
	s := openStore(t, t.TempDir())
	c := quickClient(registry.Options{})

	p := mustPull(t, s, c, proxy.Host+"/busybox:latest")
	if p.ID != busybox.manifest.Config.Digest {
		t.Errorf("busybox: ID %s, want the config digest %s", p.ID, busybox.manifest.Config.Digest)
	}
	if want := r.ManifestDigest(t, "busybox:latest"); p.Digest != want || p.Target.Digest != want {
		t.Errorf("busybox: Digest %s, Target %s, want the registry's manifest digest %s", p.Digest, p.Target.Digest, want)
	}
	if want := proxy.Host + "/busybox:latest"; len(p.Names) != 1 || p.Names[0] != want || p.UpToDate {
		t.Errorf("busybox: names %v, up to date %v; want [%s], false", p.Names, p.UpToDate, want)
	}

	p = mustPull(t, s, c, proxy.Host+"/layered:latest")
	if p.ID != layered.manifest.Config.Digest {
		t.Errorf("layered: ID %s, want the config digest %s", p.ID, layered.manifest.Config.Digest)
	}
	layeredDigest := r.ManifestDigest(t, "layered:latest")
	if p.Digest != layeredDigest {
		t.Errorf("layered: Digest %s, want %s", p.Digest, layeredDigest)
	}
	checkLoadedTree(t, s, images, p.Loaded)
	// The bottom layer is busybox's: fetched once, by the first pull.
	shared := layered.manifest.Layers[0].Digest
	if shared != busybox.manifest.Layers[0].Digest {
		t.Fatalf("test images: layered's bottom layer %s is not busybox's %s", shared, busybox.manifest.Layers[0].Digest)
	}
	if got := blobGets(proxy.Requests(), shared); len(got) != 1 {
		t.Errorf("the shared layer was fetched %d times, want once: %v", len(got), got)
	}
	for _, l := range layered.manifest.Layers {
		if got := blobGets(proxy.Requests(), l.Digest); len(got) != 1 {
			t.Errorf("layer %s fetched %d times, want once", l.Digest, len(got))
		}
	}

	// Again: up to date, and no blob is fetched.
	before := len(blobGets(proxy.Requests(), ""))
	p = mustPull(t, s, c, proxy.Host+"/layered:latest")
	if !p.UpToDate || p.Digest != layeredDigest || p.ID != layered.manifest.Config.Digest {
		t.Errorf("second pull: %+v, want UpToDate with the same digest and ID", p)
	}
	if after := blobGets(proxy.Requests(), ""); len(after) != before {
		t.Errorf("second pull fetched blobs: %v", after[before:])
	}
	checkNoDamage(t, s, "after the pulls")

	// By digest, into a fresh store: recorded by ID only.
	s2 := openStore(t, t.TempDir())
	p = mustPull(t, s2, c, proxy.Host+"/layered@"+layeredDigest.String())
	if p.Digest != layeredDigest || p.ID != layered.manifest.Config.Digest || len(p.Names) != 0 || p.UpToDate {
		t.Errorf("pull by digest: %+v, want digest %s, ID %s, no names", p, layeredDigest, layered.manifest.Config.Digest)
	}
	if got := imageNames(t, s2); len(got) != 1 || got[0] != p.ID.String() {
		t.Errorf("pull by digest recorded %v, want the ID %s only", got, p.ID)
	}
	checkLoadedTree(t, s2, images, p.Loaded)
}

// credsFile writes a docker config.json holding a login for host and
// returns a credentials store on it.
func credsFile(t *testing.T, host, user, pass string) *credentials.Store {
	t.Helper()
	cs := credentials.Open(filepath.Join(t.TempDir(), "config.json"))
	if err := cs.Put(context.Background(), host, credentials.Credential{Username: user, Password: pass}); err != nil {
		t.Fatal(err)
	}
	return cs
}

// strictEndpoints returns cfg's endpoints with TLS verification on even
// for loopback hosts (which hosts treats as insecure), so that a test
// proves the CA of certs.d is what makes the registry trusted.
func strictEndpoints(cfg *hosts.Config) func(domain, path string, push bool) ([]registry.Endpoint, error) {
	return func(domain, path string, push bool) ([]registry.Endpoint, error) {
		eps, err := cfg.Endpoints(domain, path, push)
		for i := range eps {
			eps[i].Insecure = false
			if eps[i].TLS != nil {
				eps[i].TLS = eps[i].TLS.Clone()
				eps[i].TLS.InsecureSkipVerify = false
			}
		}
		return eps, err
	}
}

func TestPullTLSBasic(t *testing.T) {
	r, images := seededRegistry(t, testregistry.Options{TLS: true, Basic: true})
	busybox := readLayout(t, filepath.Join(images, "busybox"))
	ctx := context.Background()
	endpoints := strictEndpoints(&hosts.Config{CertsDirs: []string{r.CertsDir}})
	name := r.Host + "/busybox:latest"

	good := credsFile(t, r.Host, r.Username, r.Password)
	s := openStore(t, t.TempDir())
	p := mustPull(t, s, quickClient(registry.Options{Endpoints: endpoints, Credentials: good.Get}), name)
	if p.ID != busybox.manifest.Config.Digest {
		t.Errorf("ID %s, want %s", p.ID, busybox.manifest.Config.Digest)
	}

	s2 := openStore(t, t.TempDir())
	before := storeState(t, s2)
	// No login.
	_, err := pullRef(ctx, s2, quickClient(registry.Options{Endpoints: endpoints}), name)
	if !errors.Is(err, registry.ErrUnauthorized) || !strings.Contains(err.Error(), r.Host) {
		t.Errorf("pull without a login: %v; want an error wrapping ErrUnauthorized naming %s", err, r.Host)
	} else {
		t.Logf("without a login: %v", err)
	}
	// A wrong password.
	bad := credsFile(t, r.Host, r.Username, "wrong")
	_, err = pullRef(ctx, s2, quickClient(registry.Options{Endpoints: endpoints, Credentials: bad.Get}), name)
	if !errors.Is(err, registry.ErrUnauthorized) || !strings.Contains(err.Error(), r.Host) || !strings.Contains(err.Error(), r.Username) {
		t.Errorf("pull with a wrong password: %v; want an error wrapping ErrUnauthorized naming %s and the user", err, r.Host)
	} else {
		t.Logf("wrong password: %v", err)
	}
	// Without the CA, the registry's certificate is not trusted.
	_, err = pullRef(ctx, s2, quickClient(registry.Options{Endpoints: strictEndpoints(&hosts.Config{}), Credentials: good.Get}), name)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("pull without the CA: %v; want a certificate error", err)
	}
	if after := storeState(t, s2); after != before {
		t.Errorf("failed pulls changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestPullToken(t *testing.T) {
	r, images := seededRegistry(t, testregistry.Options{Token: true, AnonymousPull: true})
	busybox := readLayout(t, filepath.Join(images, "busybox"))
	name := r.Host + "/busybox:latest"

	creds := credsFile(t, r.Host, r.Username, r.Password)
	n0 := len(r.TokenRequests())
	p := mustPull(t, openStore(t, t.TempDir()), quickClient(registry.Options{Credentials: creds.Get}), name)
	if p.ID != busybox.manifest.Config.Digest {
		t.Errorf("ID %s, want %s", p.ID, busybox.manifest.Config.Digest)
	}
	reqs := r.TokenRequests()[n0:]
	// One token serves the whole pull.
	if len(reqs) != 1 {
		t.Fatalf("token requests of one pull: %+v, want one", reqs)
	}
	tr := reqs[0]
	if !tr.BasicAuth || tr.User != r.Username || tr.Status != http.StatusOK ||
		len(tr.Scopes) != 1 || tr.Scopes[0] != "repository:busybox:pull" {
		t.Errorf("token request %+v, want basic auth as %s for scope repository:busybox:pull", tr, r.Username)
	}

	// Anonymously: the token endpoint gives a pull token to anyone.
	n0 = len(r.TokenRequests())
	p = mustPull(t, openStore(t, t.TempDir()), quickClient(registry.Options{}), name)
	if p.ID != busybox.manifest.Config.Digest {
		t.Errorf("anonymous pull: ID %s", p.ID)
	}
	reqs = r.TokenRequests()[n0:]
	if len(reqs) == 0 || reqs[0].BasicAuth || reqs[0].Status != http.StatusOK {
		t.Errorf("anonymous token requests %+v, want one without credentials", reqs)
	}
}

// TestPullTokenRefresh pulls twice with one client, waiting between the
// pulls longer than the tokens live: the client must ask for a new token
// from expires_in (distribution would still accept the old one, for a
// minute of clock-skew leeway, so no 401 tells it).
func TestPullTokenRefresh(t *testing.T) {
	const ttl = 4 * time.Second
	r, _ := seededRegistry(t, testregistry.Options{Token: true, TokenTTL: ttl})
	creds := credsFile(t, r.Host, r.Username, r.Password)
	c := quickClient(registry.Options{Credentials: creds.Get})
	s := openStore(t, t.TempDir())
	name := r.Host + "/busybox:latest"

	n0 := len(r.TokenRequests())
	start := time.Now()
	mustPull(t, s, c, name)
	n1 := len(r.TokenRequests())
	if n1-n0 != 1 {
		t.Errorf("token requests of a pull of %v with a %v token: %d, want 1 (the token is reused)", time.Since(start), ttl, n1-n0)
	}
	time.Sleep(ttl + 500*time.Millisecond)
	p := mustPull(t, s, c, name)
	if !p.UpToDate {
		t.Errorf("second pull not up to date: %+v", p)
	}
	reqs := r.TokenRequests()
	if len(reqs) <= n1 {
		t.Fatalf("no token request after the token expired: %+v", reqs)
	}
	if last := reqs[len(reqs)-1]; !last.BasicAuth || last.Status != http.StatusOK {
		t.Errorf("refresh: %+v", last)
	}
}

// TestPullFaults pulls through a proxy that breaks blob downloads.
func TestPullFaults(t *testing.T) {
	r, images := seededRegistry(t, testregistry.Options{})
	busybox := readLayout(t, filepath.Join(images, "busybox"))
	layer := busybox.manifest.Layers[0]
	cfg := busybox.manifest.Config
	ctx := context.Background()

	checkBusybox := func(t *testing.T, s *Store, p Pulled) {
		t.Helper()
		if p.ID != cfg.Digest {
			t.Errorf("ID %s, want %s", p.ID, cfg.Digest)
		}
		got, err := s.Get(ctx, p.ID.String())
		if err != nil {
			t.Fatal(err)
		}
		chain := image.ChainIDs(got.Config.RootFS.DiffIDs)
		withView(t, s, chain[len(chain)-1].String(), func(dir string) {
			if fi, err := os.Stat(filepath.Join(dir, "bin", "busybox")); err != nil || fi.Size() == 0 {
				t.Errorf("bin/busybox in the pulled tree: %v", err)
			}
		})
		checkNoDamage(t, s, "after the pull")
	}

	t.Run("cut once", func(t *testing.T) {
		// The config blob is smaller than the cut: it uses up the first
		// (harmless) cut; the layer's download is the second.
		proxy := testregistry.StartProxy(t, r.Host, testregistry.ProxyRule{CutBlobAfter: 300_000, CutTimes: 2})
		s := openStore(t, t.TempDir())
		p := mustPull(t, s, quickClient(registry.Options{}), proxy.Host+"/busybox:latest")
		checkBusybox(t, s, p)
		gets := blobGets(proxy.Requests(), layer.Digest)
		if len(gets) != 2 || strings.Contains(gets[0], "Range") || !strings.HasSuffix(gets[1], "Range: bytes=300000-") {
			t.Errorf("layer requests %q, want a full GET then one with Range: bytes=300000-", gets)
		}
		if cut, _, _ := proxy.Faults(); cut != 2 {
			t.Errorf("the proxy cut %d answers, want 2", cut)
		}
	})

	t.Run("cut every time", func(t *testing.T) {
		// Each resumed answer is cut again after 300000 bytes: the count
		// of failures starts afresh whenever bytes arrive, so the pull
		// goes through in four pieces.
		proxy := testregistry.StartProxy(t, r.Host, testregistry.ProxyRule{CutBlobAfter: 300_000, CutTimes: 100})
		s := openStore(t, t.TempDir())
		p := mustPull(t, s, quickClient(registry.Options{Retries: 2}), proxy.Host+"/busybox:latest")
		checkBusybox(t, s, p)
		var ranges []string
		for _, g := range blobGets(proxy.Requests(), layer.Digest) {
			_, rg, _ := strings.Cut(g, "Range: ")
			ranges = append(ranges, rg)
		}
		if want := []string{"", "bytes=300000-", "bytes=600000-", "bytes=900000-"}; strings.Join(ranges, ",") != strings.Join(want, ",") {
			t.Errorf("layer request ranges %q, want %q", ranges, want)
		}
	})

	t.Run("503 with Retry-After", func(t *testing.T) {
		proxy := testregistry.StartProxy(t, r.Host, testregistry.ProxyRule{Status: http.StatusServiceUnavailable, StatusTimes: 2, RetryAfter: "1"})
		s := openStore(t, t.TempDir())
		var mu sync.Mutex
		var waits []time.Duration
		c := quickClient(registry.Options{Backoff: 10 * time.Millisecond, OnRetry: func(what string, attempt int, wait time.Duration, err error) {
			mu.Lock()
			defer mu.Unlock()
			waits = append(waits, wait)
		}})
		start := time.Now()
		p := mustPull(t, s, c, proxy.Host+"/busybox:latest")
		took := time.Since(start)
		checkBusybox(t, s, p)
		if _, status, _ := proxy.Faults(); status != 2 {
			t.Errorf("the proxy answered 503 %d times, want 2", status)
		}
		if len(waits) != 2 || waits[0] != time.Second || waits[1] != time.Second || took < 2*time.Second {
			t.Errorf("retries waited %v, the pull took %v; want two waits of the Retry-After's 1s", waits, took)
		}
	})

	t.Run("corrupt layer", func(t *testing.T) {
		proxy := testregistry.StartProxy(t, r.Host, testregistry.ProxyRule{CorruptBlob: true})
		s := openStore(t, t.TempDir())
		// The config is in the store already, so that only the layer
		// comes through the proxy.
		data, err := os.ReadFile(blobFile(busybox.dir, cfg.Digest))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Content().Ingest(ctx, "test-config", bytes.NewReader(data), cfg.Digest, cfg.Size); err != nil {
			t.Fatal(err)
		}
		_, err = pullRef(ctx, s, quickClient(registry.Options{}), proxy.Host+"/busybox:latest")
		if err == nil || !strings.Contains(err.Error(), layer.Digest.String()) || !strings.Contains(err.Error(), "digest mismatch") {
			t.Fatalf("pull of a corrupt layer: %v; want a digest mismatch naming the layer %s", err, layer.Digest)
		}
		t.Logf("corrupt layer: %v", err)
		if got := imageNames(t, s); len(got) != 0 {
			t.Errorf("images recorded: %v", got)
		}
		if _, err := s.Content().Info(layer.Digest); err == nil {
			t.Errorf("the corrupt layer blob was committed")
		}
		checkNoDamage(t, s, "after the corrupt pull")
	})

	t.Run("corrupt config", func(t *testing.T) {
		proxy := testregistry.StartProxy(t, r.Host, testregistry.ProxyRule{CorruptBlob: true})
		s := openStore(t, t.TempDir())
		_, err := pullRef(ctx, s, quickClient(registry.Options{}), proxy.Host+"/busybox:latest")
		if err == nil || !strings.Contains(err.Error(), cfg.Digest.String()) || !strings.Contains(err.Error(), "content has digest") {
			t.Fatalf("pull of a corrupt config: %v; want an error naming %s and the digest of what came", err, cfg.Digest)
		}
		t.Logf("corrupt config: %v", err)
		if got := imageNames(t, s); len(got) != 0 {
			t.Errorf("images recorded: %v", got)
		}
		checkNoDamage(t, s, "after the corrupt pull")
	})

	t.Run("broken then resumed", func(t *testing.T) {
		// The layer is cut after 300000 bytes, and every resume is
		// refused: the pull fails. Then the fault is gone and a rerun
		// goes on from the ingest's 300000 bytes.
		proxy := testregistry.StartProxy(t, r.Host, testregistry.ProxyRule{CutBlobAfter: 300_000, CutTimes: 2})
		gate := startGate(t, proxy.Host)
		gate.refuseRanges(true)
		s := openStore(t, t.TempDir())
		c := quickClient(registry.Options{Retries: 2, Backoff: 10 * time.Millisecond})
		start := time.Now()
		_, err := pullRef(ctx, s, c, gate.host+"/busybox:latest")
		if err == nil || !strings.Contains(err.Error(), layer.Digest.String()) || !strings.Contains(err.Error(), "300000") {
			t.Fatalf("pull with broken resumes: %v; want an error naming the layer and where it broke", err)
		}
		t.Logf("broken resumes (%v): %v", time.Since(start), err)
		if got := imageNames(t, s); len(got) != 0 {
			t.Errorf("images recorded: %v", got)
		}
		checkNoDamage(t, s, "after the broken pull")

		gate.refuseRanges(false)
		n := len(proxy.Requests())
		p := mustPull(t, s, c, gate.host+"/busybox:latest")
		checkBusybox(t, s, p)
		rerun := proxy.Requests()[n:]
		if gets := blobGets(rerun, ""); len(gets) != 1 || !strings.HasSuffix(gets[0], "/blobs/"+layer.Digest.String()+" Range: bytes=300000-") {
			t.Errorf("the rerun fetched %q; want only the layer, from byte 300000 (the config was verified and kept)", gets)
		}
	})
}

// gate is a reverse proxy that can refuse Range requests with 503.
type gate struct {
	host   string
	mu     sync.Mutex
	refuse bool
}

func (g *gate) refuseRanges(on bool) {
	g.mu.Lock()
	g.refuse = on
	g.mu.Unlock()
}

func startGate(t *testing.T, target string) *gate {
	g := &gate{}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		refuse := g.refuse && r.Header.Get("Range") != ""
		g.mu.Unlock()
		if refuse {
			http.Error(w, "gate: no ranges", http.StatusServiceUnavailable)
			return
		}
		forward(w, r, client, target, 0)
	}))
	t.Cleanup(srv.Close)
	g.host = strings.TrimPrefix(srv.URL, "http://")
	return g
}

// forward passes r to the registry at target and copies its answer
// back, at about rate bytes a second when rate is positive.
func forward(w http.ResponseWriter, r *http.Request, client *http.Client, target string, rate int) {
	out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+target+r.URL.RequestURI(), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	out.Host = r.Host
	resp, err := client.Do(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	if rate <= 0 {
		io.Copy(w, resp.Body)
		return
	}
	const piece = 16 << 10
	buf := make([]byte, piece)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(time.Duration(n) * time.Second / time.Duration(rate))
		}
		if err != nil {
			return
		}
	}
}

// closedPort returns "127.0.0.1:PORT" where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// layoutServer is a fake registry serving the image of an OCI layout as
// repository "img", tag "latest"; hook, when it returns true, has
// answered the request itself.
func layoutServer(t *testing.T, img layoutImage, hook func(w http.ResponseWriter, r *http.Request) bool) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hook != nil && hook(w, r) {
			return
		}
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(http.StatusOK)
		case r.URL.Path == "/v2/img/manifests/latest":
			data, err := os.ReadFile(filepath.Join(img.dir, "index.json"))
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			var idx struct {
				Manifests []struct{ Digest digest.Digest }
			}
			if err := json.Unmarshal(data, &idx); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			http.ServeFile(w, r, blobFile(img.dir, idx.Manifests[0].Digest))
		case strings.HasPrefix(r.URL.Path, "/v2/img/blobs/"):
			d, err := digest.Parse(strings.TrimPrefix(r.URL.Path, "/v2/img/blobs/"))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			http.ServeFile(w, r, blobFile(img.dir, d))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestPullBadInput(t *testing.T) {
	images := pullTestImages(t)
	busybox := readLayout(t, filepath.Join(images, "busybox"))
	layered := readLayout(t, filepath.Join(images, "layered"))
	ctx := context.Background()
	c := quickClient(registry.Options{})

	check := func(t *testing.T, s *Store, err error, want ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("pull succeeded; want an error containing %q", want)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not contain %q", err, w)
			}
		}
		t.Logf("error: %v", err)
		if got := imageNames(t, s); len(got) != 0 {
			t.Errorf("images recorded: %v", got)
		}
		checkNoDamage(t, s, "after the failed pull")
	}

	t.Run("unknown tag", func(t *testing.T) {
		r, _ := seededRegistry(t, testregistry.Options{})
		s := openStore(t, t.TempDir())
		_, err := pullRef(ctx, s, c, r.Host+"/busybox:nope")
		if !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("error %v does not wrap ErrNotFound", err)
		}
		check(t, s, err, r.Host+"/busybox:nope")
		_, err = pullRef(ctx, s, c, r.Host+"/nothere:latest")
		if !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("unknown repository: error %v does not wrap ErrNotFound", err)
		}
		check(t, s, err, r.Host+"/nothere:latest")
	})

	t.Run("unreachable", func(t *testing.T) {
		host := closedPort(t)
		s := openStore(t, t.TempDir())
		var retries int
		start := time.Now()
		_, err := pullRef(ctx, s, registry.NewClient(registry.Options{OnRetry: func(string, int, time.Duration, error) { retries++ }}), host+"/busybox:latest")
		took := time.Since(start)
		check(t, s, err, host, "connection refused")
		if retries != 0 || took > 2*time.Second {
			t.Errorf("a refused connection was retried %d times, the pull took %v", retries, took)
		}
		if n := strings.Count(err.Error(), "connection refused"); n != 1 {
			t.Errorf("error says connection refused %d times, want once: %v", n, err)
		}
	})

	t.Run("manifest digest mismatch", func(t *testing.T) {
		// Asked for busybox's manifest digest, the registry sends
		// layered's manifest.
		want := layoutManifestDigest(t, busybox)
		other := layeredManifest(t, layered)
		host := layoutServer(t, layered, func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != "/v2/img/manifests/"+want.String() {
				return false
			}
			w.Header().Set("Content-Type", image.MediaTypeOCIManifest)
			w.Write(other)
			return true
		})
		s := openStore(t, t.TempDir())
		_, err := pullRef(ctx, s, c, host+"/img@"+want.String())
		check(t, s, err, want.String(), digest.FromBytes(other).String(), "does not match")
	})

	t.Run("manifest over the limit", func(t *testing.T) {
		big := bytes.Repeat([]byte(" "), image.MaxManifestSize+1<<20)
		for _, withLength := range []bool{true, false} {
			t.Run(fmt.Sprintf("content-length %v", withLength), func(t *testing.T) {
				var sent int
				host := layoutServer(t, layered, func(w http.ResponseWriter, r *http.Request) bool {
					if r.URL.Path != "/v2/img/manifests/latest" {
						return false
					}
					w.Header().Set("Content-Type", image.MediaTypeOCIManifest)
					if withLength {
						w.Header().Set("Content-Length", fmt.Sprint(len(big)))
					}
					w.Write([]byte(`{"schemaVersion":2,"annotations":{"x":"`))
					for off := 0; off < len(big); off += 64 << 10 {
						n, err := w.Write(big[off:min(off+64<<10, len(big))])
						sent += n
						if err != nil {
							break
						}
					}
					return true
				})
				s := openStore(t, t.TempDir())
				_, err := pullRef(ctx, s, c, host+"/img:latest")
				check(t, s, err, "limit", fmt.Sprint(image.MaxManifestSize))
			})
		}
	})

	t.Run("blob longer than its size", func(t *testing.T) {
		l := layered.manifest.Layers[1]
		host := layoutServer(t, layered, func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != "/v2/img/blobs/"+l.Digest.String() {
				return false
			}
			data, err := os.ReadFile(blobFile(layered.dir, l.Digest))
			if err != nil {
				t.Error(err)
			}
			w.Write(append(data, "and some more"...))
			return true
		})
		s := openStore(t, t.TempDir())
		_, err := pullRef(ctx, s, c, host+"/img:latest")
		check(t, s, err, l.Digest.String(), "more than")
	})

	t.Run("layered from the fake registry", func(t *testing.T) {
		// The fake registry itself serves a good image.
		host := layoutServer(t, layered, nil)
		s := openStore(t, t.TempDir())
		p := mustPull(t, s, c, host+"/img:latest")
		checkLoadedTree(t, s, images, p.Loaded)
	})
}

func layoutManifestDigest(t *testing.T, img layoutImage) digest.Digest {
	t.Helper()
	var idx struct {
		Manifests []struct{ Digest digest.Digest }
	}
	readJSONFile(t, filepath.Join(img.dir, "index.json"), &idx)
	return idx.Manifests[0].Digest
}

func layeredManifest(t *testing.T, img layoutImage) []byte {
	t.Helper()
	data, err := os.ReadFile(blobFile(img.dir, layoutManifestDigest(t, img)))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestPullMirrors pulls through a registries.conf whose registry has
// mirrors: one that is down (the pull falls back), then one that has the
// image (the pull goes there, and not to the registry).
func TestPullMirrors(t *testing.T) {
	r, images := seededRegistry(t, testregistry.Options{})
	busybox := readLayout(t, filepath.Join(images, "busybox"))
	location := testregistry.StartProxy(t, r.Host, testregistry.ProxyRule{})
	mirrorReg := testregistry.Start(t, testregistry.Options{})
	mirrorReg.Seed(t, filepath.Join(images, "busybox"), "busybox:latest")
	mirror := testregistry.StartProxy(t, mirrorReg.Host, testregistry.ProxyRule{})
	name := location.Host + "/busybox:latest"

	load := func(t *testing.T, mirrors ...string) *hosts.Config {
		t.Helper()
		conf := fmt.Sprintf("[[registry]]\nlocation = %q\n", location.Host)
		for _, m := range mirrors {
			conf += fmt.Sprintf("[[registry.mirror]]\nlocation = %q\n", m)
		}
		path := filepath.Join(t.TempDir(), "registries.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := hosts.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}

	t.Run("mirror down", func(t *testing.T) {
		cfg := load(t, closedPort(t))
		n := len(location.Requests())
		s := openStore(t, t.TempDir())
		start := time.Now()
		p := mustPull(t, s, quickClient(registry.Options{Endpoints: cfg.Endpoints}), name)
		if p.ID != busybox.manifest.Config.Digest || len(p.Names) != 1 || p.Names[0] != name {
			t.Errorf("pulled %+v, want %s named %s", p, busybox.manifest.Config.Digest, name)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("the fallback took %v", took)
		}
		if got := blobGets(location.Requests()[n:], ""); len(got) != 2 {
			t.Errorf("the registry served blobs %q, want the config and the layer", got)
		}
	})

	t.Run("mirror up", func(t *testing.T) {
		cfg := load(t, closedPort(t), mirror.Host)
		n := len(location.Requests())
		s := openStore(t, t.TempDir())
		p := mustPull(t, s, quickClient(registry.Options{Endpoints: cfg.Endpoints}), name)
		if p.ID != busybox.manifest.Config.Digest || len(p.Names) != 1 || p.Names[0] != name {
			t.Errorf("pulled %+v, want %s named %s", p, busybox.manifest.Config.Digest, name)
		}
		if got := location.Requests()[n:]; len(got) != 0 {
			t.Errorf("the registry was asked %q; the mirror has everything", got)
		}
		if got := blobGets(mirror.Requests(), ""); len(got) != 2 {
			t.Errorf("the mirror served blobs %q, want the config and the layer", got)
		}
	})
}

// helperPullEnv makes the re-executed test binary (TestMain) pull the
// reference it names into the store of helperRootEnv.
const helperPullEnv = "BERTH_ENGINE_TEST_PULL"

func pullHelper(root, name string) int {
	s, err := Open(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	if _, err := pullRef(context.Background(), s, registry.NewClient(registry.Options{}), name); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestPullKilled kills pulls with SIGKILL at points spread over their run
// (through a proxy slowed to about 2 MB/s, so that the layers are still
// streaming): the store must hold no damage, only garbage, and a rerun
// must complete with the right image.
func TestPullKilled(t *testing.T) {
	r, images := seededRegistry(t, testregistry.Options{})
	layered := readLayout(t, filepath.Join(images, "layered"))
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	var mu sync.Mutex
	var ranges []string // of the blob requests
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.Contains(req.URL.Path, "/blobs/") {
			mu.Lock()
			ranges = append(ranges, req.Header.Get("Range"))
			mu.Unlock()
		}
		forward(w, req, client, r.Host, 2<<20)
	}))
	t.Cleanup(srv.Close)
	name := strings.TrimPrefix(srv.URL, "http://") + "/layered:latest"
	root := t.TempDir()
	ctx := context.Background()

	resumed := 0
	for _, delay := range []time.Duration{30, 100, 200, 300, 400, 500, 650} {
		delay *= time.Millisecond
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperRootEnv+"="+root, helperPullEnv+"="+name)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		var exit *exec.ExitError
		killed := errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signaled()
		if !killed && err != nil {
			t.Fatalf("kill after %v: the pull failed before the kill: %v\n%s", delay, err, out.String())
		}

		s := openStore(t, root)
		checkStoreSound(t, s)
		rep, err := s.Check(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if left := rep.Remaining(); len(left) != 0 {
			t.Errorf("kill after %v: system check finds damage: %v", delay, left)
		}
		t.Logf("kill after %v: killed=%v, garbage %d", delay, killed, len(rep.Garbage()))
		mu.Lock()
		n := len(ranges)
		mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		p, err := pullRef(rctx, s, quickClient(registry.Options{}), name)
		cancel()
		mu.Lock()
		for _, rg := range ranges[n:] {
			if rg != "" {
				resumed++
				t.Logf("kill after %v: the rerun resumed a download with Range %s", delay, rg)
			}
		}
		mu.Unlock()
		if err != nil {
			t.Fatalf("kill after %v: rerun: %v", delay, err)
		}
		if p.ID != layered.manifest.Config.Digest {
			t.Errorf("kill after %v: rerun pulled %s, want %s", delay, p.ID, layered.manifest.Config.Digest)
		}
		checkLoadedTree(t, s, images, p.Loaded)
		checkNoDamage(t, s, "after the rerun")
		if _, err := s.Remove(ctx, name, false); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	if resumed == 0 {
		t.Errorf("no rerun resumed a download the kill broke (no Range request)")
	}
	s := openStore(t, root)
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if state := storeState(t, s); state != "" {
		t.Errorf("after the pulled image was removed, the store holds:\n%s", state)
	}
}

// TestPullCompleteIngest: a pull killed after the last byte of a blob and
// before its commit leaves a complete ingest; the next pull commits it
// without asking the registry for an empty range (which it refuses).
func TestPullCompleteIngest(t *testing.T) {
	r, images := seededRegistry(t, testregistry.Options{})
	proxy := testregistry.StartProxy(t, r.Host, testregistry.ProxyRule{})
	layered := readLayout(t, filepath.Join(images, "layered"))
	s := openStore(t, t.TempDir())
	top := layered.manifest.Layers[len(layered.manifest.Layers)-1]
	data, err := os.ReadFile(filepath.Join(images, "layered", "blobs", "sha256", top.Digest.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.cs.Writer("pull-"+top.Digest.String(), top.Digest, top.Size)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	w.Close() // kept for a resume, uncommitted
	p := mustPull(t, s, quickClient(registry.Options{}), proxy.Host+"/layered:latest")
	if got := blobGets(proxy.Requests(), top.Digest); len(got) != 0 {
		t.Errorf("the complete ingest's blob was asked for again: %v", got)
	}
	checkLoadedTree(t, s, images, p.Loaded)
}
