package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/topdir"
)

// driver is what differs between the overlay and the native snapshotter:
// how a new snapshot directory is filled and how it is mounted.
type driver interface {
	// check validates snapshot id of kind on chain (committed parent ids,
	// nearest first) before anything is created.
	check(key string, kind Kind, id uint64, chain []uint64) error
	// create fills the new, empty snapshot directory of id.
	create(key string, kind Kind, id uint64, chain []uint64) error
	// mounts describes how to mount snapshot r on chain.
	mounts(r *record, chain []uint64) ([]specs.Mount, error)
	// committed is called after r was committed, to drop what only an
	// active snapshot needs. Errors are not fatal.
	committed(r *record)
	// rebase reports whether a snapshot of n changed files can be
	// committed on a parent it was not prepared on (WithParent).
	rebase() error
}

// snapshotter implements Snapshotter on a metaStore and a driver. Snapshot
// id N lives in root/snapshots/N: fs/ is its tree, work/ overlay's work dir.
type snapshotter struct {
	root   string
	ms     metaStore
	drv    driver
	closed atomic.Bool
}

// maxKeyLen bounds keys, which are stored in records, not used as paths.
const maxKeyLen = 4096

func checkRoot(root string) (string, error) {
	if root == "" {
		return "", errors.New("snapshotter root is empty")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return "", fmt.Errorf("snapshotter root %q: %w", root, err)
	}
	// Snapshot paths go into overlay's comma and colon separated options.
	if strings.ContainsAny(abs, ",:=") {
		return "", fmt.Errorf("snapshotter root %q: must not contain ',', ':' or '='", abs)
	}
	if err := os.MkdirAll(filepath.Join(abs, snapshotsDir), 0o700); err != nil {
		return "", fmt.Errorf("snapshotter root %q: %w", abs, err)
	}
	// Every container's writable snapshot is made and removed here: a
	// block group of its own for each (see topdir).
	topdir.Mark(filepath.Join(abs, snapshotsDir))
	return abs, nil
}

// open returns a snapshotter on root (already checked) and removes what
// crashed operations left behind.
func open(root string, newDriver func(*snapshotter) driver) (*snapshotter, error) {
	s := &snapshotter{root: root, ms: &fileStore{root: root}}
	s.drv = newDriver(s)
	if err := s.ms.update(s.gc); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *snapshotter) dir(id uint64) string {
	return filepath.Join(s.root, snapshotsDir, strconv.FormatUint(id, 10))
}

func (s *snapshotter) fsDir(id uint64) string { return filepath.Join(s.dir(id), "fs") }

func (s *snapshotter) workDir(id uint64) string { return filepath.Join(s.dir(id), "work") }

