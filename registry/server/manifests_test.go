package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// A manifest pushed by tag is pulled by tag and digest, with its media
// type and digest in the headers.
func TestManifestPushPull(t *testing.T) {
	tr := newRegistry(t, Config{})
	m := tr.image("app", "1")
	d := digest.FromBytes(m)
	r := tr.pushManifest("app", "v1", ocispec.MediaTypeImageManifest, m)
	r.expect(t, "PUT manifest", http.StatusCreated)
	if r.Header.Get("Location") != "/v2/app/manifests/"+d.String() || r.Header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("PUT headers %v", r.Header)
	}
	if r.Header.Get("OCI-Subject") != "" {
		t.Fatal("OCI-Subject on a manifest without subject")
	}
	for _, ref := range []string{"v1", d.String()} {
		r = tr.do("GET", "/v2/app/manifests/"+ref, nil, "Accept", ocispec.MediaTypeImageManifest)
		r.expect(t, "GET manifest "+ref, http.StatusOK)
		if !bytes.Equal(r.Body, m) || r.Header.Get("Content-Type") != ocispec.MediaTypeImageManifest || r.Header.Get("Docker-Content-Digest") != d.String() {
			t.Fatalf("GET %s: Content-Type %q digest %q body %q", ref, r.Header.Get("Content-Type"), r.Header.Get("Docker-Content-Digest"), r.Body)
		}
		r = tr.do("HEAD", "/v2/app/manifests/"+ref, nil)
		r.expect(t, "HEAD manifest "+ref, http.StatusOK)
		if r.Header.Get("Docker-Content-Digest") != d.String() || r.Header.Get("Content-Length") != itoa(len(m)) {
			t.Fatalf("HEAD %s headers %v", ref, r.Header)
		}
	}
	tr.do("GET", "/v2/app/manifests/nope", nil).expect(t, "unknown tag", http.StatusNotFound, CodeManifestUnknown)
	tr.do("GET", "/v2/app/manifests/"+digest.FromString("x").String(), nil).expect(t, "unknown digest", http.StatusNotFound, CodeManifestUnknown)
	tr.do("GET", "/v2/elsewhere/manifests/v1", nil).expect(t, "other repository", http.StatusNotFound, CodeManifestUnknown)

	// By digest; a digest that does not match the body is refused.
	tr.pushManifest("app", d.String(), ocispec.MediaTypeImageManifest, m).expect(t, "PUT by digest", http.StatusCreated)
	tr.pushManifest("app", digest.FromString("y").String(), ocispec.MediaTypeImageManifest, m).expect(t, "PUT by wrong digest", http.StatusBadRequest, CodeDigestInvalid)
}

func itoa(n int) string { return strconv.Itoa(n) }

func jsonInt(n int) string { return strconv.Itoa(n) }

var specsV2 = specs.Versioned{SchemaVersion: 2}

// Docker schema2 manifests and manifest lists are accepted and served
// with their media types; schema1 is refused.
func TestDockerSchema2(t *testing.T) {
	tr := newRegistry(t, Config{})
	cfg := []byte(`{"os":"linux"}`)
	layer := []byte("docker layer")
	m := []byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifest + `","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":` + jsonInt(len(cfg)) + `,"digest":"` + tr.pushBlob("dk", cfg).String() + `"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":` + jsonInt(len(layer)) + `,"digest":"` + tr.pushBlob("dk", layer).String() + `"}]}`)
	tr.pushManifest("dk", "latest", MediaTypeDockerManifest, m).expect(t, "PUT schema2", http.StatusCreated)
	if r := tr.do("GET", "/v2/dk/manifests/latest", nil); r.Header.Get("Content-Type") != MediaTypeDockerManifest {
		t.Fatalf("schema2 Content-Type %q", r.Header.Get("Content-Type"))
	}
	list := []byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeDockerList + `","manifests":[{"mediaType":"` + MediaTypeDockerManifest + `","size":` + jsonInt(len(m)) + `,"digest":"` + digest.FromBytes(m).String() + `","platform":{"os":"linux","architecture":"amd64"}}]}`)
	tr.pushManifest("dk", "list", MediaTypeDockerList, list).expect(t, "PUT manifest list", http.StatusCreated)
	if r := tr.do("GET", "/v2/dk/manifests/list", nil); r.Header.Get("Content-Type") != MediaTypeDockerList {
		t.Fatalf("list Content-Type %q", r.Header.Get("Content-Type"))
	}
	s1 := []byte(`{"schemaVersion":1,"name":"dk","tag":"old","fsLayers":[],"history":[]}`)
	tr.pushManifest("dk", "old", "application/vnd.docker.distribution.manifest.v1+prettyjws", s1).expect(t, "PUT schema1", http.StatusBadRequest, CodeManifestInvalid)
}

