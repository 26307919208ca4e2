package registry_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

// session is one client's view of a registry: its login file, cert dir
// and user, shared by the client's commands in a test.
type session struct {
	reg      *registry
	dir      string // the session's files
	authfile string // containers-auth / docker config.json
	certDir  string // a dir with ca.crt (skopeo, podman) or a certs.d (berth)
	user     string // --creds for skopeo, when set
	pass     string
}

func newSession(t testing.TB, reg *registry) *session {
	t.Helper()
	dir := t.TempDir()
	s := &session{reg: reg, dir: dir, authfile: filepath.Join(dir, "docker", "config.json")}
	// podman refuses an --authfile that does not exist.
	if err := os.MkdirAll(filepath.Dir(s.authfile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.authfile, []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// client is a registry client driven through its command line.
type client struct {
	name string
	// push copies the single image of the OCI layout to repo:tag and
	// returns the manifest digest the client says it pushed.
	push func(t testing.TB, s *session, layout, ref string) (digest.Digest, result)
	// pull fetches ref and returns what the client holds: for podman,
	// which keeps layers uncompressed, only the manifest digest and the
	// diff IDs are known.
	pull func(t testing.TB, s *session, ref string) (image, result)
	// login keeps user's credentials in the session.
	login func(t testing.TB, s *session, user, pass string) result
}

var clients = []*client{
	{name: "skopeo", push: skopeoPush, pull: skopeoPull, login: skopeoLogin},
	{name: "crane", push: cranePush, pull: cranePull, login: craneLogin},
	{name: "podman", push: podmanPush, pull: podmanPull, login: podmanLogin},
	{name: "berth", push: berthPush, pull: berthPull, login: berthLogin},
}

func clientNamed(name string) *client {
	for _, c := range clients {
		if c.name == name {
			return c
		}
	}
	panic("no client " + name)
}

func (s *session) tlsVerify() string {
	if s.reg.scheme == "https" {
		return "true"
	}
	return "false"
}

func (s *session) ref(ref string) string { return s.reg.addr + "/" + ref }

// digestFile reads a --digestfile.
func digestFile(t testing.TB, path string) digest.Digest {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return d
}

// ---- skopeo

// skopeoFormat, when set on a push, is skopeo's --format (v2s2 for a
// docker schema2 manifest).
func skopeoPushArgs(s *session, format string) []string {
	args := []string{"copy", "-q", "--dest-tls-verify=" + s.tlsVerify()}
	if s.user != "" {
		args = append(args, "--dest-creds", s.user+":"+s.pass)
	}
	if s.certDir != "" {
		args = append(args, "--dest-cert-dir", s.certDir)
	}
	if format != "" {
		args = append(args, "--format", format)
	}
	return args
}

func skopeoPush(t testing.TB, s *session, layout, ref string) (digest.Digest, result) {
	return skopeoPushFormat(t, s, layout, ref, "")
}

func skopeoPushFormat(t testing.TB, s *session, layout, ref, format string) (digest.Digest, result) {
	t.Helper()
	df := filepath.Join(s.dir, "skopeo.digest")
	os.Remove(df)
	args := append(skopeoPushArgs(s, format), "--digestfile", df, "oci:"+layout, "docker://"+s.ref(ref))
	r := execIn(t, nil, "", "skopeo", args...)
	if r.code != 0 {
		return "", r
	}
	return digestFile(t, df), r
}

func skopeoPull(t testing.TB, s *session, ref string) (image, result) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "layout")
	args := []string{"copy", "-q", "--src-tls-verify=" + s.tlsVerify()}
	if s.user != "" {
		args = append(args, "--src-creds", s.user+":"+s.pass)
	}
	if s.certDir != "" {
		args = append(args, "--src-cert-dir", s.certDir)
	}
	r := execIn(t, nil, "", "skopeo", append(args, "docker://"+s.ref(ref), "oci:"+out+":pulled")...)
	if r.code != 0 {
		return image{}, r
	}
	return readLayout(t, out), r
}

// skopeoLogin gives skopeo the credentials with --creds on each command.
func skopeoLogin(t testing.TB, s *session, user, pass string) result {
	s.user, s.pass = user, pass
	return result{}
}

// ---- crane

var (
	craneOnce sync.Once
	cranePath string
	craneErr  string // why crane is missing: a skip message
)

// craneBin returns crane: from PATH, from the cache dir scripts/test.sh
// installs it into, or installed there now with go install. A test is
// skipped only when the install fails for want of a network.
func craneBin(t testing.TB) string {
	t.Helper()
	craneOnce.Do(func() {
		if p, err := exec.LookPath("crane"); err == nil {
			cranePath = p
			return
		}
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = "/var/tmp"
		}
		gobin := filepath.Join(cache, "berth-tests", "bin")
		cranePath = filepath.Join(gobin, "crane")
		if _, err := os.Stat(cranePath); err == nil {
			return
		}
		goExe := filepath.Join(runtime.GOROOT(), "bin", "go")
		cmd := exec.Command(goExe, "install", "github.com/google/go-containerregistry/cmd/crane@latest")
		cmd.Env = append(os.Environ(), "GOBIN="+gobin, "GOFLAGS=-mod=mod")
		cmd.Dir = os.TempDir() // outside berth's module
		out, err := cmd.CombinedOutput()
		if err == nil {
			return
		}
		if offline.Match(out) {
			craneErr = "crane is not installed and go install cannot reach the network: " + strings.TrimSpace(string(out))
			return
		}
		craneErr = "FAIL: go install crane: " + err.Error() + "\n" + string(out)
	})
	switch {
	case strings.HasPrefix(craneErr, "FAIL: "):
		t.Fatal(strings.TrimPrefix(craneErr, "FAIL: "))
	case craneErr != "":
		t.Skip(craneErr)
	}
	return cranePath
}