// gc removes snapshot directories that have no record: left by a crash
// during Prepare (directory made, record not yet written) or Remove (record
// deleted, files not yet). It must run in an exclusive transaction, where
// no snapshot is half created.
func (s *snapshotter) gc(tx metaTx) error {
	base := filepath.Join(s.root, snapshotsDir)
	ents, err := os.ReadDir(base)
	if err != nil {
		return fmt.Errorf("snapshot gc: %w", err)
	}
	var errs []error
	for _, e := range ents {
		id, ok := parseID(e.Name())
		if !ok {
			continue
		}
		if _, ok := tx.byID(id); ok {
			continue
		}
		if err := os.RemoveAll(filepath.Join(base, e.Name())); err != nil {
			errs = append(errs, fmt.Errorf("snapshot gc: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (s *snapshotter) checkOpen(op, key string) error {
	if s.closed.Load() {
		return fmt.Errorf("%s %q: %w", op, key, ErrClosed)
	}
	return nil
}

func checkKey(op, key string) error {
	if key == "" {
		return fmt.Errorf("%s: empty snapshot key", op)
	}
	if len(key) > maxKeyLen || strings.IndexByte(key, 0) >= 0 {
		return fmt.Errorf("%s %.64q: invalid snapshot key", op, key)
	}
	return nil
}

// chain returns the ids of r's committed ancestors, nearest first.
func chainOf(tx metaTx, r *record) ([]uint64, error) {
	var ids []uint64
	for cur := r; cur.ParentID != 0; {
		p, ok := tx.byID(cur.ParentID)
		if !ok {
			return nil, fmt.Errorf("snapshot %q: parent %q (id %d) is missing from the store", cur.Key, cur.Parent, cur.ParentID)
		}
		ids = append(ids, p.ID)
		cur = p
		if len(ids) > 1<<16 {
			return nil, fmt.Errorf("snapshot %q: parent chain loops", r.Key)
		}
	}
	return ids, nil
}

// Prepare implements Snapshotter.
func (s *snapshotter) Prepare(key, parent string, opts ...Opt) ([]specs.Mount, error) {
	return s.create("prepare", KindActive, key, parent, opts)
}

// View implements Snapshotter.
func (s *snapshotter) View(key, parent string, opts ...Opt) ([]specs.Mount, error) {
	return s.create("view", KindView, key, parent, opts)
}

func (s *snapshotter) create(op string, kind Kind, key, parent string, opts []Opt) ([]specs.Mount, error) {
	if err := checkKey(op, key); err != nil {
		return nil, err
	}
	if err := s.checkOpen(op, key); err != nil {
		return nil, err
	}
	info := Info{Key: key, Parent: parent, Kind: kind, Created: time.Now().UTC()}
	for _, o := range opts {
		if err := o(&info); err != nil {
			return nil, fmt.Errorf("%s %q: %w", op, key, err)
		}
	}
	if info.Parent != parent {
		return nil, fmt.Errorf("%s %q: WithParent is an option of Commit; pass the parent as an argument", op, key)
	}
	var mounts []specs.Mount
	err := s.ms.update(func(tx metaTx) error {
		if _, ok := tx.get(key); ok {
			return fmt.Errorf("%s %q: %w", op, key, ErrAlreadyExists)
		}
		r := &record{Key: key, Kind: kind, Created: info.Created, Labels: info.Labels, Volatile: info.Volatile}
		var chain []uint64
		if parent != "" {
			p, ok := tx.get(parent)
			if !ok {
				return fmt.Errorf("%s %q: parent %q: %w", op, key, parent, ErrNotFound)
			}
			if p.Kind != KindCommitted {
				return fmt.Errorf("%s %q: parent %q is %s, not committed: %w", op, key, parent, p.Kind, ErrFailedPrecondition)
			}
			pc, err := chainOf(tx, p)
			if err != nil {
				return fmt.Errorf("%s %q: %w", op, key, err)
			}
			chain = append([]uint64{p.ID}, pc...)
			r.Parent, r.ParentID = p.Key, p.ID
		}
		id, err := tx.nextID(r.Volatile)
		if err != nil {
			return fmt.Errorf("%s %q: %w", op, key, err)
		}
		if err := s.drv.check(key, kind, id, chain); err != nil {
			return fmt.Errorf("%s %q: %w", op, key, err)
		}
		r.ID = id
		if err := os.Mkdir(s.dir(id), 0o700); err != nil {
			return fmt.Errorf("%s %q: %w", op, key, err)
		}
		if err := s.drv.create(key, kind, id, chain); err != nil {
			os.RemoveAll(s.dir(id))
			return fmt.Errorf("%s %q: %w", op, key, err)
		}
		// The record makes the snapshot exist; until it is written the
		// directory is an orphan that gc removes.
		if err := tx.put(r); err != nil {
			os.RemoveAll(s.dir(id))
			return fmt.Errorf("%s %q: %w", op, key, err)
		}
		mounts, err = s.drv.mounts(r, chain)
		return err
	})
	if err != nil {
		return nil, err
	}
	return mounts, nil
}

// Mounts implements Snapshotter.
func (s *snapshotter) Mounts(key string) ([]specs.Mount, error) {
	if err := s.checkOpen("mounts", key); err != nil {
		return nil, err
	}
	var mounts []specs.Mount
	err := s.ms.view(func(tx metaTx) error {
		r, ok := tx.get(key)
		if !ok {
			return fmt.Errorf("mounts %q: %w", key, ErrNotFound)
		}
		if r.Kind == KindCommitted {
			return fmt.Errorf("mounts %q: snapshot is committed; mount a View or Prepare on it: %w", key, ErrFailedPrecondition)
		}
		chain, err := chainOf(tx, r)
		if err != nil {
			return fmt.Errorf("mounts %q: %w", key, err)
		}
		mounts, err = s.drv.mounts(r, chain)
		return err
	})
	return mounts, err
}

// Commit implements Snapshotter. The committed snapshot keeps the active
// snapshot's id and directory; only its record changes, replaced in one
// atomic step (for the file store: a rename of info.json), so a crash
// leaves either the active snapshot key or the committed snapshot name,
// never neither and never both.
func (s *snapshotter) Commit(name, key string, opts ...Opt) error {
	if err := checkKey("commit", name); err != nil {
		return err
	}
	if err := s.checkOpen("commit", key); err != nil {
		return err
	}
	// A committed snapshot never changes: its usage is measured once,
	// now, rather than by walking its tree on every Usage (every image
	// listing and lookup).
	var du *usage
	if err := s.ms.view(func(tx metaTx) error {
		if r, ok := tx.get(key); ok && r.Kind == KindActive {
			size, inodes, err := diskUsage(s.fsDir(r.ID))
			if err != nil {
				return fmt.Errorf("commit %q as %q: usage: %w", key, name, err)
			}
			du = &usage{Size: size, Inodes: inodes}
		}
		return nil
	}); err != nil {
		return err
	}
	var committed *record
	err := s.ms.update(func(tx metaTx) error {
		r, ok := tx.get(key)
		if !ok {
			return fmt.Errorf("commit %q as %q: %w", key, name, ErrNotFound)
		}
		if r.Kind != KindActive {
			return fmt.Errorf("commit %q as %q: snapshot is %s, not active: %w", key, name, r.Kind, ErrFailedPrecondition)
		}
		if _, ok := tx.get(name); ok {
			return fmt.Errorf("commit %q as %q: %w", key, name, ErrAlreadyExists)
		}
		info := r.info()
		for _, o := range opts {
			if err := o(&info); err != nil {
				return fmt.Errorf("commit %q as %q: %w", key, name, err)
			}
		}
		n := *r
		// A committed snapshot is part of images: its record is durable.
		n.Key, n.Kind, n.Created, n.Labels, n.Usage, n.Volatile = name, KindCommitted, time.Now().UTC(), info.Labels, du, false
		if info.Parent != r.Parent {
			if err := s.rebase(tx, &n, info.Parent); err != nil {
				return fmt.Errorf("commit %q as %q on %q: %w", key, name, info.Parent, err)
			}
		}
		if err := tx.put(&n); err != nil {
			return fmt.Errorf("commit %q as %q: %w", key, name, err)
		}
		committed = &n
		return nil
	})
	if err != nil {
		return err
	}
	s.drv.committed(committed)
	return nil
}

// rebase sets the parent of n, an active snapshot prepared without one, to
// the committed snapshot parent.
func (s *snapshotter) rebase(tx metaTx, n *record, parent string) error {
	if n.ParentID != 0 {
		return fmt.Errorf("snapshot was prepared on %q: %w", n.Parent, ErrFailedPrecondition)
	}
	if err := s.drv.rebase(); err != nil {
		return err
	}
	p, ok := tx.get(parent)
	if !ok {
		return fmt.Errorf("parent: %w", ErrNotFound)
	}
	if p.Kind != KindCommitted {
		return fmt.Errorf("parent is %s, not committed: %w", p.Kind, ErrFailedPrecondition)
	}
	pc, err := chainOf(tx, p)
	if err != nil {
		return err
	}
	chain := append([]uint64{p.ID}, pc...)
	// A committed snapshot is mounted as a lower directory of its
	// children: check that a child of it could still be mounted.
	if err := s.drv.check(n.Key, KindActive, n.ID, append([]uint64{n.ID}, chain...)); err != nil {
		return err
	}
	n.Parent, n.ParentID = p.Key, p.ID
	return nil
}

// Remove implements Snapshotter. The record goes first, then the files: a
// crash in between leaves an orphan directory that the next open removes.
func (s *snapshotter) Remove(key string) error {
	if err := s.checkOpen("remove", key); err != nil {
		return err
	}
	return s.ms.update(func(tx metaTx) error {
		r, ok := tx.get(key)
		if !ok {
			return fmt.Errorf("remove %q: %w", key, ErrNotFound)
		}
		var children []string
		for _, c := range tx.list() {
			if c.ParentID == r.ID {
				children = append(children, strconv.Quote(c.Key))
			}
		}
		if len(children) > 0 {
			return fmt.Errorf("remove %q: still the parent of %s: %w", key, strings.Join(children, ", "), ErrFailedPrecondition)
		}
		if err := tx.del(r.ID); err != nil {
			return fmt.Errorf("remove %q: %w", key, err)
		}
		if err := os.RemoveAll(s.dir(r.ID)); err != nil {
			return fmt.Errorf("remove %q: record removed, files left for gc: %w", key, err)
		}
		return nil
	})
}

// Stat implements Snapshotter.
func (s *snapshotter) Stat(key string) (Info, error) {
	if err := s.checkOpen("stat", key); err != nil {
		return Info{}, err
	}
	var info Info
	err := s.ms.view(func(tx metaTx) error {
		r, ok := tx.get(key)
		if !ok {
			return fmt.Errorf("stat %q: %w", key, ErrNotFound)
		}
		info = r.info()
		return nil
	})
	return info, err
}

// Walk implements Snapshotter. The records are read under the lock, and fn
// is called after it is released, so fn may call other methods.
func (s *snapshotter) Walk(fn func(Info) error) error {
	if err := s.checkOpen("walk", ""); err != nil {
		return err
	}
	var infos []Info
	err := s.ms.view(func(tx metaTx) error {
		for _, r := range tx.list() {
			infos = append(infos, r.info())
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, i := range infos {
		if err := fn(i); err != nil {
			return err
		}
	}
	return nil
}

// Usage implements Snapshotter.
func (s *snapshotter) Usage(key string) (int64, int64, error) {
	if err := s.checkOpen("usage", key); err != nil {
		return 0, 0, err
	}
	var size, inodes int64
	err := s.ms.view(func(tx metaTx) error {
		r, ok := tx.get(key)
		if !ok {
			return fmt.Errorf("usage %q: %w", key, ErrNotFound)
		}
		if r.Kind == KindCommitted && r.Usage != nil {
			size, inodes = r.Usage.Size, r.Usage.Inodes
			return nil
		}
		var err error
		size, inodes, err = diskUsage(s.fsDir(r.ID))
		if err != nil {
			return fmt.Errorf("usage %q: %w", key, err)
		}
		return nil
	})
	return size, inodes, err
}

// Close implements Snapshotter.
func (s *snapshotter) Close() error {
	s.closed.Store(true)
	return nil
}
