package testregistry_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/testimage"
	"github.com/berth-project/berth/internal/testregistry"
)

// busybox builds the busybox test layout and returns its path and the
// digest of its manifest.
func busybox(t *testing.T) (string, digest.Digest) {
	t.Helper()
	layout := filepath.Join(testimage.Build(t, "busybox"), "busybox")
	data, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 {
		t.Fatalf("busybox layout has %d manifests, want 1", len(idx.Manifests))
	}
	return layout, idx.Manifests[0].Digest
}

// inspect runs skopeo inspect --raw on ref with flags.
func inspect(t *testing.T, r *testregistry.Registry, ref string, flags ...string) ([]byte, error) {
	t.Helper()
	args := append([]string{"inspect", "--raw"}, flags...)
	return testregistry.Skopeo(t, append(args, r.Ref(ref))...)
}

func TestPlain(t *testing.T) {
	layout, want := busybox(t)
	r := testregistry.Start(t, testregistry.Options{})
	if !strings.HasPrefix(r.Host, "127.0.0.1:") || r.CAFile != "" || r.CertsDir != "" || r.Username != "" {
		t.Fatalf("plain registry: Host %q CAFile %q CertsDir %q Username %q", r.Host, r.CAFile, r.CertsDir, r.Username)
	}
	r.Seed(t, layout, "busybox:latest")
	if got := r.ManifestDigest(t, "busybox:latest"); got != want {
		t.Errorf("ManifestDigest = %s, want the layout's %s (digests not preserved)", got, want)
	}

	// The registry answers plain HTTP without auth and keeps the blobs
	// in Dir.
	req, err := http.NewRequest(http.MethodGet, r.URL()+"/v2/busybox/manifests/latest", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || digest.FromBytes(body) != want {
		t.Errorf("GET manifest: %s, digest %s, want 200 and %s", resp.Status, digest.FromBytes(body), want)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, "docker", "registry", "v2", "repositories", "busybox")); err != nil {
		t.Errorf("repository not under Dir: %v", err)
	}
}

