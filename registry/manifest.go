package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/image"
)

// manifestAccept is the Accept header of manifest requests: every kind of
// image manifest and index berth reads, so that a registry does not
// convert them; schema1 last, only to name it in the error.
var manifestAccept = strings.Join([]string{
	image.MediaTypeOCIIndex, image.MediaTypeOCIManifest,
	image.MediaTypeDockerManifestList, image.MediaTypeDockerManifest,
	image.MediaTypeDockerSchema1Signed + ";q=0.1", image.MediaTypeDockerSchema1 + ";q=0.1",
}, ", ")

// Manifest fetches the manifest or index object (a tag or a digest) names,
// trying the repository's endpoints in order. It reads at most
// image.MaxManifestSize bytes and checks the content against the digest
// asked for, or else against the Docker-Content-Digest the registry sent.
// The descriptor's media type is the document's own, or the registry's
// Content-Type when the document does not say.
func (r *Repository) Manifest(ctx context.Context, object string) (ocispec.Descriptor, []byte, error) {
	var errs []error
	for _, ep := range r.endpoints {
		desc, data, err := r.manifest(ctx, ep, object)
		if err == nil {
			return desc, data, nil
		}
		if ctx.Err() != nil {
			return ocispec.Descriptor{}, nil, ctx.Err()
		}
		if !ep.Mirror {
			errs = append(errs, err)
			break
		}
		errs = append(errs, fmt.Errorf("mirror %s: %w", ep.Host, err))
	}
	return ocispec.Descriptor{}, nil, errors.Join(errs...)
}

func (r *Repository) manifest(ctx context.Context, ep Endpoint, object string) (ocispec.Descriptor, []byte, error) {
	want, err := digest.Parse(object)
	if err != nil {
		want = "" // a tag
	}
	resp, err := r.do(ctx, ep, &request{method: http.MethodGet, path: "manifests/" + object,
		hdr: http.Header{"Accept": {manifestAccept}}})
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ocispec.Descriptor{}, nil, newError(resp)
	}
	if resp.ContentLength > image.MaxManifestSize {
		return ocispec.Descriptor{}, nil, fmt.Errorf("manifest %s: %d bytes, more than the limit of %d", object, resp.ContentLength, image.MaxManifestSize)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, image.MaxManifestSize+1))
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("manifest %s: %w", object, err)
	}
	if int64(len(data)) > image.MaxManifestSize {
		return ocispec.Descriptor{}, nil, fmt.Errorf("manifest %s: more than the limit of %d bytes", object, image.MaxManifestSize)
	}
	if resp.ContentLength >= 0 && int64(len(data)) != resp.ContentLength {
		return ocispec.Descriptor{}, nil, fmt.Errorf("manifest %s: got %d bytes of %d", object, len(data), resp.ContentLength)
	}
	alg := digest.Canonical
	if want != "" {
		alg = want.Algorithm()
	}
	got := alg.FromBytes(data)
	if want != "" && got != want {
		return ocispec.Descriptor{}, nil, fmt.Errorf("manifest %s: %w: the registry sent content with digest %s", object, image.ErrDigestMismatch, got)
	}
	if h := resp.Header.Get("Docker-Content-Digest"); want == "" && h != "" {
		if hd, err := digest.Parse(h); err == nil && hd.Algorithm().Available() {
			if hd.Algorithm().FromBytes(data) != hd {
				return ocispec.Descriptor{}, nil, fmt.Errorf("manifest %s: %w: the registry says its digest is %s, its content has %s", object, image.ErrDigestMismatch, hd, got)
			}
		}
	}
	return ocispec.Descriptor{MediaType: manifestMediaType(resp.Header.Get("Content-Type"), data), Digest: got, Size: int64(len(data))}, data, nil
}

// manifestMediaType is the document's own mediaType, else the registry's
// Content-Type.
func manifestMediaType(contentType string, data []byte) string {
	var doc struct {
		MediaType string `json:"mediaType"`
	}
	if json.Unmarshal(data, &doc) == nil && doc.MediaType != "" {
		return doc.MediaType
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ""
	}
	return mt
}

// Head returns the descriptor of the manifest object names, asking the
// registry itself (HEAD), without its content; ErrNotFound when it is not
// there. Mirrors are not asked.
func (r *Repository) Head(ctx context.Context, object string) (ocispec.Descriptor, error) {
	ep := r.primary()
	resp, err := r.do(ctx, ep, &request{method: http.MethodHead, path: "manifests/" + object,
		hdr: http.Header{"Accept": {manifestAccept}}})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return ocispec.Descriptor{}, newError(resp)
	}
	drain(resp)
	d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("HEAD manifest %s: no valid Docker-Content-Digest: %w", object, err)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: resp.ContentLength}, nil
}

// PutManifest pushes a manifest or index as object (a tag, or its digest)
// with its media type, and checks the digest the registry computed.
func (r *Repository) PutManifest(ctx context.Context, object string, desc ocispec.Descriptor, data []byte) error {
	if got := desc.Digest.Algorithm().FromBytes(data); got != desc.Digest {
		return fmt.Errorf("put manifest %s: content has digest %s", desc.Digest, got)
	}
	ep := r.primary()
	resp, err := r.do(ctx, ep, &request{method: http.MethodPut, path: "manifests/" + object, push: true,
		hdr: http.Header{"Content-Type": {desc.MediaType}},
		body: func() (io.ReadCloser, int64, error) {
			return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
		}})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return newError(resp)
	}
	drain(resp)
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != desc.Digest.String() {
		return fmt.Errorf("put manifest %s: the registry stored it as %s", desc.Digest, h)
	}
	return nil
}

// Tags lists the repository's tags (following the registry's pagination).
func (r *Repository) Tags(ctx context.Context) ([]string, error) {
	ep := r.primary()
	var tags []string
	last := ""
	for {
		q := map[string][]string{"n": {"1000"}}
		if last != "" {
			q["last"] = []string{last}
		}
		resp, err := r.do(ctx, ep, &request{method: http.MethodGet, path: "tags/list", query: q})
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, newError(resp)
		}
		var body struct {
			Tags []string `json:"tags"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&body)
		link := resp.Header.Get("Link")
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("list tags of %s: %w", r.name, err)
		}
		tags = append(tags, body.Tags...)
		if link == "" || len(body.Tags) == 0 {
			return tags, nil
		}
		last = body.Tags[len(body.Tags)-1]
	}
}

func (r *Repository) primary() Endpoint {
	for _, ep := range r.endpoints {
		if !ep.Mirror {
			return ep
		}
	}
	return r.endpoints[len(r.endpoints)-1]
}
