package registry_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/testbuild"
	"github.com/berth-project/berth/internal/testimage"
)

var (
	baseDir   string // everything of this test run
	berthExe  string
	berthRoot string // berth's --root for the clients' pulls and pushes
	berthRun  string // berth's --runroot
	images    string // OCI layouts: images/busybox, images/layered
	toolEnv   []string
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "tests/registry: needs root (podman and berth stores)")
		os.Exit(1)
	}
	var err error
	if baseDir, err = os.MkdirTemp("", "berth-registry-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	vlc := rememberVarLibContainers()
	defer vlc.restore()
	defer os.RemoveAll(baseDir)
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, "tests/registry: setup:", err)
		return 1
	}
	code := m.Run()
	// podman's vfs layers are plain directories, but let podman drop its
	// own state (locks, the bolt database) first.
	podmanQuiet("rmi", "-a", "-f")
	return code
}

func setup() error {
	exe, err := testbuild.Berth(filepath.Join(baseDir, "bin"))
	if err != nil {
		return err
	}
	berthExe = exe
	berthRoot = filepath.Join(baseDir, "berth-root")
	berthRun = filepath.Join(baseDir, "berth-run")
	images = filepath.Join(baseDir, "images")
	if err := testimage.Make(images, "busybox", "layered"); err != nil {
		return fmt.Errorf("test images (needs Debian's busybox-static): %w", err)
	}
	for _, tool := range []string{"skopeo", "podman"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (apt-get install %s): %w", tool, tool, err)
		}
	}
	return podmanConf(filepath.Join(baseDir, "podman"))
}

// podmanConf writes a containers.conf, storage.conf and registries.conf
// that keep podman's (and skopeo's) state under dir, with the vfs
// driver and rlimits within this machine's hard limits (as
// scripts/lib.sh's podman_conf), and points the tools at them.
func podmanConf(dir string) error {
	for _, d := range []string{"tmp", "networks"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return err
		}
	}
	files := map[string]string{
		"containers.conf": fmt.Sprintf(`[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
netns = "none"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "%[1]s/tmp/events.log"
tmp_dir = "%[1]s/tmp"
volume_path = "%[1]s/volumes"
lock_type = "file"

[network]
network_config_dir = "%[1]s/networks"
`, dir),
		"storage.conf": fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n", dir+"/root", dir+"/runroot"),
		// No search registries or mirrors from the host's config.
		"registries.conf": "unqualified-search-registries = []\n",
		"no-auth.json":    `{"auths":{}}`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			return err
		}
	}
	toolEnv = append(os.Environ(),
		"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"),
		"CONTAINERS_REGISTRIES_CONF="+filepath.Join(dir, "registries.conf"),
		"REGISTRY_AUTH_FILE="+filepath.Join(dir, "no-auth.json"),
		"DOCKER_CONFIG="+filepath.Join(dir, "docker"),
		"BERTH_REGISTRIES_CONF=/nonexistent",
	)
	return nil
}

// podmanQuiet runs podman on the tests' private storage, ignoring its
// outcome (cleanups); never on the host's, before setup configured it.
func podmanQuiet(args ...string) {
	if toolEnv == nil {
		return
	}
	cmd := exec.Command("podman", args...)
	cmd.Env = toolEnv
	cmd.Run()
}

// varLibContainers remembers whether /var/lib/containers and its cache
// existed: skopeo and podman keep their blob info cache there whatever
// their storage config says.
type varLibContainers struct{ dir, cache bool }

func rememberVarLibContainers() varLibContainers {
	_, err1 := os.Stat("/var/lib/containers")
	_, err2 := os.Stat("/var/lib/containers/cache")
	return varLibContainers{err1 == nil, err2 == nil}
}

func (v varLibContainers) restore() {
	if !v.cache {
		os.Remove("/var/lib/containers/cache/blob-info-cache-v1.boltdb")
		os.Remove("/var/lib/containers/cache")
	}
	if !v.dir {
		os.Remove("/var/lib/containers")
	}
}

