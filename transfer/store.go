package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/engine"
	"github.com/berth-project/berth/image"
)

// storeSource reads an image of berth's store: its manifest as stored and
// its blobs from the content store.
type storeSource struct {
	s    *engine.Store
	name string
	img  engine.Image
}

func openStoreSource(ctx context.Context, s *engine.Store, name string) (*storeSource, error) {
	img, err := s.Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("berth:%s: %w", name, err)
	}
	return &storeSource{s: s, name: name, img: img}, nil
}

func (s *storeSource) Manifest(ctx context.Context) (ocispec.Descriptor, []byte, error) {
	desc := s.img.Target
	rc, err := s.Blob(ctx, desc)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	data, err := readAllVerified(rc, desc, image.MaxManifestSize)
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("berth:%s: manifest: %w", s.name, err)
	}
	desc = ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}
	return desc, data, nil
}

func (s *storeSource) Blob(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	ra, err := s.s.Content().ReaderAt(desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("berth:%s: %w", s.name, err)
	}
	return readCloser{io.NewSectionReader(ra, 0, ra.Size()), ra}, nil
}

func (s *storeSource) Close() error { return nil }

// copyToStore records the image src names in the store as dst.Name:
// pulled for a registry source, loaded for an archive or a layout (the
// layout or archive itself when it holds only that image, else a layout
// of that image written to a temporary directory first), tagged for an
// image of the store.
func copyToStore(ctx context.Context, src, dst Ref, opts Options) (ocispec.Descriptor, error) {
	s := opts.Store
	if s == nil {
		return ocispec.Descriptor{}, errors.New("berth transport: no image store")
	}
	name, err := engine.NormalizeName(dst.Name)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("berth:%s: %w", dst.Name, err)
	}
	lopts := engine.LoadOptions{Name: name, Platform: opts.Platform}
	// A load also records the names the layout or archive gives; those
	// that named nothing before are removed again, so that the copy only
	// adds dst's name, as skopeo does.
	before, err := s.Images(ctx)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	loaded := func(imgs []engine.Loaded, err error) (ocispec.Descriptor, error) {
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		if len(imgs) != 1 {
			return ocispec.Descriptor{}, fmt.Errorf("loaded %d images, want 1", len(imgs))
		}
		had := map[string]bool{name: true}
		for _, img := range before {
			had[img.Name] = true
		}
		for _, n := range imgs[0].Names {
			if !had[n] {
				if _, err := s.Remove(ctx, n, false); err != nil {
					return ocispec.Descriptor{}, err
				}
			}
		}
		return imgs[0].Target, nil
	}
	switch src.Transport {
	case Berth:
		img, err := s.Get(ctx, src.Name)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("berth:%s: %w", src.Name, err)
		}
		if err := s.Tag(ctx, src.Name, name); err != nil {
			return ocispec.Descriptor{}, err
		}
		return img.Target, nil
	case Docker:
		return pullToStore(ctx, src, name, opts)
	case OCI:
		if whole, err := singleImage(ctx, src, opts); err != nil {
			return ocispec.Descriptor{}, err
		} else if whole {
			return loaded(s.LoadLayout(ctx, src.Path, lopts))
		}
	case OCIArchive, DockerArchive:
		if whole, err := singleImage(ctx, src, opts); err != nil {
			return ocispec.Descriptor{}, err
		} else if whole {
			f, err := os.Open(src.Path)
			if err != nil {
				return ocispec.Descriptor{}, err
			}
			defer f.Close()
			return loaded(s.Load(ctx, f, lopts))
		}
	}
	// Stage the one image as a layout of its own.
	tmp, err := os.MkdirTemp("", "berth-copy-")
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer os.RemoveAll(tmp)
	layout := tmp + "/layout"
	if _, err := copyRef(ctx, src, Ref{Transport: OCI, Path: layout}, opts); err != nil {
		return ocispec.Descriptor{}, err
	}
	return loaded(s.LoadLayout(ctx, layout, lopts))
}

// singleImage reports whether the layout or archive src holds only the
// image src names, so that the engine can load it whole. It opens the
// source, so a missing file or ref is reported here.
func singleImage(ctx context.Context, src Ref, opts Options) (bool, error) {
	source, err := OpenSource(ctx, src, opts)
	if err != nil {
		return false, err
	}
	defer source.Close()
	switch s := source.(type) {
	case *layoutSource:
		if _, err := s.entry(); err != nil {
			return false, err
		}
		return len(s.index.Manifests) == 1, nil
	case *dockerArchiveSource:
		data, err := s.t.readFile("manifest.json", image.MaxManifestSize)
		if err != nil {
			return false, err
		}
		m, err := image.ParseDockerArchiveManifest(data)
		return err == nil && len(m) == 1, err
	}
	return false, nil
}

// pullToStore pulls src into the store and names it name: the pull
// records the registry's name, which is removed again when it is not
// name and did not name an image before.
func pullToStore(ctx context.Context, src Ref, name string, opts Options) (ocispec.Descriptor, error) {
	s := opts.Store
	if opts.Repository == nil {
		return ocispec.Descriptor{}, errors.New("docker transport: no registry client")
	}
	repo, err := opts.Repository(src.Docker, false)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	pulledName := src.Docker.Tagged()
	existed := false
	if pulledName != "" {
		_, err := s.Get(ctx, pulledName)
		existed = err == nil
	}
	p, err := s.Pull(ctx, repo, src.Docker, engine.PullOptions{Platform: opts.Platform, Progress: opts.Progress})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if pulledName == name {
		return p.Target, nil
	}
	from := pulledName
	if from == "" {
		from = p.ID.String()
	}
	if err := s.Tag(ctx, from, name); err != nil {
		return ocispec.Descriptor{}, err
	}
	if pulledName != "" && !existed {
		if _, err := s.Remove(ctx, pulledName, false); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	return p.Target, nil
}
