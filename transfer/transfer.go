package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/engine"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/progress"
	"github.com/berth-project/berth/reference"
	"github.com/berth-project/berth/registry"
)

// Source is an image to copy from.
type Source interface {
	// Manifest returns the image manifest and its descriptor: when the
	// reference names an index, the manifest chosen from it for the
	// copy's platform. The bytes have been checked against the digest.
	Manifest(ctx context.Context) (ocispec.Descriptor, []byte, error)
	// Blob opens a blob of the image (its config or a layer). The caller
	// verifies what it reads.
	Blob(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error)
	// Close releases the source.
	Close() error
}

// BlobOpener opens a blob's content from offset. What it returns is
// verified: it fails instead of ending if the content does not have the
// descriptor's digest and size.
type BlobOpener func(offset int64) (io.ReadCloser, error)

// Destination is where an image is copied to: blobs first, then the
// manifest, then Commit. Nothing is visible at the destination before
// Commit; Close without Commit removes what was written.
type Destination interface {
	// HasBlob reports whether the destination has the blob already.
	HasBlob(ctx context.Context, desc ocispec.Descriptor) (bool, error)
	// PutBlob writes the blob desc from open's content, which it reads to
	// its end (where a digest mismatch shows) before keeping it.
	PutBlob(ctx context.Context, desc ocispec.Descriptor, open BlobOpener) error
	// PutManifest writes the image manifest.
	PutManifest(ctx context.Context, desc ocispec.Descriptor, data []byte) error
	// Commit makes the image visible at the destination. It returns the
	// descriptor of the manifest the destination holds.
	Commit(ctx context.Context) (ocispec.Descriptor, error)
	// Close releases the destination, discarding it unless committed.
	Close() error
}

// Options tune Copy.
type Options struct {
	// Platform is the platform chosen from an index; the zero value means
	// this machine's (image.DefaultPlatform).
	Platform ocispec.Platform
	// Progress receives the copy's events; nil drops them.
	Progress progress.Sink
	// Repository returns the registry repository of a docker:// reference,
	// for pushing when push is set. Needed for docker:// references.
	Repository func(ref reference.Reference, push bool) (*registry.Repository, error)
	// Store is berth's image store, for berth: references.
	Store *engine.Store
}

// Copy copies the image src names to dst and returns the descriptor of
// the manifest written (for a docker archive, the manifest reading it back
// gives).
func Copy(ctx context.Context, src, dst Ref, opts Options) (ocispec.Descriptor, error) {
	if opts.Progress == nil {
		opts.Progress = progress.Discard
	}
	if opts.Platform.OS == "" {
		opts.Platform = image.DefaultPlatform()
	}
	if src.same(dst) {
		return ocispec.Descriptor{}, fmt.Errorf("copy %s: the source and the destination are the same image", src)
	}
	desc, err := copyRef(ctx, src, dst, opts)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return desc, nil
}

func copyRef(ctx context.Context, src, dst Ref, opts Options) (ocispec.Descriptor, error) {
	if dst.Transport == Berth {
		return copyToStore(ctx, src, dst, opts)
	}
	s, err := OpenSource(ctx, src, opts)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer s.Close()
	d, err := OpenDestination(ctx, dst, opts)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer d.Close()
	if rs, ok := s.(*registrySource); ok {
		if rd, ok := d.(*registryDest); ok && rs.ref.Domain == rd.ref.Domain {
			rd.mountFrom = rs.ref.Path
		}
	}
	return CopyImage(ctx, s, d, opts.Progress)
}

// OpenSource opens the image ref names for reading. A berth: source needs
// opts.Store, a docker:// one opts.Repository.
func OpenSource(ctx context.Context, ref Ref, opts Options) (Source, error) {
	if opts.Platform.OS == "" {
		opts.Platform = image.DefaultPlatform()
	}
	switch ref.Transport {
	case Docker:
		if opts.Repository == nil {
			return nil, errors.New("docker transport: no registry client")
		}
		repo, err := opts.Repository(ref.Docker, false)
		if err != nil {
			return nil, err
		}
		return &registrySource{repo: repo, ref: ref.Docker, platform: opts.Platform}, nil
	case OCI:
		return openLayoutSource(ref.Path, ref.Name, opts.Platform)
	case OCIArchive:
		return openOCIArchiveSource(ref.Path, ref.Name, opts.Platform)
	case DockerArchive:
		return openDockerArchiveSource(ref.Path, ref.Name)
	case Berth:
		if opts.Store == nil {
			return nil, errors.New("berth transport: no image store")
		}
		return openStoreSource(ctx, opts.Store, ref.Name)
	}
	return nil, fmt.Errorf("unknown transport %q", ref.Transport)
}

