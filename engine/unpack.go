package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	rspec "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/archive"
	"github.com/berth-project/berth/content"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/metadata"
	"github.com/berth-project/berth/snapshot"
)

// diffSizeLabel labels a committed layer snapshot with the size in bytes
// of its uncompressed layer tar, which save needs before it writes it.
const diffSizeLabel = "berth.io/diff-size"

// unpackLayers unpacks the layer blobs (already in the content store, in
// image order) into committed snapshots named by their chain IDs, and
// checks each layer's diff ID against diffIDs. Layers whose snapshot exists
// are skipped. Where the snapshotter can stack a layer after it was
// unpacked (overlay), the missing layers are unpacked side by side, at most
// GOMAXPROCS at once, and committed bottom first; otherwise one after the
// other, each on its parent.
//
// On error no snapshot of this call is left behind (committed layers below
// the failing one stay: they are complete and the lease protects them).
func (s *Store) unpackLayers(ctx context.Context, lease string, layers []ocispec.Descriptor, diffIDs []digest.Digest) error {
	return s.unpackLayersWith(ctx, lease, layers, diffIDs, unpackOptions{})
}

// unpackOptions let a pull stream layers from the network into the
// unpacker.
type unpackOptions struct {
	// open returns layer i's (compressed) blob from its start; nil reads
	// the content store. The unpacker reads the stream to its end once
	// the layer is applied: a reader that stores what it reads verifies
	// and commits the blob there, and fails the read if it is wrong.
	open func(ctx context.Context, i int) (io.ReadCloser, error)
	// workers bounds the layers unpacked at once (0: GOMAXPROCS).
	workers int
	// done, when set, is called when layer i is unpacked and committed.
	done func(i int)
}

// unpackLayersWith is unpackLayers reading layers through opts.
func (s *Store) unpackLayersWith(ctx context.Context, lease string, layers []ocispec.Descriptor, diffIDs []digest.Digest, opts unpackOptions) error {
	if len(layers) != len(diffIDs) {
		return fmt.Errorf("unpack: %d layers but %d diff IDs", len(layers), len(diffIDs))
	}
	chainIDs := image.ChainIDs(diffIDs)
	first := len(layers) // the lowest layer whose snapshot is missing
	for i := len(chainIDs) - 1; i >= 0; i-- {
		key := chainIDs[i].String()
		// Lease first, then look: a collection cannot remove what we
		// found (metadata's protocol).
		if err := s.db.AddLeaseResource(ctx, lease, metadata.ResourceSnapshot, key); err != nil {
			return err
		}
		if info, err := s.sn.Stat(key); err == nil && info.Kind == snapshot.KindCommitted {
			break
		}
		first = i
	}
	if first == len(layers) {
		return nil
	}
	u := &unpacker{s: s, ctx: ctx, lease: lease, layers: layers, diffIDs: diffIDs, chainIDs: chainIDs, sizes: map[int]int64{}, opts: opts}
	if u.opts.open == nil {
		u.opts.open = u.openStored
	}
	if u.opts.workers <= 0 {
		u.opts.workers = runtime.GOMAXPROCS(0)
	}
	defer u.cleanup()
	if snapshot.CanRebase(s.sn) && len(layers)-first > 1 {
		return u.parallel(first)
	}
	for i := first; i < len(layers); i++ {
		if err := u.onParent(i); err != nil {
			return err
		}
	}
	return nil
}

// unpacker unpacks the layers of one image.
type unpacker struct {
	s        *Store
	ctx      context.Context
	lease    string
	layers   []ocispec.Descriptor
	diffIDs  []digest.Digest
	chainIDs []digest.Digest
	opts     unpackOptions

	mu    sync.Mutex
	keys  []string      // active snapshots prepared, removed by cleanup
	sizes map[int]int64 // uncompressed size of each layer unpacked
}

func (u *unpacker) key(i int) string {
	return "extract-" + u.lease + "-" + u.chainIDs[i].String()
}