// result is a command's outcome.
type result struct {
	out  string // stdout
	err  string // stderr
	code int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.out, r.err)
}

// execIn runs a tool with the tests' environment plus env, stdin and a
// 2-minute bound.
func execIn(t testing.TB, env []string, stdin, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(append([]string{}, toolEnv...), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	r := result{out: out.String(), err: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return r
}

// must runs a tool and fails the test unless it exits 0; it returns
// stdout.
func must(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	r := execIn(t, env, "", name, args...)
	if r.code != 0 {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), r)
	}
	return r.out
}

// berthArgs puts berth's store flags before args.
func berthArgs(args ...string) []string {
	return append([]string{"--root", berthRoot, "--runroot", berthRun}, args...)
}

// registry is a `berth registry serve` started by a test.
type registry struct {
	addr    string // host:port
	root    string // its storage
	scheme  string
	user    string // a user that may pull everything, for inspect
	pass    string
	tlsConf *tls.Config
	log     *bytes.Buffer
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startRegistry serves a registry at addr (freeAddr when empty) with the
// TOML settings conf (root and addr are added) until the test ends.
func startRegistry(t testing.TB, addr, conf string, tlsConf *tls.Config) *registry {
	t.Helper()
	if addr == "" {
		addr = freeAddr(t)
	}
	dir := t.TempDir()
	reg := &registry{addr: addr, root: filepath.Join(dir, "data"), scheme: "http", tlsConf: tlsConf, log: &bytes.Buffer{}}
	if tlsConf != nil {
		reg.scheme = "https"
	}
	cfgPath := filepath.Join(dir, "registry.toml")
	text := fmt.Sprintf("addr = %q\nroot = %q\n", addr, reg.root) + conf
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(berthExe, "--root", filepath.Join(dir, "berth"), "registry", "serve", "--config", cfgPath, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = reg.log, reg.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("registry log:\n%s", reg.log)
		}
	})
	hc := reg.httpClient()
	for deadline := time.Now().Add(15 * time.Second); ; {
		resp, err := hc.Get(reg.scheme + "://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return reg
		}
		select {
		case err := <-done:
			t.Fatalf("berth registry serve exited: %v\n%s", err, reg.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry at %s did not answer: %v\n%s", addr, err, reg.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *registry) httpClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: r.tlsConf}}
}

// get GETs path from the registry as r.user (following a bearer
// challenge to the token endpoint) and returns the response with its
// body read.
func (r *registry) get(t testing.TB, path, accept string) (*http.Response, []byte) {
	t.Helper()
	hc := r.httpClient()
	do := func(authz string) (*http.Response, []byte) {
		req, err := http.NewRequest(http.MethodGet, r.scheme+"://"+r.addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp, body
	}
	resp, body := do("")
	if resp.StatusCode != http.StatusUnauthorized || r.user == "" {
		return resp, body
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(r.user+":"+r.pass))
	ch := resp.Header.Get("WWW-Authenticate")
	if !strings.HasPrefix(ch, "Bearer ") {
		return do(basic)
	}
	params := map[string]string{}
	for _, kv := range strings.Split(strings.TrimPrefix(ch, "Bearer "), ",") {
		k, v, _ := strings.Cut(kv, "=")
		params[strings.TrimSpace(k)] = strings.Trim(v, `"`)
	}
	q := url.Values{"service": {params["service"]}}
	if params["scope"] != "" {
		q.Set("scope", params["scope"])
	}
	req, err := http.NewRequest(http.MethodGet, params["realm"]+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", basic)
	tresp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("token for %s: %v", path, err)
	}
	defer tresp.Body.Close()
	var tok struct{ Token string }
	if err := json.NewDecoder(tresp.Body).Decode(&tok); err != nil || tok.Token == "" {
		t.Fatalf("token for %s: status %d, %v", path, tresp.StatusCode, err)
	}
	return do("Bearer " + tok.Token)
}

const acceptManifests = ocispec.MediaTypeImageManifest + ", " + ocispec.MediaTypeImageIndex + ", " +
	"application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"

// image is what a registry or an OCI layout holds for one tag.
type image struct {
	digest    digest.Digest
	mediaType string
	config    digest.Digest
	layers    []digest.Digest
	diffIDs   []digest.Digest // from the config
}

// manifest returns the registry's manifest of repo:ref, checking that
// the bytes it serves hash to the Docker-Content-Digest it names.
func (r *registry) manifest(t testing.TB, repo, ref string) image {
	t.Helper()
	resp, body := r.get(t, "/v2/"+repo+"/manifests/"+ref, acceptManifests)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET manifest %s:%s: %d %s", repo, ref, resp.StatusCode, body)
	}
	d := digest.FromBytes(body)
	if h := resp.Header.Get("Docker-Content-Digest"); h != d.String() {
		t.Fatalf("manifest %s:%s: Docker-Content-Digest %q, body hashes to %s", repo, ref, h, d)
	}
	img := parseManifest(t, d, body)
	if ct := resp.Header.Get("Content-Type"); ct != img.mediaType {
		t.Errorf("manifest %s:%s: Content-Type %q, its mediaType %q", repo, ref, ct, img.mediaType)
	}
	cresp, cfg := r.get(t, "/v2/"+repo+"/blobs/"+img.config.String(), "")
	if cresp.StatusCode != http.StatusOK || digest.FromBytes(cfg) != img.config {
		t.Fatalf("config blob %s of %s: %d, %d bytes", img.config, repo, cresp.StatusCode, len(cfg))
	}
	img.diffIDs = parseDiffIDs(t, cfg)
	return img
}

func parseManifest(t testing.TB, d digest.Digest, body []byte) image {
	t.Helper()
	var m struct {
		MediaType string             `json:"mediaType"`
		Config    ocispec.Descriptor `json:"config"`
		Layers    []ocispec.Descriptor
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("manifest %s: %v", d, err)
	}
	img := image{digest: d, mediaType: m.MediaType, config: m.Config.Digest}
	for _, l := range m.Layers {
		img.layers = append(img.layers, l.Digest)
	}
	if len(img.layers) == 0 {
		t.Fatalf("manifest %s has no layers: %s", d, body)
	}
	return img
}

func parseDiffIDs(t testing.TB, cfg []byte) []digest.Digest {
	t.Helper()
	var c ocispec.Image
	if err := json.Unmarshal(cfg, &c); err != nil {
		t.Fatalf("image config: %v", err)
	}
	return c.RootFS.DiffIDs
}

// readLayout returns the single image of an OCI layout, checking every
// blob it names against its digest.
func readLayout(t testing.TB, dir string) image {
	t.Helper()
	var idx ocispec.Index
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil || json.Unmarshal(data, &idx) != nil || len(idx.Manifests) != 1 {
		t.Fatalf("layout %s: index.json %v: %s", dir, err, data)
	}
	blob := func(d digest.Digest) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded()))
		if err != nil {
			t.Fatalf("layout %s: %v", dir, err)
		}
		if got := digest.FromBytes(b); got != d {
			t.Fatalf("layout %s: blob %s hashes to %s", dir, d, got)
		}
		return b
	}
	d := idx.Manifests[0].Digest
	img := parseManifest(t, d, blob(d))
	img.diffIDs = parseDiffIDs(t, blob(img.config))
	for _, l := range img.layers {
		blob(l)
	}
	return img
}

// sameImage fails t unless got has want's manifest digest and layers.
func sameImage(t testing.TB, what string, got, want image) {
	t.Helper()
	if got.digest != want.digest {
		t.Errorf("%s: manifest %s, want %s", what, got.digest, want.digest)
	}
	if got.config != want.config {
		t.Errorf("%s: config %s, want %s", what, got.config, want.config)
	}
	if !digestsEqual(got.layers, want.layers) {
		t.Errorf("%s: layers %v, want %v", what, got.layers, want.layers)
	}
	if !digestsEqual(got.diffIDs, want.diffIDs) {
		t.Errorf("%s: diff IDs %v, want %v", what, got.diffIDs, want.diffIDs)
	}
}

func digestsEqual(a, b []digest.Digest) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
