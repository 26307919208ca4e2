package registry

import (
	"context"
	"fmt"
	"net/http"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// StatBlob asks the registry itself (HEAD, with pull access only) for
// blob d of the repository and returns its descriptor: the digest and the
// size the registry announces (0 when it sends no Content-Length). The
// error matches ErrNotFound when the repository has no such blob.
func (r *Repository) StatBlob(ctx context.Context, d digest.Digest) (ocispec.Descriptor, error) {
	if err := d.Validate(); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("blob %q: %w", d, err)
	}
	resp, err := r.do(ctx, r.primary(), &request{method: http.MethodHead, path: "blobs/" + d.String()})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return ocispec.Descriptor{}, newError(resp)
	}
	drain(resp)
	return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: max(resp.ContentLength, 0)}, nil
}