// OpenDestination opens ref as a destination. The store (berth:) is not
// one: Copy writes to it through the engine.
func OpenDestination(ctx context.Context, ref Ref, opts Options) (Destination, error) {
	switch ref.Transport {
	case Docker:
		if opts.Repository == nil {
			return nil, errors.New("docker transport: no registry client")
		}
		repo, err := opts.Repository(ref.Docker, true)
		if err != nil {
			return nil, err
		}
		return &registryDest{repo: repo, ref: ref.Docker}, nil
	case OCI:
		return newLayoutDest(ref.Path, ref.Name)
	case OCIArchive:
		return newOCIArchiveDest(ref.Path, ref.Name)
	case DockerArchive:
		return newDockerArchiveDest(ref.Path, ref.Name)
	case Berth:
		return nil, errors.New("berth transport: the store is written by Copy, not as a Destination")
	}
	return nil, fmt.Errorf("unknown transport %q", ref.Transport)
}

// CopyImage copies the image of src to dst: the config and the layers
// (those dst lacks), each verified as it passes, then the manifest, then
// it commits dst.
func CopyImage(ctx context.Context, src Source, dst Destination, sink progress.Sink) (ocispec.Descriptor, error) {
	if sink == nil {
		sink = progress.Discard
	}
	desc, data, err := src.Manifest(ctx)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	mf, err := image.ParseManifest(data)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	if desc.MediaType == "" {
		desc.MediaType = mf.MediaType
	}
	if desc.MediaType == "" {
		desc.MediaType = image.MediaTypeOCIManifest
	}
	sink.Event(progress.Event{Status: "Getting image source signatures"})
	blobs := append([]ocispec.Descriptor{mf.Config}, mf.Layers...)
	for i, b := range blobs {
		what := "blob"
		if i == 0 {
			what = "config"
		}
		if err := copyBlob(ctx, src, dst, b, what, sink); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	sink.Event(progress.Event{Status: "Writing manifest to image destination"})
	if err := dst.PutManifest(ctx, desc, data); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	return dst.Commit(ctx)
}

func copyBlob(ctx context.Context, src Source, dst Destination, b ocispec.Descriptor, what string, sink progress.Sink) error {
	id := progress.ShortID(b.Digest)
	ok, err := dst.HasBlob(ctx, b)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, b.Digest, err)
	}
	if ok {
		sink.Event(progress.Event{ID: id, Status: "Skipping " + what + ": already exists"})
		return nil
	}
	status := "Copying " + what
	open := func(off int64) (io.ReadCloser, error) {
		rc, err := src.Blob(ctx, b)
		if err != nil {
			return nil, err
		}
		v := newVerifyReader(rc, b)
		if off > 0 {
			if _, err := io.CopyN(io.Discard, v, off); err != nil {
				rc.Close()
				return nil, fmt.Errorf("skip to byte %d: %w", off, err)
			}
		}
		return readCloser{progress.Reader(v, sink, id, status, b.Size), rc}, nil
	}
	if err := dst.PutBlob(ctx, b, open); err != nil {
		return fmt.Errorf("%s %s: %w", what, b.Digest, err)
	}
	sink.Event(progress.Event{ID: id, Status: "Copied " + what})
	return nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// maxIndexDepth bounds nested indexes.
const maxIndexDepth = 4

// resolveManifest returns the manifest desc stands for: desc itself, or
// the platform's entry of the index it is (nested indexes followed),
// fetched with fetch, which checks the digest.
func resolveManifest(desc ocispec.Descriptor, data []byte, platform ocispec.Platform, fetch func(ocispec.Descriptor) ([]byte, error)) (ocispec.Descriptor, []byte, error) {
	for depth := 0; ; depth++ {
		kind, err := image.DetectKind(desc.MediaType, data)
		if err != nil {
			return desc, nil, fmt.Errorf("%s: %w", desc.Digest, err)
		}
		switch kind {
		case image.KindManifest:
			return desc, data, nil
		case image.KindIndex:
		default:
			return desc, nil, fmt.Errorf("%s is a %s, not an image manifest or index", desc.Digest, kind)
		}
		if depth >= maxIndexDepth {
			return desc, nil, fmt.Errorf("index %s: indexes nested more than %d deep", desc.Digest, maxIndexDepth)
		}
		idx, err := image.ParseIndex(data)
		if err != nil {
			return desc, nil, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		m, err := image.MatchIndex(idx, platform)
		if err != nil {
			return desc, nil, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		if data, err = fetch(m); err != nil {
			return desc, nil, fmt.Errorf("manifest %s: %w", m.Digest, err)
		}
		desc = ocispec.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size}
	}
}
