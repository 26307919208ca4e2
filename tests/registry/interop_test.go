package registry_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"
)

// checkPushed compares what the registry serves for repo:tag with what
// the pusher said it pushed and with the source layout (podman rewrites
// the manifest, keeping the layers' content: the diff IDs).
func checkPushed(t *testing.T, reg *registry, pusher string, pushed digest.Digest, repo, tag string, src image) image {
	t.Helper()
	got := reg.manifest(t, repo, tag)
	if got.digest != pushed {
		t.Errorf("%s pushed %s, the registry serves %s:%s as %s", pusher, pushed, repo, tag, got.digest)
	}
	if pusher == "podman" {
		if !digestsEqual(got.diffIDs, src.diffIDs) {
			t.Errorf("podman's push: diff IDs %v, the layout's %v", got.diffIDs, src.diffIDs)
		}
	} else {
		sameImage(t, pusher+"'s push as the registry serves it", got, src)
	}
	return got
}

// checkPulled compares what a client pulled with what the registry
// serves (podman knows only the manifest digest and the diff IDs).
func checkPulled(t *testing.T, puller string, got, want image) {
	t.Helper()
	if puller == "podman" {
		if got.digest != want.digest || !digestsEqual(got.diffIDs, want.diffIDs) {
			t.Errorf("podman pulled %s with diff IDs %v, want %s with %v", got.digest, got.diffIDs, want.digest, want.diffIDs)
		}
		return
	}
	sameImage(t, puller+"'s pull", got, want)
}

// TestCrossClient pushes the test images with each client and pulls
// them with every other one, anonymous and over plain HTTP.
func TestCrossClient(t *testing.T) {
	reg := startRegistry(t, "", "", nil)
	names := []string{"busybox", "layered"}
	n := 0
	for _, pusher := range clients {
		for _, puller := range clients {
			if pusher == puller {
				continue
			}
			name := names[n%len(names)]
			n++
			t.Run(pusher.name+"-to-"+puller.name, func(t *testing.T) {
				layout := filepath.Join(images, name)
				src := readLayout(t, layout)
				s := newSession(t, reg)
				repo := pusher.name + "/" + puller.name + "/" + name
				d, r := pusher.push(t, s, layout, repo+":v1")
				if r.code != 0 {
					t.Fatalf("%s push: %v", pusher.name, r)
				}
				want := checkPushed(t, reg, pusher.name, d, repo, "v1", src)
				got, r := puller.pull(t, s, repo+":v1")
				if r.code != 0 {
					t.Fatalf("%s pull: %v", puller.name, r)
				}
				checkPulled(t, puller.name, got, want)
			})
		}
	}
}

// TestDockerSchema2 pushes a docker schema2 image (skopeo --format
// v2s2) and pulls it with the other clients: the registry keeps and
// serves the docker media type.
func TestDockerSchema2(t *testing.T) {
	reg := startRegistry(t, "", "", nil)
	layout := filepath.Join(images, "busybox")
	src := readLayout(t, layout)
	s := newSession(t, reg)
	d, r := skopeoPushFormat(t, s, layout, "v2s2/busybox:v1", "v2s2")
	if r.code != 0 {
		t.Fatalf("skopeo push --format v2s2: %v", r)
	}
	want := reg.manifest(t, "v2s2/busybox", "v1")
	const docker2 = "application/vnd.docker.distribution.manifest.v2+json"
	if want.mediaType != docker2 {
		t.Fatalf("manifest media type %q, want %q", want.mediaType, docker2)
	}
	if want.digest != d || want.digest == src.digest {
		t.Errorf("registry serves %s, skopeo pushed %s (the OCI original is %s)", want.digest, d, src.digest)
	}
	if !digestsEqual(want.layers, src.layers) || !digestsEqual(want.diffIDs, src.diffIDs) {
		t.Errorf("v2s2 layers %v (diff IDs %v), the layout's %v (%v)", want.layers, want.diffIDs, src.layers, src.diffIDs)
	}
	for _, c := range []string{"crane", "podman", "berth"} {
		t.Run(c, func(t *testing.T) {
			got, r := clientNamed(c).pull(t, newSession(t, reg), "v2s2/busybox:v1")
			if r.code != 0 {
				t.Fatalf("%s pull: %v", c, r)
			}
			checkPulled(t, c, got, want)
		})
	}
}

// authErr matches what the clients print for a refused request.
var authErr = regexp.MustCompile(`(?i)denied|unauthorized|authentication required|forbidden|401|403`)

// authConfig writes an htpasswd file (alice may pull and push, bob only
// pull) and returns the [auth] section, with a token endpoint at addr
// when token is set.
func authConfig(t *testing.T, addr string, token bool) (string, map[string]string) {
	dir := t.TempDir()
	users := map[string]string{"alice": "alice-secret", "bob": "bob-secret"}
	var ht []byte
	for u, p := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		ht = fmt.Appendf(ht, "%s:%s\n", u, h)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, ht, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`[auth]
htpasswd = %q
[[auth.access]]
repository = "*"
users = ["alice"]
actions = ["pull", "push"]
[[auth.access]]
repository = "*"
users = ["bob"]
actions = ["pull"]
`, htpasswd)
	if token {
		conf += fmt.Sprintf(`[auth.token]
realm = "http://%s/token"
service = "berth-tests"
issuer = "berth-tests-issuer"
key = %q
`, addr, filepath.Join(dir, "token.key"))
	}
	return conf, users
}

func TestBasicAuth(t *testing.T) { testAuth(t, false) }
func TestTokenAuth(t *testing.T) { testAuth(t, true) }

