package server

import (
	"encoding/json"
	"net/http"
	"regexp"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var linkRe = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

// collect follows a paginated list from path through its Link headers and
// returns the pages.
func collect(t *testing.T, tr *testRegistry, path string, field string) [][]string {
	t.Helper()
	var pages [][]string
	for path != "" && len(pages) < 20 {
		r := tr.do("GET", path, nil)
		r.expect(t, "GET "+path, http.StatusOK)
		var body map[string]json.RawMessage
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatal(err)
		}
		var items []string
		if err := json.Unmarshal(body[field], &items); err != nil || items == nil {
			t.Fatalf("%s: %s is not a list: %s", path, field, r.Body)
		}
		pages = append(pages, items)
		path = ""
		if l := r.Header.Get("Link"); l != "" {
			m := linkRe.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("malformed Link %q", l)
			}
			path = m[1]
		}
	}
	return pages
}

// Tags are listed in lexical order, n at a time, with a Link header to
// the next page; last starts after a tag.
func TestTagsPagination(t *testing.T) {
	tr := newRegistry(t, Config{})
	m := tr.image("tl", "1")
	for _, tag := range []string{"e", "b", "a", "d", "c"} {
		tr.pushManifest("tl", tag, ocispec.MediaTypeImageManifest, m).expect(t, "PUT "+tag, http.StatusCreated)
	}
	pages := collect(t, tr, "/v2/tl/tags/list?n=2", "tags")
	want := [][]string{{"a", "b"}, {"c", "d"}, {"e"}}
	if len(pages) != len(want) {
		t.Fatalf("pages %v, want %v", pages, want)
	}
	for i := range want {
		if len(pages[i]) != len(want[i]) || pages[i][0] != want[i][0] || pages[i][len(pages[i])-1] != want[i][len(want[i])-1] {
			t.Fatalf("pages %v, want %v", pages, want)
		}
	}
	if all := collect(t, tr, "/v2/tl/tags/list", "tags"); len(all) != 1 || len(all[0]) != 5 {
		t.Fatalf("unpaginated list %v", all)
	}
	if p := collect(t, tr, "/v2/tl/tags/list?last=b", "tags"); len(p) != 1 || len(p[0]) != 3 || p[0][0] != "c" {
		t.Fatalf("last=b: %v", p)
	}
	if p := collect(t, tr, "/v2/tl/tags/list?n=0", "tags"); len(p[0]) != 0 {
		t.Fatalf("n=0: %v", p)
	}
	tr.do("GET", "/v2/tl/tags/list?n=-1", nil).expect(t, "n=-1", http.StatusBadRequest)
	tr.do("GET", "/v2/nosuch/tags/list", nil).expect(t, "unknown repository", http.StatusNotFound, CodeNameUnknown)
}

// The catalog lists repositories (nested names too) with pagination.
func TestCatalog(t *testing.T) {
	tr := newRegistry(t, Config{})
	for _, name := range []string{"zeta", "alpha/one", "alpha/one/sub", "beta"} {
		tr.pushBlob(name, []byte(name))
	}
	pages := collect(t, tr, "/v2/_catalog?n=3", "repositories")
	if len(pages) != 2 || len(pages[0]) != 3 || len(pages[1]) != 1 {
		t.Fatalf("catalog pages %v", pages)
	}
	got := append(pages[0], pages[1]...)
	want := []string{"alpha/one", "alpha/one/sub", "beta", "zeta"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("catalog %v, want %v", got, want)
		}
	}
}

// Manifests with a subject are listed by the referrers API, filtered by
// artifactType on request; the push answers with OCI-Subject.
func TestReferrers(t *testing.T) {
	tr := newRegistry(t, Config{})
	m := tr.image("ref", "subject")
	subject := digest.FromBytes(m)
	tr.pushManifest("ref", "v1", ocispec.MediaTypeImageManifest, m).expect(t, "PUT subject", http.StatusCreated)

	empty := tr.pushBlob("ref", []byte("{}"))
	artifact := func(artifactType, note string) []byte {
		a := ocispec.Manifest{Versioned: specsV2, MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType,
			Config:      ocispec.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: empty, Size: 2},
			Layers:      []ocispec.Descriptor{{MediaType: ocispec.MediaTypeEmptyJSON, Digest: empty, Size: 2}},
			Subject:     &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: subject, Size: int64(len(m))},
			Annotations: map[string]string{"note": note}}
		b, _ := json.Marshal(a)
		return b
	}
	sig, sbom := artifact("application/vnd.example.signature", "sig"), artifact("application/vnd.example.sbom", "sbom")
	for _, a := range [][]byte{sig, sbom} {
		r := tr.pushManifest("ref", digest.FromBytes(a).String(), ocispec.MediaTypeImageManifest, a)
		r.expect(t, "PUT referrer", http.StatusCreated)
		if r.Header.Get("OCI-Subject") != subject.String() {
			t.Fatalf("OCI-Subject %q, want %s", r.Header.Get("OCI-Subject"), subject)
		}
	}
	list := func(query string) (ocispec.Index, response) {
		r := tr.do("GET", "/v2/ref/referrers/"+subject.String()+query, nil)
		r.expect(t, "referrers"+query, http.StatusOK)
		if r.Header.Get("Content-Type") != ocispec.MediaTypeImageIndex {
			t.Fatalf("referrers Content-Type %q", r.Header.Get("Content-Type"))
		}
		var idx ocispec.Index
		if err := json.Unmarshal(r.Body, &idx); err != nil {
			t.Fatal(err)
		}
		return idx, r
	}
	idx, r := list("")
	if len(idx.Manifests) != 2 || r.Header.Get("OCI-Filters-Applied") != "" {
		t.Fatalf("referrers %+v", idx)
	}
	idx, r = list("?artifactType=application/vnd.example.sbom")
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != digest.FromBytes(sbom) || r.Header.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("filtered referrers %+v, OCI-Filters-Applied %q", idx, r.Header.Get("OCI-Filters-Applied"))
	}
	d := idx.Manifests[0]
	if d.ArtifactType != "application/vnd.example.sbom" || d.Annotations["note"] != "sbom" || d.Size != int64(len(sbom)) || d.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("referrer descriptor %+v", d)
	}
	tr.do("DELETE", "/v2/ref/manifests/"+digest.FromBytes(sig).String(), nil).expect(t, "DELETE referrer", http.StatusAccepted)
	if idx, _ = list(""); len(idx.Manifests) != 1 {
		t.Fatalf("referrers after DELETE: %+v", idx)
	}
	r = tr.do("GET", "/v2/ref/referrers/"+digest.FromString("none").String(), nil)
	r.expect(t, "referrers of an unknown subject", http.StatusOK)
	var none ocispec.Index
	if json.Unmarshal(r.Body, &none); none.Manifests == nil || len(none.Manifests) != 0 {
		t.Fatalf("empty referrers body %s", r.Body)
	}
	tr.do("GET", "/v2/ref/referrers/sha256:bad", nil).expect(t, "referrers of a bad digest", http.StatusBadRequest, CodeDigestInvalid)
}