// An index requires its child manifests in the repository.
func TestIndex(t *testing.T) {
	tr := newRegistry(t, Config{})
	m := tr.image("idx", "child")
	idx := func(d digest.Digest, n int) []byte {
		b, _ := json.Marshal(ocispec.Index{Versioned: specsV2, MediaType: ocispec.MediaTypeImageIndex,
			Manifests: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: int64(n)}}})
		return b
	}
	tr.pushManifest("idx", "multi", ocispec.MediaTypeImageIndex, idx(digest.FromBytes(m), len(m))).expect(t, "index before its child", http.StatusBadRequest, CodeManifestBlobUnknown)
	tr.pushManifest("idx", digest.FromBytes(m).String(), ocispec.MediaTypeImageManifest, m).expect(t, "child", http.StatusCreated)
	tr.pushManifest("idx", "multi", ocispec.MediaTypeImageIndex, idx(digest.FromBytes(m), len(m))).expect(t, "index", http.StatusCreated)
}

// A manifest referencing a blob the repository does not hold is
// MANIFEST_BLOB_UNKNOWN, unless missing references are allowed.
func TestManifestMissingBlob(t *testing.T) {
	missing := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"` + digest.FromString("{}").String() + `"},"layers":[]}`
	tr := newRegistry(t, Config{})
	r := tr.pushManifest("mb", "t", ocispec.MediaTypeImageManifest, []byte(missing))
	r.expect(t, "missing config blob", http.StatusBadRequest, CodeManifestBlobUnknown)
	if !strings.Contains(string(r.Body), digest.FromString("{}").String()) {
		t.Fatalf("error does not name the missing digest: %s", r.Body)
	}
	tr.do("GET", "/v2/mb/manifests/t", nil).expect(t, "refused manifest", http.StatusNotFound, CodeManifestUnknown)

	tr2 := newRegistry(t, Config{AllowMissingReferences: true})
	tr2.pushManifest("mb", "t", ocispec.MediaTypeImageManifest, []byte(missing)).expect(t, "missing blob allowed", http.StatusCreated)
}

// Manifests larger than MaxManifestSize get 413 SIZE_INVALID.
func TestManifestTooLarge(t *testing.T) {
	tr := newRegistry(t, Config{MaxManifestSize: 1024, AllowMissingReferences: true})
	big := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"a/b","size":1,"digest":"` + digest.FromString("c").String() + `"},"annotations":{"x":"` + strings.Repeat("a", 2000) + `"}}`)
	tr.pushManifest("big", "t", ocispec.MediaTypeImageManifest, big).expect(t, "oversized manifest", http.StatusRequestEntityTooLarge, CodeSizeInvalid)
	// Without a Content-Length (chunked request) the cap holds too.
	req, _ := http.NewRequest("PUT", tr.url+"/v2/big/manifests/t", struct{ *bytes.Reader }{bytes.NewReader(big)})
	req.Header.Set("Content-Type", ocispec.MediaTypeImageManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked oversized manifest: %d", resp.StatusCode)
	}
	tr.do("GET", "/v2/big/manifests/t", nil).expect(t, "GET refused", http.StatusNotFound, CodeManifestUnknown)
}

// Malformed manifests are MANIFEST_INVALID.
func TestManifestInvalid(t *testing.T) {
	tr := newRegistry(t, Config{AllowMissingReferences: true})
	for name, body := range map[string]string{
		"not json":          `not json`,
		"no schemaVersion":  `{"mediaType":"application/vnd.oci.image.manifest.v1+json"}`,
		"schemaVersion 3":   `{"schemaVersion":3,"config":{}}`,
		"bad config digest": `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"a/b","size":1,"digest":"sha256:nope"}}`,
		"unknown type":      `{"schemaVersion":2,"mediaType":"text/plain"}`,
		"no config":         `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`,
		"trailing data":     `{"schemaVersion":2,"manifests":[]} {}`,
	} {
		tr.pushManifest("inv", "t", ocispec.MediaTypeImageManifest, []byte(body)).expect(t, name, http.StatusBadRequest, CodeManifestInvalid)
	}
}