// offline matches go's errors for a module proxy it cannot reach.
var offline = regexp.MustCompile(`dial tcp|no such host|network is unreachable|connection refused|i/o timeout|TLS handshake timeout|server misbehaving`)

func (s *session) craneEnv() []string {
	env := []string{"DOCKER_CONFIG=" + filepath.Dir(s.authfile)}
	if s.certDir != "" {
		env = append(env, "SSL_CERT_FILE="+filepath.Join(s.certDir, "ca.crt"))
	}
	return env
}

func (s *session) craneFlags() []string {
	if s.reg.scheme == "http" {
		return []string{"--insecure"}
	}
	return nil
}

func cranePush(t testing.TB, s *session, layout, ref string) (digest.Digest, result) {
	t.Helper()
	r := execIn(t, s.craneEnv(), "", craneBin(t), append(s.craneFlags(), "push", layout, s.ref(ref))...)
	if r.code != 0 {
		return "", r
	}
	// crane prints the pushed reference: HOST/REPO@sha256:...
	_, d, ok := strings.Cut(strings.TrimSpace(r.out), "@")
	dg, err := digest.Parse(d)
	if !ok || err != nil {
		t.Fatalf("crane push printed %q", r.out)
	}
	return dg, r
}

func cranePull(t testing.TB, s *session, ref string) (image, result) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "layout")
	r := execIn(t, s.craneEnv(), "", craneBin(t), append(s.craneFlags(), "pull", "--format", "oci", s.ref(ref), out)...)
	if r.code != 0 {
		return image{}, r
	}
	return readLayout(t, out), r
}

func craneLogin(t testing.TB, s *session, user, pass string) result {
	t.Helper()
	return execIn(t, s.craneEnv(), "", craneBin(t), append(s.craneFlags(), "auth", "login", s.reg.addr, "-u", user, "-p", pass)...)
}

// ---- podman

func (s *session) podmanFlags() []string {
	args := []string{"--tls-verify=" + s.tlsVerify(), "--authfile", s.authfile}
	if s.certDir != "" {
		args = append(args, "--cert-dir", s.certDir)
	}
	return args
}

// podmanPush loads the layout into podman's store and pushes it: podman
// keeps layers uncompressed, so what it pushes is its own manifest.
func podmanPush(t testing.TB, s *session, layout, ref string) (digest.Digest, result) {
	t.Helper()
	out := must(t, nil, "podman", "pull", "-q", "oci:"+layout)
	id := strings.TrimSpace(out)
	t.Cleanup(func() { podmanQuiet("rmi", "-f", id) })
	df := filepath.Join(s.dir, "podman.digest")
	os.Remove(df)
	args := append([]string{"push", "-q", "--digestfile", df}, s.podmanFlags()...)
	r := execIn(t, nil, "", "podman", append(args, id, "docker://"+s.ref(ref))...)
	if r.code != 0 {
		return "", r
	}
	return digestFile(t, df), r
}

