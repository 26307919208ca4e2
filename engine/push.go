package engine

import (
	"context"
	"fmt"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/progress"
	"github.com/berth-project/berth/reference"
	"github.com/berth-project/berth/registry"
)

// PushOptions tune Push.
type PushOptions struct {
	// Progress receives the push's events; nil drops them.
	Progress progress.Sink
	// Uploads bounds the blobs sent at once (0: 5, as docker).
	Uploads int
}

// Push sends the image img (a name or ID of the store) to repo as dst: its
// layers and config, each only if the repository lacks it (HEAD first),
// mounted from another repository of the same registry where the image
// also has a name there, uploaded otherwise; the manifest last, by dst's
// tag, or by its digest (which must be the image's). The manifest is sent
// as stored, so its digest stays the same.
func (s *Store) Push(ctx context.Context, repo *registry.Repository, img string, dst reference.Reference, opts PushOptions) (ocispec.Descriptor, error) {
	if opts.Progress == nil {
		opts.Progress = progress.Discard
	}
	if opts.Uploads <= 0 {
		opts.Uploads = 5
	}
	desc, err := s.push(ctx, repo, img, dst, opts)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", dst.Familiar(), err)
	}
	s.imageEvent(ctx, "push", dst.Familiar(), dst.Familiar())
	return desc, nil
}

func (s *Store) push(ctx context.Context, repo *registry.Repository, name string, dst reference.Reference, opts PushOptions) (ocispec.Descriptor, error) {
	img, err := s.Get(ctx, name)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if dst.Digest != "" && dst.Digest != img.Target.Digest {
		return ocispec.Descriptor{}, fmt.Errorf("the image's manifest is %s, not %s", img.Target.Digest, dst.Digest)
	}
	opts.Progress.Event(progress.Event{Status: "The push refers to repository [" + dst.Name() + "]"})
	data, err := s.readBlob(img.Target, image.MaxManifestSize)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("manifest %s: %w", img.Target.Digest, err)
	}
	mf, err := image.ParseManifest(data)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("manifest %s: %w", img.Target.Digest, err)
	}
	from, err := s.mountSources(ctx, img, dst)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	blobs := append(append([]ocispec.Descriptor(nil), mf.Layers...), mf.Config)
	for _, b := range mf.Layers {
		opts.Progress.Event(progress.Event{ID: progress.ShortID(b.Digest), Status: progress.StatusPreparing})
	}
	if err := s.pushBlobs(ctx, repo, blobs, from, opts); err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := img.Target
	desc.MediaType = mf.MediaType
	if desc.MediaType == "" {
		desc.MediaType = img.Target.MediaType
	}
	if err := repo.PutManifest(ctx, dst.Object(), desc, data); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	tag := dst.Tag
	if dst.Digest != "" || tag == "" {
		tag = desc.Digest.Encoded()[:12]
	}
	opts.Progress.Event(progress.Event{Status: fmt.Sprintf("%s: digest: %s size: %d", tag, desc.Digest, desc.Size)})
	return desc, nil
}

// mountSources returns the repositories, on dst's registry, that the
// image also has a name in: a blob the registry holds for them can be
// mounted rather than uploaded.
func (s *Store) mountSources(ctx context.Context, img Image, dst reference.Reference) ([]string, error) {
	names, err := s.Names(ctx, img.ID)
	if err != nil {
		return nil, err
	}
	var from []string
	for _, n := range names {
		r, err := reference.Parse(n)
		if err == nil && r.Domain == dst.Domain && r.Path != dst.Path {
			from = append(from, r.Path)
		}
	}
	return from, nil
}

// pushBlobs pushes blobs, at most Uploads at once.
func (s *Store) pushBlobs(ctx context.Context, repo *registry.Repository, blobs []ocispec.Descriptor, from []string, opts PushOptions) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Uploads)
	for _, b := range blobs {
		g.Go(func() error { return s.pushBlob(ctx, repo, b, from, opts.Progress) })
	}
	return g.Wait()
}

func (s *Store) pushBlob(ctx context.Context, repo *registry.Repository, b ocispec.Descriptor, from []string, sink progress.Sink) error {
	id := progress.ShortID(b.Digest)
	isLayer := image.IsLayer(b.MediaType)
	event := func(status string, cur, total int64) {
		if isLayer {
			sink.Event(progress.Event{ID: id, Status: status, Current: cur, Total: total})
		}
	}
	open := func(off int64) (io.ReadCloser, error) {
		ra, err := s.cs.ReaderAt(b.Digest)
		if err != nil {
			return nil, err
		}
		if ra.Size() != b.Size {
			ra.Close()
			return nil, fmt.Errorf("blob %s: the store has %d bytes, the manifest says %d", b.Digest, ra.Size(), b.Size)
		}
		return struct {
			io.Reader
			io.Closer
		}{io.NewSectionReader(ra, off, ra.Size()-off), ra}, nil
	}
	src := ""
	if len(from) > 0 {
		src = from[0]
	}
	var last int64
	res, err := repo.PushBlob(ctx, b, src, open, func(n int64) {
		if n-last >= 256<<10 || n == b.Size {
			last = n
			event(progress.StatusPushing, n, b.Size)
		}
	})
	if err != nil {
		return err
	}
	switch res {
	case registry.Exists:
		event(progress.StatusLayerAlreadyExists, 0, 0)
	case registry.Mounted:
		event(progress.MountedFrom(src), 0, 0)
	default:
		event(progress.StatusPushed, 0, 0)
	}
	return nil
}