// testAuth pushes as alice, pulls with each client after its login, and
// has bob's pushes refused without a trace in the registry's storage.
func testAuth(t *testing.T, token bool) {
	addr := freeAddr(t)
	conf, users := authConfig(t, addr, token)
	reg := startRegistry(t, addr, conf, nil)
	reg.user, reg.pass = "alice", users["alice"]
	layout := filepath.Join(images, "busybox")
	src := readLayout(t, layout)

	anon := newSession(t, reg)
	if _, r := skopeoPush(t, anon, layout, "alice/busybox:v1"); r.code == 0 || !authErr.MatchString(r.err) {
		t.Fatalf("anonymous push: want an auth error, got %v", r)
	}
	s := newSession(t, reg)
	s.user, s.pass = "alice", users["alice"]
	d, r := skopeoPush(t, s, layout, "alice/busybox:v1")
	if r.code != 0 {
		t.Fatalf("skopeo --creds alice push: %v", r)
	}
	want := checkPushed(t, reg, "skopeo", d, "alice/busybox", "v1", src)

	for _, c := range []string{"crane", "podman", "berth"} {
		t.Run("login-pull-"+c, func(t *testing.T) {
			cl := clientNamed(c)
			s := newSession(t, reg)
			if c != "crane" { // crane auth login keeps credentials unchecked
				if r := cl.login(t, s, "alice", "wrong"); r.code == 0 {
					t.Errorf("%s login with a wrong password succeeded: %v", c, r)
				}
			}
			if r := cl.login(t, s, "alice", users["alice"]); r.code != 0 {
				t.Fatalf("%s login: %v", c, r)
			}
			got, r := cl.pull(t, s, "alice/busybox:v1")
			if r.code != 0 {
				t.Fatalf("%s pull: %v", c, r)
			}
			checkPulled(t, c, got, want)
		})
	}

	// bob may pull but not push: each client's push of an image the
	// registry does not have fails with an auth error and stores nothing.
	denied := filepath.Join(images, "layered")
	dsrc := readLayout(t, denied)
	for _, c := range clients {
		t.Run("denied-push-"+c.name, func(t *testing.T) {
			s := newSession(t, reg)
			if r := c.login(t, s, "bob", users["bob"]); r.code != 0 {
				t.Fatalf("%s login as bob: %v", c.name, r)
			}
			_, r := c.push(t, s, denied, "bob/layered:v1")
			if r.code == 0 || !authErr.MatchString(r.out+r.err) {
				t.Fatalf("%s push as bob: want an auth error, got %v", c.name, r)
			}
			t.Logf("%s push as bob: %s", c.name, strings.TrimSpace(r.err))
			for _, b := range append(dsrc.layers, dsrc.config, dsrc.digest) {
				if _, err := os.Stat(filepath.Join(reg.root, "content", "blobs", b.Algorithm().String(), b.Encoded())); err == nil {
					t.Errorf("%s push as bob stored blob %s", c.name, b)
				}
			}
			for _, dir := range []string{"repositories/bob", "uploads"} {
				ents, _ := os.ReadDir(filepath.Join(reg.root, dir))
				if len(ents) > 0 {
					t.Errorf("%s push as bob left %s: %v", c.name, dir, ents)
				}
			}
			if resp, body := reg.get(t, "/v2/bob/layered/manifests/v1", acceptManifests); resp.StatusCode != 404 {
				t.Errorf("after bob's %s push the registry answers %d %s", c.name, resp.StatusCode, body)
			}
		})
	}
}

// TestTLS serves HTTPS with a certificate of a CA the test makes: skopeo
// refuses it without the CA and pushes and pulls with it (--dest- and
// --src-cert-dir), berth with a certs.d, podman with --cert-dir and
// crane with SSL_CERT_FILE.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	caPEM, certFile, keyFile := makeCerts(t, dir)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	addr := freeAddr(t)
	reg := startRegistry(t, addr, fmt.Sprintf("[tls]\ncert = %q\nkey = %q\n", certFile, keyFile), &tls.Config{RootCAs: pool})

	session := func(t *testing.T) *session {
		s := newSession(t, reg)
		s.certDir = filepath.Join(s.dir, "ca")
		for _, d := range []string{s.certDir, filepath.Join(s.dir, "certs.d", addr)} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, "ca.crt"), caPEM, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	layout := filepath.Join(images, "busybox")
	src := readLayout(t, layout)

	untrusted := newSession(t, reg)
	if _, r := skopeoPush(t, untrusted, layout, "tls/busybox:v1"); r.code == 0 || !regexp.MustCompile(`x509|certificate`).MatchString(r.err) {
		t.Fatalf("skopeo push without the CA: want a certificate error, got %v", r)
	}
	d, r := skopeoPush(t, session(t), layout, "tls/busybox:v1")
	if r.code != 0 {
		t.Fatalf("skopeo push --dest-cert-dir: %v", r)
	}
	want := checkPushed(t, reg, "skopeo", d, "tls/busybox", "v1", src)
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			got, r := c.pull(t, session(t), "tls/busybox:v1")
			if r.code != 0 {
				t.Fatalf("%s pull over TLS: %v", c.name, r)
			}
			checkPulled(t, c.name, got, want)
		})
	}
}

// makeCerts writes a CA and a server certificate for 127.0.0.1 it
// signed; it returns the CA's PEM and the server's cert and key files.
func makeCerts(t *testing.T, dir string) ([]byte, string, string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth tests/registry CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caPEM, certFile, keyFile
}