// podmanPull pulls ref and returns its manifest digest and the diff IDs
// of the layers podman unpacked.
func podmanPull(t testing.TB, s *session, ref string) (image, result) {
	t.Helper()
	// Start from an empty store: podman gives an image (one config) the
	// digests of every manifest it was pulled by, under each of its names.
	must(t, nil, "podman", "rmi", "-a", "-f")
	args := append([]string{"pull", "-q"}, s.podmanFlags()...)
	r := execIn(t, nil, "", "podman", append(args, s.ref(ref))...)
	if r.code != 0 {
		return image{}, r
	}
	id := strings.TrimSpace(r.out)
	t.Cleanup(func() { podmanQuiet("rmi", "-f", id) })
	// An image (one config, one ID) may have been pulled under several
	// manifests: the repository's digest is the one in RepoDigests.
	out := must(t, nil, "podman", "image", "inspect", "--format", "{{range .RepoDigests}}{{.}} {{end}}|{{range .RootFS.Layers}}{{.}} {{end}}", id)
	repoDigests, layers, _ := strings.Cut(out, "|")
	repo := s.ref(ref)
	if i := strings.LastIndex(repo, ":"); i > len(s.reg.addr) {
		repo = repo[:i]
	}
	var img image
	for _, rd := range strings.Fields(repoDigests) {
		if name, d, ok := strings.Cut(rd, "@"); ok && name == repo {
			if img.digest != "" {
				t.Fatalf("podman image inspect: several digests for %s: %q", repo, repoDigests)
			}
			img.digest = digest.Digest(d)
		}
	}
	if img.digest == "" {
		t.Fatalf("podman image inspect: no digest for %s in %q", repo, repoDigests)
	}
	for _, w := range strings.Fields(layers) {
		d, err := digest.Parse(w)
		if err != nil {
			t.Fatalf("podman image inspect: %q", out)
		}
		img.diffIDs = append(img.diffIDs, d)
	}
	return img, r
}

func podmanLogin(t testing.TB, s *session, user, pass string) result {
	t.Helper()
	args := append([]string{"login"}, s.podmanFlags()...)
	return execIn(t, nil, "", "podman", append(args, "-u", user, "-p", pass, s.reg.addr)...)
}

// ---- berth

func (s *session) berthFlags() []string {
	args := []string{"--authfile", s.authfile}
	if s.reg.scheme == "http" {
		args = append(args, "--tls-verify=false")
	}
	if s.certDir != "" {
		args = append(args, "--cert-dir", filepath.Join(s.dir, "certs.d"))
	}
	return args
}

var berthLoads sync.Map // layout -> image name loaded into berth's store

func berthPush(t testing.TB, s *session, layout, ref string) (digest.Digest, result) {
	t.Helper()
	name := "local/" + filepath.Base(layout) + ":latest"
	if _, loaded := berthLoads.LoadOrStore(layout, name); !loaded {
		must(t, nil, berthExe, berthArgs("load", "-q", "-i", layout, name)...)
	}
	r := execIn(t, nil, "", berthExe, berthArgs(append([]string{"push", "-q"}, append(s.berthFlags(), name, s.ref(ref))...)...)...)
	if r.code != 0 {
		return "", r
	}
	d, err := digest.Parse(strings.TrimSpace(r.out))
	if err != nil {
		t.Fatalf("berth push printed %q", r.out)
	}
	return d, r
}

// berthPull pulls ref into berth's store and saves it as an OCI layout
// to compare what it holds.
func berthPull(t testing.TB, s *session, ref string) (image, result) {
	t.Helper()
	r := execIn(t, nil, "", berthExe, berthArgs(append([]string{"pull", "-q"}, append(s.berthFlags(), s.ref(ref))...)...)...)
	if r.code != 0 {
		return image{}, r
	}
	t.Cleanup(func() { exec.Command(berthExe, berthArgs("rmi", "-f", s.ref(ref))...).Run() })
	out := filepath.Join(t.TempDir(), "layout")
	must(t, nil, berthExe, berthArgs("save", "--format", "oci-dir", "-o", out, s.ref(ref))...)
	return readLayout(t, out), r
}

func berthLogin(t testing.TB, s *session, user, pass string) result {
	t.Helper()
	args := append([]string{"login", "-u", user, "--password-stdin"}, s.berthFlags()...)
	return execIn(t, nil, pass+"\n", berthExe, berthArgs(append(args, s.reg.addr)...)...)
}