// DELETE by digest removes a manifest and its tags.
func TestManifestDeleteByDigest(t *testing.T) {
	tr := newRegistry(t, Config{})
	m := tr.image("dm", "1")
	d := digest.FromBytes(m)
	tr.pushManifest("dm", "v1", ocispec.MediaTypeImageManifest, m).expect(t, "PUT", http.StatusCreated)
	tr.do("DELETE", "/v2/dm/manifests/"+d.String(), nil).expect(t, "DELETE", http.StatusAccepted)
	tr.do("GET", "/v2/dm/manifests/"+d.String(), nil).expect(t, "GET by digest", http.StatusNotFound, CodeManifestUnknown)
	tr.do("GET", "/v2/dm/manifests/v1", nil).expect(t, "GET by tag", http.StatusNotFound, CodeManifestUnknown)
	tr.do("DELETE", "/v2/dm/manifests/"+d.String(), nil).expect(t, "DELETE again", http.StatusNotFound, CodeManifestUnknown)
}

// DELETE by tag answers 405 UNSUPPORTED unless DeleteTags is set; then it
// removes the tag and keeps the manifest.
func TestManifestDeleteByTag(t *testing.T) {
	off := newRegistry(t, Config{})
	m := off.image("dt", "1")
	off.pushManifest("dt", "v1", ocispec.MediaTypeImageManifest, m).expect(t, "PUT", http.StatusCreated)
	off.do("DELETE", "/v2/dt/manifests/v1", nil).expect(t, "DELETE tag, disabled", http.StatusMethodNotAllowed, CodeUnsupported)
	off.do("GET", "/v2/dt/manifests/v1", nil).expect(t, "tag after refused DELETE", http.StatusOK)

	on := newRegistry(t, Config{DeleteTags: true})
	m = on.image("dt", "1")
	d := digest.FromBytes(m)
	on.pushManifest("dt", "v1", ocispec.MediaTypeImageManifest, m).expect(t, "PUT", http.StatusCreated)
	on.pushManifest("dt", "v2", ocispec.MediaTypeImageManifest, m).expect(t, "PUT v2", http.StatusCreated)
	on.do("DELETE", "/v2/dt/manifests/v1", nil).expect(t, "DELETE tag", http.StatusAccepted)
	on.do("GET", "/v2/dt/manifests/v1", nil).expect(t, "deleted tag", http.StatusNotFound, CodeManifestUnknown)
	on.do("GET", "/v2/dt/manifests/v2", nil).expect(t, "other tag", http.StatusOK)
	on.do("GET", "/v2/dt/manifests/"+d.String(), nil).expect(t, "manifest by digest", http.StatusOK)
	on.do("DELETE", "/v2/dt/manifests/v1", nil).expect(t, "DELETE deleted tag", http.StatusNotFound, CodeManifestUnknown)
}

// A push by digest may set tags with ?tag=, answered with OCI-Tag.
func TestManifestPushByDigestWithTags(t *testing.T) {
	tr := newRegistry(t, Config{})
	m := tr.image("bytag", "1")
	d := digest.FromBytes(m)
	r := tr.do("PUT", "/v2/bytag/manifests/"+d.String()+"?tag=a&tag=b", m, "Content-Type", ocispec.MediaTypeImageManifest)
	r.expect(t, "PUT with tags", http.StatusCreated)
	if got := r.Header.Values("OCI-Tag"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("OCI-Tag %v", got)
	}
	for _, tag := range []string{"a", "b"} {
		if r := tr.do("HEAD", "/v2/bytag/manifests/"+tag, nil); r.Status != http.StatusOK || r.Header.Get("Docker-Content-Digest") != d.String() {
			t.Fatalf("tag %s: %d %s", tag, r.Status, r.Header.Get("Docker-Content-Digest"))
		}
	}
	tr.do("PUT", "/v2/bytag/manifests/"+d.String()+"?tag=.bad", m, "Content-Type", ocispec.MediaTypeImageManifest).expect(t, "bad tag", http.StatusBadRequest, CodeManifestInvalid)
}