func (u *unpacker) prepare(i int, parent string) ([]rspec.Mount, error) {
	key := u.key(i)
	mounts, err := u.s.sn.Prepare(key, parent, snapshot.WithLabels(map[string]string{metadata.LeaseLabel: u.lease}))
	if err != nil {
		return nil, fmt.Errorf("unpack layer %s: %w", u.layers[i].Digest, err)
	}
	u.mu.Lock()
	u.keys = append(u.keys, key)
	u.mu.Unlock()
	return mounts, nil
}

// cleanup removes the active snapshots that were not committed.
func (u *unpacker) cleanup() {
	for _, key := range u.keys {
		if _, err := u.s.sn.Stat(key); err == nil {
			u.s.sn.Remove(key)
		}
	}
}

// commit commits layer i's active snapshot as its chain ID, on parent
// (rebasing it there when it was unpacked without one). If another process
// committed the same layer first, its snapshot is used and ours removed.
func (u *unpacker) commit(i int, rebase bool) error {
	u.mu.Lock()
	size := u.sizes[i]
	u.mu.Unlock()
	opts := []snapshot.Opt{snapshot.WithLabels(map[string]string{diffSizeLabel: strconv.FormatInt(size, 10)})}
	if rebase && i > 0 {
		opts = append(opts, snapshot.WithParent(u.chainIDs[i-1].String()))
	}
	name := u.chainIDs[i].String()
	err := u.s.sn.Commit(name, u.key(i), opts...)
	if errors.Is(err, snapshot.ErrAlreadyExists) {
		return u.s.sn.Remove(u.key(i))
	}
	if err != nil {
		return fmt.Errorf("unpack layer %s: commit snapshot %s: %w", u.layers[i].Digest, name, err)
	}
	if u.opts.done != nil {
		u.opts.done(i)
	}
	return nil
}

// onParent unpacks layer i into a snapshot prepared on layer i-1's, and
// commits it.
func (u *unpacker) onParent(i int) error {
	parent := ""
	if i > 0 {
		parent = u.chainIDs[i-1].String()
	}
	mounts, err := u.prepare(i, parent)
	if err != nil {
		return err
	}
	dir, lowers, err := unpackDir(mounts)
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", u.layers[i].Digest, err)
	}
	opts := archive.ApplyOptions{Overlay: u.s.overlay, Lowers: lowers}
	if err := u.apply(i, dir, opts); err != nil {
		return err
	}
	return u.commit(i, false)
}

// parallel unpacks layers first.. each into a snapshot without parent, at
// most GOMAXPROCS at once (largest first, to balance the workers), syncs
// them to disk together, then commits them bottom first, each on the one
// below. A layer that hardlinks to a file of a lower layer cannot be
// unpacked alone; it is unpacked again on its parent once that is
// committed.
func (u *unpacker) parallel(first int) error {
	order := make([]int, 0, len(u.layers)-first)
	for i := first; i < len(u.layers); i++ {
		order = append(order, i)
	}
	sort.SliceStable(order, func(a, b int) bool { return u.layers[order[a]].Size > u.layers[order[b]].Size })
	errs := make([]error, len(u.layers))
	ctx, cancel := context.WithCancel(u.ctx)
	defer cancel()
	jobs := make(chan int, len(order))
	for _, i := range order {
		jobs <- i
	}
	close(jobs)
	var wg sync.WaitGroup
	for range min(u.opts.workers, len(order)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				err := u.alone(ctx, i)
				if err != nil && !errors.Is(err, archive.ErrLinkToLower) {
					cancel() // one layer failed: the image fails
				}
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	// The first real failure, in layer order; a cancellation is only the
	// consequence of one (or of the caller's).
	var canceled error
	for i := first; i < len(u.layers); i++ {
		switch err := errs[i]; {
		case err == nil, errors.Is(err, archive.ErrLinkToLower):
		case errors.Is(err, context.Canceled) && u.ctx.Err() == nil:
			canceled = err
		default:
			return err
		}
	}
	if canceled != nil {
		return canceled
	}
	// One syncfs(2) for all the layers, before any is committed.
	if err := syncDir(u.s.root); err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	for i := first; i < len(u.layers); i++ {
		if errors.Is(errs[i], archive.ErrLinkToLower) {
			u.s.sn.Remove(u.key(i))
			if err := u.onParent(i); err != nil {
				return err
			}
			continue
		}
		if err := u.commit(i, true); err != nil {
			return err
		}
	}
	return nil
}

// alone unpacks layer i into a new snapshot without parent.
func (u *unpacker) alone(ctx context.Context, i int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	mounts, err := u.prepare(i, "")
	if err != nil {
		return err
	}
	dir, _, err := unpackDir(mounts)
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", u.layers[i].Digest, err)
	}
	return u.applyCtx(ctx, i, dir, archive.ApplyOptions{Overlay: true}, false)
}

