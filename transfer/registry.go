package transfer

import (
	"context"
	"fmt"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/reference"
	"github.com/berth-project/berth/registry"
)

// registrySource reads an image from a registry repository.
type registrySource struct {
	repo     *registry.Repository
	ref      reference.Reference
	platform ocispec.Platform
}

func (s *registrySource) Manifest(ctx context.Context) (ocispec.Descriptor, []byte, error) {
	desc, data, err := s.repo.Manifest(ctx, s.ref.Object())
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("docker://%s: %w", s.ref, err)
	}
	desc, data, err = resolveManifest(desc, data, s.platform, func(m ocispec.Descriptor) ([]byte, error) {
		_, data, err := s.repo.Manifest(ctx, m.Digest.String())
		return data, err
	})
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("docker://%s: %w", s.ref, err)
	}
	return desc, data, nil
}

func (s *registrySource) Blob(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	return s.repo.OpenBlob(ctx, desc, 0)
}

func (s *registrySource) Close() error { return nil }

// registryDest pushes an image to a registry repository: blobs the
// repository lacks (mounted from mountFrom, a repository of the same
// registry, when it has them), then the manifest by the reference's tag
// or digest.
type registryDest struct {
	repo      *registry.Repository
	ref       reference.Reference
	mountFrom string
	manifest  ocispec.Descriptor
}

func (d *registryDest) HasBlob(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	return d.repo.BlobExists(ctx, desc.Digest)
}

func (d *registryDest) PutBlob(ctx context.Context, desc ocispec.Descriptor, open BlobOpener) error {
	_, err := d.repo.PushBlob(ctx, desc, d.mountFrom, open, nil)
	return err
}

func (d *registryDest) PutManifest(ctx context.Context, desc ocispec.Descriptor, data []byte) error {
	if d.ref.Digest != "" && d.ref.Digest != desc.Digest {
		return fmt.Errorf("docker://%s: the manifest's digest is %s", d.ref, desc.Digest)
	}
	if _, err := image.DetectKind(desc.MediaType, data); err != nil {
		return err
	}
	if err := d.repo.PutManifest(ctx, d.ref.Object(), desc, data); err != nil {
		return fmt.Errorf("docker://%s: %w", d.ref, err)
	}
	d.manifest = desc
	return nil
}

func (d *registryDest) Commit(context.Context) (ocispec.Descriptor, error) { return d.manifest, nil }

func (d *registryDest) Close() error { return nil }
