package server

import (
	"strings"
	"testing"

	"github.com/berth-project/berth/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FuzzRoute checks that parseRoute never panics, that every accepted
// route has a name matching the spec's expression and a reference of the
// right kind, and that the route rebuilds the path it came from.
func FuzzRoute(f *testing.F) {
	d := digest.FromString("seed").String()
	for _, seed := range []string{
		"/v2/", "/v2", "/v2/_catalog", "/v2/library/busybox/manifests/latest", "/v2/a/b/c/manifests/" + d,
		"/v2/a/blobs/" + d, "/v2/a/blobs/uploads/", "/v2/a/blobs/uploads", "/v2/a/blobs/uploads/0123456789abcdef0123456789abcdef",
		"/v2/a/tags/list", "/v2/a/referrers/" + d, "/v2/blobs/blobs/uploads/", "/v2/manifests/manifests/manifests",
		"/v2/a//b/tags/list", "/v2/A/tags/list", "/v2/a/manifests/", "/v2/../etc/manifests/x", "/v2/a/blobs/sha256:",
		"/v2/tags/list", "/v3/", "", "/",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, err := parseRoute(path)
		if err != nil || rt.Kind == routeUnknown {
			return
		}
		switch rt.Kind {
		case routeBase, routeCatalog:
			return
		}
		if !reference.ValidRepository(rt.Name) || len(rt.Name) > maxNameLength {
			t.Fatalf("%q: accepted name %q", path, rt.Name)
		}
		for _, c := range strings.Split(rt.Name, "/") {
			if c == "." || c == ".." || strings.HasPrefix(c, "_") {
				t.Fatalf("%q: name component %q", path, c)
			}
		}
		var rebuilt string
		switch rt.Kind {
		case routeManifest:
			if strings.Contains(rt.Ref, ":") {
				if _, err := digest.Parse(rt.Ref); err != nil {
					t.Fatalf("%q: accepted digest %q", path, rt.Ref)
				}
			} else if !reference.ValidTag(rt.Ref) {
				t.Fatalf("%q: accepted tag %q", path, rt.Ref)
			}
			rebuilt = "/v2/" + rt.Name + "/manifests/" + rt.Ref
		case routeBlob, routeReferrers:
			if _, err := digest.Parse(rt.Ref); err != nil {
				t.Fatalf("%q: accepted digest %q", path, rt.Ref)
			}
			rebuilt = "/v2/" + rt.Name + "/" + map[routeKind]string{routeBlob: "blobs", routeReferrers: "referrers"}[rt.Kind] + "/" + rt.Ref
		case routeUpload:
			if !validUploadID(rt.Ref) {
				t.Fatalf("%q: accepted upload id %q", path, rt.Ref)
			}
			rebuilt = "/v2/" + rt.Name + "/blobs/uploads/" + rt.Ref
		case routeUploads:
			rebuilt = "/v2/" + rt.Name + "/blobs/uploads"
			if strings.HasSuffix(path, "/") {
				rebuilt += "/"
			}
		case routeTags:
			rebuilt = "/v2/" + rt.Name + "/tags/list"
		}
		if rebuilt != path {
			t.Fatalf("%q parsed as %+v, which is %q", path, rt, rebuilt)
		}
	})
}

// FuzzManifest checks that parseManifest never panics and that what it
// accepts is one of the supported kinds with valid descriptors.
func FuzzManifest(f *testing.F) {
	d := digest.FromString("seed").String()
	for _, seed := range []string{
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"a/b","size":2,"digest":"` + d + `"},"layers":[{"mediaType":"l","size":1,"digest":"` + d + `"}]}`,
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"m","size":1,"digest":"` + d + `"}]}`,
		`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"c","size":1,"digest":"` + d + `"},"layers":[]}`,
		`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}`,
		`{"schemaVersion":2,"config":{"mediaType":"a/b","size":2,"digest":"` + d + `"},"subject":{"mediaType":"m","size":3,"digest":"` + d + `"}}`,
		`{"schemaVersion":1,"fsLayers":[]}`, `{}`, `[]`, `null`, `{"schemaVersion":2,"manifests":null}`,
		`{"schemaVersion":2,"config":{"mediaType":"a","size":-1,"digest":"` + d + `"}}`,
	} {
		f.Add([]byte(seed), "")
		f.Add([]byte(seed), MediaTypeOCIManifest)
	}
	f.Fuzz(func(t *testing.T, b []byte, contentType string) {
		m, err := parseManifest(b, contentType)
		if err != nil {
			if err.Code != CodeManifestInvalid || err.Status != 400 {
				t.Fatalf("refused with %d %s", err.Status, err.Code)
			}
			return
		}
		switch m.MediaType {
		case MediaTypeOCIManifest, MediaTypeDockerManifest:
			if m.Index || len(m.Blobs) == 0 || len(m.Children) != 0 {
				t.Fatalf("image manifest parsed as %+v", m)
			}
		case MediaTypeOCIIndex, MediaTypeDockerList:
			if !m.Index || len(m.Blobs) != 0 {
				t.Fatalf("index parsed as %+v", m)
			}
		default:
			t.Fatalf("accepted media type %q", m.MediaType)
		}
		for _, desc := range append(append([]ociDesc{}, m.Blobs...), m.Children...) {
			if desc.Digest.Validate() != nil || desc.Size < 0 || desc.MediaType == "" {
				t.Fatalf("accepted descriptor %+v", desc)
			}
		}
		if m.Subject != nil && m.Subject.Digest.Validate() != nil {
			t.Fatalf("accepted subject %+v", m.Subject)
		}
	})
}

type ociDesc = ocispec.Descriptor