func (u *unpacker) apply(i int, dir string, opts archive.ApplyOptions) error {
	return u.applyCtx(u.ctx, i, dir, opts, true)
}

// applyCtx applies layer i's blob to dir and checks its diff ID; with
// sync, it then syncs dir's file system to disk.
func (u *unpacker) applyCtx(ctx context.Context, i int, dir string, opts archive.ApplyOptions, sync bool) error {
	layer := u.layers[i]
	rc, err := u.opts.open(ctx, i)
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", layer.Digest, err)
	}
	defer rc.Close()
	dec, err := archive.DecompressStream(rc)
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", layer.Digest, err)
	}
	defer dec.Close()
	counted := &countReader{r: dec}
	got, err := archive.Apply(ctx, dir, counted, opts)
	// Read the blob to its end: a streamed blob is verified and stored
	// there. A blob that does not match its digest explains a failed
	// apply better than the apply's own error.
	if _, derr := io.Copy(io.Discard, rc); derr != nil && (err == nil || errors.Is(derr, content.ErrMismatch)) {
		return fmt.Errorf("unpack layer %s: %w", layer.Digest, derr)
	}
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", layer.Digest, err)
	}
	if got != u.diffIDs[i] {
		return fmt.Errorf("unpack layer %s: its content has diff ID %s, the image config says %s", layer.Digest, got, u.diffIDs[i])
	}
	if sync {
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("unpack layer %s: %w", layer.Digest, err)
		}
	}
	u.mu.Lock()
	u.sizes[i] = counted.n
	u.mu.Unlock()
	return nil
}

// openStored opens layer i's blob in the content store.
func (u *unpacker) openStored(_ context.Context, i int) (io.ReadCloser, error) {
	ra, err := u.s.cs.ReaderAt(u.layers[i].Digest)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(ra, 0, ra.Size()), ra}, nil
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// unpackDir returns the directory a layer is unpacked into for the mounts
// of an active snapshot, without mounting anything: the source of a bind
// mount (overlay without parent, or native: a full copy), or an overlay's
// upper directory, with its lower directories (nearest first) for copy-up.
func unpackDir(mounts []rspec.Mount) (string, []string, error) {
	if len(mounts) != 1 {
		return "", nil, fmt.Errorf("unexpected snapshot mounts %+v", mounts)
	}
	m := mounts[0]
	switch m.Type {
	case "bind":
		return m.Source, nil, nil
	case "overlay":
		var upper string
		var lowers []string
		for _, o := range m.Options {
			k, v, _ := strings.Cut(o, "=")
			switch k {
			case "upperdir":
				upper = v
			case "lowerdir":
				lowers = strings.Split(v, ":")
			}
		}
		if upper == "" {
			return "", nil, fmt.Errorf("overlay snapshot mount without upperdir: %v", m.Options)
		}
		return upper, lowers, nil
	}
	return "", nil, fmt.Errorf("unexpected snapshot mount type %q", m.Type)
}
