package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/content"
	"github.com/berth-project/berth/reference"
)

func manifestUnknown(ref string) *regError {
	return errorf(http.StatusNotFound, CodeManifestUnknown, "manifest unknown to registry", map[string]string{"reference": ref})
}

// resolve returns the digest a manifest reference (tag or digest) names.
func (s *Server) resolve(name, ref string) (digest.Digest, error) {
	if strings.Contains(ref, ":") {
		return digest.Digest(ref), nil
	}
	d, err := s.store.resolveTag(name, ref)
	return d, notFound(err, manifestUnknown(ref))
}

// maxStoredManifest bounds the manifests read to serve them: those
// pushed under a larger MaxManifestSize than today's are still served.
const maxStoredManifest = 64 << 20

// getManifest serves GET and HEAD /v2/<name>/manifests/<reference>.
func (s *Server) getManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	if s.mirror != nil {
		return s.mirrorManifest(w, r, rt)
	}
	d, err := s.resolve(rt.Name, rt.Ref)
	if err != nil {
		return err
	}
	b, mt, err := s.store.readManifest(rt.Name, d, maxStoredManifest)
	if err != nil {
		return notFound(err, manifestUnknown(rt.Ref))
	}
	serveManifest(w, r, d, mt, b)
	return nil
}

// putManifest serves PUT /v2/<name>/manifests/<reference>.
func (s *Server) putManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	max := s.cfg.MaxManifestSize
	if r.ContentLength > max {
		return errorf(http.StatusRequestEntityTooLarge, CodeSizeInvalid, fmt.Sprintf("manifest larger than %d bytes", max), nil)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, CodeSizeInvalid, fmt.Sprintf("manifest larger than %d bytes", max), nil)
		}
		return errorf(http.StatusBadRequest, CodeManifestInvalid, "reading the manifest: "+err.Error(), nil)
	}
	ct := r.Header.Get("Content-Type")
	if ct != "" {
		if t, _, err := mime.ParseMediaType(ct); err == nil {
			ct = t
		}
	}
	m, rerr := parseManifest(b, ct)
	if rerr != nil {
		return rerr
	}
	var d digest.Digest
	if strings.Contains(rt.Ref, ":") {
		want := digest.Digest(rt.Ref)
		if d = want.Algorithm().FromBytes(b); d != want {
			return digestMismatch(want, d)
		}
	} else {
		d = digest.FromBytes(b)
	}
	// Tags to set besides a tag reference: ?tag= on a push by digest.
	var tags []string
	if strings.Contains(rt.Ref, ":") {
		for _, t := range r.URL.Query()["tag"] {
			if !reference.ValidTag(t) {
				return errorf(http.StatusBadRequest, CodeManifestInvalid, "invalid tag", map[string]string{"tag": t})
			}
			tags = append(tags, t)
		}
	} else {
		tags = []string{rt.Ref}
	}
	if !s.cfg.AllowMissingReferences {
		if err := s.checkReferences(rt.Name, m); err != nil {
			return err
		}
	}
	if err := s.store.content.Ingest(r.Context(), "registry-manifest-"+newUploadID(), bytes.NewReader(b), d, int64(len(b))); err != nil {
		return err
	}
	var referrer *ocispec.Descriptor
	var subject digest.Digest
	if m.Subject != nil {
		subject = m.Subject.Digest
		referrer = &ocispec.Descriptor{MediaType: m.MediaType, ArtifactType: m.ArtifactType, Digest: d, Size: int64(len(b)), Annotations: m.Annotations}
	}
	if err := s.store.putManifest(rt.Name, d, m.MediaType, referrer, subject); err != nil {
		return err
	}
	for _, t := range tags {
		if err := s.store.putTag(rt.Name, t, d); err != nil {
			return err
		}
	}
	h := w.Header()
	if strings.Contains(rt.Ref, ":") {
		for _, t := range tags {
			h.Add("OCI-Tag", t)
		}
	}
	h.Set("Location", "/v2/"+rt.Name+"/manifests/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	if subject != "" {
		h.Set("OCI-Subject", subject.String())
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// checkReferences requires the blobs of an image manifest, and the child
// manifests of an index, to be in the repository.
func (s *Server) checkReferences(name string, m *manifest) error {
	for _, b := range m.Blobs {
		if !s.store.hasBlob(name, b.Digest) {
			return errorf(http.StatusBadRequest, CodeManifestBlobUnknown, "manifest references a blob unknown to the repository",
				map[string]string{"digest": b.Digest.String()})
		}
	}
	for _, c := range m.Children {
		if _, err := s.store.manifestType(name, c.Digest); err != nil {
			if errors.Is(err, content.ErrNotFound) {
				return errorf(http.StatusBadRequest, CodeManifestBlobUnknown, "index references a manifest unknown to the repository",
					map[string]string{"digest": c.Digest.String()})
			}
			return err
		}
	}
	return nil
}

// deleteManifest serves DELETE /v2/<name>/manifests/<reference>: by
// digest the manifest and its tags, by tag (where enabled) the tag.
func (s *Server) deleteManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	if !strings.Contains(rt.Ref, ":") {
		if !s.cfg.DeleteTags {
			return errorf(http.StatusMethodNotAllowed, CodeUnsupported, "deleting tags is disabled on this registry", map[string]string{"tag": rt.Ref})
		}
		if err := s.store.deleteTag(rt.Name, rt.Ref); err != nil {
			return notFound(err, manifestUnknown(rt.Ref))
		}
	} else {
		d := digest.Digest(rt.Ref)
		if _, err := s.store.manifestType(rt.Name, d); err != nil {
			return notFound(err, manifestUnknown(rt.Ref))
		}
		var subject digest.Digest
		if b, err := os.ReadFile(s.store.blobPath(d)); err == nil {
			var sm struct {
				Subject *ocispec.Descriptor `json:"subject"`
			}
			if json.Unmarshal(b, &sm) == nil && sm.Subject != nil {
				subject = sm.Subject.Digest
			}
		}
		if subject != "" && subject.Validate() != nil {
			subject = ""
		}
		if err := s.store.deleteManifest(rt.Name, d, subject); err != nil {
			return notFound(err, manifestUnknown(rt.Ref))
		}
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
