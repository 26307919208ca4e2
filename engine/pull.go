package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/berth-project/berth/content"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/metadata"
	"github.com/berth-project/berth/progress"
	"github.com/berth-project/berth/reference"
	"github.com/berth-project/berth/registry"
	"github.com/berth-project/berth/snapshot"
)

// PullOptions tune Pull.
type PullOptions struct {
	// Platform is the platform chosen from an index; the zero value means
	// this machine's.
	Platform ocispec.Platform
	// Progress receives the pull's events; nil drops them.
	Progress progress.Sink
	// Downloads bounds the layers fetched at once (0: 3, as docker).
	Downloads int
}

// Pulled is an image Pull recorded.
type Pulled struct {
	Loaded
	// Digest is the digest of what the reference named: the manifest, or
	// the index the manifest was chosen from.
	Digest digest.Digest
	// UpToDate is set when the name already named this image.
	UpToDate bool
}

// Pull fetches the image ref names from repo and records it under ref's
// name (by ID only for a digest reference): the manifest (chosen for the
// platform from an index), the config and the layers, fetched in parallel
// and unpacked as their bytes arrive, without a second pass. Every blob is
// verified against its digest before it is committed, every layer against
// its diff ID; blobs already in the store are not fetched, layers already
// unpacked are not unpacked again.
//
// On error nothing is recorded; the blobs and layers fetched and verified
// stay in the store (as garbage, until a collection) so that a rerun
// reuses them, and a download that broke resumes where its bytes end.
func (s *Store) Pull(ctx context.Context, repo *registry.Repository, ref reference.Reference, opts PullOptions) (_ Pulled, err error) {
	if opts.Progress == nil {
		opts.Progress = progress.Discard
	}
	if opts.Platform.OS == "" {
		opts.Platform = image.DefaultPlatform()
	}
	if opts.Downloads <= 0 {
		opts.Downloads = 3
	}
	lease, err := s.newLease(ctx, "pull")
	if err != nil {
		return Pulled{}, err
	}
	defer s.db.DeleteLease(context.WithoutCancel(ctx), lease)
	p := &puller{s: s, ctx: ctx, lease: lease, repo: repo, opts: opts}
	out, err := p.pull(ref)
	if err != nil {
		return Pulled{}, fmt.Errorf("pull %s: %w", ref.Familiar(), err)
	}
	s.imageEvent(ctx, "pull", ref.Familiar(), ref.Familiar())
	return out, nil
}

type puller struct {
	s     *Store
	ctx   context.Context
	lease string
	repo  *registry.Repository
	opts  PullOptions
}

func (p *puller) event(id, status string, cur, total int64) {
	p.opts.Progress.Event(progress.Event{ID: id, Status: status, Current: cur, Total: total})
}

