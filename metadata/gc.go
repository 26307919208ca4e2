package metadata

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/berth-project/berth/content"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/snapshot"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// IngestGracePeriod is how long an ingest that no live lease references is
// kept after its last write: an ingest untouched for longer is abandoned
// and garbage collection removes it (unless a Writer holds it).
const IngestGracePeriod = time.Hour

// LeaseLabel is the snapshot label naming the lease of the operation that
// prepared an active (or view) snapshot, such as an unpack's
// "extract-<lease>-<chain ID>": once that lease has expired, or its owner
// is gone, garbage collection removes the snapshot.
const LeaseLabel = "berth.io/lease"

// GCResult reports what a garbage collection removed (or, with DryRun,
// would remove).
type GCResult struct {
	Blobs []digest.Digest // content blobs deleted
	// Snapshots are the snapshots removed, in removal order: committed
	// ones nothing references, and active or view ones whose LeaseLabel
	// names a dead lease.
	Snapshots []string
	Ingests   []string // refs of the abandoned ingests removed
	Leases    []string // expired leases removed (past their ttl, or owner gone)
	// BytesFreed adds up the blobs' sizes, the snapshots' disk usage and
	// the ingests' written bytes.
	BytesFreed int64
}

// GCOpt sets an option of CollectGarbage.
type GCOpt func(*gcOptions)

type gcOptions struct {
	dryRun bool
}

// DryRun makes CollectGarbage report what it would remove, and remove
// nothing. It still holds the GC lock, so its report is exact at the time
// it ran.
func DryRun() GCOpt { return func(o *gcOptions) { o.dryRun = true } }

// CollectGarbage deletes the blobs of cs and the committed snapshots of sn
// that no image and no live lease references, the snapshots of dead
// leases, abandoned ingests, and expired leases. sn may be nil: snapshots
// are then left alone.
//
// A lease is dead (Lease.Expired) past its expiry or once its owner
// process is gone; dead leases are deleted first.
//
// Mark: the roots are every image's target and every live lease's
// resources, read in one consistent snapshot of the database. From each
// root blob the walk follows indexes to their manifests (all platforms),
// manifests to their config and layers, and configs to the chain IDs of
// their rootfs.diff_ids, which name the committed snapshots of their
// layers. Snapshots that a lease names are kept, and so are those that are
// active or views (containers and unpacks own them) unless they carry a
// LeaseLabel naming a lease that is not live. Every parent of a kept
// snapshot is kept.
//
// Sweep: unmarked blobs are deleted, unmarked snapshots are removed
// children first, and ingests that no live lease references and no Writer
// holds are aborted if a lease deleted by this collection named them, or
// else if they were last written more than IngestGracePeriod ago.
//
// The whole collection holds the GC lock exclusively, so AddLeaseResource
// waits for it to finish (see the package documentation). A failure to
// remove one object does not stop the sweep: the errors are joined and
// returned with what was removed.
func (db *DB) CollectGarbage(ctx context.Context, cs *content.Store, sn snapshot.Snapshotter, opts ...GCOpt) (GCResult, error) {
	var o gcOptions
	for _, opt := range opts {
		opt(&o)
	}
	var res GCResult
	unlock, err := db.lockGC(ctx, unix.LOCK_EX)
	if err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	defer unlock()
	now := db.now()

	dead, err := db.deleteExpiredLeases(ctx, now, o.dryRun)
	if err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	deadIngests := map[string]bool{}
	for _, l := range dead {
		res.Leases = append(res.Leases, l.ID)
		for _, r := range l.Resources {
			if r.Kind == ResourceIngest {
				deadIngests[r.Key] = true
			}
		}
	}
	roots, err := db.gcRoots(ctx, now)
	if err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}

	m := &marker{cs: cs, blobs: map[digest.Digest]bool{}, chains: map[string]bool{}}
	if err := m.markAll(ctx, roots.blobs); err != nil {
		return res, fmt.Errorf("gc: mark: %w", err)
	}
	var snaps *snapshotSet
	if sn != nil {
		snaps, err = markSnapshots(sn, m.chains, roots)
		if err != nil {
			return res, fmt.Errorf("gc: mark snapshots: %w", err)
		}
	}

	var errs []error
	errs = append(errs, sweepContent(ctx, cs, m.blobs, o.dryRun, &res))
	if snaps != nil {
		errs = append(errs, snaps.sweep(ctx, sn, o.dryRun, &res))
	}
	errs = append(errs, sweepIngests(ctx, cs, roots.ingests, deadIngests, now, o.dryRun, &res))
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	return res, nil
}