func TestTLSBasic(t *testing.T) {
	layout, want := busybox(t)
	r := testregistry.Start(t, testregistry.Options{TLS: true, Basic: true})
	if r.Username != "berth" || r.Password == "" {
		t.Fatalf("credentials %q/%q", r.Username, r.Password)
	}
	ca, err := os.ReadFile(r.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if certsD, err := os.ReadFile(filepath.Join(r.CertsDir, r.Host, "ca.crt")); err != nil || !bytes.Equal(certsD, ca) {
		t.Fatalf("CertsDir/%s/ca.crt: %v, equal to CAFile: %v", r.Host, err, bytes.Equal(certsD, ca))
	}
	r.Seed(t, layout, "busybox:latest")

	certDir := filepath.Join(r.CertsDir, r.Host)
	creds := r.Username + ":" + r.Password
	out, err := inspect(t, r, "busybox:latest", "--cert-dir", certDir, "--creds", creds)
	if err != nil {
		t.Fatalf("inspect with CA and credentials: %v", err)
	}
	if digest.FromBytes(out) != want {
		t.Errorf("manifest digest %s, want %s", digest.FromBytes(out), want)
	}
	if _, err := inspect(t, r, "busybox:latest", "--cert-dir", certDir); err == nil {
		t.Error("inspect without credentials succeeded")
	} else if !strings.Contains(strings.ToLower(err.Error()), "unauthorized") &&
		!strings.Contains(strings.ToLower(err.Error()), "authentication required") {
		t.Errorf("inspect without credentials: want an auth error, got %v", err)
	}
	if _, err := inspect(t, r, "busybox:latest", "--cert-dir", certDir, "--creds", r.Username+":wrong"); err == nil {
		t.Error("inspect with a wrong password succeeded")
	}
	// Without the CA, the certificate is not trusted.
	if _, err := inspect(t, r, "busybox:latest", "--tls-verify=true", "--creds", creds); err == nil ||
		!strings.Contains(err.Error(), "certificate") {
		t.Errorf("inspect without the CA: want a certificate error, got %v", err)
	}

	// Go's client agrees: the CA verifies the server for 127.0.0.1, and
	// /v2/ wants basic auth.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(r.URL() + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("GET /v2/ without auth: %s, WWW-Authenticate %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestBasicPlainHTTP(t *testing.T) {
	layout, want := busybox(t)
	r := testregistry.Start(t, testregistry.Options{Basic: true})
	r.Seed(t, layout, "busybox:v1")
	if got := r.ManifestDigest(t, "busybox:v1"); got != want {
		t.Errorf("ManifestDigest = %s, want %s", got, want)
	}
	if _, err := inspect(t, r, "busybox:v1", "--tls-verify=false"); err == nil {
		t.Error("inspect without credentials succeeded")
	}
}

// scopes returns the scopes of token requests answered with status.
func scopes(reqs []testregistry.TokenRequest, status int, basic bool) []string {
	var out []string
	for _, q := range reqs {
		if q.Status == status && q.BasicAuth == basic {
			out = append(out, q.Scopes...)
		}
	}
	return out
}

func TestToken(t *testing.T) {
	layout, want := busybox(t)
	r := testregistry.Start(t, testregistry.Options{TLS: true, Token: true, TokenTTL: 30 * time.Second})
	r.Seed(t, layout, "busybox:latest")
	if s := scopes(r.TokenRequests(), http.StatusOK, true); !slices.Contains(s, "repository:busybox:pull,push") {
		t.Errorf("seeding asked for scopes %q, want repository:busybox:pull,push", s)
	}

	certDir := filepath.Join(r.CertsDir, r.Host)
	before := len(r.TokenRequests())
	out, err := inspect(t, r, "busybox:latest", "--cert-dir", certDir, "--creds", r.Username+":"+r.Password)
	if err != nil {
		t.Fatalf("inspect with credentials: %v", err)
	}
	if digest.FromBytes(out) != want {
		t.Errorf("manifest digest %s, want %s", digest.FromBytes(out), want)
	}
	reqs := r.TokenRequests()[before:]
	if s := scopes(reqs, http.StatusOK, true); !slices.Contains(s, "repository:busybox:pull") {
		t.Errorf("inspect asked for %+v, want a granted scope repository:busybox:pull with basic auth", reqs)
	}
	for _, q := range reqs {
		if q.Status == http.StatusOK && (q.Service != "berth-testregistry" || q.User != "berth") {
			t.Errorf("token request service %q user %q", q.Service, q.User)
		}
	}

	before = len(r.TokenRequests())
	if _, err := inspect(t, r, "busybox:latest", "--cert-dir", certDir, "--no-creds"); err == nil {
		t.Error("anonymous inspect succeeded without AnonymousPull")
	}
	if s := scopes(r.TokenRequests()[before:], http.StatusUnauthorized, false); !slices.Contains(s, "repository:busybox:pull") {
		t.Errorf("anonymous inspect: token requests %+v, want a refused anonymous repository:busybox:pull", r.TokenRequests()[before:])
	}

	// The registry checks the token: a good one reads the manifest, one
	// with a broken signature does not, and exp is iat+TokenTTL.
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(r.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	realm := tokenRealm(t, client, r.URL()+"/v2/")
	token := fetchToken(t, client, realm+"?service=berth-testregistry&scope=repository:busybox:pull", r.Username, r.Password)
	var claims struct {
		Exp, Iat int64
		Aud      string
		Access   []struct {
			Type, Name string
			Actions    []string
		}
	}
	part := strings.Split(token, ".")[1]
	if raw, err := base64.RawURLEncoding.DecodeString(part); err != nil || json.Unmarshal(raw, &claims) != nil {
		t.Fatalf("token claims %q: %v", part, err)
	}
	if claims.Exp-claims.Iat != 30 || claims.Aud != "berth-testregistry" || len(claims.Access) != 1 ||
		claims.Access[0].Name != "busybox" || !slices.Equal(claims.Access[0].Actions, []string{"pull"}) {
		t.Errorf("claims %+v: want 30s lifetime, aud berth-testregistry, pull on busybox", claims)
	}
	manifest := r.URL() + "/v2/busybox/manifests/latest"
	accept := ocispec.MediaTypeImageManifest
	if status := getWithToken(t, client, manifest, token, accept); status != http.StatusOK {
		t.Errorf("GET manifest with token: %d", status)
	}
	sig := []byte(token[strings.LastIndex(token, ".")+1:])
	sig[len(sig)/2] ^= 1
	bad := token[:strings.LastIndex(token, ".")+1] + string(sig)
	if status := getWithToken(t, client, manifest, bad, accept); status != http.StatusUnauthorized {
		t.Errorf("GET manifest with a broken token signature: %d, want 401", status)
	}
}

func TestTokenAnonymousPull(t *testing.T) {
	layout, want := busybox(t)
	r := testregistry.Start(t, testregistry.Options{Token: true, AnonymousPull: true})
	if r.CAFile != "" {
		t.Errorf("CAFile %q without TLS", r.CAFile)
	}
	r.Seed(t, layout, "busybox:latest")

	before := len(r.TokenRequests())
	out, err := inspect(t, r, "busybox:latest", "--tls-verify=false", "--no-creds")
	if err != nil {
		t.Fatalf("anonymous inspect with AnonymousPull: %v", err)
	}
	if digest.FromBytes(out) != want {
		t.Errorf("manifest digest %s, want %s", digest.FromBytes(out), want)
	}
	var granted []string
	for _, q := range r.TokenRequests()[before:] {
		if !q.BasicAuth && q.Status == http.StatusOK {
			granted = append(granted, q.Granted...)
		}
	}
	if !slices.Contains(granted, "repository:busybox:pull") {
		t.Errorf("anonymous grants %q, want repository:busybox:pull", granted)
	}

	// Anonymous push gets a pull-only token, which the registry refuses.
	before = len(r.TokenRequests())
	_, err = testregistry.Skopeo(t, "copy", "--quiet", "--dest-tls-verify=false", "--dest-no-creds", "oci:"+layout, r.Ref("other:latest"))
	if err == nil {
		t.Error("anonymous push succeeded")
	}
	for _, q := range r.TokenRequests()[before:] {
		for _, g := range q.Granted {
			if strings.Contains(g, "push") {
				t.Errorf("anonymous request %+v was granted push", q)
			}
		}
	}
}

// tokenRealm returns the realm of url's Bearer challenge.
func tokenRealm(t *testing.T, client *http.Client, url string) string {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ch := resp.Header.Get("WWW-Authenticate")
	_, rest, ok := strings.Cut(ch, `realm="`)
	realm, _, ok2 := strings.Cut(rest, `"`)
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(ch, "Bearer ") || !ok || !ok2 {
		t.Fatalf("GET %s: %s, challenge %q", url, resp.Status, ch)
	}
	return realm
}

func fetchToken(t *testing.T, client *http.Client, url, user, pass string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.Token == "" {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	if body.ExpiresIn != 30 {
		t.Errorf("expires_in %d, want 30", body.ExpiresIn)
	}
	return body.Token
}

func getWithToken(t *testing.T, client *http.Client, url, token, accept string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", accept)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// seededBlob starts a plain registry with busybox and returns it with the
// URL path and digest of busybox's layer blob and its content.
func seededBlob(t *testing.T) (*testregistry.Registry, string, digest.Digest, []byte) {
	t.Helper()
	layout, _ := busybox(t)
	r := testregistry.Start(t, testregistry.Options{})
	r.Seed(t, layout, "busybox:latest")
	path, _ := testimage.Layer(t, layout, 0)
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, filepath.Base(path))
	return r, "/v2/busybox/blobs/" + d.String(), d, content
}

func get(t *testing.T, url, rangeHeader string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rangeHeader != "" {
		req.Header.Set("Range", rangeHeader)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestProxy(t *testing.T) {
	r, blobPath, d, content := seededBlob(t)
	size := int64(len(content))
	if size < 4096 {
		t.Fatalf("busybox layer is %d bytes; too small to cut", size)
	}

	t.Run("cut and resume", func(t *testing.T) {
		const cutAt = 1000
		p := testregistry.StartProxy(t, r.Host, testregistry.ProxyRule{CutBlobAfter: cutAt})
		resp, first, err := get(t, "http://"+p.Host+blobPath, "")
		if err == nil || resp.StatusCode != http.StatusOK || int64(len(first)) >= size {
			t.Fatalf("first GET: %s, %d of %d bytes, err %v; want 200 cut short with an error", resp.Status, len(first), size, err)
		}
		if len(first) != cutAt {
			t.Errorf("first GET got %d bytes, want %d", len(first), cutAt)
		}
		rg := fmt.Sprintf("bytes=%d-", len(first))
		resp, rest, err := get(t, "http://"+p.Host+blobPath, rg)
		if err != nil || resp.StatusCode != http.StatusPartialContent {
			t.Fatalf("GET with Range %s: %s, %v; want 206", rg, resp.Status, err)
		}
		if got := digest.FromBytes(append(first, rest...)); got != d {
			t.Errorf("resumed blob digest %s (%d bytes), want %s (%d bytes)", got, len(first)+len(rest), d, size)
		}
		if !slices.Contains(p.Requests(), "GET "+blobPath+" Range: "+rg) {
			t.Errorf("proxy requests %q lack the ranged GET", p.Requests())
		}
		if cut, _, _ := p.Faults(); cut != 1 {
			t.Errorf("%d cuts, want 1", cut)
		}
		// Only the first answer is cut.
		if _, body, err := get(t, "http://"+p.Host+blobPath, ""); err != nil || digest.FromBytes(body) != d {
			t.Errorf("third GET: %d bytes, %v; want the whole blob", len(body), err)
		}
	})

	t.Run("status", func(t *testing.T) {
		p := testregistry.StartProxy(t, r.Host, testregistry.ProxyRule{Status: http.StatusServiceUnavailable, StatusTimes: 2, RetryAfter: "1"})
		for i := range 2 {
			resp, _, err := get(t, "http://"+p.Host+blobPath, "")
			if err != nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
				t.Fatalf("GET %d: %s, Retry-After %q, %v; want 503 with Retry-After 1", i, resp.Status, resp.Header.Get("Retry-After"), err)
			}
		}
		resp, body, err := get(t, "http://"+p.Host+blobPath, "")
		if err != nil || resp.StatusCode != http.StatusOK || digest.FromBytes(body) != d {
			t.Errorf("third GET: %s, %d bytes, %v; want the whole blob", resp.Status, len(body), err)
		}
		// Non-blob requests pass through.
		resp, _, err = get(t, "http://"+p.Host+"/v2/", "")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("GET /v2/ through the proxy: %v %v", resp.Status, err)
		}
	})

	t.Run("corrupt", func(t *testing.T) {
		p := testregistry.StartProxy(t, r.Host, testregistry.ProxyRule{CorruptBlob: true})
		resp, body, err := get(t, "http://"+p.Host+blobPath, "")
		if err != nil || resp.StatusCode != http.StatusOK || int64(len(body)) != size {
			t.Fatalf("GET: %s, %d of %d bytes, %v", resp.Status, len(body), size, err)
		}
		if digest.FromBytes(body) == d {
			t.Error("corrupted blob still matches its digest")
		}
		diff := 0
		for i := range body {
			if body[i] != content[i] {
				diff++
			}
		}
		if diff != 1 {
			t.Errorf("%d bytes differ, want 1", diff)
		}
	})
}
