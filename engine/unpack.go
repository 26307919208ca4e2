package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	rspec "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/archive"
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
	u := &unpacker{s: s, ctx: ctx, lease: lease, layers: layers, diffIDs: diffIDs, chainIDs: chainIDs, sizes: map[int]int64{}}
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
// most GOMAXPROCS at once, then commits them bottom first, each on the one
// below. A layer that hardlinks to a file of a lower layer cannot be
// unpacked alone; it is unpacked again on its parent once that is
// committed.
func (u *unpacker) parallel(first int) error {
	n := len(u.layers) - first
	errs := make([]error, n)
	done := make([]chan struct{}, n)
	for j := range done {
		done[j] = make(chan struct{})
	}
	ctx, cancel := context.WithCancel(u.ctx)
	defer cancel()
	jobs := make(chan int)
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), n)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				errs[j] = u.alone(ctx, first+j)
				close(done[j])
			}
		}()
	}
	go func() {
		defer close(jobs)
		for j := 0; j < n; j++ {
			select {
			case jobs <- j:
			case <-ctx.Done():
				for ; j < n; j++ {
					errs[j] = ctx.Err()
					close(done[j])
				}
				return
			}
		}
	}()
	defer wg.Wait()
	// Commit in order as layers finish, so that a failure stops the rest.
	for j := 0; j < n; j++ {
		<-done[j]
		i := first + j
		err := errs[j]
		if errors.Is(err, archive.ErrLinkToLower) {
			u.s.sn.Remove(u.key(i))
			err = u.onParent(i)
			if err == nil {
				continue
			}
		}
		if err != nil {
			cancel()
			return err
		}
		if err := u.commit(i, true); err != nil {
			cancel()
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
	return u.applyCtx(ctx, i, dir, archive.ApplyOptions{Overlay: true})
}

func (u *unpacker) apply(i int, dir string, opts archive.ApplyOptions) error {
	return u.applyCtx(u.ctx, i, dir, opts)
}

// applyCtx applies layer i's blob to dir and checks its diff ID.
func (u *unpacker) applyCtx(ctx context.Context, i int, dir string, opts archive.ApplyOptions) error {
	layer := u.layers[i]
	ra, err := u.s.cs.ReaderAt(layer.Digest)
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", layer.Digest, err)
	}
	defer ra.Close()
	dec, err := archive.DecompressStream(io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", layer.Digest, err)
	}
	defer dec.Close()
	counted := &countReader{r: dec}
	got, err := archive.Apply(ctx, dir, counted, opts)
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", layer.Digest, err)
	}
	if got != u.diffIDs[i] {
		return fmt.Errorf("unpack layer %s: its content has diff ID %s, the image config says %s", layer.Digest, got, u.diffIDs[i])
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("unpack layer %s: %w", layer.Digest, err)
	}
	u.mu.Lock()
	u.sizes[i] = counted.n
	u.mu.Unlock()
	return nil
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
