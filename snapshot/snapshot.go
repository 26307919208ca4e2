package snapshot

import (
	"errors"
	"fmt"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Kind is the state of a snapshot.
type Kind int

const (
	// KindView is a read-only snapshot of a committed parent chain. It
	// cannot be committed and cannot be a parent.
	KindView Kind = iota + 1
	// KindActive is a writable snapshot: a container's root or a layer
	// being unpacked. It can be committed.
	KindActive
	// KindCommitted is an immutable snapshot (an image layer, named by its
	// chain ID). Only committed snapshots can be parents.
	KindCommitted
)

// String returns "view", "active" or "committed".
func (k Kind) String() string {
	switch k {
	case KindView:
		return "view"
	case KindActive:
		return "active"
	case KindCommitted:
		return "committed"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// MarshalText encodes the kind by name.
func (k Kind) MarshalText() ([]byte, error) {
	switch k {
	case KindView, KindActive, KindCommitted:
		return []byte(k.String()), nil
	}
	return nil, fmt.Errorf("invalid snapshot kind %d", int(k))
}

// UnmarshalText decodes a kind name.
func (k *Kind) UnmarshalText(b []byte) error {
	switch string(b) {
	case "view":
		*k = KindView
	case "active":
		*k = KindActive
	case "committed":
		*k = KindCommitted
	default:
		return fmt.Errorf("invalid snapshot kind %q", b)
	}
	return nil
}

// Info describes a snapshot.
type Info struct {
	Key     string            // the snapshot's key (a committed snapshot's name)
	Parent  string            // key of the committed parent, "" for none
	Kind    Kind              // view, active or committed
	Created time.Time         // when Prepare/View created it, or Commit committed it
	Labels  map[string]string // free-form labels set with WithLabels
	// Volatile: the record is kept without syncing it to disk
	// (WithVolatileRecord).
	Volatile bool
}

// Snapshotter manages snapshots: directory trees stacked on committed
// parents. Methods only describe mounts; they never mount anything.
//
// All methods are safe for concurrent use by many goroutines and many
// processes sharing one root.
type Snapshotter interface {
	// Prepare creates an active (writable) snapshot key on the committed
	// snapshot parent ("" for an empty tree) and returns the mounts that
	// show it.
	Prepare(key, parent string, opts ...Opt) ([]specs.Mount, error)
	// View creates a read-only snapshot key of the committed snapshot
	// parent ("" for an empty tree) and returns the mounts that show it.
	View(key, parent string, opts ...Opt) ([]specs.Mount, error)
	// Mounts returns the mounts of the active or view snapshot key.
	Mounts(key string) ([]specs.Mount, error)
	// Commit turns the active snapshot key into the committed snapshot
	// name, atomically: afterwards key no longer exists. The caller must
	// have unmounted key's mounts.
	Commit(name, key string, opts ...Opt) error
	// Remove deletes snapshot key and its files. It refuses while other
	// snapshots have key as parent.
	Remove(key string) error
	// Stat returns the snapshot key's information.
	Stat(key string) (Info, error)
	// Walk calls fn for every snapshot, in creation order. fn may call
	// other methods. Walk stops at, and returns, fn's first error.
	Walk(fn func(Info) error) error
	// Usage returns the disk space (bytes allocated) and inodes used by
	// the snapshot's own files: for overlay, the layer's changes only.
	Usage(key string) (size int64, inodes int64, err error)
	// Close releases the snapshotter. Other methods fail afterwards.
	Close() error
}

// Opt sets optional properties of a snapshot created by Prepare, View or
// Commit.
type Opt func(*Info) error

// WithParent, given to Commit, commits an active snapshot prepared without
// a parent as a layer on top of the committed snapshot parent. It lets
// layers of one image be unpacked side by side, each into its own empty
// snapshot, and stacked afterwards: the snapshot's tree must hold only its
// layer's changes, in overlayfs' whiteout format. Only snapshotters whose
// trees are changes (overlay) can do it; the native snapshotter, whose
// trees are full copies, refuses it with ErrFailedPrecondition (see
// CanRebase). Prepare and View refuse it: they take the parent as an
// argument.
func WithParent(parent string) Opt {
	return func(i *Info) error {
		if parent == "" {
			return errors.New("WithParent: empty parent")
		}
		i.Parent = parent
		return nil
	}
}

// WithVolatileRecord, given to Prepare or View, keeps the snapshot's
// record without syncing it to disk: for a snapshot that does not outlive
// the host anyway, such as the layer of a --rm container. Creating and
// removing it then costs no fsync. After a crash of the host the record
// may be lost or torn; the snapshot is then an orphan, whose directory the
// next open removes. Its id is not recorded as the last allocated one, so
// it may be given again once the snapshot is removed. Commit makes a
// durable record of the committed snapshot.
func WithVolatileRecord() Opt {
	return func(i *Info) error {
		i.Volatile = true
		return nil
	}
}

// CanRebase reports whether sn's Commit accepts WithParent.
func CanRebase(sn Snapshotter) bool {
	s, ok := sn.(*snapshotter)
	return ok && s.drv.rebase() == nil
}

// WithLabels sets the snapshot's labels (replacing, for Commit, those of
// the active snapshot).
func WithLabels(labels map[string]string) Opt {
	return func(i *Info) error {
		i.Labels = make(map[string]string, len(labels))
		for k, v := range labels {
			i.Labels[k] = v
		}
		return nil
	}
}

var (
	// ErrNotFound is returned (wrapped) when a snapshot does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists is returned (wrapped) when a key is already used.
	ErrAlreadyExists = errors.New("already exists")
	// ErrFailedPrecondition is returned (wrapped) when the snapshot's kind
	// or children forbid the operation.
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrClosed is returned by methods of a closed snapshotter.
	ErrClosed = errors.New("snapshotter closed")
)