// deleteExpiredLeases removes the leases expired at now (Lease.Expired),
// with their resources, and returns them; with dryRun it only returns
// them.
func (db *DB) deleteExpiredLeases(ctx context.Context, now time.Time, dryRun bool) ([]Lease, error) {
	var dead []Lease
	err := db.update(ctx, func(tx *sql.Tx) error {
		leases, err := readLeases(ctx, tx)
		if err != nil {
			return err
		}
		for _, l := range leases {
			if !l.Expired(now) {
				continue
			}
			dead = append(dead, l)
			if dryRun {
				continue
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE id = ?`, l.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delete expired leases: %w", err)
	}
	return dead, nil
}

// gcRoots are the references garbage collection starts from.
type gcRoots struct {
	blobs     []ocispec.Descriptor
	snapshots map[string]bool
	ingests   map[string]bool
	// leases holds every lease read, true for the live ones.
	leases map[string]bool
	// readAt is the time before the roots were read.
	readAt time.Time
}

// gcRoots reads the images and the live leases in one read transaction, so
// that an image recorded just before its lease is deleted is seen in one
// or the other.
func (db *DB) gcRoots(ctx context.Context, now time.Time) (gcRoots, error) {
	roots := gcRoots{snapshots: map[string]bool{}, ingests: map[string]bool{}, leases: map[string]bool{}, readAt: now}
	err := db.view(ctx, func(tx *sql.Tx) error {
		imgs, err := queryImages(ctx, tx, `SELECT `+imageColumns+` FROM images ORDER BY name`)
		if err != nil {
			return fmt.Errorf("read images: %w", err)
		}
		for _, img := range imgs {
			roots.blobs = append(roots.blobs, img.Target)
		}
		leases, err := readLeases(ctx, tx)
		if err != nil {
			return fmt.Errorf("read leases: %w", err)
		}
		for _, l := range leases {
			live := !l.Expired(now)
			roots.leases[l.ID] = live
			if !live {
				continue
			}
			for _, r := range l.Resources {
				switch r.Kind {
				case ResourceContent:
					roots.blobs = append(roots.blobs, ocispec.Descriptor{Digest: digest.Digest(r.Key)})
				case ResourceSnapshot:
					roots.snapshots[r.Key] = true
				case ResourceIngest:
					roots.ingests[r.Key] = true
				}
			}
		}
		return nil
	})
	return roots, err
}

// marker walks the content graph from the roots.
type marker struct {
	cs     *content.Store
	blobs  map[digest.Digest]bool // reachable blobs
	chains map[string]bool        // chain IDs of reachable configs' layers
}

// markAll marks every blob reachable from roots. A blob that is missing,
// does not match its digest, or is not a document it can read is kept
// but not followed; an I/O error reading one stops the collection, since
// what it references cannot be known.
func (m *marker) markAll(ctx context.Context, roots []ocispec.Descriptor) error {
	stack := slices.Clone(roots)
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		desc := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if desc.Digest.Validate() != nil || m.blobs[desc.Digest] {
			continue
		}
		m.blobs[desc.Digest] = true
		children, err := m.children(desc)
		if err != nil {
			return err
		}
		stack = append(stack, children...)
	}
	return nil
}

// children returns the blobs desc references, and records the chain IDs of
// a config.
func (m *marker) children(desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if image.IsLayer(desc.MediaType) {
		return nil, nil
	}
	data, err := m.read(desc.Digest)
	if err != nil || data == nil {
		return nil, err
	}
	kind, err := image.DetectKind(desc.MediaType, data)
	if err != nil {
		return nil, nil // not an image document: a leaf
	}
	// Documents are decoded leniently (not with image.Parse*): garbage
	// collection keeps whatever an image references, whether or not berth
	// could run it (attestation manifests, unknown layer types).
	switch kind {
	case image.KindIndex:
		var idx ocispec.Index
		if json.Unmarshal(data, &idx) != nil {
			return nil, nil
		}
		return idx.Manifests, nil
	case image.KindManifest:
		var mf ocispec.Manifest
		if json.Unmarshal(data, &mf) != nil {
			return nil, nil
		}
		return append([]ocispec.Descriptor{mf.Config}, mf.Layers...), nil
	case image.KindConfig:
		var c ocispec.Image
		if json.Unmarshal(data, &c) != nil {
			return nil, nil
		}
		for _, d := range c.RootFS.DiffIDs {
			if d.Validate() != nil {
				return nil, nil
			}
		}
		for _, id := range image.ChainIDs(c.RootFS.DiffIDs) {
			m.chains[id.String()] = true
		}
	}
	return nil, nil
}

// read returns the content of blob d if it may be a JSON document: nil if
// it is missing, too large, or does not match its digest.
func (m *marker) read(d digest.Digest) ([]byte, error) {
	ra, err := m.cs.ReaderAt(d)
	if errors.Is(err, content.ErrNotFound) || errors.Is(err, content.ErrInvalidDigest) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	defer ra.Close()
	if ra.Size() > image.MaxConfigSize || !startsLikeJSON(ra) {
		return nil, nil
	}
	data, err := io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", d, err)
	}
	if d.Algorithm().FromBytes(data) != d {
		return nil, nil // bit rot: content.Verify reports it
	}
	return data, nil
}

// startsLikeJSON reports whether the blob's first non-blank byte opens a
// JSON object, so that layers are not read whole to find out what they are.
func startsLikeJSON(ra content.ReaderAt) bool {
	buf := make([]byte, min(ra.Size(), 64))
	n, _ := ra.ReadAt(buf, 0)
	for _, b := range buf[:n] {
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}

// sweepContent deletes (with dryRun, lists) the blobs of cs not in marked.
func sweepContent(ctx context.Context, cs *content.Store, marked map[digest.Digest]bool, dryRun bool, res *GCResult) error {
	var dead []content.Info
	err := cs.Walk(func(info content.Info) error {
		if !marked[info.Digest] {
			dead = append(dead, info)
		}
		return ctx.Err()
	})
	if err != nil {
		return fmt.Errorf("walk content: %w", err)
	}
	if dryRun {
		for _, info := range dead {
			res.Blobs = append(res.Blobs, info.Digest)
			res.BytesFreed += info.Size
		}
		return nil
	}
	var errs []error
	for _, info := range dead {
		err := cs.Delete(info.Digest)
		if errors.Is(err, content.ErrNotFound) {
			continue // removed by someone else meanwhile
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("delete blob %s: %w", info.Digest, err))
			continue
		}
		res.Blobs = append(res.Blobs, info.Digest)
		res.BytesFreed += info.Size
	}
	return errors.Join(errs...)
}

// snapshotSet is the snapshotter's snapshots, marked.
type snapshotSet struct {
	infos    map[string]snapshot.Info
	order    []string // creation order
	keep     map[string]bool
	children map[string]int // number of snapshots having each as parent
}

// markSnapshots keeps the committed snapshots named in chains, the
// snapshots the live leases name, the active and view snapshots but those
// of dead leases (see abandoned), and the parents of all of these.
func markSnapshots(sn snapshot.Snapshotter, chains map[string]bool, roots gcRoots) (*snapshotSet, error) {
	s := &snapshotSet{infos: map[string]snapshot.Info{}, keep: map[string]bool{}, children: map[string]int{}}
	err := sn.Walk(func(info snapshot.Info) error {
		s.infos[info.Key] = info
		s.order = append(s.order, info.Key)
		if info.Parent != "" {
			s.children[info.Parent]++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk snapshots: %w", err)
	}
	var stack []string
	for _, key := range s.order {
		info := s.infos[key]
		if chains[key] || roots.snapshots[key] ||
			info.Kind != snapshot.KindCommitted && !abandoned(info, roots) {
			stack = append(stack, key)
		}
	}
	for len(stack) > 0 {
		key := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if s.keep[key] {
			continue
		}
		s.keep[key] = true
		if p := s.infos[key].Parent; p != "" {
			stack = append(stack, p)
		}
	}
	return s, nil
}

// abandoned reports whether the active or view snapshot info belongs to a
// dead lease: its LeaseLabel names a lease that the roots saw expired, or
// that they did not see at all although the snapshot is older than them.
// (A snapshot is prepared after its lease is created, so a lease missing
// from roots read after the snapshot was made has been deleted. A lease
// created after the roots were read is not known to be dead: its
// snapshot, prepared later still, is kept.)
func abandoned(info snapshot.Info, roots gcRoots) bool {
	id, ok := info.Labels[LeaseLabel]
	if !ok {
		return false
	}
	live, known := roots.leases[id]
	if known {
		return !live
	}
	return info.Created.Before(roots.readAt)
}

// sweep removes (with dryRun, lists) the unkept snapshots, each after its
// children. A snapshot that gained a child or vanished meanwhile is left
// alone.
func (s *snapshotSet) sweep(ctx context.Context, sn snapshot.Snapshotter, dryRun bool, res *GCResult) error {
	var ready []string
	for _, key := range s.order {
		// The kept set contains the parents of all kept snapshots, so
		// every child of an unkept snapshot is unkept too.
		if !s.keep[key] && s.children[key] == 0 {
			ready = append(ready, key)
		}
	}
	var errs []error
	for len(ready) > 0 {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		key := ready[len(ready)-1]
		ready = ready[:len(ready)-1]
		size, _, err := sn.Usage(key)
		if err != nil {
			size = 0
		}
		if !dryRun {
			err = sn.Remove(key)
		}
		switch {
		case errors.Is(err, snapshot.ErrNotFound), errors.Is(err, snapshot.ErrFailedPrecondition):
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("remove snapshot %q: %w", key, err))
			continue
		}
		res.Snapshots = append(res.Snapshots, key)
		res.BytesFreed += size
		if p := s.infos[key].Parent; p != "" && !s.keep[p] {
			s.children[p]--
			if s.children[p] == 0 {
				ready = append(ready, p)
			}
		}
	}
	return errors.Join(errs...)
}

// sweepIngests aborts (with dryRun, lists) the ingests that no live lease
// references and no Writer holds, and that a dead lease named (dead) or
// that were last written more than IngestGracePeriod before now.
func sweepIngests(ctx context.Context, cs *content.Store, leased, dead map[string]bool, now time.Time, dryRun bool, res *GCResult) error {
	ingests, err := cs.ListIngests()
	if err != nil {
		return fmt.Errorf("list ingests: %w", err)
	}
	var errs []error
	for _, st := range ingests {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if leased[st.Ref] || st.Locked || !dead[st.Ref] && now.Sub(st.UpdatedAt) < IngestGracePeriod {
			continue
		}
		var err error
		if !dryRun {
			err = cs.Abort(st.Ref)
		}
		switch {
		case errors.Is(err, content.ErrLocked), errors.Is(err, content.ErrNotFound):
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("abort ingest %q: %w", st.Ref, err))
			continue
		}
		res.Ingests = append(res.Ingests, st.Ref)
		res.BytesFreed += st.Offset
	}
	return errors.Join(errs...)
}