func (p *puller) pull(ref reference.Reference) (Pulled, error) {
	var out Pulled
	if ref.Tag != "" && ref.Digest == "" {
		p.event("", ref.Tag+": Pulling from "+reference.Familiar(ref.Name()), 0, 0)
	} else {
		p.event("", "Pulling from "+reference.Familiar(ref.Name()), 0, 0)
	}
	desc, data, err := p.repo.Manifest(p.ctx, ref.Object())
	if err != nil {
		return out, err
	}
	out.Digest = desc.Digest
	for depth := 0; ; depth++ {
		kind, err := image.DetectKind(desc.MediaType, data)
		if err != nil {
			return out, fmt.Errorf("manifest %s: %w", desc.Digest, err)
		}
		if kind == image.KindManifest {
			break
		}
		if kind != image.KindIndex {
			return out, fmt.Errorf("%s is a %s, not an image manifest or index", desc.Digest, kind)
		}
		if depth >= maxIndexDepth {
			return out, fmt.Errorf("index %s: indexes nested more than %d deep", desc.Digest, maxIndexDepth)
		}
		idx, err := image.ParseIndex(data)
		if err != nil {
			return out, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		m, err := image.MatchIndex(idx, p.opts.Platform)
		if err != nil {
			return out, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		if m.Size > image.MaxManifestSize {
			return out, fmt.Errorf("index %s: manifest %s of %d bytes is over the limit of %d", desc.Digest, m.Digest, m.Size, image.MaxManifestSize)
		}
		got, mdata, err := p.repo.Manifest(p.ctx, m.Digest.String())
		if err != nil {
			return out, err
		}
		if got.Size != m.Size {
			return out, fmt.Errorf("manifest %s: %d bytes, the index says %d", m.Digest, got.Size, m.Size)
		}
		desc, data = m, mdata
		desc.Annotations, desc.Platform = nil, nil
	}
	mf, err := image.ParseManifest(data)
	if err != nil {
		return out, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	if desc.MediaType == "" {
		desc.MediaType = mf.MediaType
	}
	if err := p.storeBytes(desc, data); err != nil {
		return out, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	cfg, err := p.config(mf.Config)
	if err != nil {
		return out, fmt.Errorf("config %s: %w", mf.Config.Digest, err)
	}
	if err := image.CheckLayers(mf, cfg); err != nil {
		return out, err
	}
	if err := p.layers(mf.Layers, cfg.RootFS.DiffIDs); err != nil {
		return out, err
	}
	out.ID, out.Target = mf.Config.Digest, desc
	name := ref.Tagged()
	if name != "" {
		if old, err := p.s.db.GetImage(p.ctx, name); err == nil && old.Target.Digest == desc.Digest {
			out.UpToDate = true
		}
		out.Names = []string{name}
	}
	if err := p.s.putName(p.ctx, name, desc, out.ID); err != nil {
		return out, err
	}
	p.event("", "Digest: "+out.Digest.String(), 0, 0)
	if out.UpToDate {
		p.event("", "Status: Image is up to date for "+ref.Familiar(), 0, 0)
	} else {
		p.event("", "Status: Downloaded newer image for "+ref.Familiar(), 0, 0)
	}
	return out, nil
}

// storeBytes commits a small blob already in memory (verified by the
// registry client), under the pull's lease.
func (p *puller) storeBytes(desc ocispec.Descriptor, data []byte) error {
	if ok, err := p.inStore(desc); err != nil || ok {
		return err
	}
	ref := "pull-" + desc.Digest.String()
	if err := p.s.db.AddLeaseResource(p.ctx, p.lease, metadata.ResourceIngest, ref); err != nil {
		return err
	}
	return p.s.cs.Ingest(p.ctx, ref, bytes.NewReader(data), desc.Digest, desc.Size)
}

// inStore reports whether blob desc is in the store, leasing it first so
// that it stays.
func (p *puller) inStore(desc ocispec.Descriptor) (bool, error) {
	return p.s.hasLeased(p.ctx, p.lease, desc)
}

// hasLeased reports whether blob desc is in the store with its size,
// after adding it to lease: lease first, then look, so that a collection
// cannot remove what was found (metadata's protocol).
func (s *Store) hasLeased(ctx context.Context, lease string, desc ocispec.Descriptor) (bool, error) {
	if err := s.db.AddLeaseResource(ctx, lease, metadata.ResourceContent, desc.Digest.String()); err != nil {
		return false, err
	}
	info, err := s.cs.Info(desc.Digest)
	return err == nil && info.Size == desc.Size, nil
}

// config returns the image config, fetched unless it is in the store.
func (p *puller) config(desc ocispec.Descriptor) (*ocispec.Image, error) {
	if desc.Size > image.MaxConfigSize {
		return nil, fmt.Errorf("%d bytes, more than the limit of %d", desc.Size, image.MaxConfigSize)
	}
	ok, err := p.inStore(desc)
	if err != nil {
		return nil, err
	}
	var data []byte
	if ok {
		data, err = p.s.readBlob(desc, image.MaxConfigSize)
	} else {
		var rc io.ReadCloser
		if rc, err = p.repo.OpenBlob(p.ctx, desc, 0); err != nil {
			return nil, err
		}
		data, err = image.ReadBlob(rc, desc, image.MaxConfigSize)
		rc.Close()
		if err == nil {
			err = p.storeBytes(desc, data)
		}
	}
	if err != nil {
		return nil, err
	}
	return image.ParseConfig(data)
}

// layers gets every layer blob into the store and every layer unpacked.
// Where the snapshotter can stack layers unpacked apart (overlay), each
// missing layer streams from the registry into its snapshot and the
// content store at once; otherwise the blobs are fetched in parallel,
// then unpacked one on the other.
func (p *puller) layers(layers []ocispec.Descriptor, diffIDs []digest.Digest) error {
	ids := make([]string, len(layers))
	present := make([]bool, len(layers))
	for i, l := range layers {
		ids[i] = progress.ShortID(l.Digest)
		ok, err := p.inStore(l)
		if err != nil {
			return err
		}
		present[i] = ok
	}
	// Which layers are unpacked already: the chain is complete up to the
	// highest committed snapshot.
	chainIDs := image.ChainIDs(diffIDs)
	unpacked := 0
	for i := len(chainIDs) - 1; i >= 0; i-- {
		if info, err := p.s.sn.Stat(chainIDs[i].String()); err == nil && info.Kind == snapshot.KindCommitted {
			unpacked = i + 1
			break
		}
	}
	stream := snapshot.CanRebase(p.s.sn)
	var fetchOnly []int
	for i := range layers {
		switch {
		case i < unpacked && present[i]:
			p.event(ids[i], progress.StatusAlreadyExists, 0, 0)
		case i < unpacked || !stream:
			if !present[i] {
				fetchOnly = append(fetchOnly, i)
			}
			p.event(ids[i], progress.StatusPullingFsLayer, 0, 0)
		default:
			p.event(ids[i], progress.StatusPullingFsLayer, 0, 0)
		}
	}
	if err := p.fetchAll(layers, ids, fetchOnly); err != nil {
		return err
	}
	if unpacked == len(layers) {
		return nil
	}
	var mu sync.Mutex
	opts := unpackOptions{
		workers: p.opts.Downloads,
		open: func(ctx context.Context, i int) (io.ReadCloser, error) {
			return p.open(ctx, layers[i], ids[i])
		},
		done: func(i int) {
			mu.Lock()
			defer mu.Unlock()
			p.event(ids[i], progress.StatusPullComplete, 0, 0)
		},
	}
	return p.s.unpackLayersWith(p.ctx, p.lease, layers, diffIDs, opts)
}

// fetchAll fetches the blobs of layers which into the store, at most
// Downloads at once.
func (p *puller) fetchAll(layers []ocispec.Descriptor, ids []string, which []int) error {
	if len(which) == 0 {
		return nil
	}
	g, ctx := errgroup.WithContext(p.ctx)
	g.SetLimit(p.opts.Downloads)
	for _, i := range which {
		g.Go(func() error {
			rc, err := p.open(ctx, layers[i], ids[i])
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			if err != nil {
				return fmt.Errorf("layer %s: %w", layers[i].Digest, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// open returns a reader of blob desc from its start: from the store if it
// is there, else from the registry through the blob's ingest, which the
// reader fills and, at the end, verifies and commits. An ingest left by
// an earlier, broken pull is resumed: its bytes are read back first and
// the registry is asked only for the rest.
func (p *puller) open(ctx context.Context, desc ocispec.Descriptor, id string) (io.ReadCloser, error) {
	if ok, err := p.inStore(desc); err != nil {
		return nil, err
	} else if ok {
		return p.storeReader(desc, id)
	}
	ref := "pull-" + desc.Digest.String()
	if err := p.s.db.AddLeaseResource(ctx, p.lease, metadata.ResourceIngest, ref); err != nil {
		return nil, err
	}
	w, err := p.writer(ctx, ref, desc)
	if errors.Is(err, content.ErrAlreadyExists) {
		return p.storeReader(desc, id)
	}
	if err != nil {
		return nil, err
	}
	// An ingest that holds every byte (a pull killed before its commit)
	// needs nothing more from the registry: reading it back commits it.
	var body io.ReadCloser = io.NopCloser(strings.NewReader(""))
	if w.Offset() < desc.Size {
		if body, err = p.repo.OpenBlob(ctx, desc, w.Offset()); err != nil {
			w.Close()
			return nil, err
		}
	}
	r := &pullReader{w: w, body: body, desc: desc, id: id, sink: p.opts.Progress, done: w.Offset()}
	if w.Offset() > 0 {
		r.prefix = w.Written()
	}
	p.event(id, progress.StatusDownloading, r.done, desc.Size)
	return r, nil
}

// writer opens the ingest ref, waiting while another process (pulling the
// same blob) holds it.
func (p *puller) writer(ctx context.Context, ref string, desc ocispec.Descriptor) (*content.Writer, error) {
	for {
		w, err := p.s.cs.Writer(ref, desc.Digest, desc.Size)
		if !errors.Is(err, content.ErrLocked) {
			return w, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *puller) storeReader(desc ocispec.Descriptor, id string) (io.ReadCloser, error) {
	ra, err := p.s.cs.ReaderAt(desc.Digest)
	if err != nil {
		return nil, err
	}
	p.event(id, progress.StatusExtracting, 0, desc.Size)
	return struct {
		io.Reader
		io.Closer
	}{progress.Reader(io.NewSectionReader(ra, 0, ra.Size()), p.opts.Progress, id, progress.StatusExtracting, desc.Size), ra}, nil
}

// pullReader reads a blob being downloaded: first the bytes its ingest
// held already, then the registry's, which it writes to the ingest. At
// the end it commits the ingest, which verifies size and digest; a
// mismatch is the read's error.
type pullReader struct {
	w      *content.Writer
	prefix io.Reader
	body   io.ReadCloser
	desc   ocispec.Descriptor
	id     string
	sink   progress.Sink
	done   int64 // bytes downloaded (reported)
	last   int64
	err    error
}

// reportEvery is how many downloaded bytes go between progress events.
const reportEvery = 256 << 10

func (r *pullReader) Read(b []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.prefix != nil {
		n, err := r.prefix.Read(b)
		if err == io.EOF {
			r.prefix = nil
			if n == 0 {
				return r.Read(b)
			}
			err = nil
		}
		return n, err
	}
	n, err := r.body.Read(b)
	if n > 0 {
		if _, werr := r.w.Write(b[:n]); werr != nil {
			r.err = werr
			return 0, werr
		}
		r.done += int64(n)
		if r.done-r.last >= reportEvery {
			r.last = r.done
			r.sink.Event(progress.Event{ID: r.id, Status: progress.StatusDownloading, Current: r.done, Total: r.desc.Size})
		}
	}
	if err == io.EOF {
		r.sink.Event(progress.Event{ID: r.id, Status: progress.StatusDownloading, Current: r.done, Total: r.desc.Size})
		r.sink.Event(progress.Event{ID: r.id, Status: progress.StatusVerifyingChecksum})
		if cerr := r.w.Commit(); cerr != nil {
			r.err = fmt.Errorf("blob %s: %w", r.desc.Digest, cerr)
			r.w = nil
			return n, nil // the error on the next read
		}
		r.w = nil
		r.sink.Event(progress.Event{ID: r.id, Status: progress.StatusDownloadComplete})
		r.err = io.EOF
	} else if err != nil {
		r.err = err
	}
	if n > 0 {
		return n, nil
	}
	return 0, r.err
}

// Close ends the download; an uncommitted ingest is kept for a resume.
func (r *pullReader) Close() error {
	r.body.Close()
	if r.w != nil {
		r.w.Close()
		r.w = nil
	}
	return nil
}
